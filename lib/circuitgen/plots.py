"""Figures the chapters share, drawn one way everywhere.

- :func:`head_heatmap`: a layer × head map with one fixed diverging colour map (:data:`DIVERGING`,
  positive red) and limits symmetric about zero, so the colours mean the same in every chapter;
- :func:`null_histogram`: a circuit's normalised faithfulness against random circuits of its shape;
- :func:`size_curve`: faithfulness against circuit size, one line per method, with intervals,
  random circuits and single circuits as points, the target band shaded;
- :func:`circuit_graph`: a node-level circuit as a graph: role position across, layer up;
- :func:`coefficient_forest`: a regression's terms in two fits (training and held out) side by
  side, with their intervals, replicating terms starred;
- :func:`interval`: intervals drawn apart from their estimates (which may lie outside them);
- :func:`condition_forest`: an estimate with its interval per condition (rows grouped by family)
  and circuit (one marker each), the target band shaded, values beyond the axis marked at its edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

if TYPE_CHECKING:  # for annotations only: plots is a leaf and imports nothing of the library
    from circuitgen import nodes as N

DIVERGING = "RdBu_r"
ROLE_ORDER = ("IO", "S1", "S1+1", "other", "S2", "END")   # left to right, roughly token order


def symmetric_limit(*arrays, floor: float = 1e-6) -> float:
    """The largest ``|value|`` over ``arrays`` (NaN ignored), at least ``floor``: one colour scale
    for several panels that should be read against each other."""
    finite = [np.abs(a[np.isfinite(a)]) for a in (np.asarray(x, float) for x in arrays)]
    lim = max((float(a.max()) for a in finite if a.size), default=0.0)
    return max(lim, floor)


def head_heatmap(ax, values, *, title: str, label: str, vmax: float | None = None,
                 xlabel: str = "head", ylabel: str = "layer",
                 xticks: Sequence[str] | None = None, colorbar: bool = True):
    """``values`` ``[layer, column]`` (columns: heads, or positions with ``xticks`` naming them) on
    the book's one diverging scale: colour map :data:`DIVERGING` (positive red, negative blue, zero
    white), limits ``±vmax`` (default: the largest ``|value|``), layer 0 at the bottom. The colour
    bar carries ``label`` (say the units). Returns the image."""
    v = np.asarray(values, float)
    if v.ndim != 2:
        raise ValueError(f"head_heatmap wants a 2-d [layer, column] array, got shape {v.shape}")
    lim = symmetric_limit(v) if vmax is None else float(vmax)
    if not lim > 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    im = ax.imshow(v, cmap=DIVERGING, vmin=-lim, vmax=lim, aspect="auto", origin="lower",
                   interpolation="nearest")
    if xticks is not None:
        ax.set_xticks(range(len(xticks)), list(xticks), rotation=60, ha="right")
    elif v.shape[1] <= 32:
        ax.set_xticks(range(v.shape[1]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(False)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=label)
    return im


def null_histogram(ax, null: pd.DataFrame, *, title: str, bins: int = 12):
    """A circuit against random circuits of its shape: ``null`` is
    :func:`circuitgen.evaluation.random_circuit_null`'s table (the circuit's row, ``circuit ==
    "spec"``, first), drawn as a histogram of the random circuits' normalised faithfulness with the
    circuit as a red line; the dotted line is 0 (no better than ablating every head)."""
    rand = null[null.circuit != "spec"]
    ax.hist(rand.normalised, bins=bins, color="grey", label=f"{len(rand)} random circuits, same shape")
    ax.axvline(null.normalised.iloc[0], color="C3", lw=2, label="the circuit")
    ax.axvline(0, color="k", lw=1, ls=":")
    ax.set_xlabel("normalised faithfulness (F(C) − F(∅)) / (F(M) − F(∅))")
    ax.set_ylabel("random circuits (count)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def size_curve(ax, curves: pd.DataFrame, *, n_nodes: int, title: str,
               band: tuple[float, float] | None = (0.85, 1.15), points: pd.DataFrame | None = None,
               random: pd.DataFrame | None = None):
    """``curves``: rows with ``family, n_nodes, normalised`` (+ ``normalised_lo/hi``), one line per
    family; ``random``: the same columns, drawn as grey dots; ``points``: single circuits, marked."""
    if band is not None:
        ax.axhspan(*band, color="C2", alpha=0.12, lw=0, label=f"target band {band[0]}–{band[1]}")
    ax.axhline(1.0, color="black", lw=0.6)
    ax.axhline(0.0, color="black", lw=0.6, ls=":")
    for i, (family, g) in enumerate(curves.groupby("family", sort=False)):
        g = g.sort_values("n_nodes")
        x = g.n_nodes / n_nodes
        ax.plot(x, g.normalised, marker="o", ms=3.5, color=f"C{i}", label=family)
        if "normalised_lo" in g:
            ax.fill_between(x, g.normalised_lo, g.normalised_hi, color=f"C{i}", alpha=0.15, lw=0)
    if random is not None and len(random):
        ax.scatter(random.n_nodes / n_nodes, random.normalised, s=10, color="grey",
                   label="random circuits, same size", zorder=3)
    if points is not None:
        for j, (_, r) in enumerate(points.iterrows()):
            ax.scatter(r.n_nodes / n_nodes, r.normalised, marker="*", s=120, color=f"C{6 + j}",
                       edgecolor="black", zorder=4, label=r.family)
    ax.set_xscale("log")
    ax.set_xlabel("circuit size (fraction of all (head, position) nodes, log scale)")
    ax.set_ylabel("normalised faithfulness")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="best")


def circuit_graph(ax, nodes: Sequence[N.Node], n_layers: int, *, title: str,
                  weights: dict[str, float] | None = None, max_labels: int = 12):
    """Head nodes as dots at (role position, layer); several heads at one (role, layer) spread
    sideways. Size shows |weight| when given; the strongest ``max_labels`` are labelled."""
    roles = {r: i for i, r in enumerate(ROLE_ORDER)}
    heads = [n for n in nodes if n.head is not None]
    by_cell: dict[tuple[str, int], list[N.Node]] = {}
    for n in heads:
        by_cell.setdefault((n.role, n.layer), []).append(n)
    w = {n.label: abs((weights or {}).get(n.label, 1.0)) for n in heads}
    top = set(sorted(w, key=w.get, reverse=True)[:max_labels])
    wmax = max(w.values(), default=1.0) or 1.0
    for (role, layer), cell in by_cell.items():
        cell = sorted(cell, key=lambda n: n.head)
        offsets = np.linspace(-0.3, 0.3, len(cell)) if len(cell) > 1 else [0.0]
        for off, n in zip(offsets, cell):
            x = roles[role] + off
            ax.scatter(x, layer, s=15 + 120 * w[n.label] / wmax, color="C3", alpha=0.8, zorder=3)
            if n.label in top:
                ax.annotate(f"{n.layer}.{n.head}", (x, layer), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")
    ax.set_xticks(range(len(ROLE_ORDER)), ROLE_ORDER)
    ax.set_xlim(-0.6, len(ROLE_ORDER) - 0.4)
    ax.set_ylim(-0.5, n_layers - 0.5)
    ax.set_xlabel("role position")
    ax.set_ylabel("layer")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)


def interval(ax, lo, hi, y, *, color, lw: float = 1.0, capsize: float = 3.0):
    """Horizontal intervals from ``lo`` to ``hi`` at heights ``y``, with caps. Drawn apart from
    the point estimate: a ratio of means (or a bootstrap with few clusters) can put the estimate
    outside its percentile interval, which errorbar's +/- lengths cannot show. A row without a
    finite interval (a separated logit term has none) is drawn without one."""
    lo, hi, y = np.asarray(lo, float), np.asarray(hi, float), np.broadcast_to(np.asarray(y, float),
                                                                             np.shape(lo))
    ok = np.isfinite(lo) & np.isfinite(hi)
    return ax.errorbar((lo[ok] + hi[ok]) / 2, y[ok], xerr=(hi[ok] - lo[ok]) / 2, fmt="none",
                       ecolor=color, lw=lw, capsize=capsize)


def coefficient_forest(ax, table: pd.DataFrame, *, title: str, xlabel: str, null: float = 0.0,
                       sets: Sequence[tuple[str, str]] = (("train", "training"), ("heldout", "held out")),
                       label=None):
    """Each term's estimate with its 95% interval in two fits side by side (``estimate_<set>``,
    ``lo_<set>``, ``hi_<set>`` per set in ``sets``), sorted by the first set's estimate; a
    term whose ``verdict`` is ``replicates`` is starred. ``label`` maps a term to its tick text."""
    tab = table.dropna(subset=[f"estimate_{sets[0][0]}"]).sort_values(f"estimate_{sets[0][0]}")
    y = np.arange(len(tab))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ((key, name), dy) in enumerate(zip(sets, np.linspace(-0.15, 0.15, len(sets)))):
        interval(ax, tab[f"lo_{key}"], tab[f"hi_{key}"], y + dy, color=colours[i])
        ax.plot(tab[f"estimate_{key}"], y + dy, "o", ms=4, color=colours[i], label=name, ls="none")
    ax.axvline(null, color="0.4", lw=0.8)
    names = [label(t) if label else t for t in tab.index]
    if "verdict" in tab.columns:
        names = [f"{n} *" if v == "replicates" else n for n, v in zip(names, tab.verdict)]
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def condition_forest(ax, table: pd.DataFrame, circuits: Sequence[str], *, title: str,
                     xlabel: str = "normalised faithfulness", band: tuple[float, float] | None = (0.85, 1.15),
                     xlim: tuple[float, float] = (-0.5, 2.5), labels: bool = True):
    """``table``: rows with ``family, condition, circuit, estimate, lo, hi`` (and ``reference``,
    the family's reference condition, shown in bold). One row per (family, condition) in order
    of appearance; circuits side by side within a row. Intervals are clipped to ``xlim``; an
    estimate beyond it is drawn at the edge as a triangle pointing outwards."""
    rows = list(dict.fromkeys(zip(table.family, table.condition)))
    y = {r: len(rows) - 1 - i for i, r in enumerate(rows)}
    if band is not None:
        ax.axvspan(*band, color="0.9", zorder=0)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.axvline(1, color="0.6", lw=0.8, ls=":")
    step = 0.8 / max(1, len(circuits))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, c in enumerate(circuits):
        t = table[table.circuit == c]
        ys = np.array([y[(f, k)] for f, k in zip(t.family, t.condition)]) + 0.4 - step * (j + 0.5)
        est = t.estimate.to_numpy(float)
        lo, hi = np.clip(t.lo.to_numpy(float), *xlim), np.clip(t.hi.to_numpy(float), *xlim)
        inside = (est >= xlim[0]) & (est <= xlim[1])
        pe = np.clip(est, *xlim)
        col = colours[j % len(colours)]
        interval(ax, lo[inside], hi[inside], ys[inside], color=col, lw=1)
        ax.plot(pe[inside], ys[inside], "o", ms=3.5, color=col, label=c, ls="none")
        for side, marker in ((est < xlim[0], "<"), (est > xlim[1], ">")):
            ax.plot(pe[side], ys[side], marker, ms=5, color=col, ls="none")
    ax.set_xlim(*xlim)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks([y[r] for r in rows])
    ref = set()
    if "reference" in table.columns:
        ref = set(zip(table.family[table.reference], table.condition[table.reference]))
    ax.set_yticklabels([f"{f}: {k}" for f, k in rows] if labels else [])
    for tick, r in zip(ax.get_yticklabels(), rows):
        if r in ref:
            tick.set_fontweight("bold")
    families = [f for f, _ in rows]
    for i in range(1, len(rows)):
        if families[i] != families[i - 1]:
            ax.axhline(y[rows[i]] + 0.5, color="0.4", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return ax


__all__ = ["DIVERGING", "ROLE_ORDER", "symmetric_limit", "head_heatmap", "null_histogram", "size_curve",
           "circuit_graph", "condition_forest", "coefficient_forest", "interval"]
