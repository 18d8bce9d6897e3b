"""Hand-written held-out prompts for week 15: loaded into the frame generated prompts have.

Why: week 15 asks whether what predicts a circuit's failure on generated prompts (seed 0) still
predicts it on prompts the generator never made (issue 11, item 3). That check means something
only if the hand-written prompts' features come from **the same code** as the generated ones'
(otherwise a "non-replication" could be a feature computed differently). So this module turns a
small CSV a person writes (``data/prompts/heldout-handwritten.csv``: ``template, family,
condition, order, io, s`` and the prompt, with ``x``, ``filler`` and ``note`` where they apply)
into the frame :func:`circuitgen.generalise.family_prompts` returns for generated prompts: the
same columns (:data:`circuitgen.variations.COLUMNS`, then ``status`` and the positions the scorer's
check adds), with positions from :func:`circuitgen.ioi.find_positions`, name ranks, genders and
origins from :mod:`circuitgen.variations`, mention counts and the filler's measured token count
derived exactly as the generator derives them. A person writes what a person can see (the words,
the names, which family and condition the prompt stands in for); everything else is computed.

Checks (each raises :class:`HeldoutError` naming the CSV row and the fix; nothing is silently
dropped): an unknown family or condition, an order the condition does not have, a name that does
not occur as the condition needs (``find_positions``), a written order that disagrees with the
positions, a distractor ``x`` where the condition has none (or none where it has one), a known
name in the prompt that is neither ``io``, ``s`` nor ``x``, names outside the condition's name
group (frequent / rare / same or mixed gender / origin / word names), a filler the condition does
not have or that is not in the prompt, and, with a model, any row the scorer could not score.

One thing is the tokenizer's, not the writer's: whether a name is one token with its leading
space. The CSV is written for the reference tokenizer (SmolLM2's), where every name is; another
tokenizer may split some (GPT-2 splits " Musa" and " Sofia"). Such a row is **skipped and
recorded**, not refused: the frame keeps the other rows (``prompt_id`` stays the CSV row, so a
row's id and ABC names do not depend on which rows another tokenizer skips) and
``frame.attrs["skipped"]`` lists each skipped row (``row``, ``template``, ``family``,
``condition``, ``reason``); :func:`skipped_note` says it in a sentence. Only a table with no
usable row raises. Every other check still raises.

ABC counterparts: for prompts with one IO and two S mentions and no distractor,
:func:`circuitgen.ioi.make_abc` (the project's ABC code for hand-written prompts). It replaces
only IO, S1 and S2 and checks positions strictly, so for the adversarial prompts with more
mentions (``double_io``, ``triple_io``, ``s_thrice``) or a distractor it would leave a name of
the prompt in its counterpart; for those, every mention is replaced, at its character span, by
its own distinct single-token name, as the generator does. Both are then checked the same way:
same token count as the prompt, different tokens exactly at the name mentions, none of the
prompt's names left.

Scores (:func:`score_handwritten`): the week-14 circuits under mean and resample ablation, as
:func:`circuitgen.faithful.circuit_scores` computes them, except for the mean-ablation reference.
Left to the scorer's default, prompts with ``condition`` and ``order`` are grouped by (condition,
order) and the group's reference comes from *the scored prompts' own* ABC counterparts, padded to
20 by name substitution (:mod:`circuitgen.reference`). For the generated families that is 10-20
prompts of several templates per group; for this table it would be one or two hand-written
prompts per group, each ablated towards a mean over its own wording with other names (close to
a per-prompt reference). So each hand-written prompt is instead ablated with **its family's
generated reference** (:func:`family_reference`: the same (condition, order) means the family's
generated prompts of seed :data:`REFERENCE_SEED` were scored with, bit for bit), which does not
depend on the hand-written wording. ``scripts/week15.py`` also writes the scorer-default
variant, so the difference can be shown.
"""

from __future__ import annotations

import pathlib
import random
import time
from collections.abc import Sequence

import pandas as pd

from circuitgen import curves as C
from circuitgen import faithful, generalise, ioi, ioi_templates, variations
from circuitgen import tables as T
from circuitgen import variation_lists as VL
from circuitgen.ioi import PromptError
from circuitgen.paths import DATA_DIR, PROMPTS_DIR, result_path
from circuitgen.scorer import check_prompts, mean_reference

