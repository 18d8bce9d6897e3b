"""Intervals and tests for the book's comparisons, in one place so every chapter uses the same ones.

Why each choice (issue 9, item 5: the hand-rolled percentile bootstraps gave ``1.00 [1.0, 1.0]``
for 20/20 correct and treated prompts of one template as independent):

- **Proportions** (accuracy, top-1 rate, any share of prompts): :func:`clopper_pearson`, the exact
  interval, which never collapses to zero width when every prompt (or none) is correct. It treats
  prompts as independent.
- **Differences of proportions**: :func:`newcombe_diff`, Newcombe's (1998) hybrid score interval
  (his method 10, built from two Wilson intervals), with :func:`fisher_exact_p` as its test; both
  behave at 0/n and n/n where the Wald interval does not. :func:`proportion_contrast` gives both.
- **Means and ratios of means of continuous scores**: :func:`bootstrap_mean_ci` and
  :func:`ratio_of_means_ci` (``scipy.stats.bootstrap``; the ratio *paired*: the same resampled
  prompts in numerator and denominator), when prompts are independent.
- **Clustered prompts**: prompts of one template share their ablation means and much of their
  wording, so they are not independent draws. :func:`cluster_bootstrap_ci` resamples whole
  clusters (templates) with replacement; :func:`cluster_bootstrap_diff` does it independently in two
  groups and returns the difference, its interval and a two-sided bootstrap p-value. With few
  clusters (fewer than about 10) any cluster bootstrap is rough: its interval reflects only the
  clusters seen, and tends to be too narrow rather than too wide.
- **Equivalence** ("the circuit still does the work" is a claim of *no* large difference, which
  a point estimate in a band does not show): :func:`cluster_equivalence` runs two one-sided tests
  (TOST) against the band on the cluster-bootstrap replicates, with the tests for lying below and
  above the band, and the power the condition's spread gives; :func:`tost_power` is that power.
- **Many contrasts**: :func:`benjamini_hochberg` controls the false discovery rate across a family
  of tests (e.g. every condition against the reference, for one statistic).

Intervals are returned as :class:`Interval` ``(estimate, lo, hi)`` and contrasts as
:class:`Contrast` ``(estimate, lo, hi, p)``; both are tuples. Every resampling is seeded, so reruns
give the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

N_RESAMPLES = 2000
STATISTICS = ("mean", "ratio_of_means")


class Interval(NamedTuple):
    """A point estimate with the bounds of its confidence interval."""

    estimate: float
    lo: float
    hi: float


class Contrast(NamedTuple):
    """A difference between two groups, its interval and a two-sided p-value for no difference."""

    estimate: float
    lo: float
    hi: float
    p: float


# --------------------------------------------------------------------------------------------
# Input checks


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence!r}.")


def _check_counts(k, n, what: str = "") -> tuple[int, int]:
    """``(k, n)`` as ints, or a ValueError that says what is wrong with them."""
    label = f" ({what})" if what else ""
    if not (float(k).is_integer() and float(n).is_integer()):
        raise ValueError(f"counts must be whole numbers{label}: got k={k!r}, n={n!r}.")
    k, n = int(k), int(n)
    if k < 0 or n < 0:
        raise ValueError(f"counts cannot be negative{label}: got k={k}, n={n}.")
    if k > n:
        raise ValueError(f"k={k} successes out of n={n} trials{label}: k cannot exceed n; "
                         "pass the number of successes and the number of trials.")
    if n == 0:
        raise ValueError(f"a proportion of 0 trials has no interval{label}: n must be at least 1.")
    return k, n


def _values(x, name: str = "values") -> np.ndarray:
    """A finite 1-D float array, or a ValueError naming what to fix."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}.")
    if a.size == 0:
        raise ValueError(f"{name} is empty: an estimate needs at least one value.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has {int((~np.isfinite(a)).sum())} NaN or infinite values; "
                         "drop those rows (e.g. unscored prompts) first.")
    return a


# --------------------------------------------------------------------------------------------
# Proportions


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """(k / n, lo, hi): the exact (Clopper-Pearson) interval for a binomial proportion.

    Exact means its coverage is at least ``confidence`` for every true proportion, at the price of
    being a little wide. At ``k = 0`` the lower bound is 0 and the upper is above it; at ``k = n``
    the reverse: never zero width, unlike a bootstrap of all-equal 0/1 values.
    """
    _check_confidence(confidence)
    k, n = _check_counts(k, n)
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="beta")
    return Interval(k / n, float(lo), float(hi))


