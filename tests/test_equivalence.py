"""Verdicts by equivalence (issue 23 item 3): the TOST against the band, its power, and the rule.

Oracles are independent of the code under test: statsmodels' t-based TOST and one-sided t-tests
for iid data, statsmodels' cluster-robust standard error for clustered data, a Monte Carlo of
z-test TOST decisions for the power, the closed form of the power for a symmetric band, and
hand-made q-value triples at the edges of the rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from circuitgen import equivalence as E
from circuitgen import stats as st

BAND = (0.85, 1.15)


@pytest.mark.parametrize("mean, sd, n", [(1.02, 0.6, 150), (0.93, 0.5, 120), (1.12, 0.4, 200)])
def test_tost_p_matches_the_t_test_tost_for_iid_data(mean, sd, n):
    """One prompt per cluster is the iid bootstrap; with n >= 120 its one-sided p-values are close
    to the t-test's (statsmodels), at moderate p where the two can be told apart."""
    x = np.random.default_rng(1).normal(mean, sd, n)
    got = st.cluster_equivalence(x, np.arange(n), BAND, n_resamples=20000, seed=3)
    p_t, _, _ = DescrStatsW(x).ttost_mean(*BAND)
    assert 0.002 < p_t < 0.9  # a case where the p-value is informative
    assert got.p_equiv == pytest.approx(p_t, abs=0.03)
    below = DescrStatsW(x).ttest_mean(BAND[0], alternative="smaller")[1]
    above = DescrStatsW(x).ttest_mean(BAND[1], alternative="larger")[1]
    assert got.p_below == pytest.approx(below, abs=0.03)
    assert got.p_above == pytest.approx(above, abs=0.03)


def test_below_and_above_the_band_are_shown_where_they_are():
    rng = np.random.default_rng(2)
    low = st.cluster_equivalence(rng.normal(0.5, 0.3, 100), np.arange(100), BAND)
    high = st.cluster_equivalence(rng.normal(1.6, 0.3, 100), np.arange(100), BAND)
    inside = st.cluster_equivalence(rng.normal(1.0, 0.1, 100), np.arange(100), BAND)
    assert low.p_below < 0.01 and low.p_above > 0.5 and low.p_equiv > 0.5
    assert high.p_above < 0.01 and high.p_below > 0.5 and high.p_equiv > 0.5
    assert inside.p_equiv < 0.01 and inside.p_below > 0.5 and inside.p_above > 0.5


def test_the_90_interval_is_inside_the_band_exactly_when_tost_rejects():
    """TOST at alpha is the 1 - 2 alpha interval inside the band (up to the +1 in the p-values:
    checked away from the edge)."""
    rng = np.random.default_rng(4)
    seen = set()
    for i in range(60):
        n = int(rng.integers(20, 80))
        x = rng.normal(rng.uniform(0.8, 1.2), rng.uniform(0.05, 0.6), n)
        e = st.cluster_equivalence(x, np.arange(n), BAND, seed=i)
        inside = BAND[0] < e.lo90 and e.hi90 < BAND[1]
        if abs(e.p_equiv - 0.05) > 0.01:
            assert inside == (e.p_equiv < 0.05), e
            seen.add(inside)
    assert seen == {True, False}


def test_clusters_are_resampled_whole():
    """With a strong template effect the bootstrap's standard error is the cluster-robust one
    (statsmodels OLS on a constant, cov_type='cluster'), several times the iid one."""
    rng = np.random.default_rng(5)
    k, m = 40, 10
    effect = rng.normal(0, 0.3, k)
    labels = np.repeat(np.arange(k), m)
    x = 1.0 + effect[labels] + rng.normal(0, 0.1, k * m)
    got = st.cluster_equivalence(x, labels, BAND, n_resamples=20000)
    fit = sm.OLS(x, np.ones_like(x)).fit(cov_type="cluster", cov_kwds={"groups": labels})
    iid = x.std(ddof=1) / np.sqrt(x.size)
    assert got.se == pytest.approx(float(fit.bse[0]), rel=0.1)
    assert got.se > 2.5 * iid
    assert got.n_clusters == k


def test_power_matches_a_simulation_of_the_z_tost():
    """P(both one-sided z-tests reject) by Monte Carlo, against the formula."""
    rng = np.random.default_rng(6)
    z = sps.norm.ppf(0.95)
    for se, true in [(0.05, 1.0), (0.08, 1.0), (0.05, 1.1), (0.03, 0.9)]:
        est = rng.normal(true, se, 200_000)
        rejected = ((est - BAND[0]) / se > z) & ((BAND[1] - est) / se > z)
        assert st.tost_power(se, BAND, true) == pytest.approx(rejected.mean(), abs=0.005)
    assert st.tost_power(0.05, BAND, 1.2) == 0.0  # outside the band: nothing to show
    assert np.isnan(st.tost_power(0.0, BAND))


