"""What the core needs from a task, and the registry of tasks.

The core (batches, ablation and its reference, resumed forwards, the scorer, EAP-IG, size curves)
never says "IO" or "S": it sees a task's **named positions** (IOI: IO, S1, S1+1, S2, END; END is
where the answer is read, and every task has it), its **answer and wrong token sets** per prompt,
its **metric** over them, the prompt columns that **group** the mean-ablation reference, and its
**counterfactual** (corrupted) partner of each prompt. A task is a subclass of :class:`Task` in
``circuitgen.tasks`` that registers itself (:func:`register`); the core finds it by name
(:func:`get_task`), so adding a task touches no core module.

Metrics (:data:`METRICS`, computed once, in :func:`metric`):

- ``logit_diff``: mean logit of the answer tokens minus mean logit of the wrong tokens at END
  (IOI: logit(IO) - logit(S), one token each);
- ``prob_diff``: total probability of the answer tokens minus that of the wrong tokens (for
  answer *sets*, as greater-than's "later year" digits).

Faithfulness, whatever the metric (:func:`normalised_faithfulness`, the one place the formula is
written): ``(F(C) - F(∅)) / (F(M) - F(∅))`` (Hanna et al. 2024; MIB), beside Wang et al.'s ratio
of means ``F(C) / F(M)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

METRICS = ("logit_diff", "prob_diff")
DEFAULT_TASK = "ioi"
END = "END"
BOS_ROLE, OTHER_ROLE = "BOS", "other"


class PromptError(ValueError):
    """A prompt the task cannot score; the message says what is wrong and how to fix it."""


class UnknownTaskError(ValueError):
    """A task name no module registered."""


class AblationReferenceError(ValueError):
    """The mean-ablation reference cannot serve the scored prompts; the message says what to
    change."""


def group_keys(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """One string key per row of a prompt table, e.g. ``template=3|order=ABBA``: the group of the
    mean-ablation reference it falls in. A row missing a group value (a hand-written prompt in a
    table of generated ones) is its own group, keyed by its prompt."""
    missing = df[list(cols)].isna().any(axis=1).to_numpy()
    return [f"prompt={prompt}" if miss else "|".join(f"{c}={v}" for c, v in zip(cols, vals))
            for miss, prompt, vals in zip(missing, df["prompt"],
                                          df[list(cols)].astype(str).itertuples(index=False))]


# --------------------------------------------------------------------------------------------
# Tokens as the model sees them


def bos_id(tokenizer) -> int:
    bos = tokenizer.bos_token_id
    if bos is None:
        raise PromptError(
            f"the tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no BOS token, so "
            "positions with bos=True are undefined. Pass bos=False, or set tokenizer.bos_token."
        )
    return int(bos)


def encode_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` (no special tokens) and each token's character span."""
    if not getattr(tokenizer, "is_fast", False):
        raise PromptError(
            f"tokenizer {type(tokenizer).__name__} is a slow (Python) tokenizer without character "
            "offsets; load the fast one (AutoTokenizer.from_pretrained(..., use_fast=True))."
        )
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def tokenize(tokenizer, prompt: str, bos: bool = True) -> list[int]:
    """Token ids of ``prompt`` as the model sees them (BOS first when ``bos``), no padding."""
    ids, _ = encode_with_offsets(tokenizer, prompt)
    return ([bos_id(tokenizer)] if bos else []) + ids