def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """(k / n, lo, hi): the Wilson score interval, the building block of :func:`newcombe_diff`."""
    _check_confidence(confidence)
    k, n = _check_counts(k, n)
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return Interval(k / n, float(lo), float(hi))


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Interval:
    """(p1 - p2, lo, hi): Newcombe's hybrid score interval for a difference of two independent
    proportions (Newcombe 1998, method 10).

    From the Wilson intervals (l1, u1) of p1 and (l2, u2) of p2:
    ``lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)``, ``hi = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``.
    Unlike the Wald interval it stays inside [-1, 1] and keeps its width at 0/n and n/n (the case
    of a condition where every prompt is right).
    """
    p1, l1, u1 = wilson(k1, n1, confidence)
    p2, l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return Interval(d, d - float(np.hypot(p1 - l1, u2 - p2)), d + float(np.hypot(u1 - p1, p2 - l2)))


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test that two proportions ``k1/n1`` and ``k2/n2`` are
    equal (the 2x2 table of successes and failures); exact at any n, so valid for 20 prompts."""
    k1, n1 = _check_counts(k1, n1, "first group")
    k2, n2 = _check_counts(k2, n2, "second group")
    return float(sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def proportion_contrast(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Contrast:
    """(p1 - p2, lo, hi, p): :func:`newcombe_diff` with :func:`fisher_exact_p`."""
    d, lo, hi = newcombe_diff(k1, n1, k2, n2, confidence)
    return Contrast(d, lo, hi, fisher_exact_p(k1, n1, k2, n2))


# --------------------------------------------------------------------------------------------
# IID bootstrap (scipy.stats.bootstrap)


def _ratio(x, y, axis=-1):
    return np.mean(x, axis=axis) / np.mean(y, axis=axis)


def _scipy_bootstrap(data: tuple, statistic, confidence: float, n_resamples: int, seed: int,
                     method: str, **kw) -> tuple[float, float]:
    """``scipy.stats.bootstrap``'s interval. A statistic that is constant across resamples (a
    ratio whose numerator is a fixed multiple of its denominator, say) gives a zero-width
    interval; scipy's warning about it is silenced, since the docstrings say so."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        res = sps.bootstrap(data, statistic, confidence_level=confidence, n_resamples=n_resamples,
                            method=method, rng=np.random.default_rng(seed), **kw)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_mean_ci(x, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0,
                      method: str = "percentile") -> Interval:
    """(mean, lo, hi): a seeded bootstrap interval for the mean of independent values
    (``scipy.stats.bootstrap``; ``method`` ``"percentile"`` or ``"BCa"``).

    One value: NaN bounds (no spread to resample). Constant values: a zero-width interval at the
    value, because a bootstrap cannot show variation the sample lacks; for 0/1 data use
    :func:`clopper_pearson` instead, which does not have this problem.
    """
    _check_confidence(confidence)
    a = _values(x)
    mean = float(a.mean())
    if a.size == 1:
        return Interval(mean, float("nan"), float("nan"))
    if np.all(a == a[0]):
        return Interval(mean, mean, mean)
    return Interval(mean, *_scipy_bootstrap((a,), np.mean, confidence, n_resamples, seed, method))


def ratio_of_means_ci(num, den, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                      seed: int = 0, method: str = "percentile") -> Interval:
    """(mean(num) / mean(den), lo, hi): a *paired* seeded bootstrap over independent prompts (the
    same resampled prompts in numerator and denominator, so that their correlation counts).

    One pair: NaN bounds. Resamples whose denominator mean is 0 are left out of the quantiles.
    """
    _check_confidence(confidence)
    x, y = _values(num, "numerator"), _values(den, "denominator")
    if x.shape != y.shape:
        raise ValueError(f"numerator and denominator differ in length: {x.shape} vs {y.shape}; "
                         "pass one value of each per prompt.")
    est = float(x.mean() / y.mean()) if y.mean() != 0 else float("nan")
    if x.size == 1:
        return Interval(est, float("nan"), float("nan"))
    if np.all(x == x[0]) and np.all(y == y[0]):
        return Interval(est, est, est)
    return Interval(est, *_scipy_bootstrap((x, y), _ratio, confidence, n_resamples, seed, method,
                                           paired=True, vectorized=True))


# --------------------------------------------------------------------------------------------
# Cluster bootstrap


