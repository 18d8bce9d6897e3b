"""circuitgen.stats against published values and independent implementations (scipy, statsmodels,
closed forms written out here)."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from circuitgen import stats as S

# --------------------------------------------------------------------------------------------
# Clopper-Pearson


def test_clopper_pearson_closed_forms_at_the_edges():
    # At k = 0 the exact upper bound solves (1 - p)^n = alpha / 2; at k = n, p^n = alpha / 2.
    p, lo, hi = S.clopper_pearson(0, 20)
    assert (p, lo) == (0.0, 0.0) and hi == pytest.approx(1 - 0.025 ** (1 / 20), abs=1e-10)
    p, lo, hi = S.clopper_pearson(20, 20)
    assert (p, hi) == (1.0, 1.0) and lo == pytest.approx(0.025 ** (1 / 20), abs=1e-10)
    assert lo == pytest.approx(0.8316, abs=1e-4)  # w10's "1.00 [1.0, 1.0]" becomes [0.83, 1.00]
    _, lo, hi = S.clopper_pearson(3, 3, confidence=0.9)
    assert lo == pytest.approx(0.05 ** (1 / 3), abs=1e-10) and hi == 1.0


@pytest.mark.parametrize("k,n", [(16, 20), (1, 7), (50, 100), (0, 1), (1, 1), (299, 300)])
def test_clopper_pearson_matches_scipy_exact(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    p, lo, hi = S.clopper_pearson(k, n)
    assert p == k / n
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-9)
    assert hi - lo > 0


def test_clopper_pearson_rejects_bad_counts():
    with pytest.raises(ValueError, match="0 trials"):
        S.clopper_pearson(0, 0)
    with pytest.raises(ValueError, match="cannot exceed"):
        S.clopper_pearson(5, 4)
    with pytest.raises(ValueError, match="negative"):
        S.clopper_pearson(-1, 4)
    with pytest.raises(ValueError, match="whole numbers"):
        S.clopper_pearson(1.5, 4)
    with pytest.raises(ValueError, match="confidence"):
        S.clopper_pearson(1, 4, confidence=95)


# --------------------------------------------------------------------------------------------
# Newcombe and Fisher

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (score, no continuity
# correction): (k1, n1, k2, n2) -> (lower, upper).
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize("counts,expected", NEWCOMBE_TABLE_II)
def test_newcombe_matches_published_values(counts, expected):
    k1, n1, k2, n2 = counts
    d, lo, hi = S.newcombe_diff(*counts)
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (lo, hi) == pytest.approx(expected, abs=6e-5)


def test_newcombe_matches_statsmodels_on_a_grid():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n1, n2 = rng.integers(1, 60, size=2)
        k1, k2 = rng.integers(0, n1 + 1), rng.integers(0, n2 + 1)
        lo, hi = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
        _, mlo, mhi = S.newcombe_diff(k1, n1, k2, n2, confidence=0.95)
        assert (mlo, mhi) == pytest.approx((lo, hi), abs=1e-9), (k1, n1, k2, n2)
    lo, hi = confint_proportions_2indep(16, 20, 20, 20, method="newcomb", compare="diff", alpha=0.1)
    assert S.newcombe_diff(16, 20, 20, 20, confidence=0.9)[1:] == pytest.approx((lo, hi), abs=1e-9)


def test_newcombe_keeps_width_where_every_prompt_is_right():
    d, lo, hi = S.newcombe_diff(20, 20, 20, 20)
    assert d == 0 and lo < -0.1 and hi > 0.1
    with pytest.raises(ValueError, match="cannot exceed"):
        S.newcombe_diff(21, 20, 3, 20)


def _fisher_two_sided(k1, n1, k2, n2) -> float:
    """By hand: the hypergeometric probabilities of all tables with the observed margins, summed
    over those no more likely than the observed one."""
    m, total = k1 + k2, n1 + n2
    prob = [comb(n1, a) * comb(n2, m - a) / comb(total, m)
            for a in range(max(0, m - n2), min(n1, m) + 1)]
    observed = comb(n1, k1) * comb(n2, k2) / comb(total, m)
    return sum(p for p in prob if p <= observed * (1 + 1e-7))


@pytest.mark.parametrize("counts", [(16, 20, 20, 20), (3, 10, 9, 10), (0, 5, 5, 5), (7, 12, 7, 12),
                                    (40, 80, 20, 30)])
def test_fisher_exact_by_hand(counts):
    assert S.fisher_exact_p(*counts) == pytest.approx(_fisher_two_sided(*counts), rel=1e-9)


def test_w11_word_names_case_is_not_significant():
    """16/20 vs 20/20 (issue 9): Fisher's p is about 0.11, and the Newcombe interval includes 0."""
    c = S.proportion_contrast(16, 20, 20, 20)
    assert c.p == pytest.approx(0.1060, abs=1e-4)
    assert c.estimate == pytest.approx(-0.2) and c.lo < 0 < c.hi


# --------------------------------------------------------------------------------------------
# IID bootstrap