def single_token(tokenizer, word: str, what: str = "the answer") -> int:
    """The one token id of `` word`` (leading space, as it is predicted); refuses several."""
    ids = tokenizer(" " + str(word).strip(), add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise PromptError(f"{what} {str(word).strip()!r} is {len(ids)} tokens with a leading space; "
                          "the metric needs single-token answers: choose another word.")
    return ids[0]


# --------------------------------------------------------------------------------------------
# The metric and faithfulness: written once


def _masked(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    valid = ids >= 0
    return values.gather(1, ids.clamp(min=0)) * valid, valid.sum(1)


def metric(logits: torch.Tensor, answer_ids: torch.Tensor, wrong_ids: torch.Tensor,
           kind: str = "logit_diff") -> torch.Tensor:
    """The task metric per row from logits ``[rows, vocab]`` and id sets ``[rows, k]`` (-1 pads a
    row's shorter set): ``[rows]``. One token each under ``logit_diff`` is exactly
    ``logits[answer] - logits[wrong]`` (bitwise)."""
    if kind == "logit_diff":
        a, na = _masked(logits, answer_ids)
        w, nw = _masked(logits, wrong_ids)
        return a.sum(1) / na - w.sum(1) / nw
    if kind == "prob_diff":
        p = torch.softmax(logits.float(), -1)
        return _masked(p, answer_ids)[0].sum(1) - _masked(p, wrong_ids)[0].sum(1)
    raise ValueError(f"unknown metric {kind!r}; use one of {METRICS}.")


def ratio_of_means(f_model: float, f_circuit: float) -> float:
    """Wang et al.'s faithfulness, F(C) / F(M) (means over prompts)."""
    return f_circuit / f_model


def normalised_parts(f_model, f_circuit, f_empty):
    """Numerator and denominator of the normalised faithfulness, ``(F(C) - F(∅), F(M) - F(∅))``:
    per prompt, they are what a paired ratio-of-means bootstrap resamples."""
    return f_circuit - f_empty, f_model - f_empty


def normalised_faithfulness(f_model, f_circuit, f_empty):
    """(F(C) - F(∅)) / (F(M) - F(∅)): 1 when the circuit recovers the model, 0 when it does no
    better than ablating everything (Hanna et al. 2024; MIB). Works on floats, arrays, Series
    (means, for the ratio of means)."""
    num, den = normalised_parts(f_model, f_circuit, f_empty)
    return num / den


# --------------------------------------------------------------------------------------------
# The task interface


class Task:
    """A task: prompts and counterfactuals, answers, metric, named positions, reference groups.

    Subclasses set the class attributes and implement :meth:`locate`, :meth:`answer_tokens` and
    :meth:`counterfactuals`; :meth:`generate` and :meth:`reference` have defaults or may be
    overridden (IOI keeps its own fixed generated reference)."""

    name: str = ""
    positions: tuple[str, ...] = (END,)  # named positions; END (the answer is read there) required
    metric: str = "logit_diff"
    required_columns: tuple[str, ...] = ("prompt",)
    counterfactual_column: str = "cf_prompt"
    counterfactual_label: str = "counterfactual"  # what a counterfactual is called in provenance
    group_columns: tuple[str, ...] = ()  # columns that group the mean reference, where present
    reference_source: str = "counterfactual prompts"  # what the mean reference averages over
    description: str = ""

    # -- positions -----------------------------------------------------------------------------
    def position_column(self, name: str) -> str:
        """The prompt-table column that holds position ``name`` (``pos_<name>``, lower case)."""
        return "pos_" + name.lower().replace("+", "p")

    @property
    def position_columns(self) -> dict[str, str]:
        return {p: self.position_column(p) for p in self.positions}

    @property
    def roles(self) -> tuple[str, ...]:
        """Every position's role in a role map: BOS, other, then the named positions."""
        return (BOS_ROLE, OTHER_ROLE, *self.positions)

    @property
    def node_roles(self) -> tuple[str, ...]:
        """Where a circuit's nodes can sit: the named positions and ``other`` (BOS excluded)."""
        return (*self.positions, OTHER_ROLE)

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        """Token index (BOS counted) of every named position of one prompt, keyed by position
        column, plus ``n_tokens`` and any extra columns; raises :class:`PromptError`."""
        raise NotImplementedError

    # -- answers -------------------------------------------------------------------------------
    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        """The answer token ids and the wrong token ids of one prompt; raises PromptError."""
        raise NotImplementedError

    # -- prompts -------------------------------------------------------------------------------
    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        """A copy of ``df`` with :attr:`counterfactual_column`: each prompt's corrupted partner,
        token-aligned with it (same length, same positions)."""
        raise NotImplementedError

    def generate(self, tokenizer, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` clean prompts with their counterfactuals, reproducibly from ``seed``."""
        raise NotImplementedError(f"the task {self.name!r} has no prompt generator.")

    def check_columns(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.required_columns if c not in df.columns]
        if missing:
            raise PromptError(f"the prompt table lacks column(s) {missing}; the {self.name} task "
                              f"needs the columns {list(self.required_columns)}.")

    def reference_groups(self, df: pd.DataFrame) -> tuple[str, ...]:
        """The grouping columns of the mean reference that ``df`` has (empty: one group)."""
        return tuple(c for c in self.group_columns if c in df.columns)

    # -- the mean-ablation reference -----------------------------------------------------------
    def reference(self, model, prompts: pd.DataFrame, ablation) -> tuple[Any, tuple[str, ...]] | None:
        """The task's own mean-ablation reference, ``(ReferenceBatch, group columns)``; None (the
        default) takes the core's: the prompts' counterfactuals, grouped by
        :meth:`reference_groups` (:func:`circuitgen.scorer.counterfactual_reference`)."""
        return None

    def fixed_reference_key(self, prompts: pd.DataFrame, ablation) -> tuple | None:
        """A key when the reference for ``prompts`` does not depend on them (then its means are
        computed once per model and reused), else None."""
        return None

    def __repr__(self) -> str:
        return f"<task {self.name}: positions {list(self.positions)}, metric {self.metric}>"


_TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Make ``task`` findable by name; a task's module calls this once, at import."""
    if END not in task.positions:
        raise ValueError(f"task {task.name!r}: its positions {task.positions} lack {END!r}, where "
                         "the answer is read.")
    if task.metric not in METRICS:
        raise ValueError(f"task {task.name!r}: metric {task.metric!r} is not one of {METRICS}.")
    bad = [p for p in task.positions if p in (BOS_ROLE, OTHER_ROLE)]
    if bad:
        raise ValueError(f"task {task.name!r}: {bad} are reserved role names, not positions.")
    _TASKS[task.name] = task
    return task


def get_task(task: str | Task | None = None) -> Task:
    """The registered task called ``task`` (a Task passes through; None is IOI)."""
    if isinstance(task, Task):
        return task
    name = DEFAULT_TASK if task is None else task
    if name not in _TASKS:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {sorted(_TASKS)} (a task "
                               "module under circuitgen.tasks registers itself when imported).")
    return _TASKS[name]


def task_names() -> list[str]:
    return sorted(_TASKS)


def padded_ids(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Id sets of different sizes as one ``[rows, max size]`` tensor, -1 padding."""
    width = max((len(r) for r in rows), default=1)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


__all__ = ["METRICS", "DEFAULT_TASK", "END", "PromptError", "UnknownTaskError", "AblationReferenceError",
           "group_keys", "Task", "register",
           "get_task", "task_names", "metric", "ratio_of_means", "normalised_faithfulness",
           "normalised_parts", "tokenize", "bos_id", "encode_with_offsets", "single_token", "padded_ids"]
