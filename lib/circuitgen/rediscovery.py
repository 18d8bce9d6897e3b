"""Re-discovery per condition (issue 11, week 14): is the circuit found on a condition's own
prompts the canonical one?

Scoring the canonical circuit on a condition asks whether it still does the work; re-discovering
asks whether the model uses the same circuit there (Nainani et al. 2024 found GPT-2 reusing the
IOI heads in other roles on DoubleIO/TripleIO). The procedure is fixed in the lab notebook
("weeks 14-15 plan" and its addendum of 2026-11-26, night):

- EAP-IG (5 steps) on :data:`N_PROMPTS` fresh prompts per condition (seed :data:`SEED`), and on
  the first :data:`N_PROMPTS` prompts of each of week 13's three disjoint discovery sets, the
  *null*: how different two circuits found on the same distribution with the same n are.
- Overlap at :data:`RULE_SIZE` head nodes: node Jaccard, head Jaccard (roles ignored) and
  :func:`weighted_jaccard` over all head-node scores.
- :func:`classify`: *same circuit* when the node Jaccard with the canonical 40-prompt circuit is at
  least the smallest canonical-vs-canonical value; *same heads, other roles* when it is below but
  the head Jaccard reaches the smallest canonical head Jaccard; *different circuit* otherwise.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from circuitgen import discovery_methods, faithful, generalise, splits
from circuitgen import nodes as N
from circuitgen import tables as T
from circuitgen.paths import result_path
from circuitgen.scorer import mean_reference

METHOD = "eap-ig"
N_PROMPTS = 40
SEED = 2  # seeds 0 and 1 are the scoring draws; re-discovery never sees their prompts
RULE_SIZE = 81  # head nodes: the week-13 comparison size (5% of SmolLM2's head nodes)
CLASSES = ("same circuit", "same heads, other roles", "different circuit")
CANONICAL = "canonical-set1"


def canonical_subsets(model, n: int = N_PROMPTS) -> dict[str, pd.DataFrame]:
    """The first ``n`` prompts of each of week 13's three discovery sets (disjoint prompts and
    names), labelled ``canonical-set<i>``."""
    sets = splits.make_splits(model)
    return {f"canonical-set{i}": d.df.head(n).reset_index(drop=True)
            for i, d in enumerate(sets.discovery, start=1)}


def condition_sets(model, family: str, seed: int = SEED, n: int = N_PROMPTS) -> dict[str, pd.DataFrame]:
    """``{condition: prompts}``: ``n`` prompts per condition of ``family`` drawn with ``seed``."""
    df = generalise.family_prompts(model, family, seed, n_per_condition=n)
    return {str(c): g.reset_index(drop=True) for c, g in df.groupby("condition", sort=False)}


def discover_sets(model, prompt_sets: Mapping[str, pd.DataFrame], name: str, *, steps: int = 5,
                  out_dir: str | pathlib.Path | None = None, log=print) -> T.ResultTable:
    """EAP-IG node scores of every labelled prompt set, one long table with a ``set`` column,
    cached as ``<out_dir>/<model>-eap-ig-<name>.csv`` (default ``data/discovery``)."""

    path = result_path("discovery", model.circuitgen.model, METHOD, name, folder=out_dir)
    inputs = {"prompts": dict(prompt_sets), "model": model.circuitgen.model, "method": METHOD,
              "params": {"steps": steps}, "version": faithful.VERSION}

    def compute() -> T.ResultTable:
        t0, parts = time.perf_counter(), []
        for label, df in prompt_sets.items():
            parts.append(discovery_methods.eap_ig(model, df, steps=steps).assign(set=label))
            if log:
                log(f"{name}: {label} ({len(df)} prompts) after {time.perf_counter() - t0:.0f} s")
        return T.ResultTable(pd.concat(parts, ignore_index=True),
                             {"seconds": round(time.perf_counter() - t0, 1)})

    return T.cached(path, inputs, compute, log=log,
                    meta={"method": METHOD, "params": {"steps": steps}, "sets": list(prompt_sets),
                          "n_prompts": {k: len(v) for k, v in prompt_sets.items()}})


def rankings(table: pd.DataFrame) -> dict[str, list[N.Node]]:
    """``{set: head nodes best first}`` of a :func:`discover_sets` table."""
    return {str(s): faithful.ranking(g) for s, g in table.groupby("set", sort=False)}


def head_scores(table: pd.DataFrame) -> pd.Series:
    """|score| of every head node of one set's table, indexed by node label."""
    heads = table[table["kind"] == "head"]
    return heads.set_index("node")["score"].abs()


def weighted_jaccard(a: pd.Series, b: pd.Series) -> float:
    """Σ min / Σ max of two non-negative score vectors, each first divided by its sum (nodes
    missing from one side count as 0): 1 when the attribution is spread over the nodes alike,
    0 when no node carries attribution in both."""
    if (a < 0).any() or (b < 0).any():
        raise ValueError("weighted Jaccard takes magnitudes; pass |score|.")
    if a.sum() <= 0 or b.sum() <= 0:
        raise ValueError("a score vector sums to zero; there is no attribution to compare.")
    a, b = (a / a.sum()).align(b / b.sum(), fill_value=0.0)
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def overlap(rank_a: Sequence[N.Node], rank_b: Sequence[N.Node], k: int) -> dict[str, float]:
    """Node and head Jaccard of the top ``k`` of two rankings."""
    a, b = rank_a[:k], rank_b[:k]
    return {"node_jaccard": N.jaccard(a, b), "head_jaccard": N.jaccard(N.heads_of(a), N.heads_of(b))}


