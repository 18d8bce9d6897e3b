"""What the task modules share: whole-word spans, token indices from offsets, the single-token
filter of word lists, counterfactual alignment and the generator's provenance.

Every refusal is a :class:`circuitgen.task.PromptError` with one line that names the row, says
what is wrong and how to fix it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from circuitgen.task import PromptError, encode_with_offsets, tokenize


def where(idx: Any) -> str:
    """The prefix of a refusal: ``row 3: `` (nothing when the row is unknown)."""
    return "" if idx is None else f"row {idx}: "


def text(row: Mapping[str, Any], col: str, idx: Any) -> str:
    """A required text cell, stripped; refuses an empty one."""
    value = row.get(col)
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        raise PromptError(f"{where(idx)}the {col!r} column is empty; give the {col} of this prompt.")
    return str(value).strip()


def optional(row: Mapping[str, Any], col: str) -> str | None:
    """An optional text cell, stripped; None when absent or empty."""
    value = row.get(col)
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        return None
    return str(value).strip()


def word_spans(prompt: str, word: str) -> list[tuple[int, int]]:
    """Character spans of ``word`` in ``prompt`` as a whole word (no letter or digit either side)."""
    pattern = re.compile(r"(?<![^\W_])" + re.escape(word) + r"(?![^\W_])")
    return [(m.start(), m.end()) for m in pattern.finditer(prompt)]


def one_span(prompt: str, word: str, what: str, idx: Any) -> tuple[int, int]:
    """The one whole-word span of ``word``; refuses none or several."""
    spans = word_spans(prompt, word)
    if len(spans) != 1:
        raise PromptError(f"{where(idx)}the {what} {word!r} appears {len(spans)} times as a whole "
                          f"word in {prompt!r}; it must appear exactly once (check spelling and case).")
    return spans[0]


def check_end(prompt: str, idx: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError(f"{where(idx)}the prompt is empty.")
    if prompt != prompt.rstrip():
        raise PromptError(f"{where(idx)}the prompt {prompt!r} ends with whitespace, so END would be "
                          "a space token; strip it (the answer token carries the leading space).")


def token_of_span(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """Indices (no BOS) of the tokens that overlap the character span."""
    a, b = span
    return [i for i, (s, e) in enumerate(offsets) if s < b and e > a]


def last_token(tokenizer, prompt: str, span: tuple[int, int], what: str, idx: Any) -> tuple[int, int]:
    """(index of the last token of ``span``, BOS counted; number of tokens in the prompt).

    Refuses a span whose last token runs past it (the word is glued to what follows)."""
    ids, offsets = encode_with_offsets(tokenizer, prompt)
    hits = token_of_span(offsets, span)
    if not hits or offsets[hits[-1]][1] != span[1]:
        raise PromptError(f"{where(idx)}the {what} {prompt[span[0]:span[1]]!r} does not end a token "
                          "of its own in this prompt; put a space or punctuation after it.")
    return hits[-1] + 1, len(ids) + 1


@dataclass(frozen=True)
class WordFilter:
    """Which words of a list are a single token for one tokenizer (the others are refused)."""

    kept: tuple
    refused: tuple

    def record(self, what: str) -> dict[str, Any]:
        return {f"n_{what}_given": len(self.kept) + len(self.refused), f"n_{what}_kept": len(self.kept),
                f"n_{what}_refused": len(self.refused),
                f"{what}_refused": ["/".join(w) if isinstance(w, tuple) else str(w) for w in self.refused]}


def n_tokens(tokenizer, word: str, leading_space: bool = True) -> int:
    return len(tokenizer((" " if leading_space else "") + str(word).strip(),
                         add_special_tokens=False)["input_ids"])


def single_token_words(tokenizer, items: Iterable, key=lambda item: (item,)) -> WordFilter:
    """Keep the items whose every word (``key(item)``) is one token with a leading space; the
    refused ones are returned too, to be recorded (never dropped silently)."""
    items = list(items)
    kept = tuple(it for it in items if all(n_tokens(tokenizer, w) == 1 for w in key(it)))
    return WordFilter(kept=kept, refused=tuple(it for it in items if it not in kept))


def replace_span(prompt: str, span: tuple[int, int], new: str) -> str:
    return prompt[: span[0]] + new + prompt[span[1]:]


def check_aligned(tokenizer, clean: str, cf: str, idx: Any, fix: str) -> None:
    """The counterfactual must have the clean prompt's length and differ from it (token for token)."""
    a, b = tokenize(tokenizer, clean), tokenize(tokenizer, cf)
    if len(a) != len(b):
        raise PromptError(f"{where(idx)}the counterfactual {cf!r} is {len(b)} tokens but the prompt is "
                          f"{len(a)}; the two must align token for token: {fix}")
    if a == b:
        raise PromptError(f"{where(idx)}the counterfactual {cf!r} is the prompt itself; {fix}")


