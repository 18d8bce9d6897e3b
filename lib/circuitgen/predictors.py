"""What predicts where a circuit fails: per-prompt features against its scores (week 12).

The input is scored prompts from :func:`circuitgen.sweeps.run_sweep` (any mix of the variation
families). The pipeline:

- :func:`feature_table`: one row per scored prompt with the responses (``circuit_ld``, the
  circuit's logit difference; ``circuit_wrong``, whether it is <= 0;
  ``circuit_wrong_model_right``, the same among prompts the model gets right) and the features
  (:data:`NUMERIC`, :data:`CATEGORICAL`). Nothing is dropped silently: a missing feature column
  raises, a missing category becomes the level ``"unknown"``, unscorable rows are counted in
  ``attrs``.
- :data:`OUTCOMES`: the two outcomes not mechanically tied to the model's confidence (week 12's
  headline). ``circuit_ld`` itself is not one: any circuit that keeps a constant share of the
  model's effect makes it track the model's logit difference, so "confidence predicts circuit_ld"
  says nothing about where the circuit fails. :class:`ProportionalShare` fits that share on the
  training prompts and gives ``circuit_excess``, the circuit's logit difference beyond it.
- :class:`Standardizer`: z-scores the numeric features with the **training** set's mean and SD,
  so a coefficient reads "nats per standard deviation" and held-out prompts use the same scale.
- :func:`fit_ols` / :func:`fit_logit`: statsmodels fits with standard errors clustered by
  template (:func:`cluster_groups`; prompts of one template share its wording and, in the scorer,
  its ablation means, so they are not independent); HC3 (OLS) stays an option;
  :func:`coef_table` gives each term's estimate and 95% CI; :func:`partial_eta_squared` the
  type-II ANOVA share of variance each term explains given the others (an effect size).
- :func:`heldout_r2`, :func:`auc`, :func:`compare_models`: how well a fit on one prompt set
  predicts another, generated with a different seed.
- :func:`replication`: terms that are clearly non-zero with the same sign in both sets, after a
  Benjamini-Hochberg correction across each fit's terms; :func:`heldout_check` runs the whole
  seed-0-train / seed-1-test check for one outcome.
- :func:`vif`: variance inflation factors, to say which coefficients collinearity blurs.
- :func:`score_families`: the data: every variation family generated with one seed and scored
  family by family (so the ablation means are each family's own, as in weeks 8-11), read from
  the score files weeks 8-11 wrote when they are fresh.
- :func:`ablation_agreement`: the same prompts scored with two ablations (mean vs resample, after
  Miller et al. 2024): per-condition faithfulness under each, and how far the conclusions agree.
"""

from __future__ import annotations

import pathlib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

NUMERIC = {
    "dist_s1_s2": "tokens from S1 to S2",
    "io_pos": "token index of the (first) IO mention",
    "n_tokens": "prompt length in tokens, BOS included",
    "log_io_rank": "log10 of the IO name's token id (low: a frequent word)",
    "log_s_rank": "log10 of the S name's token id",
    "io_mentions": "times the IO is named before S2",
    "s_mentions": "times S is named",
    "distractor": "1 if a third name appears, else 0",
    "filler_tokens": "filler tokens inserted between S1 and S2",
    "model_ld": "the model's own logit difference IO - S (its confidence)",
}
CATEGORICAL = {
    "order": "ABBA (IO first) or BABA (S first)",
    "gender_pair": "same / mixed gender of IO and S, or unknown",
    "family": "variation family",
}
REQUIRED = ("family", "condition", "template", "order", "dist_s1_s2", "io_pos", "n_tokens",
            "io_rank", "s_rank", "status", "logit_diff", "circuit_logit_diff")
# The reference level of each categorical (the first listed that is present).
REFERENCE_LEVELS = {"order": "BABA", "gender_pair": "mixed", "family": "lexical"}
# Outcomes that a circuit keeping a constant share of the model's effect does not predict by
# construction; each with how it is fitted.
OUTCOMES = {
    "circuit_wrong_model_right": ("logit", "the circuit alone prefers S (circuit_ld <= 0) on a "
                                  "prompt the model gets right (model_ld > 0)"),
    "circuit_excess": ("ols", "circuit_ld minus the proportional share of model_ld fitted on the "
                       "training prompts (nats)"),
}
# Prompts of one template id share its wording (the canonical ids ioi:k recur, same text, in the
# syntactic, domain and adversarial families) and, within a family, its ablation means: they are
# the clusters. Template ids nest (family, template), so clustering by template covers both;
# by=("family", "template") gives the finer clusters.
CLUSTER_BY = ("template",)