def null_minima(ranks: Mapping[str, Sequence[N.Node]], k: int = RULE_SIZE) -> dict[str, float]:
    """Smallest node and head Jaccard over every pair of canonical rankings (at least two)."""
    if len(ranks) < 2:
        raise ValueError("the null needs at least two canonical rankings.")
    pairs = [overlap(ranks[a], ranks[b], k) for a, b in combinations(sorted(ranks), 2)]
    return {key: min(p[key] for p in pairs) for key in ("node_jaccard", "head_jaccard")}


def classify(node_jaccard: float, head_jaccard: float, null: Mapping[str, float]) -> str:
    """The pre-registered class of a condition's circuit (module docstring)."""
    if node_jaccard >= null["node_jaccard"]:
        return CLASSES[0]
    if head_jaccard >= null["head_jaccard"]:
        return CLASSES[1]
    return CLASSES[2]


def entered_left(canonical: Sequence[N.Node], other: Sequence[N.Node], k: int
                 ) -> tuple[list[N.Node], list[N.Node]]:
    """Nodes in ``other``'s top ``k`` but not the canonical's (in ``other``'s order), and the
    canonical's top-``k`` nodes ``other`` dropped (in canonical order)."""
    a, b = set(canonical[:k]), set(other[:k])
    return [n for n in other[:k] if n not in a], [n for n in canonical[:k] if n not in b]


def overlap_table(canonical: pd.DataFrame, conditions: pd.DataFrame, *,
                  sizes: Sequence[int] = (RULE_SIZE,), reference: Sequence[N.Node] | None = None,
                  rule_size: int = RULE_SIZE, canonical_set: str = CANONICAL) -> pd.DataFrame:
    """One row per condition (a ``set`` of ``conditions``): Jaccards with the canonical 40-prompt
    circuit at each of ``sizes`` (and with ``reference``, e.g. the 200-prompt ranking, when
    given), weighted Jaccard, the null minima at ``rule_size`` and the :func:`classify` class."""
    canon_ranks = rankings(canonical)
    null = null_minima(canon_ranks, rule_size)
    canon = canon_ranks[canonical_set]
    canon_scores = head_scores(canonical[canonical["set"] == canonical_set])
    rows = []
    for label, g in conditions.groupby("set", sort=False):
        rank = faithful.ranking(g)
        row: dict = {"condition": label, "weighted_jaccard": weighted_jaccard(head_scores(g), canon_scores)}
        for k in sizes:
            row |= {f"{key}_{k}": v for key, v in overlap(canon, rank, k).items()}
            if reference is not None:
                row[f"node_jaccard_{k}_ref"] = overlap(reference, rank, k)["node_jaccard"]
        at_rule = overlap(canon, rank, rule_size)
        row |= {"null_node_jaccard": null["node_jaccard"], "null_head_jaccard": null["head_jaccard"],
                "class": classify(at_rule["node_jaccard"], at_rule["head_jaccard"], null)}
        rows.append(row)
    return pd.DataFrame(rows)


def own_circuit_scores(model, family: str, conditions: pd.DataFrame, reference: Sequence[N.Node], *,
                       sizes: Sequence[int], seed: int = 0, ablations: Sequence[str] = ("mean", "resample"),
                       n_per_condition: int = 20, out_dir: str | pathlib.Path | None = None,
                       log=print) -> T.ResultTable:
    """Each condition's own re-discovered top-k circuits (``own top <k>``) and the canonical ones
    (``canonical top <k>``, from ``reference``) scored on that condition's seed-``seed`` prompts,
    cached as ``data/scores/<model>-<family>-seed<seed>-rediscovered.csv``. The mean-ablation
    reference is made once for the whole family's prompts, so a condition scores exactly as it does
    in :func:`circuitgen.generalise.score_family` (a reference made from one condition alone would
    draw other name substitutions: :func:`circuitgen.reference.build_reference` seeds them by the
    number of groups before, a dependence on what else is scored of about 1e-3 on tiny-gpt2)."""
    prompts = generalise.family_prompts(model, family, seed, n_per_condition)
    own = rankings(conditions)
    circuits = {c: {**{f"own top {k}": own[c][:k] for k in sizes},
                    **{f"canonical top {k}": list(reference[:k]) for k in sizes}} for c in own}
    path = result_path("scores", model.circuitgen.model, family, f"seed{seed}", "rediscovered",
                       folder=out_dir)
    inputs = {"prompts": prompts, "model": model.circuitgen.model, "version": faithful.VERSION,
              "ablations": list(ablations), "reference": "family-wide",
              "circuits": {c: {k: [n.label for n in v] for k, v in cs.items()} for c, cs in circuits.items()}}

    def compute() -> pd.DataFrame:
        missing = sorted(set(own) - set(prompts.condition))
        if missing:
            raise ValueError(f"conditions {missing} were re-discovered but have no seed-{seed} prompts.")

        means = mean_reference(model, prompts) if "mean" in ablations else None
        parts = [faithful.score_under(model, prompts[prompts.condition == c].reset_index(drop=True),
                                      circuits[c], ablations, means=means) for c in own]
        return pd.concat(parts, ignore_index=True)

    return T.cached(path, inputs, compute, log=log, meta={"family": family, "seed": seed,
                                                          "sizes": list(sizes)})


__all__ = ["METHOD", "N_PROMPTS", "SEED", "RULE_SIZE", "CLASSES", "CANONICAL", "canonical_subsets",
           "condition_sets", "discover_sets", "rankings", "head_scores", "weighted_jaccard",
           "overlap", "null_minima", "classify", "entered_left", "overlap_table", "own_circuit_scores"]
