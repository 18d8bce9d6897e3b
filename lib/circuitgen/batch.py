"""Batches of a task's prompts of different lengths, and the task metric read at END.

Prompts are right-padded: under causal attention no real token attends to a pad that comes after
it, so every real position computes exactly what it would alone; an attention mask is passed too.
Logits are always read at each prompt's own END index, never at -1.

A :class:`TaskBatch` carries what the core needs and nothing task-specific by name: token ids,
the mask, the named positions of its task (IOI: IO, S1, S1+1, S2, END), the answer and wrong
token id sets (``[batch, k]``, -1 padding; IOI: one each, the IO and the S name) and the metric
(:func:`circuitgen.task.metric`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from circuitgen.task import END, PromptError, Task, get_task, metric, padded_ids, single_token, tokenize


@dataclass
class TaskBatch:
    """Token ids, mask, answer / wrong id sets and named positions of a batch of prompts."""

    tokens: torch.Tensor  # [batch, pos], right-padded
    mask: torch.Tensor  # [batch, pos], 1 on real tokens
    answer_ids: torch.Tensor  # [batch, k], -1 pads a shorter set
    wrong_ids: torch.Tensor  # [batch, k']
    pos: dict[str, torch.Tensor] = field(default_factory=dict)  # position name -> [batch]
    metric: str = "logit_diff"

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def end(self) -> torch.Tensor:
        return self.pos[END]

    @property
    def positions(self) -> tuple[str, ...]:
        """The task's named positions, in the task's order (the role map's order)."""
        return tuple(self.pos)

    @property
    def answer_id(self) -> torch.Tensor:
        """The first answer token of each prompt, ``[batch]`` (IOI: the IO name)."""
        return self.answer_ids[:, 0]

    @property
    def wrong_id(self) -> torch.Tensor:
        """The first wrong token of each prompt, ``[batch]`` (IOI: the S name)."""
        return self.wrong_ids[:, 0]

    def subset(self, idx: slice | torch.Tensor) -> TaskBatch:
        """Rows ``idx``, trimmed to their own longest prompt."""
        mask = self.mask[idx]
        width = int(mask.sum(1).max())
        return TaskBatch(self.tokens[idx, :width], mask[:, :width], self.answer_ids[idx],
                         self.wrong_ids[idx], {k: v[idx] for k, v in self.pos.items()}, self.metric)

    def metric_of(self, logits_at_end: torch.Tensor, tile: int = 1) -> torch.Tensor:
        """The task metric from END logits of ``tile`` stacked replicas: ``[tile, batch]``."""
        return metric(logits_at_end, self.answer_ids.repeat(tile, 1), self.wrong_ids.repeat(tile, 1),
                      self.metric).view(tile, len(self))


def records(df: pd.DataFrame) -> list[dict]:
    """The rows of ``df`` as dicts (a repeated column name keeps its first column)."""
    return df.loc[:, ~df.columns.duplicated()].to_dict("records")


def answer_id(tokenizer, name: str) -> int:
    """The token id the model must predict for a name: the name with its leading space."""
    return single_token(tokenizer, name, "the name")


def add_task_positions(df: pd.DataFrame, tokenizer, task: Task) -> pd.DataFrame:
    """A copy of ``df`` with the task's position columns (and ``n_tokens``), found by tokenising."""
    task.check_columns(df)
    rows = [task.locate(tokenizer, r, idx) for idx, r in zip(df.index, records(df))]
    out = df.copy()
    for col in [*task.position_columns.values(), "n_tokens"]:
        out[col] = [r[col] for r in rows]
    return out


def encode(model, df: pd.DataFrame, prompt_col: str = "prompt", task: str | Task | None = None
           ) -> TaskBatch:
    """Tokenise ``df[prompt_col]`` (BOS first) with the task's positions (default: IOI).

    Missing position columns are found by tokenising (:meth:`Task.locate`). ``prompt_col`` may
    name the counterfactual prompts (IOI's ``abc_prompt``): they share the clean prompts'
    positions and answers.
    """
    task = get_task(task)
    tok = model.tokenizer
    cols = task.position_columns
    if not set(cols.values()) <= set(df.columns):
        df = add_task_positions(df, tok, task)
    seqs = [tokenize(tok, p, bos=True) for p in df[prompt_col]]
    ends = df[cols[END]].astype("int64").to_numpy()
    for i, (seq, end) in enumerate(zip(seqs, ends)):
        if len(seq) - 1 != end:
            raise PromptError(f"row {df.index[i]}: {prompt_col} has {len(seq)} tokens but END is "
                              f"{end}; corrupted prompts must have the clean prompt's length.")
    width = max(map(len, seqs))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    tokens = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        tokens[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    pos = {name: torch.tensor(df[col].astype("int64").to_numpy().copy(), dtype=torch.long)
           for name, col in cols.items()}
    answers, wrongs = zip(*(task.answer_tokens(tok, r) for r in records(df))) if len(df) else ((), ())
    return TaskBatch(tokens, mask, padded_ids(answers), padded_ids(wrongs), pos, task.metric)


def at_end(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Logits at each prompt's END position: ``[batch, vocab]``."""
    return logits[torch.arange(len(batch)), batch.end]


def logit_diff(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """The task metric at END, per prompt (IOI: IO minus S logit): ``[batch]``."""
    return batch.metric_of(at_end(logits, batch))[0]


def forward(model, batch: TaskBatch, fwd_hooks=()) -> torch.Tensor:
    """Logits of the batch, with the padding mask and optional hooks."""
    if fwd_hooks:
        return model.run_with_hooks(batch.tokens, attention_mask=batch.mask, fwd_hooks=list(fwd_hooks))
    return model(batch.tokens, attention_mask=batch.mask)


def chunks(n: int, size: int):
    """Slices covering ``range(n)`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
