"""Variation families for the IOI generalisation sweeps: lexical, syntactic, domain, adversarial.

Each family is a generator ``generate_<family>(tokenizer_or_model, n_per_condition=..., seed=0)``
returning an :class:`circuitgen.ioi.PromptSet` with ``n_per_condition`` prompts for each of its
conditions (:data:`FAMILIES`); :func:`generate_family` dispatches by name. Templates and word lists
live in :mod:`circuitgen.variation_lists`.

The answer stays well defined in every prompt: the IO is introduced before S2, the subject S is
the giver at S2, and the prompt ends right before the answer. In every family except two
adversarial conditions the prompt passes the strict :func:`circuitgen.ioi.find_positions` check
the scorer uses (IO once before S2, S exactly twice); those rows have ``standard_ioi == True``.
The exceptions, checked with the relaxed ``find_positions(..., io_count=, s_count=)``:

- ``adversarial/double_io``, ``adversarial/triple_io``: the IO is mentioned 2 or 3 times before
  S2, S twice (after the DoubleIO/TripleIO idea of Nainani et al. 2024, arXiv:2411.16105, in this
  project's wording). ``pos_io`` is the **first** IO mention (where it is introduced with S1),
  ``pos_io_last`` the last one before S2.
- ``adversarial/s_thrice``: S is mentioned three times; ``pos_s1`` is the first mention,
  ``pos_s2`` the last (the giver), ``pos_s_mid`` the one between.

Columns (one row a prompt): ``prompt_id prompt io s x family condition template order place
object verb`` (``x`` the distractor name or ""), the ABC counterpart ``abc_prompt abc_io abc_s1
abc_s2 abc_names``, the positions ``pos_io pos_s1 pos_s1p1 pos_s2 pos_end n_tokens`` (BOS at 0,
as in :mod:`circuitgen.ioi`) and ``pos_io_last pos_s_mid pos_x`` (-1 where absent), the mention
counts ``io_mentions s_mentions``, ``standard_ioi``, and per-prompt features:

- ``dist_s1_s2``: tokens from S1 to S2 (``pos_s2 - pos_s1``); ``io_pos``: the token index of IO;
- ``io_rank``, ``s_rank``: the token id of `` name`` (with its leading space). BPE vocabularies
  add merges roughly in order of frequency in the tokenizer's training text, so a low id is a
  **proxy** for a frequent word; it is not a measured frequency;
- ``io_gender s_gender same_gender`` (``same_gender`` is missing where a gender is ``u``),
  ``io_origin s_origin`` (coarse tags from :data:`variation_lists.NAME_INFO`, "" if untagged);
- ``filler_target filler_tokens``: for the filler conditions, the asked-for and the measured
  number of filler tokens (0 elsewhere).

ABC counterparts: every name mention (IO, each S, each repeated IO, X) is replaced by its own
distinct name, none of them ``io``, ``s`` or ``x``; the template, place, object, verb and filler
are kept. Each ABC prompt is checked to have the same tokens as its prompt except at the name
positions, where they differ. Names that are not one token in the tokenizer are dropped and
reported in ``meta`` (``names_dropped``, by list in ``names_dropped_by_list``). A condition
whose name group keeps fewer than ``MIN_NAMES_PER_GROUP`` names is skipped and reported in
``meta["conditions_skipped"]``. Everything is fixed by ``seed`` (each condition draws from its
own ``random.Random(f"{seed}:{family}:{condition}")``).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from circuitgen import ioi, ioi_templates
from circuitgen import variation_lists as VL
from circuitgen.ioi import PromptError, PromptSet

GENERATOR_VERSION = "variations-1.0"
_SLOT = re.compile(r"\[(S|IO|X|PLACE|OBJECT|NOUN|VERB|FILLER)\]")
_NAME_ROLES = ("S", "IO", "X")

COLUMNS = (
    "prompt_id", "prompt", "io", "s", "x", "family", "condition", "template", "order",
    "place", "object", "verb",
    "abc_prompt", "abc_io", "abc_s1", "abc_s2", "abc_names",
    "pos_io", "pos_s1", "pos_s1p1", "pos_s2", "pos_end", "n_tokens",
    "pos_io_last", "pos_s_mid", "pos_x", "io_mentions", "s_mentions", "standard_ioi",
    "dist_s1_s2", "io_pos", "io_rank", "s_rank",
    "io_gender", "s_gender", "same_gender", "io_origin", "s_origin",
    "filler_target", "filler_tokens",
    "tokenizer", "seed", "generator_version",
)


# --------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class VTemplate:
    """A variation template with a unique string id; ``swappable``: has an IO-first twin."""

    id: str
    text: str
    swappable: bool = True

    def __post_init__(self):
        roles = self.name_slots
        if roles.count("S") < 2 or roles.count("IO") < 1 or roles[0] != "S":
            raise PromptError(f"template {self.id} {self.text!r}: its name slots are {roles}; it "
                              "must start with [S], mention [IO], and repeat [S] (the giver).")
        last_s = len(roles) - 1 - roles[::-1].index("S")
        if "IO" in roles[last_s:]:
            raise PromptError(f"template {self.id}: every [IO] must come before the last [S].")
        if self.text.startswith("[") or self.text != self.text.rstrip() or not self.text.endswith(
                tuple("abcdefghijklmnopqrstuvwxyz")):
            raise PromptError(f"template {self.id} {self.text!r} must not start with a slot and "
                              "must end with a word right before the answer.")

    @property
    def name_slots(self) -> list[str]:
        return [m.group(1) for m in _SLOT.finditer(self.text) if m.group(1) in _NAME_ROLES]

    def render(self, order: str, names: Callable[[int, str], str], fill: dict[str, str]
               ) -> tuple[str, list[tuple[str, int, int]]]:
        """(text, [(role, start, end) of each name mention]); ``names(k, role)`` names mention k.

        ``order`` "ABBA" swaps the roles of the first [S] and the first [IO] (IO-first twin).
        """
        roles = self.name_slots
        if order == "ABBA":
            if not self.swappable:
                raise PromptError(f"template {self.id} has no IO-first twin.")
            i_s, i_io = roles.index("S"), roles.index("IO")
            roles[i_s], roles[i_io] = "IO", "S"
        elif order != "BABA":
            raise PromptError(f"order must be ABBA or BABA, not {order!r}.")
        out, spans, last, k = [], [], 0, 0
        length = 0
        for m in _SLOT.finditer(self.text):
            out.append(self.text[last:m.start()])
            length += m.start() - last
            slot = m.group(1)
            if slot in _NAME_ROLES:
                role = roles[k]
                value = names(k, role)
                spans.append((role, length, length + len(value)))
                k += 1
            else:
                value = fill.get(slot, "")
            out.append(value)
            length += len(value)
            last = m.end()
        out.append(self.text[last:])
        return "".join(out), spans


def _templates(prefix: str, texts: Sequence[str], swappable: bool = True) -> tuple[VTemplate, ...]:
    return tuple(VTemplate(f"{prefix}:{i}", t, swappable) for i, t in enumerate(texts))


def _ioi_templates() -> tuple[VTemplate, ...]:
    """The canonical IOI templates in this module's slot syntax (ids ``ioi:<k>``)."""
    return tuple(
        VTemplate(f"ioi:{t.id}", t.text.replace("[B]", "[S]").replace("[A]", "[IO]")
                  .replace("[OBJECT]", "[NOUN]"))
        for t in ioi.TEMPLATES)