HANDWRITTEN = PROMPTS_DIR / "heldout-handwritten.csv"
GENERATOR_VERSION = "handwritten-1"
VERSION = "heldout-1"
REFERENCE_SEED = 1  # the generated held-out draw, whose scores the hand-written rows join
REQUIRED = ("template", "prompt", "io", "s", "family", "condition", "order")
OPTIONAL = ("x", "filler", "note", "place", "object", "verb")
TEMPLATE_PREFIX = "hand:"
# Columns the scorer's check (scorer._valid_rows) appends, in its order, after the generator's.
_CHECKED = ("status", "pos_io", "pos_s1", "pos_s1p1", "pos_s2", "pos_end", "n_tokens", "order")
FRAME_COLUMNS = tuple(c for c in variations.COLUMNS if c not in _CHECKED) + _CHECKED + (
    "filler", "note")
"""The loaded frame's columns: those of ``generalise.family_prompts``, then ``filler, note``."""


class HeldoutError(PromptError):
    """A hand-written prompt row cannot be used as written; the message says the fix."""


# --------------------------------------------------------------------------------------------
# Generator templates (to show hand-written prompts are not among them)


def generator_templates() -> dict[str, str]:
    """``{id: text}`` of every template the variation generators (and so the canonical IOI
    generator, whose templates the families reuse as ``ioi:<k>``) can render."""
    out: dict[str, str] = {}
    for family in variations.FAMILIES:
        for cond in variations._spec(family).values():
            for t in cond.templates:
                out[t.id] = t.text
    return out


def template_pattern(text: str):
    """A regex matching every prompt a generator template can render: name slots are one word,
    vocabulary slots any text, the filler any (possibly empty) text. Order is free: the ABBA
    twin only swaps which name fills which slot."""
    import re

    slot = re.compile(r"\[(S|IO|X|PLACE|OBJECT|NOUN|VERB|FILLER)\]")
    parts, last = [], 0
    for m in slot.finditer(text):
        parts.append(re.escape(text[last:m.start()]))
        parts.append({"S": r"\w+", "IO": r"\w+", "X": r"\w+", "FILLER": r".*?"}.get(m.group(1), r".+?"))
        last = m.end()
    parts.append(re.escape(text[last:]))
    return re.compile("".join(parts) + r"\Z", re.S)


def generator_matches(prompt: str) -> list[str]:
    """Ids of the generator templates that could have rendered ``prompt`` (empty: none)."""
    return [tid for tid, text in generator_templates().items()
            if template_pattern(text).match(prompt)]


# --------------------------------------------------------------------------------------------
# Loading


def read_handwritten(path: str | pathlib.Path = HANDWRITTEN) -> pd.DataFrame:
    """The raw CSV (strings, empty cells as ""), checked for its required columns."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no hand-written prompt table at {path}; it is committed as "
                                f"{HANDWRITTEN.relative_to(DATA_DIR.parent)}.")
    raw = pd.read_csv(path, keep_default_na=False, dtype=str)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise HeldoutError(f"{path.name}: missing column(s) {missing}; a hand-written prompt table "
                           f"needs {list(REQUIRED)} (and optionally {list(OPTIONAL)}).")
    return raw


def _where(raw: pd.DataFrame, i: int) -> str:
    tid = raw["template"].iloc[i] if "template" in raw.columns else "?"
    return f"hand-written row {i} ({tid})"


def _names_group_problem(names: variations._Names, key: str, io: str, s: str) -> str | None:
    """Why (io, s) do not belong to a condition's name group, or None (any names for base)."""
    if key == "base":
        return None
    if key == "same_gender":
        g = (variations.gender(io), variations.gender(s))
        return None if g[0] == g[1] and g[0] != "u" else f"genders {g} are not the same (and known)"
    if key == "mixed_gender":
        g = (variations.gender(io), variations.gender(s))
        return None if set(g) == {"f", "m"} else f"genders {g} are not one f and one m"
    group = names.group(key)
    outside = [n for n in (io, s) if n not in group]
    if outside:
        return (f"{outside} not in the condition's name group {key!r} (for this tokenizer: "
                f"{list(group)[:12]}{' ...' if len(group) > 12 else ''})")
    return None