def feature_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Scored rows of ``scores`` as responses + features (see the module docstring)."""
    missing = [c for c in REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(f"the scores lack column(s) {missing}; pass the output of "
                         "circuitgen.sweeps.run_sweep on a variations prompt set.")
    ok = scores[scores.status == "ok"]
    out = pd.DataFrame(index=ok.index)
    out["family"] = ok["family"].astype(str)
    out["condition"] = ok["family"].astype(str) + "/" + ok["condition"].astype(str)
    out["template"] = ok["template"].astype(str)
    out["order"] = ok["order"].astype(str)
    same = ok["same_gender"] if "same_gender" in ok.columns else pd.Series(pd.NA, index=ok.index)
    out["gender_pair"] = [("same" if v else "mixed") if pd.notna(v) else "unknown" for v in same]
    for col in ("dist_s1_s2", "io_pos", "n_tokens"):
        out[col] = ok[col].astype(float)
    out["log_io_rank"] = np.log10(ok["io_rank"].astype(float))
    out["log_s_rank"] = np.log10(ok["s_rank"].astype(float))
    out["io_mentions"] = ok.get("io_mentions", pd.Series(1, index=ok.index)).astype(float)
    out["s_mentions"] = ok.get("s_mentions", pd.Series(2, index=ok.index)).astype(float)
    x = ok.get("x", pd.Series("", index=ok.index)).fillna("")
    out["distractor"] = (x.astype(str) != "").astype(float)
    out["filler_tokens"] = ok.get("filler_tokens", pd.Series(0, index=ok.index)).astype(float)
    out["model_ld"] = ok["logit_diff"].astype(float)
    out["circuit_ld"] = ok["circuit_logit_diff"].astype(float)
    out["circuit_wrong"] = (out["circuit_ld"] <= 0).astype(float)
    # Defined only where the model is right: NaN elsewhere, so a fit cannot use those rows
    # unnoticed (fit_logit refuses missing values; select them with model_right()).
    out["circuit_wrong_model_right"] = out["circuit_wrong"].where(out["model_ld"] > 0)
    for col in ("prompt", "io", "s"):
        if col in ok.columns:
            out[col] = ok[col]
    bad = out[list(NUMERIC) + ["circuit_ld"]].isna().any(axis=1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} scored rows have missing feature values "
                         f"(first: {out.index[bad][0]}); check the prompt set's columns.")
    out.attrs["n_input"], out.attrs["n_unscored"] = len(scores), int(len(scores) - len(ok))
    return out


@dataclass
class Standardizer:
    """z-scores with a fixed mean and SD (those of the training set); constant columns keep SD 1
    so they stay zero rather than dividing by zero."""

    mean: pd.Series
    sd: pd.Series

    @classmethod
    def fit(cls, df: pd.DataFrame, columns=tuple(NUMERIC)) -> Standardizer:
        cols = list(columns)
        sd = df[cols].std(ddof=0).replace(0.0, 1.0)
        return cls(mean=df[cols].mean(), sd=sd)

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        cols = list(self.mean.index)
        out[cols] = (df[cols] - self.mean) / self.sd
        return out


def formula(response: str, numeric=tuple(NUMERIC), categorical=tuple(CATEGORICAL),
            extra: tuple[str, ...] = ()) -> str:
    """A patsy formula with each categorical's reference level from :data:`REFERENCE_LEVELS`."""
    terms = list(numeric)
    for c in categorical:
        ref = REFERENCE_LEVELS.get(c)
        terms.append(f"C({c}, Treatment(reference={ref!r}))" if ref else f"C({c})")
    terms += list(extra)
    return f"{response} ~ " + (" + ".join(terms) if terms else "1")


def _check_levels(train: pd.DataFrame, test: pd.DataFrame, columns) -> None:
    for c in columns:
        unseen = sorted(set(test[c]) - set(train[c]))
        if unseen:
            raise ValueError(f"held-out prompts have {c} level(s) {unseen} that the training "
                             "prompts lack, so the fit cannot predict them; generate both sets "
                             "with the same families and conditions.")


def _levels_present(df: pd.DataFrame, categorical) -> list[str]:
    """Categoricals present with more than one level here (one level has no contrast to fit)."""
    return [c for c in categorical if c in df.columns and df[c].nunique() > 1]


def model_right(df: pd.DataFrame) -> pd.DataFrame:
    """The prompts the model gets right: where :func:`feature_table` defined
    ``circuit_wrong_model_right`` (from the raw ``model_ld > 0``; after a :class:`Standardizer`
    the sign of ``model_ld`` no longer says that). A circuit failing where the model fails too
    says nothing about the circuit."""
    if "circuit_wrong_model_right" not in df.columns:
        raise ValueError("the table has no circuit_wrong_model_right column; build it with "
                         "feature_table().")
    return df[df["circuit_wrong_model_right"].notna()]