def test_bootstrap_mean_ci_width_seed_and_edges():
    x = np.random.default_rng(0).normal(1.0, 1.0, size=200)
    m, lo, hi = S.bootstrap_mean_ci(x, seed=3)
    assert lo < m < hi and m == pytest.approx(x.mean())
    assert hi - lo == pytest.approx(2 * 1.96 * x.std(ddof=1) / np.sqrt(x.size), rel=0.15)
    assert S.bootstrap_mean_ci(x, seed=3) == (m, lo, hi)
    assert S.bootstrap_mean_ci(x, seed=4) != (m, lo, hi)
    bca = S.bootstrap_mean_ci(x, seed=3, method="BCa")
    assert bca.lo < m < bca.hi
    assert np.isnan(S.bootstrap_mean_ci([2.0]).lo) and S.bootstrap_mean_ci([2.0]).estimate == 2.0
    assert S.bootstrap_mean_ci([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="empty"):
        S.bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="NaN"):
        S.bootstrap_mean_ci([1.0, np.nan])


def test_ratio_of_means_is_paired():
    """The denominator varies a lot and the numerator tracks it: resampling the two together keeps
    the ratio near 0.8; resampling them independently would give a wide interval."""
    rng = np.random.default_rng(1)
    den = rng.normal(3, 1.5, 40)
    num = 0.8 * den + rng.normal(0, 0.05, 40)
    est, lo, hi = S.ratio_of_means_ci(num, den, seed=5)
    assert est == pytest.approx(num.mean() / den.mean())
    assert lo < est < hi and hi - lo < 0.03
    assert S.ratio_of_means_ci(num, den, seed=5) == (est, lo, hi)
    assert np.isnan(S.ratio_of_means_ci([1.0], [2.0]).lo)
    with pytest.raises(ValueError, match="differ in length"):
        S.ratio_of_means_ci([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------------------------
# Cluster bootstrap


def _clustered(n_clusters: int, per_cluster: int, between: float, within: float, seed: int = 0,
               mean: float = 0.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"t{j}" for j in range(n_clusters)], per_cluster)
    effects = rng.normal(0, between, n_clusters)
    x = mean + np.repeat(effects, per_cluster) + rng.normal(0, within, labels.size)
    return x, labels


def test_cluster_interval_is_wider_on_clustered_data():
    x, labels = _clustered(6, 20, between=2.0, within=0.5)
    est, lo, hi = S.cluster_bootstrap_ci(x, labels, seed=0)
    _, ilo, ihi = S.bootstrap_mean_ci(x, seed=0)
    assert est == pytest.approx(x.mean())
    assert (hi - lo) > 3 * (ihi - ilo)
    # The cluster interval's width is about that of the mean of the cluster means (6 values).
    means = pd.Series(x).groupby(labels).mean()
    se = means.std(ddof=1) / np.sqrt(len(means))
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.35)


def test_one_prompt_per_cluster_is_the_iid_bootstrap():
    x = np.random.default_rng(2).normal(0, 1, 80)
    c = S.cluster_bootstrap_ci(x, np.arange(80), seed=0)
    i = S.bootstrap_mean_ci(x, seed=0)
    assert c.estimate == i.estimate
    assert (c.hi - c.lo) == pytest.approx(i.hi - i.lo, rel=0.1)
    assert (c.lo, c.hi) == pytest.approx((i.lo, i.hi), abs=0.05)


def test_cluster_interval_covers_where_the_iid_one_does_not():
    """Repeated draws of clustered data: the cluster interval covers the true mean (0) close to
    95% of the time, the iid one far less often."""
    cover_cluster = cover_iid = 0
    n_sims = 150
    for sim in range(n_sims):
        x, labels = _clustered(25, 8, between=1.0, within=0.5, seed=100 + sim)
        _, lo, hi = S.cluster_bootstrap_ci(x, labels, n_resamples=400, seed=sim)
        cover_cluster += lo <= 0 <= hi
        _, lo, hi = S.cluster_bootstrap_ci(x, np.arange(x.size), n_resamples=400, seed=sim)
        cover_iid += lo <= 0 <= hi
    assert cover_cluster / n_sims > 0.85
    assert cover_iid / n_sims < 0.7


def test_cluster_ratio_of_means_and_custom_statistic():
    x, labels = _clustered(8, 10, between=1.0, within=0.3, mean=4.0)
    num = 0.5 * x + np.random.default_rng(3).normal(0, 0.05, x.size)
    est, lo, hi = S.cluster_bootstrap_ci((num, x), labels, seed=1)
    assert est == pytest.approx(num.mean() / x.mean()) and lo < est < hi
    # A function of the resampled rows gives the same replicates as the built-in statistics.
    slow = S.cluster_bootstrap_ci((num, x), labels, lambda a, b: a.mean() / b.mean(), seed=1,
                                  n_resamples=300)
    fast = S.cluster_bootstrap_ci((num, x), labels, "ratio_of_means", seed=1, n_resamples=300)
    assert slow == pytest.approx(fast, abs=1e-12)
    assert S.cluster_bootstrap_ci(x, labels, np.mean, seed=1, n_resamples=300) == pytest.approx(
        S.cluster_bootstrap_ci(x, labels, seed=1, n_resamples=300), abs=1e-12)
    # From a DataFrame, by column names.
    df = pd.DataFrame({"c": num, "m": x, "template": labels})
    assert S.cluster_bootstrap_ci(df, "template", columns=("c", "m"), seed=1) == (est, lo, hi)