def _abc_all_mentions(tokenizer, prompt: str, spans: list[tuple[int, int]], own: set[str],
                      pool: Sequence[str], rng: random.Random) -> tuple[str, list[str]]:
    """Every name mention (character spans, in order) replaced by its own distinct name."""
    others = [n for n in pool if n not in own]
    names = rng.sample(others, len(spans))
    text, last = [], 0
    for (a, b), name in zip(spans, names):
        text += [prompt[last:a], name]
        last = b
    return "".join(text + [prompt[last:]]), names


def _check_abc(tokenizer, prompt: str, abc: str, name_pos: list[int], own: set[str], where: str
               ) -> list[str]:
    """The ABC prompt aligns with the prompt token for token, differs exactly at the name
    mentions and holds none of the prompt's names; returns the names at ``name_pos``."""
    a, b = ioi.tokenize(tokenizer, prompt), ioi.tokenize(tokenizer, abc)
    if len(a) != len(b):
        raise HeldoutError(f"{where}: the ABC counterpart {abc!r} is {len(b)} tokens, the prompt "
                           f"{len(a)}; use names that are single tokens in this prompt.")
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if differ != sorted(name_pos):
        raise HeldoutError(f"{where}: the ABC counterpart differs at tokens {differ}, the names "
                           f"are at {sorted(name_pos)}: {abc!r}.")
    left = [n for n in own if ioi._word_spans(abc, n)]
    if left:
        raise HeldoutError(f"{where}: the ABC counterpart {abc!r} still contains {left}.")
    return [tokenizer.decode([b[p]]).strip() for p in name_pos]