def _as_arrays(data, cluster, columns) -> tuple[list[np.ndarray], np.ndarray]:
    """``data`` (one array, a ``(num, den)`` pair, or a DataFrame with ``columns``) and ``cluster``
    (labels, or a column name of the DataFrame) as float arrays and integer cluster codes."""
    if isinstance(data, pd.DataFrame):
        if columns is None:
            raise ValueError("with a DataFrame, name the value column(s): columns='logit_diff' "
                             "or columns=('circuit_logit_diff', 'logit_diff') for a ratio.")
        cols = [columns] if isinstance(columns, str) else list(columns)
        arrays = [data[c].to_numpy(float) for c in cols]
        labels = data[cluster].to_numpy() if isinstance(cluster, str) else cluster
    else:
        is_pair = isinstance(data, tuple) and len(data) == 2
        arrays = [np.asarray(a, float) for a in (data if is_pair else (data,))]
        labels = cluster
    arrays = [_values(a, f"values[{i}]") for i, a in enumerate(arrays)]
    labels = np.asarray(labels)
    if any(a.shape != labels.shape for a in arrays):
        raise ValueError(f"cluster labels ({labels.shape}) and values "
                         f"({[a.shape for a in arrays]}) must have one entry per prompt.")
    if pd.isna(labels).any():
        raise ValueError("some cluster labels are missing (NaN); give every prompt a cluster.")
    codes, _ = pd.factorize(labels)
    return arrays, codes


def _statistic_name(statistic, n_arrays: int) -> str | Callable:
    if callable(statistic):
        return statistic
    name = statistic or ("mean" if n_arrays == 1 else "ratio_of_means")
    if name not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS} or a function, not {name!r}.")
    if (name == "mean") != (n_arrays == 1):
        need = "one array" if name == "mean" else "two arrays (num, den)"
        raise ValueError(f"statistic {name!r} needs {need}, got {n_arrays}.")
    return name


def _estimate(arrays: list[np.ndarray], statistic) -> float:
    if callable(statistic):
        return float(statistic(*arrays))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(arrays[0].mean() if statistic == "mean" else arrays[0].mean() / arrays[1].mean())


def _cluster_replicates(arrays: list[np.ndarray], codes: np.ndarray, statistic, rng,
                        n_resamples: int) -> np.ndarray:
    """The statistic on ``n_resamples`` resamples of whole clusters (as many clusters as there
    are, drawn with replacement, each bringing all its prompts)."""
    k = int(codes.max()) + 1
    draws = rng.integers(0, k, size=(n_resamples, k))
    if callable(statistic):
        members = [np.flatnonzero(codes == j) for j in range(k)]
        return np.array([statistic(*[a[np.concatenate([members[j] for j in row])] for a in arrays])
                         for row in draws], dtype=float)
    sums = np.stack([np.bincount(codes, weights=a, minlength=k) for a in arrays])  # [arrays, k]
    counts = np.bincount(codes, minlength=k)
    totals = sums[:, draws].sum(-1)  # [arrays, n_resamples]
    with np.errstate(divide="ignore", invalid="ignore"):
        return totals[0] / (counts[draws].sum(-1) if statistic == "mean" else totals[1])