def test_cluster_bootstrap_edges_and_errors():
    x = np.arange(10.0)
    one = S.cluster_bootstrap_ci(x, ["a"] * 10)
    assert one.estimate == 4.5 and np.isnan(one.lo) and np.isnan(one.hi)
    with pytest.raises(ValueError, match="one entry per prompt"):
        S.cluster_bootstrap_ci(x, ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        S.cluster_bootstrap_ci([], [])
    with pytest.raises(ValueError, match="statistic"):
        S.cluster_bootstrap_ci(x, np.arange(10), "median")
    with pytest.raises(ValueError, match="two arrays"):
        S.cluster_bootstrap_ci(x, np.arange(10), "ratio_of_means")
    with pytest.raises(ValueError, match="columns"):
        S.cluster_bootstrap_ci(pd.DataFrame({"x": x}), np.arange(10))


def test_bootstrap_p_value_by_hand():
    # 1 replicate <= 0, 3 >= 0: 2 * (1 + 1) / (4 + 1).
    assert S.bootstrap_p_value([-1.0, 1.0, 2.0, 3.0]) == pytest.approx(0.8)
    assert S.bootstrap_p_value([1.0, 2.0, 3.0]) == pytest.approx(0.5)
    assert S.bootstrap_p_value([-3.0, -2.0, -1.0]) == pytest.approx(0.5)  # two-sided: symmetric
    assert S.bootstrap_p_value([-1.0, 1.0]) == 1.0
    assert np.isnan(S.bootstrap_p_value([np.nan]))


def test_cluster_bootstrap_diff():
    a, la = _clustered(8, 10, between=0.3, within=0.5, seed=1, mean=2.0)
    b, lb = _clustered(8, 10, between=0.3, within=0.5, seed=2, mean=0.0)
    c = S.cluster_bootstrap_diff(a, la, b, lb, seed=0, n_resamples=999)
    assert c.estimate == pytest.approx(a.mean() - b.mean())
    assert 0 < c.lo < c.estimate < c.hi
    assert c.p == pytest.approx(2 / 1000)  # no replicate crosses 0: the floor
    # Two-sided: the reversed contrast is as significant.
    r = S.cluster_bootstrap_diff(b, lb, a, la, seed=0, n_resamples=999)
    assert r.estimate == pytest.approx(-c.estimate) and r.p == pytest.approx(c.p)
    # A group with one cluster has no between-cluster spread to show.
    assert np.isnan(S.cluster_bootstrap_diff(a, ["x"] * a.size, b, lb).p)


def test_bootstrap_p_agrees_with_the_interval():
    """p < 0.05 exactly when the 95% percentile interval excludes 0 (away from the boundary)."""
    seen = set()
    for seed in range(30):
        a, la = _clustered(10, 6, between=0.5, within=0.5, seed=seed, mean=0.1 * (seed % 10))
        b, lb = _clustered(10, 6, between=0.5, within=0.5, seed=1000 + seed)
        c = S.cluster_bootstrap_diff(a, la, b, lb, seed=seed)
        if abs(c.p - 0.05) < 0.005:
            continue
        excludes = c.lo > 0 or c.hi < 0
        assert excludes == (c.p < 0.05), c
        seen.add(excludes)
    assert seen == {True, False}


# --------------------------------------------------------------------------------------------
# Benjamini-Hochberg


def test_benjamini_hochberg_by_hand():
    reject, q = S.benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert reject.tolist() == [True, True, True, True]
    # The step-up minimum: 0.02 * 2 / 1 = 0.04 is lowered to 0.021 * 2 / 2 = 0.021.
    assert S.benjamini_hochberg([0.02, 0.021])[1] == pytest.approx([0.021, 0.021])
    reject, q = S.benjamini_hochberg([0.04, 0.5, 0.9], alpha=0.05)
    assert q == pytest.approx([0.12, 0.75, 0.9]) and not reject.any()


def test_benjamini_hochberg_matches_statsmodels():
    rng = np.random.default_rng(0)
    for m in (1, 5, 40):
        p = np.concatenate([rng.uniform(0, 0.01, m // 3), rng.uniform(0, 1, m - m // 3)])
        reject, q = S.benjamini_hochberg(p, alpha=0.1)
        ref_reject, ref_q, _, _ = multipletests(p, alpha=0.1, method="fdr_bh")
        assert q == pytest.approx(ref_q, abs=1e-12)
        assert reject.tolist() == ref_reject.tolist()


def test_benjamini_hochberg_passes_nan_through():
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.005])
    reject, q = S.benjamini_hochberg(p)
    assert np.isnan(q[[1, 4]]).all() and not reject[[1, 4]].any()
    assert q[[0, 2, 3, 5]] == pytest.approx([0.02, 0.04, 0.04, 0.02])  # m = 4 tested
    assert [a.size for a in S.benjamini_hochberg([])] == [0, 0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.benjamini_hochberg([0.5, 1.2])
