"""Faithfulness, completeness and minimality of a circuit, in the terms of Wang et al. 2022.

F(X) is the mean logit difference when every (position, head) outside X is mean-ablated. For a
circuit C in model M: faithfulness is F(C) / F(M) (a ratio of means); completeness compares
F(C \\ K) with F(M \\ K) for knocked-out sets K (a complete circuit has them equal for every K);
minimality asks how much each head v matters inside the circuit, F(C) - F(C \\ {v}). Here the
minimality uses K = {} for every head (the paper searched a K per head), which can only
understate a head's importance when backups hide it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pandas as pd
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen.circuits import CircuitSpec


def _variants(model, spec: CircuitSpec, batch: B.IOIBatch, removals: Sequence[Sequence[tuple[int, int]]],
              whole_model: bool) -> torch.Tensor:
    base = A.full_keep(model, batch) if whole_model else A.circuit_keep(spec, model, batch)
    keeps = []
    for heads in removals:
        keep = base.clone()
        for layer, head in heads:
            keep[:, :, layer, head] = False
        keeps.append(keep)
    return torch.stack(keeps)


@torch.no_grad()
def mean_logit_diffs(model, spec: CircuitSpec, df: pd.DataFrame, means: A.MeanReference,
                     removals: Sequence[Sequence[tuple[int, int]]], whole_model: bool,
                     batch_size: int = 16, tile: int = 8) -> torch.Tensor:
    """F(C \\ K) (or F(M \\ K) when ``whole_model``) for each K in ``removals``: ``[len(removals)]``."""
    totals = torch.zeros(len(removals))
    groups_all = df["template"].tolist() if "template" in df.columns else None
    for sl in B.chunks(len(df), batch_size):
        part = df.iloc[sl]
        batch = B.encode(model, part)
        groups = groups_all[sl] if groups_all is not None else None
        replace = A.replacement_fn("mean", batch, means=means, groups=groups)
        for vs in B.chunks(len(removals), tile):
            keep = _variants(model, spec, batch, removals[vs], whole_model)
            totals[vs] += A.run_variants(model, batch, keep, replace).sum(-1)
    return totals / len(df)


def random_subsets(heads: Sequence[tuple[int, int]], n: int, seed: int, p: float = 0.5
                   ) -> list[list[tuple[int, int]]]:
    """``n`` random subsets of the circuit's heads, each head kept with probability ``p``."""
    rng = random.Random(seed)
    return [[h for h in heads if rng.random() < p] for _ in range(n)]


def completeness(model, spec: CircuitSpec, df: pd.DataFrame, means: A.MeanReference,
                 n_random: int = 10, seed: int = 0) -> pd.DataFrame:
    """F(C \\ K) and F(M \\ K) for K = {}, each class, and random subsets of the circuit."""
    sets = {"(none)": []} | {f"class {n}": list(c.heads) for n, c in spec.classes.items()}
    for i, sub in enumerate(random_subsets(spec.heads(), n_random, seed)):
        sets[f"random {i}"] = sub
    removals = list(sets.values())
    f_c = mean_logit_diffs(model, spec, df, means, removals, whole_model=False)
    f_m = mean_logit_diffs(model, spec, df, means, removals, whole_model=True)
    out = pd.DataFrame({"K": list(sets), "n_heads_removed": [len(r) for r in removals],
                        "F(C\\K)": f_c.numpy(), "F(M\\K)": f_m.numpy()})
    out["incompleteness"] = (out["F(C\\K)"] - out["F(M\\K)"]).abs()
    return out


def minimality(model, spec: CircuitSpec, df: pd.DataFrame, means: A.MeanReference) -> pd.DataFrame:
    """Each head's contribution inside the circuit: F(C) - F(C \\ {v}), absolute and relative."""
    heads = spec.heads()
    f = mean_logit_diffs(model, spec, df, means, [[]] + [[h] for h in heads], whole_model=False)
    out = pd.DataFrame({"head": [f"{l}.{h}" for l, h in heads],
                        "class": [spec.class_of(l, h) for l, h in heads],
                        "F(C)-F(C\\v)": (f[0] - f[1:]).numpy()})
    out["relative"] = out["F(C)-F(C\\v)"] / float(f[0])
    return out


@torch.no_grad()
def s2_check(model, spec: CircuitSpec, df: pd.DataFrame, means: A.MeanReference,
             batch_size: int = 16) -> pd.DataFrame:
    """The S2-hacking check (Nainani et al. 2024): per prompt, the circuit's logit difference with
    the complement mean-ablated everywhere, and with the complement left intact at the S2 position
    only. If faithfulness above 1 comes from ablating what other heads write at S2 (which can
    strengthen the 'S is duplicated' signal the circuit reads there), the second number falls back
    towards the model's."""
    out = []
    groups_all = df["template"].tolist() if "template" in df.columns else None
    for sl in B.chunks(len(df), batch_size):
        part = df.iloc[sl]
        batch = B.encode(model, part)
        groups = groups_all[sl] if groups_all is not None else None
        replace = A.replacement_fn("mean", batch, means=means, groups=groups)
        keep = A.circuit_keep(spec, model, batch)
        at_s2 = (A.role_map(batch) == A.ROLE_INDEX["S2"])[:, :, None, None]
        diffs = A.run_variants(model, batch, torch.stack([keep, keep | at_s2]), replace)
        out.append(pd.DataFrame({"circuit_logit_diff": diffs[0].numpy(),
                                 "circuit_logit_diff_s2_intact": diffs[1].numpy()}, index=part.index))
    return pd.concat(out)