# --------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class Condition:
    """What one condition varies: templates, name group, vocabulary, orders, mention counts."""

    templates: tuple[VTemplate, ...]
    names: str = "base"  # base | frequent | rare | same_gender | mixed_gender | origin:<o> | word
    places: tuple[str, ...] = VL.BASE_PLACES
    objects: tuple[str, ...] = VL.BASE_OBJECTS
    nouns: tuple[str, ...] = ioi_templates.OBJECTS
    verbs: tuple[str, ...] = (VL.GIVE_VERB,)
    orders: tuple[str, ...] = ("ABBA", "BABA")
    filler_target: int = 0
    io_count: int = 1
    s_count: int = 2
    note: str = ""


_LEX = _templates("lexical", VL.LEXICAL_TEMPLATES)
_IOI = _ioi_templates()
_ASYM = _templates("asymmetric", VL.ASYMMETRIC_TEMPLATES)
_FILL = _templates("filler", VL.FILLER_TEMPLATES)


def _lexical() -> dict[str, Condition]:
    c = {
        "names_frequent": Condition(_LEX, names="frequent",
                                    note="IO and S from the names with token id <= the median"),
        "names_rare": Condition(_LEX, names="rare",
                                note="IO and S from the names with token id > the median"),
        "names_same_gender": Condition(_LEX, names="same_gender"),
        "names_mixed_gender": Condition(_LEX, names="mixed_gender"),
    }
    for o in VL.ORIGINS:
        c[f"names_origin_{o}"] = Condition(_LEX, names=f"origin:{o}")
    c |= {
        "objects_base": Condition(_LEX, objects=VL.BASE_OBJECTS),
        "objects_new": Condition(_LEX, objects=VL.NEW_OBJECTS),
        "objects_plural": Condition(_LEX, objects=VL.PLURAL_OBJECTS,
                                    note="definite plural objects, 'the keys' among them"),
        "places_base": Condition(_LEX, places=VL.BASE_PLACES),
        "places_new": Condition(_LEX, places=VL.NEW_PLACES),
        "verbs_gave": Condition(_LEX, verbs=(VL.GIVE_VERB,)),
        "verbs_other": Condition(_LEX, verbs=VL.OTHER_VERBS),
    }
    return c