def tokenizer_label(tokenizer) -> str:
    name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
    return name.rstrip("/").rsplit("/", 1)[-1] if "/" in name else name


def balanced_plan(cells: Sequence, n: int, rng: random.Random) -> list:
    """``n`` cells cycled through ``cells`` (so each is used equally often, up to one), shuffled."""
    plan = [cells[i % len(cells)] for i in range(n)]
    rng.shuffle(plan)
    return plan


def check_n(n: int) -> None:
    if n < 1:
        raise PromptError(f"n must be at least 1, not {n}.")


@dataclass(frozen=True)
class Condition:
    """One condition of a variation family: its templates (``str.format`` slots the task fills)
    and how the task draws the words (``draw``; "" is as its generator does)."""

    templates: tuple[str, ...]
    note: str
    draw: str = ""


def family_table(task, families: Mapping[str, Mapping[str, Condition]], family: str, tokenizer,
                 n_per_condition: int, seed: int, fill, version: Any, meta: dict) -> pd.DataFrame:
    """``n_per_condition`` prompts for each condition of ``family``, templates balanced, each
    condition from its own ``random.Random(f"{seed}:{task}:{family}:{condition}")``; ``fill(cond,
    template, rng)`` returns a row (the prompt and the task's columns). A draw the task cannot
    locate (a word that collides with the template's) is drawn again; the redraws are counted in
    the provenance. Counterfactuals as the task makes them."""
    if family not in families:
        raise PromptError(f"unknown {task.name} family {family!r}; known: {sorted(families)}.")
    check_n(n_per_condition)
    rows, redraws = [], {}
    for cond_name, cond in families[family].items():
        rng = random.Random(f"{seed}:{task.name}:{family}:{cond_name}")
        for t in balanced_plan(range(len(cond.templates)), n_per_condition, rng):
            for attempt in range(50):  # noqa: B007 (the redraws are counted below)
                row = fill(cond, cond.templates[t], rng)
                try:
                    task.locate(tokenizer, row, len(rows))
                    break
                except PromptError as err:
                    last = err
            else:
                raise PromptError(f"{task.name} {family}/{cond_name} template {t}: no draw can be "
                                  f"located in 50 tries; last: {last}")
            redraws[cond_name] = redraws.get(cond_name, 0) + attempt
            rows.append({"prompt_id": len(rows), **row, "family": family, "condition": cond_name,
                         "template": f"{cond_name}:{t}", "tokenizer": tokenizer_label(tokenizer),
                         "seed": seed, "generator_version": version})
    meta = {"task": task.name, "family": family, "generator_version": version, "seed": seed,
            "n_per_condition": n_per_condition, "tokenizer": tokenizer_label(tokenizer),
            "conditions": {c: {"note": k.note, "templates": list(k.templates)}
                           for c, k in families[family].items()},
            "redraws": redraws, **meta}
    return with_meta(task.counterfactuals(pd.DataFrame(rows), tokenizer, seed), meta)


def records(df: pd.DataFrame) -> list[dict]:
    """The rows of ``df`` as dicts; a repeated column name (the scorer's checked tables can repeat
    ``status``) keeps its first column."""
    return df.loc[:, ~df.columns.duplicated()].to_dict("records")


def with_meta(df: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """``df`` with its provenance in ``df.attrs['circuitgen']`` (the CLI writes it as a sidecar)."""
    df.attrs["circuitgen"] = meta
    return df


__all__ = ["where", "text", "optional", "word_spans", "one_span", "check_end", "token_of_span",
           "last_token", "WordFilter", "n_tokens", "single_token_words", "replace_span",
           "check_aligned", "tokenizer_label", "balanced_plan", "check_n", "records", "with_meta",
           "Condition", "family_table"]
