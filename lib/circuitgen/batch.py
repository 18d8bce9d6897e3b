"""Batches of IOI-style prompts of different lengths, and the logit difference read at END.

Prompts are right-padded: under causal attention no real token attends to a pad that comes after
it, so every real position computes exactly what it would alone; an attention mask is passed too.
Logits are always read at each prompt's own END index, never at -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from circuitgen.ioi import POSITION_COLUMNS, PromptError, add_positions, tokenize

ROLES = tuple(POSITION_COLUMNS)  # "IO", "S1", "S1+1", "S2", "END"


@dataclass
class IOIBatch:
    """Token ids, mask, answer ids and role positions of a batch of prompts."""

    tokens: torch.Tensor  # [batch, pos], right-padded
    mask: torch.Tensor  # [batch, pos], 1 on real tokens
    io_id: torch.Tensor  # [batch]
    s_id: torch.Tensor  # [batch]
    pos: dict[str, torch.Tensor] = field(default_factory=dict)  # role -> [batch]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def end(self) -> torch.Tensor:
        return self.pos["END"]

    def subset(self, idx: slice | torch.Tensor) -> IOIBatch:
        """Rows ``idx``, trimmed to their own longest prompt."""
        mask = self.mask[idx]
        width = int(mask.sum(1).max())
        return IOIBatch(self.tokens[idx, :width], mask[:, :width], self.io_id[idx], self.s_id[idx],
                        {k: v[idx] for k, v in self.pos.items()})


def answer_id(tokenizer, name: str) -> int:
    """The token id the model must predict for a name: the name with its leading space."""
    ids = tokenizer(" " + str(name).strip(), add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise PromptError(f"the name {name!r} is {len(ids)} tokens with a leading space; "
                          "the logit difference needs single-token names.")
    return ids[0]


def encode(model, df: pd.DataFrame, prompt_col: str = "prompt") -> IOIBatch:
    """Tokenise ``df[prompt_col]`` (BOS first) with positions from the pos_* columns.

    Missing position columns are found by tokenising (``ioi.add_positions``). ``prompt_col`` may
    name the corrupted prompts (``abc_prompt``): they share the clean prompts' positions.
    """
    tok = model.tokenizer
    if not set(POSITION_COLUMNS.values()) <= set(df.columns):
        df = add_positions(df, tok)
    seqs = [tokenize(tok, p, bos=True) for p in df[prompt_col]]
    ends = df[POSITION_COLUMNS["END"]].astype("int64").to_numpy()
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
    pos = {role: torch.tensor(df[col].astype("int64").to_numpy().copy(), dtype=torch.long)
           for role, col in POSITION_COLUMNS.items()}
    io_id = torch.tensor([answer_id(tok, n) for n in df["io"]])
    s_id = torch.tensor([answer_id(tok, n) for n in df["s"]])
    return IOIBatch(tokens, mask, io_id, s_id, pos)


def at_end(logits: torch.Tensor, batch: IOIBatch) -> torch.Tensor:
    """Logits at each prompt's END position: ``[batch, vocab]``."""
    return logits[torch.arange(len(batch)), batch.end]


def logit_diff(logits: torch.Tensor, batch: IOIBatch) -> torch.Tensor:
    """IO minus S logit at END, per prompt: ``[batch]``."""
    end = at_end(logits, batch)
    rows = torch.arange(len(batch))
    return end[rows, batch.io_id] - end[rows, batch.s_id]


def forward(model, batch: IOIBatch, fwd_hooks=()) -> torch.Tensor:
    """Logits of the batch, with the padding mask and optional hooks."""
    if fwd_hooks:
        return model.run_with_hooks(batch.tokens, attention_mask=batch.mask, fwd_hooks=list(fwd_hooks))
    return model(batch.tokens, attention_mask=batch.mask)


def chunks(n: int, size: int):
    """Slices covering ``range(n)`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
