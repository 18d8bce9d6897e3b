"""Faithfulness, completeness and minimality of a circuit, in the terms of Wang et al. 2022.

F(X) is the mean logit difference when every (position, head) outside X is mean-ablated. For a
circuit C in model M: faithfulness is F(C) / F(M) (a ratio of means); completeness compares
F(C \\ K) with F(M \\ K) for knocked-out sets K (a complete circuit has them equal for every K);
minimality asks how much each head v matters inside the circuit, F(C) - F(C \\ {v}). Here the
minimality uses K = {} for every head (the paper searched a K per head), which can only
understate a head's importance when backups hide it.

For a spec with ``mlps:`` the MLPs outside the circuit are ablated too (F(C)), F(∅) ablates every
MLP as well as every head, and F(M) runs them all, as in the scorer; K removes heads only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import stats
from circuitgen.circuits import CircuitSpec, HeadClass
from circuitgen.task import normalised_faithfulness, normalised_parts


def _variants(model, spec: CircuitSpec, batch: B.TaskBatch, removals: Sequence[Sequence[tuple[int, int]]],
              whole_model: bool) -> torch.Tensor:
    base = A.full_keep(model, batch) if whole_model else A.circuit_keep(spec, model, batch)
    keeps = []
    for heads in removals:
        keep = base.clone()
        for layer, head in heads:
            keep[:, :, layer, head] = False
        keeps.append(keep)
    return torch.stack(keeps)


def _mlp_keep(spec: CircuitSpec, model, batch: B.TaskBatch, n_variants: int,
              whole_model: bool = False) -> torch.Tensor | None:
    """The MLP keep mask of ``n_variants`` circuit variants: None when every MLP runs."""
    if spec.mlps is None or whole_model:
        return None
    return A.circuit_mlp_keep(spec, model, batch)[None].expand(n_variants, -1, -1, -1)


@torch.no_grad()
def mean_logit_diffs(model, spec: CircuitSpec, df: pd.DataFrame, means: A.MeanReference,
                     removals: Sequence[Sequence[tuple[int, int]]], whole_model: bool,
                     batch_size: int = 16, tile: int = 8) -> torch.Tensor:
    """F(C \\ K) (or F(M \\ K) when ``whole_model``) for each K in ``removals``: ``[len(removals)]``."""
    totals = torch.zeros(len(removals))
    for sl in B.chunks(len(df), batch_size):
        part = df.iloc[sl]
        batch = B.encode(model, part)
        groups = means.keys(part)
        replace, mlp_replace = A.replacement_fns("mean", batch, means=means, groups=groups)
        for vs in B.chunks(len(removals), tile):
            keep = _variants(model, spec, batch, removals[vs], whole_model)
            mlp_keep = _mlp_keep(spec, model, batch, len(keep), whole_model)
            totals[vs] += A.run_variants(model, batch, keep, replace, mlp_keep, mlp_replace).sum(-1)
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
    for sl in B.chunks(len(df), batch_size):
        part = df.iloc[sl]
        batch = B.encode(model, part)
        groups = means.keys(part)
        replace, mlp_replace = A.replacement_fns("mean", batch, means=means, groups=groups)
        keep = A.circuit_keep(spec, model, batch)
        at_s2 = (A.role_map(batch) == A.ROLE_INDEX["S2"])[:, :, None, None]
        mlp_keep = A.circuit_mlp_keep(spec, model, batch)
        if mlp_keep is not None:
            mlp_keep = torch.stack([mlp_keep, mlp_keep | at_s2[..., 0]])
        diffs = A.run_variants(model, batch, torch.stack([keep, keep | at_s2]), replace, mlp_keep,
                               mlp_replace)
        out.append(pd.DataFrame({"circuit_logit_diff": diffs[0].numpy(),
                                 "circuit_logit_diff_s2_intact": diffs[1].numpy()}, index=part.index))
    return pd.concat(out)


# ---- baselines: the empty circuit, normalised faithfulness, random circuits of the same shape ----

def _clusters(scores: pd.DataFrame, cluster: str | None) -> np.ndarray:
    if cluster is not None and cluster in scores.columns:
        return scores[cluster].astype(str).to_numpy()
    return np.arange(len(scores)).astype(str)


def faithfulness_table(scores: pd.DataFrame, cluster: str | None = "template", seed: int = 0,
                       n_resamples: int = 2000) -> pd.DataFrame:
    """F(M), F(C), F(∅), the ratio of means F(C)/F(M) (Wang et al.) and the normalised
    faithfulness (F(C) - F(∅)) / (F(M) - F(∅)) (Hanna et al., MIB), each with a 95% interval that
    resamples whole ``cluster`` groups (prompts of one template share their ablation means), from
    a scored table with ``logit_diff``, ``circuit_logit_diff`` and ``empty_logit_diff``."""

    ok = scores[scores.status == "ok"] if "status" in scores.columns else scores
    m, c, e = (ok[col].to_numpy(float) for col in ("logit_diff", "circuit_logit_diff",
                                                    "empty_logit_diff"))
    g = _clusters(ok, cluster)
    kw = {"seed": seed, "n_resamples": n_resamples}
    rows = {
        "F(M)": stats.cluster_bootstrap_ci(m, g, "mean", **kw),
        "F(C)": stats.cluster_bootstrap_ci(c, g, "mean", **kw),
        "F(∅)": stats.cluster_bootstrap_ci(e, g, "mean", **kw),
        "F(C)/F(M)": stats.cluster_bootstrap_ci((c, m), g, "ratio_of_means", **kw),
        # mean(C - ∅) / mean(M - ∅) is the normalised faithfulness: a paired ratio of means.
        "(F(C)-F(∅))/(F(M)-F(∅))": stats.cluster_bootstrap_ci(normalised_parts(m, c, e), g,
                                                               "ratio_of_means", **kw),
    }
    out = pd.DataFrame(rows, index=["estimate", "lo", "hi"]).T
    out["n_prompts"] = len(ok)
    out["n_clusters"] = len(set(g))
    return out


def layer_bands(n_layers: int, n_bands: int = 6) -> list[range]:
    """Contiguous bands of layers (for 30 layers: six bands of five)."""
    n_bands = max(1, min(n_bands, n_layers))
    edges = np.linspace(0, n_layers, n_bands + 1).round().astype(int)
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]


def random_circuits(spec: CircuitSpec, n_layers: int, n_heads: int, n_draws: int = 20,
                    seed: int = 0, n_bands: int = 6) -> list[CircuitSpec]:
    """Circuits of the spec's shape with random heads: each class keeps its positions and its
    number of heads per layer band; heads are drawn without replacement (the null for F(C)). A
    head with positions of its own passes them to the head drawn in its place; the spec's MLPs
    (``mlps:``) are kept as they are."""

    bands = layer_bands(n_layers, n_bands)
    band_of = {layer: i for i, band in enumerate(bands) for layer in band}
    rng = random.Random(seed)
    out = []
    for d in range(n_draws):
        free = {i: [(layer, h) for layer in band for h in range(n_heads)] for i, band in enumerate(bands)}
        for heads in free.values():
            rng.shuffle(heads)
        classes = {}
        for name, cls in spec.classes.items():
            picked, own = [], []
            for layer, head in cls.heads:
                pool = free[band_of[layer]]
                if not pool:
                    raise ValueError(f"layer band of layer {layer} has too few heads for the circuit.")
                picked.append(pool.pop())
                if cls.positions_of((layer, head)) != cls.positions:
                    own.append((picked[-1], cls.positions_of((layer, head))))
            classes[name] = HeadClass(name, tuple(sorted(picked)), cls.positions, cls.signature,
                                      head_positions=tuple(sorted(own)))
        out.append(CircuitSpec(spec.model, spec.task, classes, description=f"random draw {d}",
                               provenance={"method": "random, same shape", "seed": seed},
                               source=f"<random {d}>", mlps=spec.mlps))
    return out


@torch.no_grad()
def random_circuit_null(model, spec: CircuitSpec, df: pd.DataFrame, means: A.MeanReference,
                        n_draws: int = 20, seed: int = 0, batch_size: int = 8, tile: int = 12
                        ) -> pd.DataFrame:
    """F(R) for random circuits R of the spec's shape, beside F(M), F(∅) and F(C), over ``df``:
    one row per circuit (``circuit``: 'spec' or 'random i') with its ratio of means and
    normalised faithfulness."""
    specs = [spec] + random_circuits(spec, model.cfg.n_layers, model.cfg.n_heads, n_draws, seed)
    totals = torch.zeros(len(specs) + 2)
    for sl in B.chunks(len(df), batch_size):
        part = df.iloc[sl]
        batch = B.encode(model, part)
        replace, mlp_replace = A.replacement_fns("mean", batch, means=means, groups=means.keys(part))
        keeps = [A.full_keep(model, batch), A.empty_keep(model, batch)]
        keeps += [A.circuit_keep(s, model, batch) for s in specs]
        mlp_keeps = None
        if spec.mlps is not None:  # random draws share the spec's MLPs
            mlp_keeps = [A.full_mlp_keep(model, batch), A.empty_mlp_keep(model, batch)]
            mlp_keeps += [A.circuit_mlp_keep(spec, model, batch)] * len(specs)
        for vs in B.chunks(len(keeps), tile):
            mlp_keep = None if mlp_keeps is None else torch.stack(mlp_keeps[vs])
            totals[vs] += A.run_variants(model, batch, torch.stack(keeps[vs]), replace, mlp_keep,
                                         mlp_replace).sum(-1)
    f = (totals / len(df)).numpy()
    f_m, f_0 = float(f[0]), float(f[1])
    out = pd.DataFrame({"circuit": ["spec"] + [f"random {i}" for i in range(n_draws)],
                        "n_heads": [len(s.heads()) for s in specs], "F": f[2:]})
    out["F/F(M)"] = out["F"] / f_m
    out["normalised"] = normalised_faithfulness(f_m, out["F"], f_0)
    out["F(M)"], out["F(∅)"], out["n_prompts"] = f_m, f_0, len(df)
    return out