def _syntactic() -> dict[str, Condition]:
    c = {
        "order_abba": Condition(_IOI, orders=("ABBA",), note="canonical templates, IO named first"),
        "order_baba": Condition(_IOI, orders=("BABA",), note="canonical templates, S named first"),
        "io_first": Condition(_ASYM, orders=("ABBA",),
                              note="'IO met S ...': IO the subject of the first clause"),
        "s_first": Condition(_ASYM, orders=("BABA",),
                             note="'S met IO ...': S the subject of the first clause"),
    }
    for t in VL.FILLER_TARGETS:
        c[f"filler_{t}"] = Condition(_FILL, filler_target=t,
                                     note=f"about {t} filler tokens between S1 and S2 "
                                     "(measured in filler_tokens)")
    c |= {
        "one_sentence": Condition(_templates("one_sentence", VL.ONE_SENTENCE_TEMPLATES)),
        "two_sentences": Condition(_templates("two_sentences", VL.TWO_SENTENCE_TEMPLATES)),
        "passive": Condition(_templates("passive", VL.PASSIVE_TEMPLATES),
                             note="'the drink was given by S to': S is the agent, the answer the IO"),
        "relative_clause": Condition(_templates("relative_clause", VL.RELATIVE_CLAUSE_TEMPLATES)),
        "reordered_clauses": Condition(_templates("reordered", VL.REORDERED_TEMPLATES),
                                       note="names' clause first, the giving in a following "
                                       "subordinate clause"),
    }
    return c


def _domain() -> dict[str, Condition]:
    c = {"everyday": Condition(_IOI, note="canonical IOI templates and vocabulary (the reference)")}
    for name, d in VL.DOMAINS.items():
        c[name] = Condition(_templates(f"domain_{name}", d["templates"]), places=d["places"],
                            objects=d["objects"], verbs=d["verbs"])
    return c


def _adversarial() -> dict[str, Condition]:
    return {
        "base": Condition(_IOI, note="canonical IOI prompts (the reference)"),
        "double_io": Condition(_templates("double_io", VL.DOUBLE_IO_TEMPLATES), io_count=2,
                               note="IO mentioned twice before S2; pos_io is the first mention"),
        "triple_io": Condition(_templates("triple_io", VL.TRIPLE_IO_TEMPLATES), io_count=3,
                               note="IO mentioned three times before S2; pos_io is the first mention"),
        "distractor": Condition(_templates("distractor", VL.DISTRACTOR_TEMPLATES),
                                note="a third name X, mentioned once, not a plausible recipient"),
        "s_thrice": Condition(_templates("s_thrice", VL.S_THRICE_TEMPLATES), s_count=3,
                              note="S mentioned three times; S1 first, S2 last (the giver)"),
        "possessive_s2": Condition(_templates("possessive_s2", VL.POSSESSIVE_S2_TEMPLATES),
                                   note="\"S's friend gave ... to\": S2 is a possessor, not the giver"),
        "possessive_s1": Condition(_templates("possessive_s1", VL.POSSESSIVE_S1_TEMPLATES, swappable=False),
                                   orders=("BABA",), note="\"S's car ...\": S1 is a possessor"),
        "word_names": Condition(_IOI, names="word",
                                note="names that are also common words (Rose, Will, Mark, Grace, ...)"),
    }


