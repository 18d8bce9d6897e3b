"""Faithfulness against circuit size, for circuits made of (head, role) nodes (week 13).

A discovery method ranks nodes (:mod:`circuitgen.nodes` score tables); the circuit of size ``k``
is its top ``k`` head nodes (every MLP runs, as in Wang et al.'s circuit). Each circuit is scored
on held-out prompts with every other (head, position) ablated, and compared with the model and
with the empty circuit:

- ``F(C)``: mean logit difference with only the circuit's nodes running;
- normalised faithfulness ``(F(C) − F(∅)) / (F(M) − F(∅))`` (MIB; Hanna et al. 2024), the
  quantity whose target band is [0.85, 1.15];
- MIB's area summaries over its node fractions (:data:`MIB_FRACTIONS`, trapezoids on a linear
  axis, as ``MIB_circuit_track.evaluation.evaluate_area_under_curve``): **CPR** = area under the
  normalised faithfulness (higher is better), **CMD** = area under |1 − faithfulness| (lower is
  better).

All variants of a prompt chunk run through :func:`circuitgen.resume.run_variants_resumed` (the
ablation engine's variants, each block run once per distinct prefix), so the clean model, the
empty circuit and every size share one tokenisation, one reference and the blocks below their
first difference.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import nodes as N
from circuitgen import resume, stats
from circuitgen.scorer import mean_reference
from circuitgen.task import Task, get_task, normalised_faithfulness, normalised_parts

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
TARGET_BAND = (0.85, 1.15)


def counts_for(n_nodes: int, fractions: Sequence[float] = MIB_FRACTIONS) -> list[int]:
    """Node counts for fractions of all nodes, ``int(fraction * n)`` as MIB counts them."""
    return [int(f * n_nodes) for f in fractions]


@dataclass
class Setting:
    """Prompts, their batches and the ablation every circuit of a curve is scored under."""

    model: object
    df: pd.DataFrame
    method: str = "mean"
    means: A.MeanReference | None = None
    batch_size: int = 24
    task: str | Task | None = None  # default IOI

    def __post_init__(self) -> None:
        self.task = get_task(self.task)
        if self.method not in ("mean", "resample"):
            raise ValueError(f"curves support mean or resample ablation, not {self.method!r}")
        if self.method == "mean" and self.means is None:
            self.means = mean_reference(self.model, self.df, task=self.task)
        self.df = self.df.reset_index(drop=True)
        self._parts = []
        for sl in B.chunks(len(self.df), self.batch_size):
            part = self.df.iloc[sl]
            batch = B.encode(self.model, part, task=self.task)
            if self.method == "mean":
                replace = A.replacement_fn("mean", batch, means=self.means, groups=self.means.keys(part))
            else:
                abc = B.encode(self.model, part, prompt_col=self.task.counterfactual_column,
                               task=self.task)
                replace = A.replacement_fn("resample", batch, model=self.model, abc=abc)
            self._parts.append((sl, batch, replace))

    @torch.no_grad()
    def logit_diffs(self, circuits: Sequence[Sequence[N.Node]], tile: int = 6) -> torch.Tensor:
        """Logit difference of every prompt with only each circuit running: ``[circuit, prompt]``.
        An empty list is the empty circuit; :data:`FULL` is the model itself."""
        out = torch.zeros(len(circuits), len(self.df))
        for sl, batch, replace in self._parts:
            for vs in B.chunks(len(circuits), tile):
                keep = torch.stack([_keep(self.model, batch, c) for c in circuits[vs]])
                # blocks below a variant's first difference from the others run once
                out[vs, sl] = resume.run_variants_resumed(self.model, batch, keep, replace)
        return out


FULL: tuple = ("FULL",)
# prompt columns carried into a score table, where the prompts have them (the variation families'
# family and condition let a sweep's scores be summarised per condition)
ID_COLUMNS = ("prompt_id", "family", "condition", "template", "order", "held_out_template")


def _keep(model, batch, circuit) -> torch.Tensor:
    if tuple(circuit) == FULL:
        return A.full_keep(model, batch)
    return N.head_keep(circuit, model, batch)


def score_circuits(setting: Setting, circuits: dict[str, Sequence[N.Node]], tile: int = 6
                   ) -> pd.DataFrame:
    """Long table, one row per (circuit, prompt): ``circuit, n_nodes, prompt_id, template,
    logit_diff (F(M)), empty_logit_diff (F(∅)), circuit_logit_diff (F(C))``."""
    labels = list(circuits)
    ld = setting.logit_diffs([FULL, [], *circuits.values()], tile=tile)
    base = setting.df[[c for c in ID_COLUMNS if c in setting.df.columns]]
    frames = []
    for i, label in enumerate(labels):
        f = base.copy()
        f.insert(0, "circuit", label)
        f.insert(1, "n_nodes", len(circuits[label]))
        f["logit_diff"] = ld[0].numpy()
        f["empty_logit_diff"] = ld[1].numpy()
        f["circuit_logit_diff"] = ld[2 + i].numpy()
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    out["ablation"] = setting.method
    return out


def summarise(scores: pd.DataFrame, by: Sequence[str] = ("circuit",)) -> pd.DataFrame:
    """Per circuit: n_nodes, F(C)/F(M) and the normalised faithfulness, point estimates."""
    g = scores.groupby(list(by), sort=False)
    out = g.agg(n_nodes=("n_nodes", "first"), f_model=("logit_diff", "mean"),
                f_empty=("empty_logit_diff", "mean"), f_circuit=("circuit_logit_diff", "mean"),
                n_prompts=("logit_diff", "size")).reset_index()
    out["ratio"] = out.f_circuit / out.f_model
    out["normalised"] = normalised_faithfulness(out.f_model, out.f_circuit, out.f_empty)
    return out


def with_intervals(scores: pd.DataFrame, summary: pd.DataFrame, cluster: str = "template",
                   n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Add 95% intervals of the normalised faithfulness that resample whole ``cluster`` groups."""

    lo, hi = [], []
    for label in summary["circuit"]:
        s = scores[scores.circuit == label]
        parts = normalised_parts(s.logit_diff.to_numpy(float), s.circuit_logit_diff.to_numpy(float),
                                 s.empty_logit_diff.to_numpy(float))
        _, a, b = stats.cluster_bootstrap_ci(parts,
                                             s[cluster].astype(str).to_numpy(), "ratio_of_means",
                                             n_resamples=n_resamples, seed=seed)
        lo.append(a)
        hi.append(b)
    return summary.assign(normalised_lo=lo, normalised_hi=hi)


