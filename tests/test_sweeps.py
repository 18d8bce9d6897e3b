"""Sweeps: per-prompt scoring of a variation family and per-condition bootstrap summaries."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from circuitgen import circuits, sweeps, variations

SPEC = """
model: tiny
task: ioi
classes:
  movers: {heads: ["1.0", "1.3"], positions: [END], signature: {from: END, to: IO}}
  inhibit: {heads: ["0.2"], positions: [S2, END], signature: {from: END, to: S2}}
"""


@pytest.fixture(scope="module")
def spec():
    return circuits.parse_circuit(SPEC, source="<test spec>")


@pytest.fixture(scope="module")
def scores(tiny_gpt2, spec):
    ps = variations.generate_domain(tiny_gpt2, n_per_condition=4, seed=0,
                                    conditions=["everyday", "sport", "law"])
    return sweeps.run_sweep(tiny_gpt2, spec, ps, seed=0)


def test_run_sweep_columns(scores):
    for col in ("family", "condition", "dist_s1_s2", "io_rank", "status", "logit_diff",
                "circuit_logit_diff", "faithfulness", "sig_movers", "sig_inhibit"):
        assert col in scores.columns
    assert not any(c.startswith("ko_") for c in scores.columns)
    assert len(scores) == 12
    assert scores.attrs["circuitgen"]["main_signature"] == "sig_movers"
    assert scores.attrs["circuitgen"]["prompt_set"]["family"] == "domain"


def test_by_condition_rows_and_cis(scores):
    table = sweeps.by_condition(scores, seed=0)
    assert list(table.index) == ["everyday", "sport", "law"]
    assert (table.n + table.n_flagged == 4).all()
    for s in sweeps.STATS:
        assert {s, f"{s}_lo", f"{s}_hi"} <= set(table.columns)
        assert ((table[f"{s}_lo"] <= table[s] + 1e-9) & (table[s] <= table[f"{s}_hi"] + 1e-9)).all(), s
    ok = scores[(scores.status == "ok") & (scores.condition == "law")]
    assert table.loc["law", "faithfulness"] == pytest.approx(
        ok.circuit_logit_diff.mean() / ok.logit_diff.mean())
    assert table.loc["law", "accuracy"] == pytest.approx((ok.logit_diff > 0).mean())
    assert sweeps.format_table(table).shape[0] == 3


def test_ratio_of_means_bootstrap_is_seeded_and_paired():
    rng = np.random.default_rng(1)
    den = rng.normal(3, 1, 30)
    num = 0.8 * den + rng.normal(0, 0.1, 30)
    a = sweeps.ratio_of_means_ci(num, den, seed=5)
    b = sweeps.ratio_of_means_ci(num, den, seed=5)
    c = sweeps.ratio_of_means_ci(num, den, seed=6)
    assert a == b and a != c
    assert a[1] <= a[0] <= a[2]
    # Paired: numerator tracks denominator, so the interval is tight around 0.8.
    assert a[2] - a[1] < 0.05
    assert np.isnan(sweeps.ratio_of_means_ci([1.0], [2.0])[1])


def test_plot_and_worst(scores):
    table = sweeps.by_condition(scores, seed=0)
    fig = sweeps.plot_conditions(table, "test", base="everyday")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel()
    worst = sweeps.worst_prompts(scores, 3)
    assert len(worst) == 3 and worst.circuit_logit_diff.is_monotonic_increasing
    assert {"condition", "prompt"} <= set(worst.columns)