_SPECS: dict[str, dict[str, Condition]] = {
    "lexical": _lexical(), "syntactic": _syntactic(), "domain": _domain(),
    "adversarial": _adversarial(),
}
FAMILIES: dict[str, tuple[str, ...]] = {f: tuple(c) for f, c in _SPECS.items()}
"""Each family's conditions, in order."""


def condition_notes(family: str) -> dict[str, str]:
    """A one-line description of each condition of a family (empty where self-explanatory)."""
    return {k: c.note for k, c in _spec(family).items()}


def _spec(family: str) -> dict[str, Condition]:
    if family not in _SPECS:
        raise PromptError(f"unknown variation family {family!r}; choose one of {list(FAMILIES)}.")
    return _SPECS[family]


# --------------------------------------------------------------------------------------------
# Names


@dataclass
class _Names:
    """The single-token names of one tokenizer, grouped, with what was dropped."""

    tokenizer: object
    base: tuple[str, ...] = ()
    word: tuple[str, ...] = ()
    dropped: dict[str, list[str]] = field(default_factory=dict)
    rank: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, tokenizer) -> _Names:
        nf = ioi.single_token_names(tokenizer, VL.NAMES, log=False)
        wf = ioi.single_token_names(tokenizer, tuple(VL.WORD_NAMES), log=False)
        self = cls(tokenizer, nf.kept, wf.kept,
                   {"names": list(nf.dropped), "word_names": list(wf.dropped)})
        for n in nf.kept + wf.kept:
            self.rank[n] = tokenizer(" " + n, add_special_tokens=False)["input_ids"][0]
        return self

    @property
    def median_rank(self) -> float:
        ids = sorted(self.rank[n] for n in self.base)
        mid = len(ids) // 2
        return ids[mid] if len(ids) % 2 else (ids[mid - 1] + ids[mid]) / 2

    def group(self, key: str) -> tuple[str, ...]:
        if key in ("base", "same_gender", "mixed_gender"):
            return self.base
        if key == "word":
            return self.word
        if key == "frequent":
            return tuple(n for n in self.base if self.rank[n] <= self.median_rank)
        if key == "rare":
            return tuple(n for n in self.base if self.rank[n] > self.median_rank)
        if key.startswith("origin:"):
            return tuple(n for n in self.base if VL.NAME_INFO[n][1] == key.split(":", 1)[1])
        raise PromptError(f"unknown name group {key!r}.")

    def shortfall(self, key: str) -> str | None:
        """Why a name group cannot make a condition, or None."""
        if key in ("same_gender", "mixed_gender"):
            counts = {g: sum(gender(n) == g for n in self.base) for g in "fm"}
            if min(counts.values()) < VL.MIN_NAMES_PER_GROUP:
                return f"too few single-token names per gender: {counts}"
            return None
        group = self.group(key)
        if len(group) < VL.MIN_NAMES_PER_GROUP:
            return (f"only {len(group)} single-token name(s) in group {key!r} ({list(group)}); "
                    f"a condition needs {VL.MIN_NAMES_PER_GROUP}")
        return None

    def pair(self, key: str, rng: random.Random) -> tuple[str, str]:
        """(io, s) for a name group."""
        if key == "same_gender":
            g = rng.choice("fm")
            return tuple(rng.sample([n for n in self.base if gender(n) == g], 2))
        if key == "mixed_gender":
            f = rng.choice([n for n in self.base if gender(n) == "f"])
            m = rng.choice([n for n in self.base if gender(n) == "m"])
            return (f, m) if rng.random() < 0.5 else (m, f)
        return tuple(rng.sample(self.group(key), 2))


