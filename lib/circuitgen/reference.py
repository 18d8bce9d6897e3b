"""The mean-ablation reference: which ABC prompts the means are taken over, and how they are grouped.

Mean ablation replaces a head's output by its mean over a reference distribution of ABC prompts
(three unrelated names), taken per *role* position (IO, S1, S1+1, S2, END, ...). The mean is only
meaningful if, within a group, a role always holds the same kind of token: in ABBA prompts the IO
is the first name and S1+1 the verb after the second; in BABA the IO is the second name and S1+1 is
" and". So groups fix the order as well as the structure (Wang et al.'s groups are ordered
templates). The rules, fixed before any result was seen (LAB_NOTEBOOK, 2026-11-26):

- **Groups.** ``group_by=None`` (the default) means: ``(condition, order)`` when the prompts carry a
  ``condition`` column (the variation families: a condition fixes the structure, its templates
  share what each role holds, and pooling templates keeps 20 prompts per group affordable);
  else ``(template, order)`` when both columns exist (the canonical generator's prompts); else
  each prompt is its own group (hand-written prompts with neither column).
- **Source.** A group's reference prompts come from, in order of preference: the ``reference``
  table the caller gives; for prompts of the canonical generator, a fixed reference set generated
  for the purpose (:data:`REFERENCE_SEED`, :data:`MIN_PER_GROUP` prompts per template and order,
  the same whatever is scored); otherwise the group's own prompts. ABC prompts are never IOI
  prompts (their three names are distinct), so the reference is disjoint from any scored set.
- **Size.** Every group holds at least ``min_per_group`` ABC prompts (default 20). Where a group's
  source has fewer rows, extra counterparts are made by name substitution at the token level:
  each name mention gets its own fresh single-token name (none of the prompt's own names), every
  other token unchanged, so the sequence aligns with the clean prompt by construction.

The reference is recorded (method, groups, sizes, seed, source, a hash of its token ids) with
every score. The old behaviour (each scored prompt's own single ABC counterpart, grouped by
template only, orders pooled) stays reachable as ``Ablation.legacy_template_only()`` so the
difference can be shown; it is never a default.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence

import pandas as pd
import torch

from circuitgen import ioi, ioi_templates
from circuitgen.ablation import ReferenceBatch
from circuitgen.batch import TaskBatch, encode
from circuitgen.circuits import MIN_PER_GROUP, REFERENCE_SEED  # one definition, beside Ablation
from circuitgen.task import AblationReferenceError, group_keys

GENERATED = "generated"
PER_PROMPT = ("prompt",)


def resolve_group_by(df: pd.DataFrame, group_by: Sequence[str] | None) -> tuple[str, ...]:
    """The columns that define a group for ``df`` (see the module docstring for the default)."""
    if group_by is not None:
        missing = [c for c in group_by if c not in df.columns]
        if missing:
            raise AblationReferenceError(
                f"the ablation groups by {list(group_by)} but the prompts lack {missing}; "
                "add the column(s), or pass group_by=None for the default grouping.")
        return tuple(group_by) or PER_PROMPT
    if "condition" in df.columns and "order" in df.columns:
        return ("condition", "order")
    if "template" in df.columns and "order" in df.columns:
        return ("template", "order")
    return PER_PROMPT


def is_canonical(df: pd.DataFrame) -> bool:
    """Prompts made by :func:`ioi.generate_prompts` (so the fixed generated reference covers them)."""
    return ("generator_version" in df.columns and "condition" not in df.columns
            and df["generator_version"].astype(str).str.startswith("ioi-").all())


def _name_pool(tokenizer) -> list[int]:
    """Token ids of single-token names with their leading space."""
    kept = ioi.single_token_names(tokenizer, ioi_templates.NAMES, log=False).kept
    return [tokenizer(" " + n, add_special_tokens=False)["input_ids"][0] for n in kept]


def substitute_names(batch: TaskBatch, abc: TaskBatch, k: int, pool: Sequence[int], seed: int
                     ) -> TaskBatch:
    """``k`` new ABC versions of each row: the slots where the clean and ABC tokens differ (every
    name mention) get distinct fresh names from ``pool``, none of the row's own names."""
    rng = random.Random(seed)
    rows = []
    for i in range(len(batch)):
        n = int(batch.mask[i].sum())
        clean, old = batch.tokens[i, :n], abc.tokens[i, :n]
        slots = (clean != old).nonzero().flatten().tolist()
        own = set(clean[slots].tolist()) | set(old[slots].tolist())
        others = [t for t in pool if t not in own]
        for _ in range(k):
            new = clean.clone()
            new[slots] = torch.tensor(rng.sample(others, len(slots)), dtype=new.dtype)
            rows.append((i, new))
    width = batch.tokens.shape[1]
    tokens = torch.zeros((len(rows), width), dtype=batch.tokens.dtype)  # right padding, masked
    idx = torch.tensor([i for i, _ in rows], dtype=torch.long)
    for j, (_, seq) in enumerate(rows):
        tokens[j, : len(seq)] = seq
    return TaskBatch(tokens, batch.mask[idx].clone(), batch.answer_ids[idx], batch.wrong_ids[idx],
                     {r: p[idx] for r, p in batch.pos.items()}, batch.metric)


