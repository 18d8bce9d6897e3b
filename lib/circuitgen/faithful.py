"""Week 13's pipeline: discover circuits three ways on three discovery sets, score them against
size on held-out prompts, and measure how stable discovery is.

Every expensive step writes a :class:`circuitgen.tables.ResultTable` whose sidecar carries the
fingerprint of its inputs (the prompts, the model, the method and its parameters, this module's
:data:`VERSION`); :func:`circuitgen.tables.cached` reuses a file only while that fingerprint
matches, so the notebook re-runs in minutes from the committed files, and anything stale is
recomputed. ``scripts/week13.py`` runs the same steps outside the notebook.

Methods (each returns a node score table, :mod:`circuitgen.nodes`; a circuit of size k is the
top-k head nodes of its ranking):

- ``eap-ig``: EAP-IG node attributions (:mod:`circuitgen.eap`), ranked by |score|;
- ``pruning``: exact ACDC-style pruning (:mod:`circuitgen.pruning`), ranked by the size of each
  node's effect when it was tested (kept nodes first);
- ``path-patching``: Wang et al.'s path patching (:mod:`circuitgen.discovery`), ranked as that
  module documents.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from circuitgen import curves as C
from circuitgen import discovery_methods
from circuitgen import nodes as N
from circuitgen import tables as T
from circuitgen.paths import result_path

VERSION = "faithful-1"
METHODS = ("eap-ig", "pruning", "path-patching")
# bumped when a method's adapter in discovery_methods changes what it writes (2: path patching's
# backup step no longer scores the heads it ablates)
ADAPTER_VERSIONS = {"path-patching": 2}


@dataclass(frozen=True)
class MethodConfig:
    """Parameters of a discovery method, fixed before any result was seen (LAB_NOTEBOOK,
    2026-11-26, week 13 plan)."""

    eap_steps: int = 5
    prune_threshold: float = 0.01          # of the full model's mean logit difference
    prune_prompts: int = 40                # pruning runs on the first 40 prompts of a set
    prune_stage: str = "heads-then-roles"  # node-level ACDC would take ~24 min a set here
    pp_threshold: float = 0.05
    pp_exact_prompts: int = 30             # exact path patching on 30 of the 200 prompts
    pp_candidates: int = 16                # senders path-patched exactly per step

    def for_method(self, method: str) -> dict:
        return {"eap-ig": {"steps": self.eap_steps},
                "pruning": {"threshold": self.prune_threshold, "n_prompts": self.prune_prompts,
                            "stage": self.prune_stage},
                "path-patching": {"threshold": self.pp_threshold,
                                  "n_exact_prompts": self.pp_exact_prompts,
                                  "n_candidates": self.pp_candidates}}[method]


def _runner(method: str) -> Callable:
    if method not in METHODS:
        raise ValueError(f"unknown discovery method {method!r}; use one of {METHODS}")
    return getattr(discovery_methods, method.replace("-", "_"))


def discover(model, prompts: pd.DataFrame, method: str, set_label: str, *,
             config: MethodConfig = MethodConfig(), out_dir: pathlib.Path | None = None,
             log=print) -> T.ResultTable:
    """The node score table of ``method`` on ``prompts`` (cached under ``out_dir``)."""
    params = config.for_method(method)
    path = result_path("discovery", model.circuitgen.model, method, set_label, folder=out_dir)
    inputs = {"prompts": prompts, "model": model.circuitgen.model, "method": method,
              "params": params, "version": VERSION}
    if method in ADAPTER_VERSIONS:
        inputs["adapter"] = ADAPTER_VERSIONS[method]

    def compute():
        t0 = time.perf_counter()
        table = _runner(method)(model, prompts, **params)
        table = table.assign(method=method, discovery_set=set_label)
        return T.ResultTable(table, {"seconds": round(time.perf_counter() - t0, 1)})

    return T.cached(path, inputs, compute,
                    meta={"method": method, "params": params, "discovery_set": set_label,
                          "n_prompts": len(prompts), "model": model.circuitgen.model}, log=log)


def ranking(table: pd.DataFrame, seed: int = 0) -> list[N.Node]:
    """All head nodes, best first: the method's ranked nodes by ``rank`` (by |score| when the
    table has no ranks), then the nodes it left unranked in a seeded random order, so that a
    method that scores only some nodes still has circuits of every size (the part of its curve
    beyond :func:`n_ranked` nodes is partly random; the chapter marks where it starts)."""
    import random

    heads = table[table["kind"] == "head"]
    if "rank" not in heads.columns or heads["rank"].isna().all():
        return N.top_nodes(heads, len(heads))
    ranked = heads.dropna(subset=["rank"]).sort_values(["rank", "node"], kind="mergesort")
    rest = sorted(heads.loc[heads["rank"].isna(), "node"])
    random.Random(seed).shuffle(rest)
    return [N.parse_node(x) for x in [*ranked["node"], *rest]]


def n_ranked(table: pd.DataFrame) -> int:
    """How many head nodes the method itself ranked."""
    heads = table[table["kind"] == "head"]
    if "rank" not in heads.columns or heads["rank"].isna().all():
        return len(heads)
    return int(heads["rank"].notna().sum())


def curve_circuits(rankings: dict[str, Sequence[N.Node]], counts: Sequence[int], n_layers: int,
                   n_heads: int, n_random: int = 2, extra: dict[str, Sequence[N.Node]] | None = None
                   ) -> dict[str, list[N.Node]]:
    """Every circuit of a size curve, labelled ``method|k`` (``random<i>|k`` for the baselines)."""
    circuits: dict[str, list[N.Node]] = {}
    for method, rank in rankings.items():
        for k in counts:
            circuits[f"{method}|{k}"] = list(rank[:k])
    for i in range(n_random):
        for k in counts:
            circuits[f"random{i}|{k}"] = C.random_circuit(n_layers, n_heads, k, seed=1000 * i + k)
    for label, nodes in (extra or {}).items():
        circuits[f"{label}|{len(nodes)}"] = list(nodes)
    return circuits


def split_label(table: pd.DataFrame) -> pd.DataFrame:
    """``circuit`` labels ``method|k`` -> columns ``family`` and ``k``."""
    parts = table["circuit"].str.rsplit("|", n=1, expand=True)
    return table.assign(family=parts[0], k=parts[1].astype(int))


def stability(rankings: dict[tuple[str, str], Sequence[N.Node]], sizes: Sequence[int]) -> pd.DataFrame:
    """Jaccard overlap of equal-size circuits between discovery sets, per method and size."""
    rows = []
    by_method: dict[str, dict[str, Sequence[N.Node]]] = {}
    for (method, set_label), rank in rankings.items():
        by_method.setdefault(method, {})[set_label] = rank
    for method, sets in by_method.items():
        labels = sorted(sets)
        for k in sizes:
            for i, a in enumerate(labels):
                for b in labels[i + 1:]:
                    rows.append({"method": method, "k": k, "pair": f"{a}-{b}",
                                 "jaccard": N.jaccard(sets[a][:k], sets[b][:k]),
                                 "head_jaccard": N.jaccard(N.heads_of(sets[a][:k]),
                                                           N.heads_of(sets[b][:k]))})
    return pd.DataFrame(rows)


def selection_frequency(rankings: dict[tuple[str, str], Sequence[N.Node]], k: int) -> pd.DataFrame:
    """How many of the discovery sets put each head node in their top k, per method."""
    rows = []
    for (method, set_label), rank in rankings.items():
        for n in rank[:k]:
            rows.append({"method": method, "set": set_label, "node": n.label, "head": f"{n.layer}.{n.head}"})
    df = pd.DataFrame(rows)
    return (df.groupby(["method", "node"]).size().rename("n_sets").reset_index()
            .sort_values(["method", "n_sets", "node"], ascending=[True, False, True]))


def size_curves(model, prompts: pd.DataFrame, rankings: dict[str, Sequence[N.Node]], *,
                ablations: Sequence[str] = ("mean", "resample"), fractions=C.MIB_FRACTIONS,
                n_random: int = 2, extra: dict[str, Sequence[N.Node]] | None = None,
                out_dir: pathlib.Path | None = None, log=print) -> T.ResultTable:
    """Per-prompt scores of every curve circuit under each ablation (cached): the long table of
    :func:`circuitgen.curves.score_circuits` with ``family`` and ``k``."""
    cfg = model.cfg
    n_nodes = cfg.n_layers * cfg.n_heads * len(N.NODE_ROLES)
    counts = C.counts_for(n_nodes, fractions)
    circuits = curve_circuits(rankings, counts, cfg.n_layers, cfg.n_heads, n_random, extra)
    path = result_path("discovery", model.circuitgen.model, "size-curves", folder=out_dir)
    inputs = {"prompts": prompts, "model": model.circuitgen.model, "version": VERSION,
              "ablations": list(ablations),
              "circuits": {k: [n.label for n in v] for k, v in circuits.items()}}

    def compute():
        t0 = time.perf_counter()
        return T.ResultTable(split_label(score_under(model, prompts, circuits, ablations)),
                             {"seconds": round(time.perf_counter() - t0, 1)})

    return T.cached(path, inputs, compute, meta={"n_nodes": n_nodes, "fractions": list(fractions),
                                                 "counts": counts}, log=log)


def smallest(model, prompts: pd.DataFrame, rankings: dict[str, Sequence[N.Node]],
             curve: pd.DataFrame, *, band=C.TARGET_BAND, out_dir: pathlib.Path | None = None,
             log=print) -> T.ResultTable:
    """Per method, the smallest top-k circuit found in ``band`` under mean ablation (cached):
    ``method, k`` (missing when no size on the curve reaches the band) and the bisection points."""
    path = result_path("discovery", model.circuitgen.model, "smallest", folder=out_dir)
    inputs = {"prompts": prompts, "model": model.circuitgen.model, "version": VERSION,
              "band": list(band), "rankings": {m: [n.label for n in r] for m, r in rankings.items()},
              "curve": curve}

    def compute():
        mean = C.Setting(model, prompts, method="mean")
        rows = []
        for method, rank in rankings.items():
            pts = C.summarise(curve[(curve.family == method) & (curve.ablation == "mean")])
            pts = pts.sort_values("n_nodes")
            k, extra = C.smallest_in_band(mean, rank, pts.n_nodes.tolist(), pts.normalised.tolist(), band)
            rows.append({"method": method, "k": k,
                         "bisection": ";".join(f"{a}:{b:.4f}" for a, b in extra)})
        return pd.DataFrame(rows).astype({"k": "Int64"})

    return T.cached(path, inputs, compute, meta={"band": list(band)}, log=log)


def circuit_scores(model, prompts: pd.DataFrame, circuits: dict[str, Sequence[N.Node]], name: str, *,
                   ablations: Sequence[str] = ("mean", "resample"),
                   out_dir: pathlib.Path | None = None, log=print) -> T.ResultTable:
    """Per-prompt scores of named node circuits under each ablation (cached as ``name``)."""
    path = result_path("discovery", model.circuitgen.model, name, folder=out_dir)
    inputs = {"prompts": prompts, "model": model.circuitgen.model, "version": VERSION,
              "ablations": list(ablations),
              "circuits": {k: [n.label for n in v] for k, v in circuits.items()}}

    return T.cached(path, inputs, lambda: score_under(model, prompts, circuits, ablations), log=log)


def score_under(model, prompts: pd.DataFrame, circuits: dict[str, Sequence[N.Node]],
                ablations: Sequence[str], means=None) -> pd.DataFrame:
    """Per-prompt scores of every circuit under each ablation, one long table. ``means``: a
    mean-ablation reference made for a larger prompt set these prompts belong to (so a subset
    scores as it does inside the whole set); by default the prompts' own."""
    frames = [C.score_circuits(C.Setting(model, prompts, method=a, means=means if a == "mean" else None),
                               dict(circuits)) for a in ablations]
    return pd.concat(frames, ignore_index=True)


__all__ = ["VERSION", "METHODS", "MethodConfig", "discover", "ranking", "curve_circuits",
           "n_ranked", "split_label", "stability", "selection_frequency", "size_curves", "smallest",
           "circuit_scores", "score_under"]