def gender(name: str) -> str:
    """'f', 'm' or 'u' (both, or unknown) from the tagged name lists."""
    if name in VL.WORD_NAMES:
        return VL.WORD_NAMES[name]
    return VL.NAME_INFO.get(name, ("u", ""))[0]


def origin(name: str) -> str:
    return VL.NAME_INFO.get(name, ("u", ""))[1]


# --------------------------------------------------------------------------------------------
# Generation


def _token_index(offsets: list[tuple[int, int]], span: tuple[int, int], shift: int) -> int:
    hits = [i for i, (a, b) in enumerate(offsets) if a < span[1] and b > span[0]]
    if len(hits) != 1:
        raise PromptError(f"a name at characters {span} is {len(hits)} tokens here, not one.")
    return hits[0] + shift


def _filler_options(tokenizer) -> dict[int, list[tuple[str, ...]]]:
    """Sets of up to 4 filler sentences, by their summed token count in this tokenizer."""
    counts = {p: len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in VL.FILLER_SENTENCES}
    by_len: dict[int, list[tuple[str, ...]]] = {}
    for k in range(1, 5):
        for combo in itertools.combinations(VL.FILLER_SENTENCES, k):
            by_len.setdefault(sum(counts[p] for p in combo), []).append(combo)
    return by_len


def _filler(options: dict[int, list[tuple[str, ...]]], rng: random.Random, target: int) -> str:
    """Name-free sentences with (summed) token count nearest ``target``, in random order.

    The count in context can differ by a token from the sum; the row's ``filler_tokens`` is the
    count measured in the prompt.
    """
    if target <= 0:
        return ""
    best = min(options, key=lambda n: (abs(n - target), n))
    combo = list(rng.choice(options[best]))
    rng.shuffle(combo)
    return "".join(combo)


def _row(tokenizer, label, tpl: VTemplate, order: str, cond: Condition, names: _Names,
         pool: tuple[str, ...], rng: random.Random, bos: bool, idx: int, fillers: dict) -> dict:
    io, s = names.pair(cond.names, rng)
    x = ""
    if "X" in tpl.name_slots:
        x = rng.choice([n for n in names.base if n not in (io, s)])
    fill = {"PLACE": rng.choice(cond.places), "OBJECT": rng.choice(cond.objects),
            "NOUN": rng.choice(cond.nouns), "VERB": rng.choice(cond.verbs)}
    fill["FILLER"] = _filler(fillers, rng, cond.filler_target)
    by_role = {"S": s, "IO": io, "X": x}
    prompt, spans = tpl.render(order, lambda k, role: by_role[role], fill)
    pos = ioi.find_positions(tokenizer, prompt, io, s, bos=bos, row=idx,
                             io_count=cond.io_count, s_count=cond.s_count)
    if ("X" in tpl.name_slots) and not ioi.is_single_token_name(tokenizer, x):
        raise PromptError(f"row {idx}: distractor {x!r} is not a single token.")
    ids, offsets = ioi._encode(tokenizer, prompt)
    shift = 1 if bos else 0
    mention = [(role, _token_index(offsets, (a, b), shift)) for role, a, b in spans]
    io_tok = [p for r, p in mention if r == "IO"]
    s_tok = [p for r, p in mention if r == "S"]
    x_tok = [p for r, p in mention if r == "X"]
    if not (io_tok[0] == pos.io and s_tok[0] == pos.s1 and s_tok[-1] == pos.s2):
        raise PromptError(f"row {idx}: the template's name slots {mention} disagree with "
                          f"find_positions {pos} in {prompt!r}; check the template.")

    # ABC: each mention its own distinct name, none of io, s, x; aligned token for token.
    others = [n for n in pool if n not in (io, s, x)]
    clean_ids = ([ioi._bos_id(tokenizer)] if bos else []) + ids
    name_pos = [p for _, p in mention]
    for _ in range(20):
        new = rng.sample(others, len(spans))
        abc, _ = tpl.render(order, lambda k, role: new[k], fill)  # noqa: B023  (called at once, this pass)
        abc_ids = ioi.tokenize(tokenizer, abc, bos=bos)
        if (len(abc_ids) == len(clean_ids)
                and all(tokenizer.decode([abc_ids[p]]).strip() == n for p, n in zip(name_pos, new))
                and all(a == b for i, (a, b) in enumerate(zip(abc_ids, clean_ids)) if i not in name_pos)):
            break
    else:
        raise PromptError(f"row {idx}: no ABC counterpart of {prompt!r} aligns token for token.")
    filler_tokens = 0
    if fill["FILLER"]:
        bare, _ = tpl.render(order, lambda k, role: by_role[role], fill | {"FILLER": ""})
        filler_tokens = pos.n_tokens - len(ioi.tokenize(tokenizer, bare, bos=bos))
    return {
        "prompt": prompt, "io": io, "s": s, "x": x, "template": tpl.id, "order": pos.order,
        "place": fill["PLACE"] if "[PLACE]" in tpl.text else "",
        "object": (fill["OBJECT"] if "[OBJECT]" in tpl.text
                   else (fill["NOUN"] if "[NOUN]" in tpl.text else "")),
        "verb": fill["VERB"] if "[VERB]" in tpl.text else "",
        **mention_columns(pos, io, s, io_tok, s_tok, x_tok, abc, new, name_pos,
                          names.rank[io], names.rank[s]),
        "filler_target": cond.filler_target, "filler_tokens": filler_tokens,
        "tokenizer": label,
    }


