"""The three discovery methods behind one signature, for :mod:`circuitgen.faithful`.

Each takes a model and a discovery prompt set (with ABC prompts) and returns a node score table
(:func:`circuitgen.nodes.score_frame` columns) with a ``rank`` column: 1 for the node the method
puts first, ``<NA>`` for nodes it did not rank. How each method ranks:

- ``eap_ig``: |EAP-IG attribution| (head and MLP nodes scored; head nodes ranked);
- ``pruning``: the nodes exact pruning kept, by |effect when tested|, then the removed ones by
  the same score (see :mod:`circuitgen.pruning` on what that order means);
- ``path_patching``: :func:`circuitgen.discovery.node_table`'s rule (by step, then |effect|); it
  scores only the heads it path-patches, so the rest stay unranked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitgen import discovery, eap
from circuitgen import nodes as N
from circuitgen import pruning as P


def _rank_by(table: pd.DataFrame, keys: list[str], ascending: list[bool], mask: pd.Series) -> pd.DataFrame:
    t = table.copy()
    t["rank"] = pd.array([pd.NA] * len(t), dtype="Int64")
    order = t[mask].sort_values(keys + ["node"], ascending=ascending + [True], kind="mergesort")
    t.loc[order.index, "rank"] = np.arange(1, len(order) + 1)
    return t


def eap_ig(model, df: pd.DataFrame, *, steps: int) -> pd.DataFrame:

    t = eap.eap_ig_nodes(model, df, steps=steps, progress=False)
    t = t.assign(abs_score=t["score"].abs())
    out = _rank_by(t, ["abs_score"], [False], t["kind"] == "head")
    return out.drop(columns="abs_score")


def pruning(model, df: pd.DataFrame, *, threshold: float, n_prompts: int,
            stage: str = "nodes") -> pd.DataFrame:

    result = P.prune(model, df.head(n_prompts), threshold=threshold, stage=stage, progress=False)
    t = result.table.assign(kept=lambda x: ~x["removed"], abs_score=lambda x: x["score"].abs())
    out = _rank_by(t, ["kept", "abs_score"], [False, False], t["order"].notna())
    out = out.drop(columns="abs_score")
    out.attrs.clear()
    return out.assign(tau=result.tau, full_metric=result.full_metric,
                      final_metric=result.final_metric, n_kept=len(result.kept))


def path_patching(model, df: pd.DataFrame, *, threshold: float, n_exact_prompts: int,
                  n_candidates: int = 24) -> pd.DataFrame:
    """Every exactly path-patched (sender, receiver position) as a node scored by its effect
    (for the backup step, the growth of the direct effect), the largest |effect| if a node was
    patched in several steps. Ranked: the circuit's own nodes first, in
    :func:`circuitgen.discovery.node_table`'s order, then every other patched node by |score|."""

    found = discovery.discover(model, df, threshold=threshold, n_exact_prompts=n_exact_prompts,
                               n_candidates=n_candidates, progress=False,
                               found_by="notebooks/w13-faithful-circuits")
    best: dict[str, tuple[float, str]] = {}
    for step in found.steps:
        pos = step.position or "END"
        for (layer, head), eff in zip(step.senders, step.criterion.tolist()):
            if (layer, head) in step.receivers:  # the backup step ablates its receivers
                continue
            label = N.Node(layer, head, pos).label
            if label not in best or abs(eff) > abs(best[label][0]):
                best[label] = (eff, step.name)
    circuit = found.nodes.dropna(subset=["rank"]).set_index("node")
    t = found.nodes.drop(columns=["rank"]).copy()
    # a circuit node keeps the effect that selected it; any other patched node its largest one
    t["score"] = [circuit["score"][n] if n in circuit.index else best.get(n, (0.0, ""))[0]
                  for n in t["node"]]
    t["patched_in"] = [best.get(n, (0.0, ""))[1] for n in t["node"]]
    t["in_circuit"] = t["node"].isin(circuit.index)
    t["circuit_rank"] = t["node"].map(circuit["rank"]).astype("Int64")
    t["abs_score"] = t["score"].abs()
    scored = t["node"].isin(list(best)) | t["in_circuit"]
    out = _rank_by(t.assign(not_in=~t["in_circuit"], cr=t["circuit_rank"].fillna(10**6)),
                   ["not_in", "cr", "abs_score"], [True, True, False], scored)
    return out.drop(columns=["abs_score", "not_in", "cr"])


__all__ = ["eap_ig", "pruning", "path_patching"]
