"""faithful.n_ranked by hand: it fails when the function returns a constant (issue 13; found by
``scripts/constant_subjects.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitgen import faithful
from circuitgen import nodes as N


def test_n_ranked_counts_ranked_heads_only():
    table = pd.DataFrame({"kind": ["head", "head", "head", "mlp", "head"],
                          "rank": [1, np.nan, 2, 3, 4]})
    assert faithful.n_ranked(table) == 3  # the MLP and the unranked head do not count
    assert faithful.n_ranked(table.assign(rank=np.nan)) == 4  # no ranks: every head
    assert faithful.n_ranked(table.drop(columns="rank")) == 4


def _curve(family: str, points: list[tuple[int, float]]) -> pd.DataFrame:
    # One prompt per circuit: F(M) = 2, F(empty) = 0, so normalised = F(C) / 2.
    return pd.DataFrame([{"family": family, "ablation": "mean", "circuit": f"{family}-{k}",
                          "n_nodes": k, "logit_diff": 2.0, "empty_logit_diff": 0.0,
                          "circuit_logit_diff": 2.0 * v} for k, v in points])


def test_smallest_reads_the_first_size_in_the_band_per_method(tiny_llama, tmp_path):
    # Grids of adjacent sizes need no bisection, so k is read off the hand-made curve:
    # "a" is in the band (0.85, 1.15) from k = 1, "b" from k = 3, "c" never.
    from circuitgen import ioi

    prompts = ioi.generate_prompts(tiny_llama, n=4, seed=5).df
    curve = pd.concat([_curve("a", [(1, 0.9), (2, 1.0)]), _curve("b", [(2, 0.3), (3, 1.1)]),
                       _curve("c", [(1, 0.1), (2, 0.2)])], ignore_index=True)
    ranking = N.head_nodes(tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads)
    found = faithful.smallest(tiny_llama, prompts, {m: ranking for m in "abc"}, curve,
                              out_dir=tmp_path, log=None).df.set_index("method")
    assert found.loc["a", "k"] == 1 and found.loc["b", "k"] == 3 and pd.isna(found.loc["c", "k"])