def mention_columns(pos, io: str, s: str, io_tok: Sequence[int], s_tok: Sequence[int],
                    x_tok: Sequence[int], abc: str, new: Sequence[str], name_pos: Sequence[int],
                    io_rank: int, s_rank: int) -> dict:
    """The columns that follow from where the names are and which names replaced them in the ABC
    counterpart: one definition for generated and hand-written prompts (:mod:`circuitgen.heldout`),
    so that their features cannot drift apart."""
    new_at = dict(zip(name_pos, new))
    g_io, g_s = gender(io), gender(s)
    return {
        "abc_prompt": abc, "abc_io": new_at[pos.io], "abc_s1": new_at[pos.s1],
        "abc_s2": new_at[pos.s2], "abc_names": "|".join(new),
        **pos.as_dict(),
        "pos_io_last": io_tok[-1], "pos_s_mid": s_tok[1] if len(s_tok) > 2 else -1,
        "pos_x": x_tok[0] if x_tok else -1,
        "io_mentions": len(io_tok), "s_mentions": len(s_tok),
        "standard_ioi": len(io_tok) == 1 and len(s_tok) == 2,
        "dist_s1_s2": pos.s2 - pos.s1, "io_pos": pos.io,
        "io_rank": io_rank, "s_rank": s_rank,
        "io_gender": g_io, "s_gender": g_s,
        "same_gender": (g_io == g_s) if "u" not in (g_io, g_s) else None,
        "io_origin": origin(io), "s_origin": origin(s),
    }


