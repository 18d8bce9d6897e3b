"""Week 13's pipeline (circuitgen.faithful, discovery_methods) end to end on a tiny model."""

from __future__ import annotations

import pandas as pd
import pytest

from circuitgen import faithful, ioi
from circuitgen import nodes as N

SMALL = faithful.MethodConfig(eap_steps=2, prune_threshold=0.05, prune_prompts=6,
                              pp_threshold=0.05, pp_exact_prompts=6, pp_candidates=4)


@pytest.fixture(scope="module")
def sets(tiny_llama):
    return tuple(ioi.generate_prompts(tiny_llama, n=8, seed=s).df for s in (11, 12))


@pytest.mark.parametrize("method", faithful.METHODS)
def test_each_method_gives_a_complete_ranking_and_is_cached(tiny_llama, sets, tmp_path, method):
    disc, _ = sets
    logs = []
    run = faithful.discover(tiny_llama, disc, method, "set1", config=SMALL, out_dir=tmp_path, log=logs.append)
    cfg = tiny_llama.cfg
    heads = run.df[run.df.kind == "head"]
    assert len(heads) == cfg.n_layers * cfg.n_heads * len(N.NODE_ROLES)
    assert heads["rank"].dropna().is_unique and faithful.n_ranked(run.df) >= 1
    rank = faithful.ranking(run.df)
    assert len(rank) == len(heads) and len(set(rank)) == len(rank)
    first = heads.sort_values("rank").node.iloc[0]
    assert rank[0].label == first
    again = faithful.discover(tiny_llama, disc, method, "set1", config=SMALL, out_dir=tmp_path,
                              log=logs.append)
    assert any("reusing" in line for line in logs)
    pd.testing.assert_frame_equal(again.df, run.df)


def test_curves_and_smallest(tiny_llama, sets, tmp_path):
    disc, ev = sets
    rank = {m: faithful.ranking(faithful.discover(tiny_llama, disc, m, "set1", config=SMALL,
                                                  out_dir=tmp_path, log=None).df)
            for m in ("eap-ig", "pruning")}
    curve = faithful.size_curves(tiny_llama, ev, rank, ablations=("mean",), fractions=(0.1, 0.5, 1.0),
                                 n_random=1, out_dir=tmp_path, log=None).df
    full = curve[(curve.k == len(rank["eap-ig"])) & (curve.family == "eap-ig")]
    assert (full.circuit_logit_diff - full.logit_diff).abs().max() < 1e-4   # all nodes = the model
    found = faithful.smallest(tiny_llama, ev, rank, curve, out_dir=tmp_path, log=None).df
    assert set(found.method) == set(rank)
    assert found.k.dropna().le(len(rank["eap-ig"])).all()


def _labels(*xs):
    return [N.parse_node(x) for x in xs]


def test_stability_and_selection_frequency_by_hand():
    """Overlaps of hand-made rankings that share some nodes, some heads in other roles, and
    some nothing (identical rankings would give 1 under any overlap measure)."""
    a = _labels("1.0@END", "1.1@END", "0.2@S2", "0.3@S2")
    b = _labels("1.0@END", "1.1@S2", "0.2@S2", "0.0@IO")
    c = _labels("0.0@IO", "0.1@IO", "1.0@END", "1.1@END")
    stab = faithful.stability({("m", "a"): a, ("m", "b"): b, ("m", "c"): c,
                               ("n", "a"): a, ("n", "b"): a}, [3])
    got = stab.set_index(["method", "pair"])
    # top 3. a-b: nodes {1.0@END, 0.2@S2} of 4 -> 1/2; heads {1.0, 1.1, 0.2} on both -> 1.
    # a-c and b-c: only 1.0@END in common, of 5 nodes and of 5 heads -> 1/5 each.
    assert got.loc[("m", "a-b"), ["jaccard", "head_jaccard"]].tolist() == pytest.approx([0.5, 1.0])
    assert got.loc[("m", "a-c"), ["jaccard", "head_jaccard"]].tolist() == pytest.approx([0.2, 0.2])
    assert got.loc[("m", "b-c"), ["jaccard", "head_jaccard"]].tolist() == pytest.approx([0.2, 0.2])
    assert got.loc[("n", "a-b"), ["jaccard", "head_jaccard"]].tolist() == [1.0, 1.0]
    assert len(stab) == 4 and set(stab.k) == {3}
    freq = faithful.selection_frequency({("m", "a"): a, ("m", "b"): b, ("m", "c"): c}, 3)
    assert dict(zip(freq.node, freq.n_sets)) == {"1.0@END": 3, "0.2@S2": 2, "1.1@END": 1,
                                                 "1.1@S2": 1, "0.0@IO": 1, "0.1@IO": 1}
    assert freq.n_sets.tolist() == sorted(freq.n_sets, reverse=True)  # most often first