def _percentile(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(lo), float(hi)


def cluster_bootstrap_ci(data, cluster, statistic: str | Callable | None = None, *,
                         columns: str | Sequence[str] | None = None, confidence: float = 0.95,
                         n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """(estimate, lo, hi): a seeded percentile bootstrap that resamples whole clusters.

    Prompts of one template share their ablation means and wording, so their scores move
    together; resampling prompts one by one then understates the uncertainty. Here each resample
    draws as many clusters as there are, with replacement, each with all its prompts.

    ``data``: one array (``statistic="mean"``, the default for one array), a ``(num, den)`` pair
    (``"ratio_of_means"``, mean(num) / mean(den) over the resampled prompts, paired), or a DataFrame
    with ``columns`` naming one or two columns. ``cluster``: one label per prompt, or a column name
    of the DataFrame. ``statistic`` may also be a function of the resampled array(s) (slower).
    Fewer than two clusters: NaN bounds (between-cluster spread cannot be seen). One prompt per
    cluster: the ordinary iid bootstrap.
    """
    _check_confidence(confidence)
    arrays, codes = _as_arrays(data, cluster, columns)
    statistic = _statistic_name(statistic, len(arrays))
    est = _estimate(arrays, statistic)
    if codes.max() < 1:
        return Interval(est, float("nan"), float("nan"))
    boot = _cluster_replicates(arrays, codes, statistic, np.random.default_rng(seed), n_resamples)
    return Interval(est, *_percentile(boot, confidence))


def bootstrap_p_value(boot: np.ndarray, null: float = 0.0) -> float:
    """Two-sided p-value from bootstrap replicates of a difference:
    ``min(1, 2 * min(#(d* <= null) + 1, #(d* >= null) + 1) / (B + 1))``, over the B finite
    replicates. It is the smallest ``1 - confidence`` at which the percentile interval excludes
    ``null`` (so p < 0.05 exactly when the 95% interval excludes it, up to the +1 that keeps p
    above 0 with finitely many resamples: its floor is 2 / (B + 1))."""
    b = np.asarray(boot, float)
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan")
    tail = min((b <= null).sum(), (b >= null).sum()) + 1
    return float(min(1.0, 2 * tail / (b.size + 1)))


def cluster_bootstrap_diff(data1, cluster1, data2, cluster2, statistic: str | Callable | None = None,
                           *, columns: str | Sequence[str] | None = None, confidence: float = 0.95,
                           n_resamples: int = N_RESAMPLES, seed: int = 0) -> Contrast:
    """(statistic(group 1) - statistic(group 2), lo, hi, p): each group's clusters resampled
    independently (the groups are separate prompt sets), the interval the percentile interval of
    the replicate differences, and ``p`` from :func:`bootstrap_p_value` (two-sided, against no
    difference). ``data``/``cluster``/``statistic``/``columns`` as in :func:`cluster_bootstrap_ci`.
    A group with fewer than two clusters: NaN interval and p."""
    _check_confidence(confidence)
    a1, c1 = _as_arrays(data1, cluster1, columns)
    a2, c2 = _as_arrays(data2, cluster2, columns)
    if len(a1) != len(a2):
        raise ValueError("both groups need the same kind of data (one array each, or a pair each).")
    statistic = _statistic_name(statistic, len(a1))
    est = _estimate(a1, statistic) - _estimate(a2, statistic)
    if c1.max() < 1 or c2.max() < 1:
        return Contrast(est, float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    diff = (_cluster_replicates(a1, c1, statistic, rng, n_resamples)
            - _cluster_replicates(a2, c2, statistic, rng, n_resamples))
    return Contrast(est, *_percentile(diff, confidence), bootstrap_p_value(diff))


# --------------------------------------------------------------------------------------------
# Multiple comparisons


def benjamini_hochberg(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(reject, q): Benjamini-Hochberg step-up adjustment of a family of p-values.

    ``q[i]`` is the smallest false discovery rate at which test ``i`` is rejected:
    ``min over j with p_j >= p_i of min(1, p_j * m / rank_j)``; ``reject = q <= alpha``. NaN
    p-values (contrasts that could not be tested) stay NaN in ``q``, are not rejected and do not
    count in ``m``. An empty family gives empty arrays.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (e.g. 0.05), not {alpha!r}.")
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}.")
    tested = np.flatnonzero(~np.isnan(p))
    if ((p[tested] < 0) | (p[tested] > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1]; got {p[tested][(p[tested] < 0) | (p[tested] > 1)]}.")
    q = np.full(p.shape, np.nan)
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    reject = np.zeros(p.shape, dtype=bool)
    reject[tested] = q[tested] <= alpha
    return reject, q


# --------------------------------------------------------------------------------------------
# Equivalence to a band


class Equivalence(NamedTuple):
    """Where a statistic lies relative to a band ``[lo, hi]``, with three one-sided tests.

    ``lo90``/``hi90``: the ``1 - 2 alpha`` percentile interval (inside the band exactly when TOST
    rejects at ``alpha``, up to the +1 in the p-values). ``p_equiv``: TOST's p-value, the larger
    of the two one-sided p-values (H0: below ``lo`` or above ``hi``). ``p_below``: H0 the
    statistic is at least ``lo`` (small: it lies below the band). ``p_above``: H0 at most ``hi``.
    ``se``: the bootstrap standard error; ``power``: :func:`tost_power` at ``power_at`` with that
    ``se``; ``clusters_for_80``: how many clusters that power needs to reach 0.8 (``se`` taken to
    shrink as one over the square root of the clusters), NaN when it cannot be estimated."""

    estimate: float
    lo90: float
    hi90: float
    p_equiv: float
    p_below: float
    p_above: float
    se: float
    power: float
    n_clusters: int
    clusters_for_80: float


def tost_power(se: float, band: tuple[float, float], true_value: float = 1.0,
               alpha: float = 0.05) -> float:
    """Power of two one-sided z-tests at ``alpha`` to show ``true_value`` lies in ``band`` when the
    estimate's standard error is ``se``: P(both reject) = max(0, Phi((hi - t)/se - z) +
    Phi((t - lo)/se - z) - 1), z the one-sided critical value (the normal approximation the
    bootstrap test relies on too). 0 when ``true_value`` is outside the band."""
    lo, hi = band
    if not (np.isfinite(se) and se > 0):
        return float("nan")
    if not lo < true_value < hi:
        return 0.0
    z = sps.norm.ppf(1 - alpha)
    return float(max(0.0, sps.norm.cdf((hi - true_value) / se - z)
                     + sps.norm.cdf((true_value - lo) / se - z) - 1))


def _se_for_power(band: tuple[float, float], true_value: float, alpha: float, power: float) -> float:
    """The standard error at which :func:`tost_power` equals ``power`` (bisection: it falls as the
    error grows)."""
    a, b = 1e-9, float(band[1] - band[0]) * 10
    for _ in range(200):
        m = (a + b) / 2
        a, b = (m, b) if tost_power(m, band, true_value, alpha) > power else (a, m)
    return (a + b) / 2


def cluster_equivalence(data, cluster, band: tuple[float, float], statistic: str | Callable | None = None,
                        *, columns: str | Sequence[str] | None = None, alpha: float = 0.05,
                        power_at: float = 1.0, n_resamples: int = N_RESAMPLES,
                        seed: int = 0) -> Equivalence:
    """Is the statistic (a mean, or a ratio of means such as the normalised faithfulness) shown to
    lie inside ``band``, shown to lie below or above it, or neither? Tested on the replicates of
    :func:`cluster_bootstrap_ci`'s resampling (whole clusters; same seed, same replicates), each
    one-sided p-value ``(#replicates on the null's side + 1) / (B + 1)``.

    Why a test and not the estimate: a point estimate inside the band with an interval reaching
    out of it has not shown that the circuit does the work, only failed to show that it does not.
    Fewer than two clusters: every p-value NaN (between-cluster spread cannot be seen)."""
    _check_confidence(1 - 2 * alpha)
    lo, hi = band
    if not lo < hi:
        raise ValueError(f"the band must be (low, high) with low < high, not {band!r}.")
    arrays, codes = _as_arrays(data, cluster, columns)
    statistic = _statistic_name(statistic, len(arrays))
    est = _estimate(arrays, statistic)
    k = int(codes.max()) + 1
    if k < 2:
        nan = float("nan")
        return Equivalence(est, nan, nan, nan, nan, nan, nan, nan, k, nan)
    boot = _cluster_replicates(arrays, codes, statistic, np.random.default_rng(seed), n_resamples)
    boot = boot[np.isfinite(boot)]
    b = boot.size
    p_low_side = float(((boot <= lo).sum() + 1) / (b + 1))  # H0: at most lo
    p_high_side = float(((boot >= hi).sum() + 1) / (b + 1))  # H0: at least hi
    p_below = float(((boot >= lo).sum() + 1) / (b + 1))  # H0: at least lo
    p_above = float(((boot <= hi).sum() + 1) / (b + 1))  # H0: at most hi
    se = float(boot.std(ddof=1)) if b > 1 else float("nan")
    target = _se_for_power(band, power_at, alpha, 0.8) if lo < power_at < hi else float("nan")
    needed = float(k * (se / target) ** 2) if np.isfinite(target) and se > 0 else float("nan")
    return Equivalence(est, *_percentile(boot, 1 - 2 * alpha), max(p_low_side, p_high_side),
                       p_below, p_above, se, tost_power(se, band, power_at, alpha), k, needed)


__all__ = [
    "N_RESAMPLES", "STATISTICS", "Interval", "Contrast", "clopper_pearson", "wilson", "newcombe_diff",
    "fisher_exact_p", "proportion_contrast", "bootstrap_mean_ci", "ratio_of_means_ci",
    "cluster_bootstrap_ci", "bootstrap_p_value", "cluster_bootstrap_diff", "benjamini_hochberg",
    "Equivalence", "tost_power", "cluster_equivalence",
]