def _generate(family: str, model_or_tokenizer, n_per_condition: int, seed: int, *,
              conditions: Sequence[str] | None = None, bos: bool = True) -> PromptSet:
    spec = _spec(family)
    tokenizer, label = ioi.resolve_tokenizer(model_or_tokenizer)
    if n_per_condition < 1:
        raise PromptError(f"n_per_condition must be at least 1, not {n_per_condition}.")
    wanted = list(spec) if conditions is None else list(conditions)
    unknown = [c for c in wanted if c not in spec]
    if unknown:
        raise PromptError(f"family {family!r} has no condition(s) {unknown}; it has {list(spec)}.")
    names = _Names.build(tokenizer)
    fillers = _filler_options(tokenizer)
    rows, skipped = [], {}
    for cname in wanted:
        cond = spec[cname]
        why = names.shortfall(cond.names)
        if why:
            skipped[cname] = why
            continue
        rng = random.Random(f"{seed}:{family}:{cname}")
        cells = [(t, o) for t in cond.templates for o in cond.orders]
        plan = [cells[i % len(cells)] for i in range(n_per_condition)]
        rng.shuffle(plan)
        pool = names.word if cond.names == "word" else names.base
        for tpl, order in plan:
            idx = len(rows)
            r = _row(tokenizer, label, tpl, order, cond, names, pool, rng, bos, idx, fillers)
            rows.append({"prompt_id": idx, "family": family, "condition": cname, **r,
                         "seed": seed, "generator_version": GENERATOR_VERSION})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["same_gender"] = pd.array(df["same_gender"].tolist(), dtype="boolean")
    dropped = sorted({n for v in names.dropped.values() for n in v})
    meta = {
        "generator_version": GENERATOR_VERSION,
        "family": family,
        "conditions": [c for c in wanted if c not in skipped],
        "conditions_skipped": skipped,
        "condition_notes": {c: spec[c].note for c in wanted if spec[c].note},
        "n_per_condition": n_per_condition,
        "n_prompts": len(df),
        "seed": seed,
        "tokenizer": label,
        "tokenizer_fingerprint": ioi.tokenizer_fingerprint(tokenizer),
        "bos": bos,
        "positions": ("token indices in the model's input, BOS at 0" if bos else "token indices, no BOS")
                     + "; pos_io is the first IO mention, pos_s1 the first and pos_s2 the last S mention",
        "name_rank": "token id of ' name' (a frequency proxy: BPE merges give frequent words low ids)",
        "name_rank_median": names.median_rank,
        "n_names_kept": len(names.base),
        "n_word_names_kept": len(names.word),
        "n_names_dropped": len(dropped),
        "names_dropped": dropped,
        "names_dropped_by_list": names.dropped,
        "abc": "same template and vocabulary; every name mention replaced by its own distinct "
               "other name, aligned token for token",
    }
    return PromptSet(df=df, meta=meta)


def generate_lexical(model_or_tokenizer, n_per_condition: int = 20, seed: int = 0, **kw) -> PromptSet:
    """Names (frequent/rare by token id, same/mixed gender, by origin), objects, places, verbs."""
    return _generate("lexical", model_or_tokenizer, n_per_condition, seed, **kw)


def generate_syntactic(model_or_tokenizer, n_per_condition: int = 20, seed: int = 0, **kw) -> PromptSet:
    """ABBA/BABA, IO-first/S-first, filler of 0/5/10/20 tokens, one/two sentences, passive,
    relative clauses, reordered clauses."""
    return _generate("syntactic", model_or_tokenizer, n_per_condition, seed, **kw)


def generate_domain(model_or_tokenizer, n_per_condition: int = 20, seed: int = 0, **kw) -> PromptSet:
    """The IOI structure in other worlds: everyday (reference), workplace, sport, medicine, law,
    fantasy, science, each with its own places, objects and verbs."""
    return _generate("domain", model_or_tokenizer, n_per_condition, seed, **kw)


def generate_adversarial(model_or_tokenizer, n_per_condition: int = 20, seed: int = 0, **kw) -> PromptSet:
    """Base (reference), DoubleIO, TripleIO, a distractor name, S three times, possessives at S2
    and at S1, names that are common words."""
    return _generate("adversarial", model_or_tokenizer, n_per_condition, seed, **kw)


GENERATORS = {"lexical": generate_lexical, "syntactic": generate_syntactic,
              "domain": generate_domain, "adversarial": generate_adversarial}


def generate_family(name: str, model_or_tokenizer, n_per_condition: int = 20, seed: int = 0,
                    **kw) -> PromptSet:
    """Dispatch to ``generate_<name>``; ``name`` is one of :data:`FAMILIES`."""
    if name not in GENERATORS:
        raise PromptError(f"unknown variation family {name!r}; choose one of {list(FAMILIES)}.")
    return GENERATORS[name](model_or_tokenizer, n_per_condition=n_per_condition, seed=seed, **kw)


__all__ = [
    "GENERATOR_VERSION", "COLUMNS", "FAMILIES", "GENERATORS", "VTemplate", "Condition",
    "condition_notes", "gender", "origin", "mention_columns", "generate_family", "generate_lexical",
    "generate_syntactic", "generate_domain", "generate_adversarial",
]