@dataclass(frozen=True)
class ProportionalShare:
    """``circuit_ld ~ intercept + slope * model_ld``, fitted once on the training prompts.

    :meth:`excess` is the circuit's logit difference beyond that share: the part a circuit that
    keeps a constant share of the model's effect would not have, so features that predict it
    say something about the circuit rather than about the model's confidence. The default fit
    has an intercept: the share "proportional" to the model is proportional relative to the
    all-ablated baseline F(∅) (Hanna et al.'s normalised faithfulness, (C - ∅) = k (M - ∅), is
    C = k M + (1 - k) ∅, an affine line), and on the training set the excess is then
    uncorrelated with ``model_ld`` by construction. ``intercept=False`` is the through-origin
    share (Wang et al.'s ratio of means reads C = k M). The slope and intercept are **not**
    refitted on held-out prompts: their residuals are honest out-of-sample errors.
    """

    slope: float
    intercept: float

    @classmethod
    def fit(cls, train: pd.DataFrame, intercept: bool = True) -> ProportionalShare:
        x, y = train["model_ld"].to_numpy(float), train["circuit_ld"].to_numpy(float)
        if not intercept:
            return cls(slope=float(x @ y / (x @ x)), intercept=0.0)
        X = np.column_stack([np.ones_like(x), x])
        (a, b), *_ = np.linalg.lstsq(X, y, rcond=None)
        return cls(slope=float(b), intercept=float(a))

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """The share's circuit logit difference (so :func:`heldout_r2` can score the share)."""
        return self.intercept + self.slope * df["model_ld"].to_numpy(float)

    def excess(self, df: pd.DataFrame) -> pd.Series:
        return pd.Series(df["circuit_ld"].to_numpy(float) - self.predict(df), index=df.index,
                         name="circuit_excess")

    def add_excess(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with a ``circuit_excess`` column."""
        return df.assign(circuit_excess=self.excess(df))


def cluster_groups(df: pd.DataFrame, by=CLUSTER_BY) -> np.ndarray:
    """Integer cluster ids, row-aligned with ``df``, from the column(s) ``by``."""
    cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"clustering by {cols} needs column(s) {missing}; pass a feature table "
                         "(it carries family and template) or choose cov='HC3'.")
    keys = df[cols].astype(str).agg("\x1f".join, axis=1)
    return pd.factorize(keys)[0]


COV_TYPES = ("cluster", "HC3", "HC1", "HC0", "nonrobust")


def _cov_args(df: pd.DataFrame, cov: str, by, logit: bool = False) -> dict:
    """statsmodels fit keywords. Clustered fits use t with G - 1 degrees of freedom (CRV1, with
    statsmodels' G/(G-1) * (N-1)/(N-K) correction), as Cameron & Miller (2015) advise."""
    if cov not in COV_TYPES:
        raise ValueError(f"cov must be one of {COV_TYPES}, not {cov!r}.")
    if logit and cov in ("HC1", "HC2", "HC3"):
        raise ValueError(f"statsmodels' Logit has no {cov} (it would silently compute HC0); "
                         "use cov='cluster', 'HC0' or 'nonrobust'.")
    if cov == "cluster":
        return {"cov_type": "cluster", "cov_kwds": {"groups": cluster_groups(df, by)},
                "use_t": True}
    return {"cov_type": cov}


def fit_ols(df: pd.DataFrame, spec: str, cov: str = "cluster", by=CLUSTER_BY):
    """OLS; standard errors clustered by ``by`` (default: template), or ``cov="HC3"``.
    Missing values raise: a row silently dropped would shift the cluster ids off their rows."""
    import statsmodels.formula.api as smf

    return smf.ols(spec, data=df, missing="raise").fit(**_cov_args(df, cov, by))


def fit_logit(df: pd.DataFrame, spec: str, cov: str = "cluster", by=CLUSTER_BY):
    """Logistic regression (maximum likelihood), errors clustered as in :func:`fit_ols`. For
    ``circuit_wrong_model_right`` pass :func:`model_right` rows (other rows are NaN and raise).
    A fit that does not converge (near-separation) is reported through
    ``result.mle_retvals["converged"]``, which :func:`heldout_check` carries, not as a warning."""
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return smf.logit(spec, data=df, missing="raise").fit(disp=0, maxiter=200,
                                                              **_cov_args(df, cov, by, logit=True))


def term_label(term: str) -> str:
    """``C(order, Treatment(reference='BABA'))[T.ABBA]`` -> ``order=ABBA``."""
    if term.startswith("C(") and "[T." in term:
        name = term[2:].split(",")[0].split(")")[0]
        return f"{name}={term.split('[T.')[1].rstrip(']')}"
    return term


def coef_table(fit, exp: bool = False) -> pd.DataFrame:
    """Each term's estimate, 95% CI and p-value (``exp``: as odds ratios), intercept left out."""
    ci = fit.conf_int()
    tab = pd.DataFrame({"estimate": fit.params, "lo": ci[0], "hi": ci[1], "p": fit.pvalues})
    tab = tab.drop(index="Intercept", errors="ignore")
    if exp:
        tab[["estimate", "lo", "hi"]] = np.exp(tab[["estimate", "lo", "hi"]])
    tab.index = [term_label(t) for t in tab.index]
    tab.index.name = "term"
    tab.attrs["odds_ratio"] = exp
    return tab


def partial_eta_squared(fit) -> pd.Series:
    """Type-II ANOVA partial eta^2 per term: SS_term / (SS_term + SS_residual). Sums of squares
    do not depend on the covariance estimator, so the model is refitted with the classical one
    (statsmodels' ANOVA would otherwise turn robust or clustered errors into Wald statistics)."""
    import statsmodels.api as sm

    aov = sm.stats.anova_lm(fit.model.fit(), typ=2)
    resid = aov.loc["Residual", "sum_sq"]
    eta = (aov["sum_sq"] / (aov["sum_sq"] + resid)).drop("Residual")
    eta.index = [i[2:].split(",")[0].split(")")[0] if i.startswith("C(") else i for i in eta.index]
    return eta


def heldout_r2(fit, test: pd.DataFrame, response: str) -> float:
    """Out-of-sample R^2: 1 - SSE / SST with SST about the held-out mean (can be negative)."""
    y = test[response].to_numpy(float)
    pred = np.asarray(fit.predict(test), dtype=float)
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def auc(labels, scores) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half
    (the Mann-Whitney U statistic over n_pos * n_neg)."""
    from scipy.stats import mannwhitneyu

    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    if y.all() or not y.any():
        raise ValueError("AUC needs both positive and negative labels.")
    u = mannwhitneyu(s[y], s[~y], alternative="two-sided").statistic
    return float(u / (y.sum() * (~y).sum()))


def vif(df: pd.DataFrame, columns=tuple(NUMERIC)) -> pd.Series:
    """Variance inflation factor of each numeric feature given the others (constant ones: NaN)."""
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    cols = [c for c in columns if df[c].std() > 0]
    X = np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in cols])
    out = pd.Series({c: variance_inflation_factor(X, i + 1) for i, c in enumerate(cols)})
    return out.reindex(list(columns))


def model_specs(response: str, df: pd.DataFrame) -> dict[str, str]:
    """The nested comparison: the sweep's labels (condition, + template), the model's own
    confidence alone, and generic features without and with it. For ``circuit_ld`` the
    "confidence alone" row is the tautology (a constant-share circuit scores high on it); for the
    :data:`OUTCOMES` it is only a covariate."""
    numeric = [c for c in NUMERIC if c != "model_ld" and df[c].std() > 0]
    cats = _levels_present(df, CATEGORICAL)
    return {
        "condition labels": f"{response} ~ C(condition)",
        "condition + template": f"{response} ~ C(condition) + C(template)",
        "confidence alone": f"{response} ~ model_ld",
        "features": formula(response, numeric, cats),
        "features + confidence": formula(response, numeric + ["model_ld"], cats),
    }


def compare_models(train: pd.DataFrame, test: pd.DataFrame, response: str = "circuit_ld",
                   specs: dict[str, str] | None = None) -> pd.DataFrame:
    """Per model spec: estimable parameters, whether the design is rank-deficient (nested
    factors; predictions then come from the minimum-norm solution), in-sample and held-out R^2
    (for ``circuit_wrong``: the held-out AUC of the linear score as well)."""
    from statsmodels.tools.sm_exceptions import SingularMatrixWarning

    specs = specs or model_specs(response, train)
    _check_levels(train, test, ["condition", "template"] + _levels_present(train, CATEGORICAL))
    rows = []
    for name, spec in specs.items():
        with warnings.catch_warnings():  # reported in the table instead
            warnings.simplefilter("ignore", category=SingularMatrixWarning)
            fit = fit_ols(train, spec, cov="nonrobust")  # only its predictions are used
        row = {"model": name, "n_params": int(fit.df_model) + 1,
               "rank_deficient": bool(fit.model.rank < fit.model.exog.shape[1]),
               "r2_train": fit.rsquared, "r2_heldout": heldout_r2(fit, test, response)}
        if response == "circuit_wrong":
            row["auc_heldout"] = auc(test[response], fit.predict(test))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q) across one fit's terms: with a dozen terms, one
    whose 95% CI just excludes 0 by chance is likely somewhere. NaN p-values stay NaN and do not
    count as tests (:func:`circuitgen.stats.benjamini_hochberg`, the book's one BH)."""
    from circuitgen.stats import benjamini_hochberg

    return benjamini_hochberg(np.asarray(p, dtype=float))[1]


def _sides(tab: pd.DataFrame, null: float, fdr: float | None) -> np.ndarray:
    """+1 / -1 where a term is clearly above / below the null, else 0: by BH-adjusted p at most
    ``fdr`` when the table has p-values and ``fdr`` is set, otherwise by its CI."""
    if fdr is not None and "p" in tab.columns:
        sig = bh_adjust(tab["p"]) <= fdr  # rejected at FDR level fdr, as in circuitgen.stats
        return np.where(sig, np.sign(tab["estimate"].to_numpy(float) - null), 0).astype(int)
    return np.where(tab["lo"] > null, 1, np.where(tab["hi"] < null, -1, 0))


def replication(a: pd.DataFrame, b: pd.DataFrame, names=("train", "heldout"),
                fdr: float | None = 0.05) -> pd.DataFrame:
    """Two coefficient tables side by side; ``verdict``: ``replicates`` (clearly away from the
    null on the same side in both), ``one set only``, ``opposite signs`` or ``no clear effect``.
    The null is 0, or 1 for odds ratios (``coef_table(..., exp=True)``).

    "Clearly" means a Benjamini-Hochberg adjusted p (``q_<name>``, across each table's terms)
    at most ``fdr``, which is the same as the term's FCR-adjusted CI (Benjamini & Yekutieli 2005)
    excluding the null; with ``fdr=None`` or tables without p-values, the given 95% CIs."""
    null = 1.0 if a.attrs.get("odds_ratio") else 0.0
    x, y = names
    out = a[["estimate", "lo", "hi"]].add_suffix(f"_{x}").join(
        b[["estimate", "lo", "hi"]].add_suffix(f"_{y}"), how="outer")
    sides = {}
    for name, tab in ((x, a), (y, b)):
        sides[name] = pd.Series(_sides(tab, null, fdr), index=tab.index).reindex(out.index,
                                                                                 fill_value=0)
        if fdr is not None and "p" in tab.columns:
            out[f"q_{name}"] = pd.Series(bh_adjust(tab["p"]), index=tab.index)
    sa, sb = sides[x].to_numpy(), sides[y].to_numpy()
    out.attrs["odds_ratio"] = bool(a.attrs.get("odds_ratio"))
    out["verdict"] = np.select(
        [(sa != 0) & (sa == sb), (sa != 0) & (sb != 0), (sa != 0) | (sb != 0)],
        ["replicates", "opposite signs", "one set only"], "no clear effect")
    return out


def summarise_terms(table: pd.DataFrame, verdict: str = "replicates", name: str = "train",
                    digits: int = 2) -> str:
    """The terms of a :func:`replication` table with ``verdict``, as prose for a glued sentence:
    ``"io_pos +0.33 [0.21, 0.45]; ..."`` (odds ratios as ``"x0.74 [...]"``), largest effect first;
    ``"none"`` if there are none. Prose built from the table cannot drift from it."""
    rows = table[table["verdict"] == verdict]
    if rows.empty:
        return "none"
    est, lo, hi = (rows[f"{c}_{name}"] for c in ("estimate", "lo", "hi"))
    odds = bool(table.attrs.get("odds_ratio"))
    size = np.abs(np.log(est)) if odds else np.abs(est)
    fmt = (lambda v: f"x{v:.{digits}f}") if odds else (lambda v: f"{v:+.{digits}f}")
    return "; ".join(f"{t} {fmt(est[t])} [{lo[t]:.{digits}f}, {hi[t]:.{digits}f}]"
                     for t in size.sort_values(ascending=False).index)


SEPARATION_BOUND = 10.0
SEPARATION_SE_BOUND = 5.0


def separated_terms(fit, bound: float = SEPARATION_BOUND,
                    se_bound: float = SEPARATION_SE_BOUND) -> list[str]:
    """Logit terms whose coefficient ran past ``bound`` (log-odds per SD, an odds ratio beyond
    e^10), or whose standard error exceeds ``se_bound`` (a 95% CI spanning odds ratios beyond
    e^±10): the two signs of (quasi-)separation, where the likelihood rises without limit along
    the term. Where the optimiser stopped on such a term depends on the arithmetic (another CPU
    or thread count stops it elsewhere), and its sandwich error either collapses (the scores
    vanish), so it would look like the clearest effect of all, or explodes. Either way it has no
    estimate to report. OLS fits have none."""
    if not hasattr(fit, "mle_retvals"):
        return []
    params = fit.params.drop("Intercept", errors="ignore")
    se = np.asarray(fit.bse.reindex(params.index), dtype=float)
    wild = (np.abs(params.to_numpy()) > bound) | ~(se <= se_bound)
    return [term_label(t) for t in params.index[wild]]


def _drop_inference(tab: pd.DataFrame, terms: list[str]) -> pd.DataFrame:
    """``tab`` with no p-value and an unbounded CI for ``terms``."""
    tab = tab.copy()
    odds = bool(tab.attrs.get("odds_ratio"))
    tab.loc[terms, ["lo", "hi", "p"]] = [0.0 if odds else -np.inf, np.inf, np.nan]
    return tab


def outcome_rows(df: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """The rows of a feature table where ``outcome`` (one of :data:`OUTCOMES`) is defined."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {list(OUTCOMES)}, not {outcome!r}.")
    if outcome not in df.columns:
        raise ValueError(f"the table has no {outcome!r} column; for circuit_excess add it with "
                         "ProportionalShare.fit(train).add_excess(table) (one share, fitted on "
                         "the training set, for both sets).")
    return model_right(df) if outcome == "circuit_wrong_model_right" else df


@dataclass
class HeldoutCheck:
    """One outcome fitted on the training prompts and on the held-out prompts (same spec).
    ``score``: the **training** fit's held-out R^2 (OLS) or AUC (logit; NaN when the held-out
    outcome has one class only, as for a model whose circuit is never wrong); ``table``: the two
    fits' coefficients (odds ratios for a logit) and :func:`replication` verdicts; ``converged``:
    whether each logit reached its maximum; ``separated``: each fit's terms that separate the
    outcome (see :func:`separated_terms`), reported with an unbounded CI and no p-value."""

    outcome: str
    spec: str
    fit_train: object
    fit_heldout: object
    table: pd.DataFrame
    score_name: str
    score: float
    n_clusters: tuple[int, int]
    converged: tuple[bool, bool] = (True, True)
    separated: tuple[list, list] = ([], [])


def heldout_check(train: pd.DataFrame, heldout: pd.DataFrame, outcome: str,
                  spec: str | None = None, cov: str = "cluster", by=CLUSTER_BY,
                  fdr: float | None = 0.05) -> HeldoutCheck:
    """The seed-0-train / seed-1-test check of one :data:`OUTCOMES` entry, by default with the
    "features + confidence" spec (confidence as a covariate only); any other numeric column
    (``circuit_ld``, for contrast) is fitted by OLS on all rows. Both tables must be
    standardised with the training set's :class:`Standardizer`, and for ``circuit_excess`` carry
    the training set's :class:`ProportionalShare` excess."""
    kind = OUTCOMES.get(outcome, ("ols",))[0]  # another column (circuit_ld): OLS on all rows
    tr, te = ((outcome_rows(train, outcome), outcome_rows(heldout, outcome))
              if outcome in OUTCOMES else (train, heldout))
    _check_levels(tr, te, _levels_present(tr, CATEGORICAL))
    spec = spec or model_specs(outcome, tr)["features + confidence"]
    fitter = fit_logit if kind == "logit" else fit_ols
    with warnings.catch_warnings():  # reported in ``converged`` instead
        if kind == "logit":
            from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", PerfectSeparationWarning)
        fa, fb = fitter(tr, spec, cov, by), fitter(te, spec, cov, by)
    converged = tuple(bool(getattr(f, "mle_retvals", {}).get("converged", True)) for f in (fa, fb))
    separated = tuple(separated_terms(f) for f in (fa, fb))
    tabs = [_drop_inference(coef_table(f, exp=kind == "logit"), sep)
            for f, sep in zip((fa, fb), separated)]
    table = replication(*tabs, fdr=fdr)
    if kind == "logit":  # NaN when the held-out rows have one class only (nothing to rank)
        name, score = "auc_heldout", (auc(te[outcome], fa.predict(te)) if te[outcome].nunique() == 2
                                      else float("nan"))
    else:
        name, score = "r2_heldout", heldout_r2(fa, te, outcome)
    n_cl = tuple(int(len(np.unique(cluster_groups(d, by)))) for d in (tr, te))
    return HeldoutCheck(outcome, spec, fa, fb, table, name, float(score), n_cl, converged,
                        separated)


def compare_classifiers(train: pd.DataFrame, test: pd.DataFrame,
                        response: str = "circuit_wrong_model_right",
                        specs: dict[str, str] | None = None) -> pd.DataFrame:
    """The held-out AUC of logistic fits of a binary outcome (default: circuit wrong on prompts
    the model gets right, so only those rows): confidence alone, features, features + confidence.
    The condition-label specs are left out: conditions where the circuit is never wrong separate
    perfectly and make the logit's estimates diverge."""
    if response in OUTCOMES:
        train, test = outcome_rows(train, response), outcome_rows(test, response)
    if specs is None:
        full = model_specs(response, train)
        specs = {k: full[k] for k in ("confidence alone", "features", "features + confidence")}
    _check_levels(train, test, _levels_present(train, CATEGORICAL))
    rows = []
    for name, spec in specs.items():
        fit = fit_logit(train, spec, cov="nonrobust")  # only its predictions are used
        rows.append({"model": name, "n_params": int(fit.df_model) + 1,
                     "auc_train": auc(train[response], fit.predict(train)),
                     "auc_heldout": auc(test[response], fit.predict(test))})
    out = pd.DataFrame(rows).set_index("model")
    out.attrs["n"] = (len(train), len(test))
    return out


def score_families(model, spec, seed: int, n_per_condition: int, families=None,
                   ablation=None, batch_size: int = 16, save: bool = False,
                   output_dir: str | None = None, log=print) -> pd.DataFrame:
    """Every family in ``families`` (default: all) generated with ``seed`` and scored one family
    at a time through its score file (:func:`circuitgen.sweeps.family_scores`: the file weeks
    8-11 wrote is read when it was made from the same prompts, circuit, ablation and scoring code,
    else the family is scored and the file written); rows keep ``family`` and ``condition``;
    ``attrs["prompt_sets"]`` has each family's scoring metadata, ``attrs["score_files"]`` the
    files and, with ``save``, ``attrs["saved"]`` the prompt CSVs written
    (:func:`circuitgen.sweeps.save_prompt_set`)."""
    from circuitgen import sweeps, variations

    parts, metas, saved, files = [], {}, [], []
    for fam in families or variations.FAMILIES:
        ps = variations.generate_family(fam, model, n_per_condition=n_per_condition, seed=seed)
        if save:
            saved.append(sweeps.save_prompt_set(ps, model.circuitgen.model, seed, output_dir))
        part = sweeps.family_scores(model, spec, ps, seed=seed, ablation=ablation,
                                    output_dir=output_dir, batch_size=batch_size, log=log)
        files.append(pathlib.Path(part.attrs.pop("score_file")))
        metas[fam] = part.attrs["circuitgen"]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.attrs = {"prompt_sets": metas, "saved": saved, "score_files": files}
    return out


def ablation_agreement(a: pd.DataFrame, b: pd.DataFrame, names=("mean", "resample"),
                       seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """``a`` and ``b``: the same prompts scored two ways (rows aligned by index). Returns a
    per-condition table (faithfulness, ratio of means, with paired-bootstrap 95% CI, and the share
    of prompts where the circuit is wrong, under each) and a summary: per-prompt Pearson r of the
    circuit's logit difference, Spearman rho of the conditions' faithfulness, the share of prompts
    whose circuit-wrong label agrees."""
    from scipy.stats import pearsonr, spearmanr

    from circuitgen.sweeps import ratio_of_means_ci

    if not a.index.equals(b.index) or not (a["prompt"] == b["prompt"]).all():
        raise ValueError("ablation_agreement needs the same prompts in the same rows; score one "
                         "prompt table twice, changing only the ablation.")
    ok = (a.status == "ok") & (b.status == "ok")
    fa, fb = feature_table(a[ok]), feature_table(b[ok])
    rows = []
    for cond, idx in fa.groupby("condition", sort=False).groups.items():
        row = {"condition": cond, "n": len(idx)}
        for name, ft in zip(names, (fa, fb)):
            g = ft.loc[idx]
            est, lo, hi = ratio_of_means_ci(g.circuit_ld, g.model_ld, seed=seed)
            row |= {f"faith_{name}": est, f"faith_{name}_lo": lo, f"faith_{name}_hi": hi,
                    f"wrong_{name}": g.circuit_wrong.mean()}
        rows.append(row)
    table = pd.DataFrame(rows).set_index("condition")
    x, y = names
    summary = {
        "n_prompts": int(ok.sum()),
        "pearson_r_circuit_ld": float(pearsonr(fa.circuit_ld, fb.circuit_ld)[0]),
        "spearman_rho_conditions": float(spearmanr(table[f"faith_{x}"], table[f"faith_{y}"])[0]),
        "faithfulness_overall": {n: float(ft.circuit_ld.mean() / ft.model_ld.mean())
                                 for n, ft in zip(names, (fa, fb))},
        "wrong_overall": {n: float(ft.circuit_wrong.mean()) for n, ft in zip(names, (fa, fb))},
        "wrong_label_agreement": float((fa.circuit_wrong == fb.circuit_wrong).mean()),
    }
    return table, summary



# --------------------------------------------------------------------------------------------
# Per-circuit inputs from the week-14 score tables (week 15)

ALIGN_KEYS = ("template", "family", "condition", "order")
"""Columns a score row and its prompt must agree on (beside ``prompt_id``)."""
SCORE_COLUMNS = ("circuit", "n_nodes", "ablation", "logit_diff", "empty_logit_diff",
                 "circuit_logit_diff")


def circuit_rows(scores: pd.DataFrame, prompts: pd.DataFrame, circuit: str,
                 ablation: str = "mean", source: str | None = None) -> pd.DataFrame:
    """One circuit's rows of a long score table (:func:`circuitgen.curves.score_circuits`
    format: ``circuit, n_nodes, prompt_id, ..., logit_diff, empty_logit_diff,
    circuit_logit_diff, ablation``) joined with the prompts they score, as :func:`feature_table`
    input (``status`` "ok"; ``source`` added when given). The rows are matched by ``prompt_id``
    and must agree on :data:`ALIGN_KEYS` (those both tables have): prompts regenerated
    differently from those that were scored (another generator, seed or tokenizer) raise rather
    than join wrong scores to features."""
    for name, df, cols in (("scores", scores, ("circuit", "ablation", "prompt_id")),
                           ("prompts", prompts, ("prompt_id",))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"the {name} lack column(s) {missing}.")
    sel = scores[(scores["circuit"] == circuit) & (scores["ablation"] == ablation)]
    if sel.empty:
        raise ValueError(f"no rows for circuit {circuit!r} under {ablation!r} ablation; the table "
                         f"has circuits {sorted(scores['circuit'].unique())} and ablations "
                         f"{sorted(scores['ablation'].unique())}.")
    for name, ids in (("score", sel["prompt_id"]), ("prompt", prompts["prompt_id"])):
        dup = ids[ids.duplicated()]
        if len(dup):
            raise ValueError(f"prompt_id {dup.iloc[0]} appears twice among the {name} rows "
                             f"(circuit {circuit!r}, {ablation!r}); ids must be unique.")
    only_scores = sorted(set(sel["prompt_id"]) - set(prompts["prompt_id"]))
    only_prompts = sorted(set(prompts["prompt_id"]) - set(sel["prompt_id"]))
    if only_scores or only_prompts:
        raise ValueError(f"scores and prompts do not cover the same prompts: prompt_id(s) "
                         f"{only_scores[:5]} scored but not in the prompts, {only_prompts[:5]} in "
                         "the prompts but not scored. Regenerate the prompts exactly as scored, "
                         "or re-run the scoring (scripts/week14.py, scripts/week15.py).")
    keys = [c for c in ALIGN_KEYS if c in sel.columns and c in prompts.columns]
    joined = prompts.merge(sel[["prompt_id", *keys, *[c for c in SCORE_COLUMNS if c in sel]]],
                           on="prompt_id", how="left", suffixes=("", "__scored"),
                           validate="one_to_one")
    for c in keys:
        bad = joined[c].astype(str) != joined[f"{c}__scored"].astype(str)
        if bad.any():
            row = joined[bad].iloc[0]
            raise ValueError(f"scores and prompts are misaligned: prompt_id {row['prompt_id']} has "
                             f"{c} {row[f'{c}__scored']!r} in the scores but {row[c]!r} in the "
                             f"prompts ({int(bad.sum())} row(s) differ). The prompts are not the "
                             "ones that were scored: regenerate them with the same generator, "
                             "seed and tokenizer, or re-run the scoring.")
    out = joined.drop(columns=[f"{c}__scored" for c in keys])
    out["status"] = "ok"
    if source is not None:
        out["source"] = source
    return out


@dataclass
class ScoreSources:
    """Score tables and the prompts they score, loaded once for every circuit: ``train`` and
    ``heldout`` are lists of ``(source label, scores, prompts)``."""

    train: list
    heldout: list

    @property
    def circuits(self) -> list[str]:
        """The circuits every table has, in the first table's order."""
        tables = [s for _, s, _ in self.train + self.heldout]
        common = set.intersection(*(set(t["circuit"]) for t in tables))
        return [c for c in dict.fromkeys(tables[0]["circuit"]) if c in common]


HANDWRITTEN_SOURCE = "hand-written"


def prompts_as_scored(model, family: str, seed: int, scored) -> pd.DataFrame:
    """``family``'s prompts of ``seed`` as the week-14 table ``scored`` (a
    :class:`circuitgen.tables.ResultTable`) scored them: weeks 8-11's size (20 per condition)
    unless the prompts' fingerprint recorded in the table says otherwise, as in a small run
    (``N_PER_CONDITION=4``); then the size is the table's largest count of prompts per condition.
    When neither size reproduces the recorded prompts, the 20-per-condition prompts are returned
    and :func:`circuit_rows` reports the misalignment."""
    from circuitgen import generalise
    from circuitgen import tables as T

    prompts = generalise.family_prompts(model, family, seed)
    recorded = scored.meta.get("inputs", {}).get("prompts")
    if recorded is None or T.fingerprint({"prompts": prompts}) == T.fingerprint({"prompts": recorded}):
        return prompts
    n = int(scored.df.groupby("condition")["prompt_id"].nunique().max())
    other = generalise.family_prompts(model, family, seed, n_per_condition=n)
    return other if T.fingerprint({"prompts": other}) == T.fingerprint({"prompts": recorded}) else prompts


def score_sources(model, families=None, train_seed: int = 0, heldout_seed: int = 1,
                  handwritten: bool = True, scores_dir=None) -> ScoreSources:
    """Week 15's data: train = each family's week-14 table of ``train_seed``, held out = those of
    ``heldout_seed`` plus (``handwritten``) the hand-written prompts' table, each with its prompts
    (regenerated by :func:`circuitgen.generalise.family_prompts`, loaded by
    :func:`circuitgen.heldout.load_handwritten`). Source labels: ``seed <k>``,
    :data:`HANDWRITTEN_SOURCE`. A missing table says which script writes it."""

    from circuitgen import generalise, heldout
    from circuitgen import tables as T
    from circuitgen.paths import result_path

    name = model.circuitgen.model
    def table(stem: str, script: str) -> T.ResultTable:
        path = result_path("scores", name, stem, folder=scores_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; {script} writes it.")
        return T.load_table(path)

    fams = list(families or generalise.FAMILIES)
    sets: dict[str, list] = {"train": [], "heldout": []}
    for part, seed in (("train", train_seed), ("heldout", heldout_seed)):
        for fam in fams:
            scored = table(f"{fam}-seed{seed}-circuits", "scripts/week14.py")
            sets[part].append((f"seed {seed}", scored.df, prompts_as_scored(model, fam, seed, scored)))
    if handwritten:
        prompts = heldout.load_handwritten(model)
        sets["heldout"].append((HANDWRITTEN_SOURCE,
                                table("heldout-handwritten-circuits", "scripts/week15.py").df,
                                prompts[prompts["family"].isin(fams)].reset_index(drop=True)))
    return ScoreSources(sets["train"], sets["heldout"])


def circuit_inputs(sources: ScoreSources, circuit: str, ablation: str = "mean"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) :func:`feature_table` inputs of one circuit under one ablation, each
    with a ``source`` column (``seed 0``; ``seed 1`` or ``hand-written``) and a fresh index."""
    def part(items) -> pd.DataFrame:
        frames = []
        for label, scores, prompts in items:
            sub = (scores[scores["family"].isin(set(prompts["family"]))]
                   if "family" in scores.columns and "family" in prompts.columns else scores)
            frames.append(circuit_rows(sub, prompts, circuit, ablation, source=label))
        return pd.concat(frames, ignore_index=True)

    return part(sources.train), part(sources.heldout)


def circuit_feature_tables(train: pd.DataFrame, heldout: pd.DataFrame
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`feature_table` of each set, keeping its ``source`` column (so a notebook can
    report the hand-written held-out rows on their own)."""
    out = []
    for df in (train, heldout):
        ft = feature_table(df)
        if "source" in df.columns:
            ft["source"] = df.loc[ft.index, "source"]
        out.append(ft)
    return out[0], out[1]


__all__ = ["score_families", "ablation_agreement", "NUMERIC", "CATEGORICAL", "REFERENCE_LEVELS",
           "OUTCOMES", "CLUSTER_BY", "COV_TYPES", "SEPARATION_BOUND", "SEPARATION_SE_BOUND", "feature_table",
           "Standardizer",
           "ProportionalShare", "model_right", "outcome_rows", "cluster_groups", "formula",
           "fit_ols", "fit_logit", "coef_table", "partial_eta_squared", "heldout_r2", "auc",
           "vif", "model_specs", "compare_models", "compare_classifiers", "bh_adjust",
           "replication", "summarise_terms", "HeldoutCheck", "heldout_check", "separated_terms",
           "term_label", "ALIGN_KEYS", "circuit_rows", "ScoreSources", "HANDWRITTEN_SOURCE",
           "score_sources", "circuit_inputs", "circuit_feature_tables"]
