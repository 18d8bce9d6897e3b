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


def test_curves_smallest_and_stability(tiny_llama, sets, tmp_path):
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
    stab = faithful.stability({("m", "a"): rank["eap-ig"], ("m", "b"): rank["eap-ig"],
                               ("m", "c"): rank["pruning"]}, [5])
    assert stab.set_index("pair").loc["a-b", "jaccard"] == 1.0
    freq = faithful.selection_frequency({("m", "a"): rank["eap-ig"], ("m", "b"): rank["eap-ig"]}, 5)
    assert (freq.n_sets == 2).sum() == 5