def area_summaries(fractions: Sequence[float], faithfulness: Sequence[float]) -> dict[str, float]:
    """MIB's CPR (area under the curve) and CMD (area under |1 − curve|), trapezoids on a linear
    fraction axis."""
    x, y = np.asarray(fractions, float), np.asarray(faithfulness, float)
    if len(x) != len(y) or len(x) < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("area summaries need >= 2 points with strictly increasing fractions.")
    cpr = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
    d = np.abs(1 - y)
    cmd = float(np.sum(np.diff(x) * (d[1:] + d[:-1]) / 2))
    return {"CPR": cpr, "CMD": cmd}


def random_circuit(n_layers: int, n_heads: int, k: int, seed: int) -> list[N.Node]:
    """``k`` head nodes drawn uniformly without replacement (a size-matched random baseline)."""
    every = N.head_nodes(n_layers, n_heads)
    return sorted(random.Random(seed).sample(every, k))


def smallest_in_band(setting: Setting, ranking: Sequence[N.Node], grid: Sequence[int],
                     normalised: Sequence[float], band: tuple[float, float] = TARGET_BAND,
                     max_steps: int = 7) -> tuple[int | None, list[tuple[int, float]]]:
    """The smallest top-``k`` circuit of ``ranking`` whose normalised faithfulness is in ``band``.

    The first grid size in the band is refined by bisection between it and the grid size before
    it. The curve need not be monotone, so this is the smallest size *found* (on the grid and the
    bisection points), not a proven minimum. Returns (k or None, the extra (k, value) points).
    """
    inside = [i for i, v in enumerate(normalised) if band[0] <= v <= band[1]]
    if not inside:
        return None, []
    i = inside[0]
    lo, hi = (grid[i - 1] if i > 0 else 0), grid[i]
    extra: list[tuple[int, float]] = []
    m, e = (float(x.mean()) for x in setting.logit_diffs([FULL, []]))
    for _ in range(max_steps):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        c = float(setting.logit_diffs([list(ranking[:mid])])[0].mean())
        value = normalised_faithfulness(m, c, e)
        extra.append((mid, value))
        if band[0] <= value <= band[1]:
            hi = mid
        else:
            lo = mid
    return hi, extra


__all__ = ["MIB_FRACTIONS", "TARGET_BAND", "counts_for", "Setting", "FULL", "score_circuits",
           "summarise", "with_intervals", "area_summaries", "random_circuit", "smallest_in_band"]
