"""The order in which each discovery method ranks its nodes (issue 25), checked against the
method's documented rule by sorting its own score table here, and
:func:`circuitgen.faithful.ranking` on hand-made tables.

Rules (``circuitgen.discovery_methods``): EAP-IG ranks every head node by |score|, largest
first, MLP nodes unranked; pruning ranks the candidate nodes, the kept ones first, each part by
|effect when tested| largest first; path patching ranks the circuit's own nodes first in the
circuit's order, then every other patched node by |score|, and leaves unpatched nodes unranked.
Ties are broken by the node label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import discovery_methods as DM
from circuitgen import faithful, ioi
from circuitgen import nodes as N


@pytest.fixture(scope="module")
def prompts(tiny_llama):
    return ioi.generate_prompts(tiny_llama, n=8, seed=11).df


def _expected(rows: pd.DataFrame, keys: list[tuple[pd.Series, bool]]) -> list[str]:
    """Labels of ``rows`` sorted by ``keys`` ((values, descending)) then by label, by hand."""
    recs = list(zip(*[v.loc[rows.index].tolist() for v, _ in keys], rows["node"].tolist()))
    # by label first, then one stable sort per key, the last key first
    recs = sorted(recs, key=lambda r: r[-1])
    for i in reversed(range(len(keys))):
        recs.sort(key=lambda r, i=i: r[i], reverse=keys[i][1])
    return [r[-1] for r in recs]


def _ranked(table: pd.DataFrame) -> list[str]:
    r = table[table["rank"].notna()].sort_values("rank")
    assert r["rank"].tolist() == list(range(1, len(r) + 1)), "ranks are 1..n without gaps"
    return r["node"].tolist()


def test_eap_ig_ranks_heads_by_absolute_score(tiny_llama, prompts):
    t = DM.eap_ig(tiny_llama, prompts, steps=2)
    heads = t[t["kind"] == "head"]
    assert t.loc[t["kind"] == "mlp", "rank"].isna().all()
    assert (heads.score < 0).any() and (heads.score > 0).any(), "signs must differ for the test"
    want = _expected(heads, [(heads["score"].abs(), True)])
    assert _ranked(t) == want
    assert [n.label for n in faithful.ranking(t)] == want
    # by |score|, not by signed score: the most negative head is not last
    assert want != _expected(heads, [(heads["score"], True)])


def test_pruning_ranks_kept_nodes_first_then_by_effect_size(tiny_llama, prompts):
    t = DM.pruning(tiny_llama, prompts, threshold=0.2, n_prompts=8, stage="nodes")  # keeps 3
    cands = t[t["order"].notna()]
    assert cands["removed"].any() and not cands["removed"].all()
    want = _expected(cands, [(~cands["removed"], True), (cands["score"].abs(), True)])
    assert _ranked(t) == want
    assert [n.label for n in faithful.ranking(t)] == want
    # kept is what the rule kept: |effect| > τ
    tau = float(t["tau"].iloc[0])
    assert ((cands["score"] > tau) == ~cands["removed"]).all()


def test_path_patching_ranks_its_circuit_first(tiny_llama, prompts):
    t = DM.path_patching(tiny_llama, prompts, threshold=0.05, n_exact_prompts=6, n_candidates=4)
    heads = t[t["kind"] == "head"]
    ranked = heads[heads["rank"].notna()]
    inside = ranked[ranked["in_circuit"]]
    outside = ranked[~ranked["in_circuit"]]
    assert len(inside) and len(outside), "the test needs circuit nodes and other patched nodes"
    want = (_expected(inside, [(inside["circuit_rank"], False)])
            + _expected(outside, [(outside["score"].abs(), True)]))
    assert _ranked(t) == want
    # unranked: exactly the head nodes never patched (no step scored them)
    never = heads[(heads["patched_in"].fillna("") == "") & ~heads["in_circuit"]]
    assert set(heads.loc[heads["rank"].isna(), "node"]) == set(never["node"])
    assert [n.label for n in faithful.ranking(t)][: len(want)] == want


def _table(ranks: dict[str, float], scores: dict[str, float] | None = None) -> pd.DataFrame:
    labels = [n.label for n in N.head_nodes(2, 2)]
    return pd.DataFrame({"node": labels, "kind": "head",
                         "score": [(scores or {}).get(x, 0.0) for x in labels],
                         "rank": [ranks.get(x, np.nan) for x in labels]})


def test_ranking_reads_the_rank_column_then_shuffles_the_rest():
    ranks = {"1.1@END": 1, "0.0@IO": 2, "1.0@S2": 3}
    # scores disagree with the ranks on purpose: the method's rank decides, not |score|
    t = _table(ranks, {"1.1@END": 0.1, "0.0@IO": -5.0, "1.0@S2": 2.0, "0.1@END": 9.0})
    got = [n.label for n in faithful.ranking(t, seed=3)]
    assert got[:3] == ["1.1@END", "0.0@IO", "1.0@S2"]
    rest = got[3:]
    assert sorted(rest) == sorted(set(t.node) - set(ranks)) and len(got) == len(t)
    assert [n.label for n in faithful.ranking(t, seed=3)] == got  # seeded
    assert any([n.label for n in faithful.ranking(t, seed=s)][3:] != rest for s in range(4, 10))
    # a rank column's order, not the table's row order
    assert [n.label for n in faithful.ranking(t.iloc[::-1], seed=3)][:3] == got[:3]
    # no ranks at all: by |score|, ties by label
    none = t.assign(rank=np.nan)
    want = ["0.1@END", "0.0@IO", "1.0@S2", "1.1@END"]
    assert [n.label for n in faithful.ranking(none)][:4] == want
