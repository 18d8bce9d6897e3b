"""Indirect Object Identification (IOI) prompts: generation, token positions, ABC counterparts.

A prompt such as ``"Then, Mary and John went to the store. John gave a drink to"`` has

- ``IO``   the indirect object (``Mary``), the right answer `` Mary``;
- ``S1``   the first mention of the subject (``John``), ``S1+1`` the token after it;
- ``S2``   the second mention of the subject (the giver);
- ``END``  the last token (``to``), where the model predicts the answer.

Positions are token indices in the sequence **the model sees**: with ``bos=True`` (the project's
policy, and what ``TransformerBridge.to_tokens`` does) index 0 is the BOS token. They are found
from the tokenizer's character offsets, never from word counts, so they are right for any
tokenizer and for hand-written prompts (:func:`find_positions`).

Each generated prompt has an ``ABC`` counterpart (Wang et al. 2022, section 3): the same template,
place and object with the three name slots (IO, S1, S2) filled by three *other*, distinct names,
so S2 no longer repeats S1. Means over ABC prompts are the reference for mean ablation.

A prompt set is a :class:`PromptSet` (a pandas DataFrame plus metadata), saved as
``data/prompts/<name>.csv`` with a ``<name>.meta.json`` sidecar (seed, generator version,
tokenizer, names dropped). Nothing here depends on the time or the machine: a seed gives the
same CSV bytes everywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from circuitgen import ioi_templates
from circuitgen.paths import PROMPTS_DIR
from circuitgen.task import PromptError, tokenize
from circuitgen.task import bos_id as _bos_id
from circuitgen.task import encode_with_offsets as _encode

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "ioi-1.0"
ORDERS = ("ABBA", "BABA")
# Circuit-spec position names -> prompt-set columns.
POSITION_COLUMNS: dict[str, str] = {
    "IO": "pos_io", "S1": "pos_s1", "S1+1": "pos_s1p1", "S2": "pos_s2", "END": "pos_end",
}
COLUMNS = (
    "prompt_id", "prompt", "io", "s", "template", "order", "place", "object",
    "abc_prompt", "abc_io", "abc_s1", "abc_s2",
    "pos_io", "pos_s1", "pos_s1p1", "pos_s2", "pos_end", "n_tokens",
    "tokenizer", "seed", "generator_version",
)
_SLOT = re.compile(r"\[(A|B|PLACE|OBJECT)\]")


# PromptError and the tokenisation every task shares live in the core (circuitgen.task);
# they are re-exported here, where IOI code has always found them.


def is_single_token_name(tokenizer, name: str) -> bool:
    """Whether `` name`` (with its leading space, as it is predicted) is one token."""
    return len(tokenizer(" " + name, add_special_tokens=False)["input_ids"]) == 1


@dataclass(frozen=True)
class NameFilter:
    """Which names survived the single-token filter for one tokenizer."""

    kept: tuple[str, ...]
    dropped: tuple[str, ...]

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)


def single_token_names(tokenizer, names: Iterable[str] | None = None, *, log: bool = True) -> NameFilter:
    """Keep the names that are one token with a leading space; report (and log) the others."""
    names = list(ioi_templates.NAMES if names is None else names)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PromptError(f"the name list repeats {dupes}; give each name once.")
    kept = tuple(n for n in names if is_single_token_name(tokenizer, n))
    dropped = tuple(n for n in names if n not in kept)
    if dropped and log:
        logger.info(
            "IOI names: dropped %d of %d names that are not a single token with a leading space "
            "in tokenizer %s: %s", len(dropped), len(names), tokenizer_label(tokenizer),
            ", ".join(dropped),
        )
    return NameFilter(kept=kept, dropped=dropped)


def tokenizer_label(tokenizer) -> str:
    """A short, machine-independent name for a tokenizer (the folder name, not the full path)."""
    name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
    return pathlib.PurePath(name).name if ("/" in name and pathlib.Path(name).exists()) else name


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of the vocabulary: positions in a prompt set are only valid for this one."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha1(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest()[:12]


def resolve_tokenizer(model_or_tokenizer) -> tuple[Any, str]:
    """(tokenizer, label) from a tokenizer, a loaded model (bridge), or a model name."""
    if isinstance(model_or_tokenizer, str):
        from circuitgen import models

        name = model_or_tokenizer
        if name in ("gpt2", "tiny-gpt2"):
            return models.gpt2_tokenizer(), name
        if name in ("smollm2-135m", "tiny-llama"):
            return models.smollm2_tokenizer(), name
        _, tok = models.hf_model_and_tokenizer(name)
        return tok, name
    choices = getattr(model_or_tokenizer, "circuitgen", None)
    tok = getattr(model_or_tokenizer, "tokenizer", None)
    if tok is not None and choices is not None:
        return tok, choices.model
    if tok is not None and not hasattr(model_or_tokenizer, "get_vocab"):
        return tok, tokenizer_label(tok)
    return model_or_tokenizer, tokenizer_label(model_or_tokenizer)


# --------------------------------------------------------------------------------------------
# Positions


@dataclass(frozen=True)
class Positions:
    """Token indices (BOS counted when ``bos``) of the IOI positions in one prompt."""

    io: int
    s1: int
    s1p1: int
    s2: int
    end: int
    n_tokens: int
    order: str  # "ABBA" when IO comes before S1, else "BABA"

    def as_dict(self) -> dict[str, int]:
        return {
            "pos_io": self.io, "pos_s1": self.s1, "pos_s1p1": self.s1p1, "pos_s2": self.s2,
            "pos_end": self.end, "n_tokens": self.n_tokens,
        }

    def __getitem__(self, name: str) -> int:
        """Index by circuit-spec position name: ``pos["S1+1"]``."""
        try:
            return getattr(self, POSITION_COLUMNS[name].removeprefix("pos_"))
        except KeyError:
            raise KeyError(f"{name!r} is not a position; use one of {list(POSITION_COLUMNS)}") from None


def _word_spans(prompt: str, name: str) -> list[tuple[int, int]]:
    pattern = re.compile(r"(?<![^\W\d_])" + re.escape(name) + r"(?![^\W\d_])")
    return [(m.start(), m.end()) for m in pattern.finditer(prompt)]


def find_positions(tokenizer, prompt: str, io: str, s: str, *, bos: bool = True, row: Any = None,
                   io_count: int = 1, s_count: int = 2) -> Positions:
    """IO, S1, S1+1, S2 and END token positions of an IOI prompt, from character offsets.

    The prompt must end right before the answer (no trailing space), contain the subject ``s``
    exactly twice (S1, S2) and the indirect object ``io`` exactly once, before S2, each as a
    whole word that is a single token. ``row`` (an index or id) is named in any error message.
    Raises :class:`PromptError` saying what is wrong and how to fix it.

    Relaxed check (for the adversarial variations, :mod:`circuitgen.variations`): ``io_count``
    (default 1) and ``s_count`` (default 2) are the numbers of mentions required instead. Every IO
    mention must come before S2. Then IO is the **first** IO mention, S1 the **first** S mention
    and S2 the **last** S mention (the giver); other mentions are not reported here. The defaults
    give exactly the strict check above; note that the scorer uses the strict check.
    """
    where = f"row {row}: " if row is not None else ""
    shown = f"{where}in prompt {prompt!r}: "
    if int(io_count) < 1 or int(s_count) < 2:
        raise PromptError(f"{where}io_count must be at least 1 and s_count at least 2 "
                          f"(got io_count={io_count}, s_count={s_count}).")
    io, s = str(io).strip(), str(s).strip()
    if not io or not s:
        raise PromptError(f"{shown}the io and s names must be non-empty (got io={io!r}, s={s!r}).")
    if io == s:
        raise PromptError(f"{shown}io and s are both {io!r}; IOI needs two different names.")
    if prompt != prompt.rstrip():
        raise PromptError(
            f"{shown}the prompt ends with whitespace, so END would be a space token. Strip it: "
            "the prompt must end right before the answer, whose token carries the leading space."
        )
    for role, name in (("io", io), ("s", s)):
        if not is_single_token_name(tokenizer, name):
            n = len(tokenizer(" " + name, add_special_tokens=False)["input_ids"])
            raise PromptError(
                f"{shown}the {role} name {name!r} is {n} tokens with a leading space in tokenizer "
                f"{tokenizer_label(tokenizer)}; the logit difference needs a single-token answer. "
                "Use a name from circuitgen.ioi.single_token_names(tokenizer).kept."
            )
    io_spans, s_spans = _word_spans(prompt, io), _word_spans(prompt, s)
    if len(s_spans) != s_count:
        times = "twice" if s_count == 2 else f"{s_count} times"
        raise PromptError(
            f"{shown}the subject {s!r} appears {len(s_spans)} time(s) as a whole word; it must "
            f"appear exactly {times} (S1, then S2 the giver). Check the s column's spelling and case, "
            "or rewrite the prompt."
        )
    if len(io_spans) != io_count:
        times = "once" if io_count == 1 else f"{io_count} times"
        raise PromptError(
            f"{shown}the indirect object {io!r} appears {len(io_spans)} time(s) as a whole word; "
            f"it must appear exactly {times}, before S2. Check the io column's spelling and case, or "
            "rewrite the prompt."
        )
    if io_spans[-1][0] > s_spans[-1][0]:
        raise PromptError(
            f"{shown}the indirect object {io!r} comes after the second mention of {s!r}; in an "
            "IOI prompt both names are introduced before the subject is repeated. Swap io and s "
            "if they are mislabelled."
        )
    ids, offsets = _encode(tokenizer, prompt)
    shift = 1 if bos else 0
    if bos:
        _bos_id(tokenizer)

    def token_of(span: tuple[int, int], role: str, name: str) -> int:
        start, end = span
        hits = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        text = tokenizer.decode([ids[i] for i in hits]) if hits else ""
        if len(hits) != 1 or text.strip() != name:
            raise PromptError(
                f"{shown}the {role} mention of {name!r} at characters {start}-{end} is tokenised "
                f"as {[tokenizer.decode([ids[i]]) for i in hits]} here, not as one token of its "
                "own. Put a space before the name and no letters or digits right after it."
            )
        return hits[0] + shift

    p_io = token_of(io_spans[0], "IO", io)
    for extra in io_spans[1:]:
        token_of(extra, "repeated IO", io)
    p_s1 = token_of(s_spans[0], "S1", s)
    for extra in s_spans[1:-1]:
        token_of(extra, "repeated S", s)
    p_s2 = token_of(s_spans[-1], "S2", s)
    end = len(ids) - 1 + shift
    if p_s2 >= end:
        raise PromptError(
            f"{shown}S2 ({s!r}) is the last token, so there is no END position after it. The "
            "prompt must continue after the giver up to just before the answer ('... gave it to')."
        )
    return Positions(io=p_io, s1=p_s1, s1p1=p_s1 + 1, s2=p_s2, end=end, n_tokens=len(ids) + shift,
                     order="ABBA" if p_io < p_s1 else "BABA")


def add_positions(df: pd.DataFrame, tokenizer, *, bos: bool = True) -> pd.DataFrame:
    """A copy of a prompt table (columns ``prompt``, ``io``, ``s``) with the position columns."""
    missing = [c for c in ("prompt", "io", "s") if c not in df.columns]
    if missing:
        raise PromptError(f"the prompt table lacks column(s) {missing}; it needs prompt, io and s.")
    rows = [
        find_positions(tokenizer, r.prompt, r.io, r.s, bos=bos,
                       row=getattr(r, "prompt_id", idx)).as_dict()
        for idx, r in zip(df.index, df.itertuples(index=False))
    ]
    out = df.copy()
    for col in ("pos_io", "pos_s1", "pos_s1p1", "pos_s2", "pos_end", "n_tokens"):
        out[col] = [r[col] for r in rows]
    return out


# --------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class Template:
    """One BABA template; ``render`` fills it in either order."""

    id: int
    text: str

    def __post_init__(self):
        slots = [m.group(1) for m in _SLOT.finditer(self.text)]
        names = [x for x in slots if x in "AB"]
        if names != ["B", "A", "B"]:
            raise PromptError(
                f"template {self.id} {self.text!r}: its name slots are {names}; a BABA template "
                "has [B], then [A], then [B] (and may use [PLACE] and [OBJECT] anywhere)."
            )
        if self.text.startswith("[") or self.text != self.text.rstrip():
            raise PromptError(
                f"template {self.id} {self.text!r} must not start with a name slot (its token "
                "would lack the leading space) nor end with whitespace."
            )

    def render(self, order: str, io: str, s1: str, s2: str, place: str, obj: str) -> str:
        """Fill the slots: BABA is S1, IO, S2; ABBA is IO, S1, S2 (the first two swapped)."""
        if order not in ORDERS:
            raise PromptError(f"order must be one of {ORDERS}, not {order!r}.")
        names = iter([s1, io, s2] if order == "BABA" else [io, s1, s2])
        fixed = {"PLACE": place, "OBJECT": obj}
        return _SLOT.sub(lambda m: fixed[m.group(1)] if m.group(1) in fixed else next(names), self.text)


TEMPLATES: tuple[Template, ...] = tuple(Template(i, t) for i, t in enumerate(ioi_templates.BABA_TEMPLATES))


def render(template: int | Template, order: str, io: str, s: str, place: str = "store",
           obj: str = "drink") -> str:
    """The IOI prompt of a template (by id or object), order, names, place and object."""
    t = TEMPLATES[template] if isinstance(template, int) else template
    return t.render(order, io, s, s, place, obj)


# --------------------------------------------------------------------------------------------
# Prompt sets


@dataclass
class PromptSet:
    """A table of IOI prompts (``df``, one row a prompt) and how it was made (``meta``)."""

    df: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.df)

    @property
    def names_dropped(self) -> list[str]:
        return list(self.meta.get("names_dropped", []))

    @property
    def n_dropped(self) -> int:
        return int(self.meta.get("n_names_dropped", 0))

    @property
    def seed(self):
        return self.meta.get("seed")

    def save(self, name_or_path: str | pathlib.Path) -> pathlib.Path:
        """Write ``<name>.csv`` and ``<name>.meta.json``; a bare name goes to ``data/prompts/``."""
        path = _csv_path(name_or_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.df.to_csv(path, index=False, lineterminator="\n")
        meta_path(path).write_text(json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n")
        return path


def _csv_path(name_or_path: str | pathlib.Path) -> pathlib.Path:
    p = pathlib.Path(name_or_path)
    if p.suffix != ".csv":
        p = p.with_name(p.name + ".csv")
    return p if (p.is_absolute() or len(p.parts) > 1) else PROMPTS_DIR / p


def meta_path(csv_path: str | pathlib.Path) -> pathlib.Path:
    p = pathlib.Path(csv_path)
    return p.with_name(p.stem + ".meta.json")


def load_prompt_set(name_or_path: str | pathlib.Path, *, require_meta: bool = False,
                    required: Sequence[str] = ("prompt", "io", "s")) -> PromptSet:
    """Read a prompt set; hand-written CSVs (``prompt``, ``io``, ``s`` at least, or another task's
    ``required`` columns) need no sidecar."""
    path = _csv_path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"no prompt set at {path}. Generate one with circuitgen.ioi.generate_prompts(...)"
            f".save(name), or give the path of a CSV with columns {', '.join(required)}."
        )
    df = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PromptError(f"{path}: missing column(s) {missing}; a prompt set needs "
                          f"{', '.join(required)}.")
    mp = meta_path(path)
    if mp.exists():
        meta = json.loads(mp.read_text())
    elif require_meta:
        raise FileNotFoundError(f"{path} has no metadata sidecar {mp.name}; regenerate it with save().")
    else:
        meta = {}
    return PromptSet(df=df, meta=meta)


def generate_prompts(
    model_or_tokenizer,
    n: int = 100,
    seed: int = 0,
    *,
    bos: bool = True,
    names: Sequence[str] | None = None,
    places: Sequence[str] | None = None,
    objects: Sequence[str] | None = None,
    templates: Sequence[int] | None = None,
    orders: Sequence[str] = ORDERS,
    tokenizer_name: str | None = None,
) -> PromptSet:
    """``n`` IOI prompts with their ABC counterparts and token positions, fixed by ``seed``.

    ``model_or_tokenizer``: a tokenizer, a loaded model (its tokenizer and name are used) or a
    model name. Templates and orders are balanced (cycled, then shuffled); names, places and
    objects are drawn at random. Names that are not a single token are dropped and reported in
    ``meta`` (and logged). Every row is checked with :func:`find_positions`, and its ABC prompt
    must tokenise to the same length with its names at the same positions.
    """
    tokenizer, label = resolve_tokenizer(model_or_tokenizer)
    label = tokenizer_name or label
    if n < 1:
        raise PromptError(f"n must be at least 1, not {n}.")
    bad_orders = [o for o in orders if o not in ORDERS]
    if bad_orders or not orders:
        raise PromptError(f"orders must be a non-empty subset of {ORDERS}, not {list(orders)}.")
    tpls = [TEMPLATES[i] for i in (range(len(TEMPLATES)) if templates is None else templates)]
    places = list(ioi_templates.PLACES if places is None else places)
    objects = list(ioi_templates.OBJECTS if objects is None else objects)
    names_given = list(ioi_templates.NAMES if names is None else names)
    nf = single_token_names(tokenizer, names_given)
    if len(nf.kept) < 5:
        raise PromptError(
            f"only {len(nf.kept)} single-token names survive in tokenizer {label} "
            f"(dropped: {list(nf.dropped)}); a prompt and its ABC counterpart need 5 distinct "
            "names. Give more names (names=...)."
        )
    rng = random.Random(seed)
    cells = [(t, o) for t in tpls for o in orders]
    plan = [cells[i % len(cells)] for i in range(n)]
    rng.shuffle(plan)
    rows = []
    for i, (tpl, order) in enumerate(plan):
        io, s = rng.sample(nf.kept, 2)
        place, obj = rng.choice(places), rng.choice(objects)
        others = [x for x in nf.kept if x not in (io, s)]
        c_io, c_s1, c_s2 = rng.sample(others, 3)
        prompt = tpl.render(order, io, s, s, place, obj)
        abc = tpl.render(order, c_io, c_s1, c_s2, place, obj)
        pos = find_positions(tokenizer, prompt, io, s, bos=bos, row=i)
        if pos.order != order:
            raise PromptError(f"row {i}: template {tpl.id} rendered as {pos.order}, not {order}; "
                              "check the template's slots.")
        _check_abc(tokenizer, abc, pos, (c_io, c_s1, c_s2), bos, i)
        rows.append({
            "prompt_id": i, "prompt": prompt, "io": io, "s": s, "template": tpl.id,
            "order": order, "place": place, "object": obj if "[OBJECT]" in tpl.text else "",
            "abc_prompt": abc, "abc_io": c_io, "abc_s1": c_s1, "abc_s2": c_s2,
            **pos.as_dict(), "tokenizer": label, "seed": seed,
            "generator_version": GENERATOR_VERSION,
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_prompts": n,
        "tokenizer": label,
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "bos": bos,
        "positions": "token indices in the model's input, BOS at 0" if bos else "token indices, no BOS",
        "templates": [t.id for t in tpls],
        "orders": list(orders),
        "n_names_given": len(names_given),
        "n_names_kept": len(nf.kept),
        "n_names_dropped": nf.n_dropped,
        "names_dropped": list(nf.dropped),
        "abc": "same template, place and object; IO, S1, S2 replaced by three other distinct names",
    }
    return PromptSet(df=df, meta=meta)


def _check_abc(tokenizer, abc: str, pos: Positions, names: tuple[str, str, str], bos: bool, row: int) -> None:
    """The ABC prompt must align token for token with its clean prompt (same length, same slots)."""
    ids = tokenize(tokenizer, abc, bos=bos)
    got = [tokenizer.decode([ids[p]]).strip() if p < len(ids) else None for p in (pos.io, pos.s1, pos.s2)]
    if len(ids) != pos.n_tokens or got != list(names):
        raise PromptError(
            f"row {row}: the ABC prompt {abc!r} is {len(ids)} tokens with {got} at the IO/S1/S2 "
            f"positions, but the clean prompt is {pos.n_tokens} tokens with {list(names)} expected "
            "there. Mean ablation needs aligned prompts: use single-token names only."
        )


def make_abc(df: pd.DataFrame, tokenizer, seed: int = 0, *, bos: bool = True) -> pd.DataFrame:
    """ABC counterparts for any prompt table (hand-written ones included), by name substitution.

    IO, S1 and S2 are replaced, at their character spans, by three distinct single-token names
    that are neither ``io`` nor ``s``; the result must align token for token with the clean
    prompt. Rows that already have an ``abc_prompt`` keep it. Returns a copy with ``abc_prompt``.
    """
    out = df.copy()
    if "abc_prompt" in out.columns and (out["abc_prompt"].notna()
                                        & (out["abc_prompt"].astype(str) != "")).all():
        return out
    pool = list(single_token_names(tokenizer, ioi_templates.NAMES, log=False).kept)
    rng = random.Random(seed)
    abcs = []
    for idx, r in zip(out.index, out.itertuples(index=False)):
        pos = find_positions(tokenizer, r.prompt, r.io, r.s, bos=bos, row=idx)
        spans = sorted([(_word_spans(r.prompt, str(r.io).strip())[0], "io")]
                       + [(sp, "s") for sp in _word_spans(r.prompt, str(r.s).strip())])
        others = [x for x in pool if x not in (str(r.io).strip(), str(r.s).strip())]
        for _ in range(20):
            names = rng.sample(others, 3)
            text, last = [], 0
            for ((a, b), _role), name in zip(spans, names):
                text += [r.prompt[last:a], name]
                last = b
            abc = "".join(text + [r.prompt[last:]])
            ids = tokenize(tokenizer, abc, bos=bos)
            by_pos = dict(zip(sorted([pos.io, pos.s1, pos.s2]), names))
            if len(ids) == pos.n_tokens and all(
                    tokenizer.decode([ids[p]]).strip() == n for p, n in by_pos.items()):
                break
        else:
            raise PromptError(f"row {idx}: no ABC counterpart of {r.prompt!r} aligns token for "
                              "token with it; check the names are single tokens in this prompt.")
        abcs.append(abc)
    out["abc_prompt"] = abcs
    return out


__all__ = [
    "make_abc",
    "GENERATOR_VERSION", "ORDERS", "POSITION_COLUMNS", "COLUMNS", "TEMPLATES", "PromptError",
    "Positions", "NameFilter", "Template", "PromptSet", "tokenize", "is_single_token_name",
    "single_token_names", "tokenizer_label", "tokenizer_fingerprint", "resolve_tokenizer",
    "find_positions", "add_positions", "render", "generate_prompts", "load_prompt_set",
    "meta_path",
]