def _row(tokenizer, label: str, names: variations._Names, pool: Sequence[str], r: dict,
         where: str, seed: int) -> dict:
    family, condition = r["family"], r["condition"]
    if family not in variations.FAMILIES:
        raise HeldoutError(f"{where}: unknown family {family!r}; use one of "
                           f"{list(variations.FAMILIES)}.")
    spec = variations._spec(family)
    if condition not in spec:
        raise HeldoutError(f"{where}: family {family!r} has no condition {condition!r}; use one of "
                           f"{list(spec)} (a prompt that fits none does not belong in this table: "
                           "the fits compare conditions the training prompts have).")
    cond = spec[condition]
    if not str(r["template"]).startswith(TEMPLATE_PREFIX):
        raise HeldoutError(f"{where}: template id {r['template']!r} must start with "
                           f"{TEMPLATE_PREFIX!r} (e.g. hand:{family}:0), so it can never be "
                           "mistaken for a generator template.")
    order = r["order"]
    if order not in cond.orders:
        raise HeldoutError(f"{where}: condition {family}/{condition} has order(s) "
                           f"{list(cond.orders)}, not {order!r}; rewrite the prompt or change the "
                           "order column (ABBA: IO named first, BABA: S first).")
    prompt, io, s = r["prompt"], r["io"].strip(), r["s"].strip()
    x = str(r.get("x", "") or "").strip()
    filler = str(r.get("filler", "") or "")
    try:
        pos = ioi.find_positions(tokenizer, prompt, io, s, bos=True, row=where,
                                 io_count=cond.io_count, s_count=cond.s_count)
    except PromptError as err:
        raise HeldoutError(f"{err} (condition {family}/{condition} needs the IO "
                           f"{cond.io_count} time(s) and S {cond.s_count} times)") from None
    if pos.order != order:
        raise HeldoutError(f"{where}: the order column says {order} but {io!r} (IO) comes "
                           f"{'before' if pos.order == 'ABBA' else 'after'} {s!r} (S1), which is "
                           f"{pos.order}; fix the order column or swap io and s.")
    wants_x = "X" in {role for t in cond.templates for role in t.name_slots}
    if wants_x and not x:
        raise HeldoutError(f"{where}: condition {family}/{condition} has a distractor name; "
                           "give it in the x column.")
    if x and not wants_x:
        raise HeldoutError(f"{where}: x={x!r} but condition {family}/{condition} has no "
                           "distractor; leave x empty or use adversarial/distractor.")
    x_spans = ioi._word_spans(prompt, x) if x else []
    if x and (x in (io, s) or len(x_spans) != 1 or not ioi.is_single_token_name(tokenizer, x)):
        raise HeldoutError(f"{where}: the distractor {x!r} must differ from io and s, occur once "
                           f"(found {len(x_spans)}) and be one token with its leading space.")
    known = set(VL.NAMES) | set(VL.WORD_NAMES)
    stray = sorted(n for n in known - {io, s, x} if ioi._word_spans(prompt, n))
    if stray:
        raise HeldoutError(f"{where}: the prompt names {stray}, which is neither io, s nor x; "
                           "remove it, or put a distractor in x (adversarial/distractor).")
    why = names.shortfall(cond.names) or _names_group_problem(names, cond.names, io, s)
    if why:
        raise HeldoutError(f"{where}: condition {family}/{condition} draws its names from group "
                           f"{cond.names!r}: {why}. Pick names from that group.")
    if cond.filler_target and not filler:
        raise HeldoutError(f"{where}: condition {family}/{condition} has about "
                           f"{cond.filler_target} filler tokens; put the filler text (as it "
                           "appears in the prompt) in the filler column.")
    if filler and not cond.filler_target:
        raise HeldoutError(f"{where}: a filler is given but condition {family}/{condition} has "
                           "none; leave the filler column empty.")
    if filler and prompt.count(filler) != 1:
        raise HeldoutError(f"{where}: the filler {filler!r} occurs {prompt.count(filler)} times "
                           "in the prompt; it must be copied from the prompt exactly, once.")

    # Every mention's token index, found as the generator finds it.
    ids, offsets = ioi._encode(tokenizer, prompt)
    spans = sorted([(sp, "IO") for sp in ioi._word_spans(prompt, io)]
                   + [(sp, "S") for sp in ioi._word_spans(prompt, s)]
                   + [(sp, "X") for sp in x_spans])
    mention = [(role, variations._token_index(offsets, sp, 1)) for sp, role in spans]
    io_tok = [p for role, p in mention if role == "IO"]
    s_tok = [p for role, p in mention if role == "S"]
    x_tok = [p for role, p in mention if role == "X"]
    filler_tokens = (pos.n_tokens - len(ioi.tokenize(tokenizer, prompt.replace(filler, "", 1)))
                     if filler else 0)

    own = {io, s} | ({x} if x else set())
    standard = len(io_tok) == 1 and len(s_tok) == 2 and not x
    if standard:  # the project's ABC code for hand-written prompts
        abc = ioi.make_abc(pd.DataFrame([{"prompt": prompt, "io": io, "s": s}]), tokenizer,
                           seed=seed).loc[0, "abc_prompt"]
    else:
        abc, _ = _abc_all_mentions(tokenizer, prompt, [sp for sp, _ in spans], own, pool,
                                   random.Random(seed))
    name_pos = [p for _, p in mention]
    new = _check_abc(tokenizer, prompt, abc, name_pos, own, where)
    rank = {n: tokenizer(" " + n, add_special_tokens=False)["input_ids"][0] for n in (io, s)}
    return {
        "prompt": prompt, "io": io, "s": s, "x": x, "family": family, "condition": condition,
        "template": r["template"], "order": pos.order,
        **{c: str(r.get(c, "") or "") for c in ("place", "object", "verb")},
        **variations.mention_columns(pos, io, s, io_tok, s_tok, x_tok, abc, new, name_pos,
                                     rank[io], rank[s]),
        "filler_target": cond.filler_target, "filler_tokens": filler_tokens,
        "tokenizer": label, "filler": filler, "note": str(r.get("note", "") or ""),
    }


