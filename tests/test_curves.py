"""Faithfulness against size (circuitgen.curves) on the tiny models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import curves as C
from circuitgen import ioi
from circuitgen import nodes as N


@pytest.fixture(scope="module")
def prompts(tiny_llama):
    return ioi.generate_prompts(tiny_llama, n=10, seed=3).df


@pytest.mark.parametrize("method", ["mean", "resample"])
def test_all_nodes_is_the_model_and_no_nodes_is_empty(tiny_llama, prompts, method):
    s = C.Setting(tiny_llama, prompts, method=method, batch_size=4)
    every = N.head_nodes(tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads)
    ld = s.logit_diffs([C.FULL, [], every])
    batch = B.encode(tiny_llama, prompts)
    clean = B.logit_diff(tiny_llama(batch.tokens, attention_mask=batch.mask), batch)
    torch.testing.assert_close(ld[0], clean, atol=1e-4, rtol=0)
    torch.testing.assert_close(ld[2], clean, atol=1e-4, rtol=0)
    # BOS is the same on every prompt, so keeping it (nodes) or ablating it (engine's empty) agree
    if method == "mean":
        replace = A.replacement_fn("mean", batch, means=s.means, groups=s.means.keys(prompts))
        empty = A.run_variants(tiny_llama, batch, A.empty_keep(tiny_llama, batch)[None], replace)[0]
        torch.testing.assert_close(ld[1], empty, atol=1e-4, rtol=0)
    assert not torch.allclose(ld[1], ld[0])


def test_chunking_does_not_change_scores(tiny_llama, prompts):
    scores = [torch.randn(2, tiny_llama.cfg.n_heads, 6, generator=torch.Generator().manual_seed(k))
              for k in (1, 2, 3)]
    circuits = [N.top_nodes(N.score_frame(s), 5 * k) for k, s in zip((1, 2, 3), scores)]
    a = C.Setting(tiny_llama, prompts, batch_size=3).logit_diffs(circuits, tile=2)
    b = C.Setting(tiny_llama, prompts, batch_size=10).logit_diffs(circuits, tile=3)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_score_table_and_summary(tiny_llama, prompts):
    s = C.Setting(tiny_llama, prompts, batch_size=5)
    circ = {"one": [N.Node(1, 0, "END")], "rand": C.random_circuit(2, tiny_llama.cfg.n_heads, 7, seed=0)}
    long = C.score_circuits(s, circ)
    assert len(long) == 2 * len(prompts) and set(long.n_nodes) == {1, 7}
    summ = C.with_intervals(long, C.summarise(long), n_resamples=200)
    row = summ.set_index("circuit").loc["rand"]
    sub = long[long.circuit == "rand"]
    expect = (sub.circuit_logit_diff.mean() - sub.empty_logit_diff.mean()) / (
        sub.logit_diff.mean() - sub.empty_logit_diff.mean())
    assert row.normalised == pytest.approx(expect)
    assert row.normalised_lo < row.normalised < row.normalised_hi


def _simulated_long(seed: int, n_templates: int = 12, per: int = 5) -> pd.DataFrame:
    """Scores of one circuit whose normalised faithfulness is 0.6 by construction; prompts of a
    template share an effect, so the interval must resample templates."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_templates), per)
    empty = rng.normal(0, 0.5, t.size)
    model = empty + 3 + rng.normal(0, 1, n_templates)[t] + rng.normal(0, 0.5, t.size)
    circuit = empty + 0.6 * (model - empty) + rng.normal(0, 0.4, n_templates)[t] + rng.normal(0, 0.3, t.size)
    return pd.DataFrame({"circuit": "c", "n_nodes": 3, "template": t, "logit_diff": model,
                         "empty_logit_diff": empty, "circuit_logit_diff": circuit})


def test_normalised_interval_covers_the_planted_value():
    n_sims, cover = 100, 0
    for seed in range(n_sims):
        long = _simulated_long(seed)
        row = C.with_intervals(long, C.summarise(long), n_resamples=300, seed=seed).iloc[0]
        cover += row.normalised_lo <= 0.6 <= row.normalised_hi
    assert 0.85 <= cover / n_sims <= 0.99, cover


def test_area_summaries_match_numpy_trapezoid():
    x = np.array(C.MIB_FRACTIONS)
    y = np.linspace(-0.2, 1.3, len(x)) ** 2
    got = C.area_summaries(x, y)
    assert got["CPR"] == pytest.approx(np.trapezoid(y, x))
    assert got["CMD"] == pytest.approx(np.trapezoid(np.abs(1 - y), x))
    assert C.area_summaries([0, 1], [1, 1]) == {"CPR": 1.0, "CMD": 0.0}
    with pytest.raises(ValueError):
        C.area_summaries([0.5, 0.1], [1, 1])
    assert C.counts_for(1620)[:4] == [1, 3, 8, 16] and C.counts_for(1620)[-1] == 1620


def test_smallest_in_band_refines_between_grid_points(tiny_llama, prompts):
    s = C.Setting(tiny_llama, prompts, batch_size=10)
    every = N.head_nodes(tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads)
    rank = sorted(every, key=lambda n: (n.role != "END", n.layer, n.head, n.role))
    grid = [6, 12, len(every)]
    long = C.score_circuits(s, {f"k{k}": rank[:k] for k in grid})
    norm = C.summarise(long).normalised.tolist()
    k, extra = C.smallest_in_band(s, rank, grid, norm, band=(0.999, 1.001))
    assert norm[-1] == pytest.approx(1.0)
    # independent check: every size the bisection rejected is outside the band, the answer inside
    for kk, v in extra:
        ld = s.logit_diffs([C.FULL, [], rank[:kk]]).mean(-1)
        assert v == pytest.approx(float((ld[2] - ld[1]) / (ld[0] - ld[1])), abs=1e-5)
    ld = s.logit_diffs([C.FULL, [], rank[:k]]).mean(-1)
    assert 0.999 <= float((ld[2] - ld[1]) / (ld[0] - ld[1])) <= 1.001
    assert k > grid[1] or norm[1] >= 0.999
    assert C.smallest_in_band(s, rank, grid, [0.1, 0.2, 0.3]) == (None, [])


def test_resumed_runner_equals_the_tiled_engine(tiny_llama, prompts):
    """Setting runs its variants resumed (shared prefixes); the plain tiled engine is the oracle.
    One circuit lives only in layer 1, so it shares layer 0 with the empty circuit."""

    s = C.Setting(tiny_llama, prompts, method="mean", batch_size=5)
    upper = [N.Node(1, h, r) for h in (0, 2) for r in ("END", "S2")]
    circuits = [C.FULL, [], upper, C.random_circuit(2, tiny_llama.cfg.n_heads, 9, seed=3)]
    got = s.logit_diffs(circuits)
    for sl, batch, replace in s._parts:
        keep = torch.stack([C._keep(tiny_llama, batch, c) for c in circuits])
        want = A.run_variants(tiny_llama, batch, keep, replace)
        torch.testing.assert_close(got[:, sl], want, atol=1e-5, rtol=0)
    assert not torch.allclose(got[2], got[1], atol=1e-3)  # the layer-1 circuit changes something