def _concat(batches: Sequence[TaskBatch]) -> TaskBatch:
    width = max(b.tokens.shape[1] for b in batches)

    def pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    return TaskBatch(torch.cat([pad(b.tokens, 0) for b in batches]),
                     torch.cat([pad(b.mask, 0) for b in batches]),
                     torch.cat([b.answer_ids for b in batches]), torch.cat([b.wrong_ids for b in batches]),
                     {r: torch.cat([b.pos[r] for b in batches]) for r in batches[0].pos},
                     batches[0].metric)


def uses_generated(prompts: pd.DataFrame, cols: Sequence[str], reference: pd.DataFrame | None,
                   own_prompts: bool = False) -> bool:
    """Whether ``prompts`` (grouped by ``cols``) take the fixed generated reference: canonical
    prompts grouped by template and/or order, with no reference table given."""
    return (reference is None and not own_prompts and tuple(cols) != PER_PROMPT
            and set(cols) <= {"template", "order"} and is_canonical(prompts))


def generated_reference(model, min_per_group: int = MIN_PER_GROUP, seed: int = REFERENCE_SEED
                        ) -> pd.DataFrame:
    """The fixed reference set for canonical prompts: ``min_per_group`` per (template, order)."""
    n_cells = len(ioi.TEMPLATES) * len(ioi.ORDERS)
    return ioi.generate_prompts(model, n=min_per_group * n_cells, seed=seed).df


def build_reference(model, prompts: pd.DataFrame, *, group_by: Sequence[str] | None = None,
                    reference: pd.DataFrame | None = None, min_per_group: int = MIN_PER_GROUP,
                    seed: int = REFERENCE_SEED, own_prompts: bool = False
                    ) -> tuple[ReferenceBatch, tuple[str, ...]]:
    """ABC prompts for every group of ``prompts``, at least ``min_per_group`` each.
    ``own_prompts``: take the scored prompts as the source even where a generated set exists."""
    if min_per_group < 1:
        raise AblationReferenceError(f"min_per_group must be at least 1, not {min_per_group}.")
    if min_per_group < MIN_PER_GROUP:
        warnings.warn(f"mean-ablation reference of {min_per_group} prompts per group (below "
                      f"{MIN_PER_GROUP}): each prompt's own counterpart weighs heavily in its mean, "
                      "a hybrid of mean and resample ablation.", stacklevel=2)
    cols = resolve_group_by(prompts, group_by)
    wanted = sorted(set(group_keys(prompts, cols)))
    if reference is not None:
        source, label = reference, "the given reference table"
        if cols == PER_PROMPT:
            # Hand-written prompts cannot share a group with another table's prompts; the order
            # (which name comes first) is what both sides have.
            cols = ("order",)
            wanted = sorted(set(group_keys(prompts, cols)))
        resolve_group_by(reference, cols)
    elif uses_generated(prompts, cols, reference, own_prompts):
        # Every generated group, not only the scored ones: a prompt's score never depends on
        # which other prompts are scored with it.
        source, label = generated_reference(model, min_per_group, seed), f"{GENERATED} (seed {seed})"
        wanted = sorted(set(group_keys(source, cols)) | set(wanted))
    else:
        source, label = prompts, "ABC counterparts of the scored prompts"
    source = source.reset_index(drop=True)
    source_keys = group_keys(source, cols)
    absent = [k for k in wanted if k not in set(source_keys)]
    if absent:
        raise AblationReferenceError(f"the reference has no prompts for group(s) {absent[:5]} of the scored "
                         f"prompts (grouped by {list(cols)}); give a reference that covers them, "
                         "or omit it to use the scored prompts' own counterparts.")
    pool = _name_pool(model.tokenizer)
    parts, keys, sources = [], [], {}
    for key in wanted:
        rows = source[[k == key for k in source_keys]]
        rows = ioi.make_abc(rows, model.tokenizer, seed=seed)  # keeps ABC prompts already there
        clean, abc = encode(model, rows), encode(model, rows, prompt_col="abc_prompt")
        parts.append(abc)
        keys += [key] * len(rows)
        sources[key] = label
        extra = math.ceil(max(0, min_per_group - len(rows)) / len(rows))
        if extra:
            parts.append(substitute_names(clean, abc, extra, pool, seed + len(keys)))
            keys += [key] * (extra * len(rows))
            sources[key] = label + f" + {extra} name substitution(s) per prompt"
    return ReferenceBatch(_concat(parts), keys, sources), cols


__all__ = ["MIN_PER_GROUP", "REFERENCE_SEED", "resolve_group_by", "group_keys", "is_canonical",
           "AblationReferenceError", "ReferenceBatch", "substitute_names", "uses_generated",
           "generated_reference", "build_reference"]