def prompts_frame(model_or_tokenizer, raw: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Raw hand-written rows -> the frame of :func:`circuitgen.generalise.family_prompts`
    (columns :data:`FRAME_COLUMNS`; ``prompt_id`` the CSV row, 0..n-1 when nothing is skipped;
    ``seed`` missing, ``generator_version`` :data:`GENERATOR_VERSION`). Rows whose names are not
    single tokens for this tokenizer are skipped and listed in ``attrs["skipped"]`` (see the
    module docstring); no usable row raises. With a model (not a bare tokenizer) every kept row
    must also pass the scorer's own check. ``seed`` fixes the ABC names."""
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise HeldoutError(f"the hand-written rows lack column(s) {missing}; give "
                           f"{list(REQUIRED)} (and optionally {list(OPTIONAL)}).")
    dupes = sorted(raw["template"][raw["template"].duplicated()].unique())
    if dupes:
        raise HeldoutError(f"template id(s) {dupes} are used twice; give each hand-written "
                           "prompt its own id (hand:<family>:<k>).")
    tokenizer, label = ioi.resolve_tokenizer(model_or_tokenizer)
    names = variations._Names.build(tokenizer)
    pool = ioi.single_token_names(tokenizer, ioi_templates.NAMES, log=False).kept
    rows, skipped = [], []
    for i, r in enumerate(raw.to_dict("records")):
        r = {k: ("" if v is None else v) for k, v in r.items()}
        why = _split_names(tokenizer, label, r)
        if why:
            skipped.append({"row": i, "template": str(r["template"]), "family": str(r["family"]),
                            "condition": str(r["condition"]), "reason": why})
            continue
        row = _row(tokenizer, label, names, pool, r, _where(raw, i), seed + i)
        rows.append({"prompt_id": i, **row, "seed": None, "generator_version": GENERATOR_VERSION,
                     "status": "ok"})
    if not rows:
        raise HeldoutError(f"no hand-written row is usable with tokenizer {label}: every row names "
                           "a name that is not one token with its leading space:\n  "
                           + "\n  ".join(f"row {k['row']} ({k['template']}): {k['reason']}"
                                          for k in skipped)
                           + "\nWrite rows whose names are single tokens for this tokenizer.")
    df = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    df["same_gender"] = pd.array(df["same_gender"].tolist(), dtype="boolean")
    df["seed"] = pd.array([pd.NA] * len(df), dtype="Int64")
    if hasattr(model_or_tokenizer, "cfg"):  # the scorer's check: refuses, never drops

        checked = check_prompts(model_or_tokenizer, df)
        bad = checked[checked.status != "ok"]
        if len(bad):
            raise HeldoutError("the model cannot score these hand-written rows:\n  "
                               + "\n  ".join(bad.status))
        same = checked.drop(columns="status").astype(str).eq(
            df[[c for c in checked.columns if c != "status"]].astype(str)).all()
        if not same.all():
            raise HeldoutError(f"the scorer finds other positions ({list(same.index[~same])}) "
                               "than the loader; this is a bug in circuitgen.heldout.")
    df.attrs["skipped"] = skipped
    return df


def _split_names(tokenizer, label: str, r: dict) -> str | None:
    """Why a row's names do not fit ``tokenizer`` (some name is not one token with its leading
    space), or None. A property of the tokenizer, not a mistake in the row: the row is skipped."""
    names = dict.fromkeys(str(r.get(c, "") or "").strip() for c in ("io", "s", "x"))
    split = [n for n in names if n and not ioi.is_single_token_name(tokenizer, n)]
    if not split:
        return None
    return "; ".join(f"{n!r} is {len(tokenizer(' ' + n, add_special_tokens=False)['input_ids'])} "
                     f"tokens with a leading space in tokenizer {label}" for n in split)


def skipped_note(prompts: pd.DataFrame) -> str:
    """One sentence on the rows :func:`prompts_frame` skipped for this tokenizer ("" if none)."""
    skipped = prompts.attrs.get("skipped") or []
    if not skipped:
        return ""
    total = len(prompts) + len(skipped)
    return (f"{len(skipped)} of {total} hand-written prompts skipped (names that are not one "
            "token for this model): "
            + "; ".join(f"{k['template']} ({k['reason']})" for k in skipped))


def load_handwritten(model_or_tokenizer, path: str | pathlib.Path = HANDWRITTEN, *,
                     seed: int = 0) -> pd.DataFrame:
    """:func:`prompts_frame` of the committed (or given) hand-written CSV (rows skipped for this
    tokenizer in ``attrs["skipped"]``)."""
    return prompts_frame(model_or_tokenizer, read_handwritten(path), seed=seed)


# --------------------------------------------------------------------------------------------
# Scores


def family_reference(model, family: str, seed: int = REFERENCE_SEED):
    """The mean-ablation reference the generated ``family`` prompts of ``seed`` were scored with
    in week 14: ``scorer.mean_reference`` of ``generalise.family_prompts`` (grouped by condition
    and order; the generated prompts' ABC counterparts padded to 20 per group)."""

    return mean_reference(model, generalise.family_prompts(model, family, seed))


def score_with_family_reference(model, prompts: pd.DataFrame, circuits: dict, ablation: str,
                                references: dict | None = None) -> pd.DataFrame:
    """The long table of :func:`circuitgen.curves.score_circuits` for ``prompts`` (any mix of
    families) under one ablation; for ``mean``, each family's rows with that family's generated
    reference (``references[family]``, else :func:`family_reference`). Rows in the order
    circuit, then prompt, as ``score_circuits`` gives them."""

    parts = []
    for family in [f for f in variations.FAMILIES if f in set(prompts["family"])]:
        sub = prompts[prompts["family"] == family]
        means = None
        if ablation == "mean":
            means = (references or {}).get(family) or family_reference(model, family)
        parts.append(C.score_circuits(C.Setting(model, sub, method=ablation, means=means),
                                      dict(circuits)))
    out = pd.concat(parts, ignore_index=True)
    order = out.assign(_rank=out["circuit"].map({c: i for i, c in enumerate(circuits)}))
    order = order.sort_values(["_rank", "prompt_id"], kind="mergesort")
    return order.drop(columns="_rank").reset_index(drop=True)


def score_handwritten(model, prompts: pd.DataFrame, circuits: dict, *,
                      name: str = "heldout-handwritten-circuits",
                      ablations: Sequence[str] = ("mean", "resample"),
                      reference_seed: int = REFERENCE_SEED,
                      out_dir: str | pathlib.Path | None = None, log=print):
    """Per-prompt scores of ``circuits`` on the hand-written ``prompts``, cached as
    ``<out_dir>/<model>-<name>.csv`` (default ``data/scores``) in the format of
    :func:`circuitgen.faithful.circuit_scores`; mean ablation uses each family's generated
    reference of seed ``reference_seed`` (see the module docstring), recorded in the sidecar."""

    path = result_path("scores", model.circuitgen.model, name, folder=out_dir)
    families = [f for f in variations.FAMILIES if f in set(prompts["family"])]
    ref_prompts = {f: generalise.family_prompts(model, f, reference_seed) for f in families}
    inputs = {"prompts": prompts, "model": model.circuitgen.model, "version": faithful.VERSION,
              "heldout_version": VERSION, "ablations": list(ablations),
              "circuits": {k: [n.label for n in v] for k, v in circuits.items()},
              "mean_reference_prompts": ref_prompts}

    def compute():

        t0 = time.perf_counter()
        refs = ({f: mean_reference(model, ref_prompts[f]) for f in families}
                if "mean" in ablations else {})
        frames = [score_with_family_reference(model, prompts, circuits, a, refs)
                  for a in ablations]
        described = {f: {k: v for k, v in m.describe().items() if k != "positions"}
                     for f, m in refs.items()}
        return T.ResultTable(pd.concat(frames, ignore_index=True),
                             {"seconds": round(time.perf_counter() - t0, 1),
                              "mean_reference_by_family": described})

    rule = (f"mean ablation: each hand-written prompt takes the (condition, order) mean of its "
            f"family's generated prompts (seed {reference_seed}), the reference those prompts were "
            "scored with in week 14; resample: each prompt's own ABC counterpart")
    skipped = prompts.attrs.get("skipped") or []
    return T.cached(path, inputs, compute, log=log,
                    meta={"n_prompts": len(prompts), "reference_rule": rule,
                          "prompts_source": str(HANDWRITTEN.relative_to(DATA_DIR.parent)),
                          **({"skipped_rows": skipped} if skipped else {})})


__all__ = ["HANDWRITTEN", "GENERATOR_VERSION", "VERSION", "REFERENCE_SEED", "REQUIRED",
           "OPTIONAL", "FRAME_COLUMNS", "HeldoutError", "generator_templates", "template_pattern",
           "generator_matches", "read_handwritten", "prompts_frame", "load_handwritten", "skipped_note",
           "family_reference", "score_with_family_reference", "score_handwritten"]