def test_templates_for_80_percent_power_follow_the_closed_form():
    """Symmetric band around 1: power 0.8 needs se = 0.15 / (z_0.95 + z_0.9) (2 Phi(a) - 1 = 0.8),
    and the standard error shrinks as one over the square root of the templates."""
    x = np.random.default_rng(7).normal(1.0, 0.5, 60)
    e = st.cluster_equivalence(x, np.arange(60), BAND)
    target = 0.15 / (sps.norm.ppf(0.95) + sps.norm.ppf(0.9))
    assert e.clusters_for_80 == pytest.approx(60 * (e.se / target) ** 2, rel=1e-4)
    assert e.power == pytest.approx(st.tost_power(e.se, BAND), abs=1e-12)


def test_one_cluster_tests_nothing():
    e = st.cluster_equivalence(np.ones(10), np.zeros(10), BAND)
    assert e.n_clusters == 1 and np.isnan(e.p_equiv) and np.isnan(e.power)


@pytest.mark.parametrize("q, verdict", [
    ((0.01, 0.9, 0.9), "holds"),
    ((0.049, 1.0, 1.0), "holds"),
    ((0.05, 1.0, 1.0), "unclear"),  # q at fdr is not below it
    ((0.2, 0.01, 1.0), "degrades"),
    ((0.2, 1.0, 0.03), "exceeds"),
    ((0.2, 0.06, 0.07), "unclear"),
    ((np.nan, np.nan, np.nan), "unclear"),
])
def test_verdict_rule_at_its_edges(q, verdict):
    assert E.equivalence_verdict(*q) == verdict


def test_two_verdicts_at_once_is_an_error():
    with pytest.raises(ValueError, match="more than one verdict"):
        E.equivalence_verdict(0.01, 0.01, 1.0)


def _long_table(rng, conditions: dict[str, tuple[float, float]], n=120, k=12) -> pd.DataFrame:
    """A long score table whose normalised faithfulness per condition is about the given mean:
    F(M) ~ 3, F(∅) ~ 0.5, F(C) = F(∅) + target * (F(M) - F(∅)) + noise, with a template effect."""
    frames = []
    for cond, (target, noise) in conditions.items():
        tmpl = np.arange(n) % k
        fm = 3 + rng.normal(0, 0.3, n)
        fe = 0.5 + rng.normal(0, 0.2, n)
        fc = fe + target * (fm - fe) + rng.normal(0, noise, k)[tmpl] + rng.normal(0, noise, n)
        frames.append(pd.DataFrame({"circuit": "c", "ablation": "mean", "condition": cond,
                                    "template": [f"{cond}:{t}" for t in tmpl], "logit_diff": fm,
                                    "empty_logit_diff": fe, "circuit_logit_diff": fc}))
    return pd.concat(frames, ignore_index=True)


def test_table_gives_each_condition_the_verdict_its_data_show():
    t = E.equivalence_table(_long_table(np.random.default_rng(8), {
        "home": (1.0, 0.1), "low": (0.4, 0.1), "high": (1.6, 0.1), "noisy": (1.0, 2.0)}))
    got = dict(zip(t.condition, t.verdict))
    assert got == {"home": "holds", "low": "degrades", "high": "exceeds", "noisy": "unclear"}
    noisy, home = t.set_index("condition").loc["noisy"], t.set_index("condition").loc["home"]
    assert noisy.power < 0.3 < 0.9 < home.power
    assert noisy.templates_for_80 > noisy.n_templates
    # the estimate is the ratio of means (F(C) - F(∅)) / (F(M) - F(∅)), computed here by hand
    raw = _long_table(np.random.default_rng(8), {"home": (1.0, 0.1)})
    want = ((raw.circuit_logit_diff - raw.empty_logit_diff).mean()
            / (raw.logit_diff - raw.empty_logit_diff).mean())
    assert home.estimate == pytest.approx(want, rel=1e-12)


def test_bh_runs_across_the_conditions():
    """q-values are BH over the family's conditions (computed here by hand), not raw p-values."""
    t = E.equivalence_table(_long_table(np.random.default_rng(9), {f"c{i}": (1.0, 0.1) for i in range(3)}
                                        | {"edge": (1.12, 0.2)}))
    p = t.p_equiv.to_numpy()
    m = len(p)
    order = np.argsort(p)
    want = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    assert t.q_equiv.to_numpy()[order] == pytest.approx(np.minimum(want, 1))


def test_missing_columns_are_named():
    with pytest.raises(KeyError, match="empty_logit_diff"):
        E.equivalence_table(pd.DataFrame({"circuit": [], "ablation": [], "condition": [],
                                          "template": [], "logit_diff": [],
                                          "circuit_logit_diff": []}))


def test_a_condition_equivalent_alone_is_not_after_bh():
    """One condition with TOST p about 0.02 among three far below the band: unadjusted it would
    hold; over the family (q = 4p for the smallest p) it is unclear."""
    t = E.equivalence_table(_long_table(np.random.default_rng(10), {
        "edge": (1.0, 0.5), "a": (0.3, 0.1), "b": (0.3, 0.1), "c": (0.3, 0.1)}))
    edge = t.set_index("condition").loc["edge"]
    assert edge.p_equiv < 0.05 <= edge.q_equiv
    assert edge.q_equiv == pytest.approx(4 * edge.p_equiv)
    assert edge.verdict == "unclear"
    assert set(t.verdict[t.condition != "edge"]) == {"degrades"}
