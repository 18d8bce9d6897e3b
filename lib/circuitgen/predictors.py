"""What predicts where a circuit fails: per-prompt features against its scores (week 12).

The input is scored prompts from :func:`circuitgen.sweeps.run_sweep` (any mix of the variation
families). The pipeline:

- :func:`feature_table`: one row per scored prompt with the responses (``circuit_ld``, the
  circuit's logit difference; ``circuit_wrong``, whether it is <= 0) and the features (:data:`NUMERIC`,
  :data:`CATEGORICAL`). Nothing is dropped silently: a missing feature column raises, a missing
  category becomes the level ``"unknown"``, unscorable rows are counted in ``attrs``.
- :class:`Standardizer`: z-scores the numeric features with the **training** set's mean and SD,
  so a coefficient reads "nats per standard deviation" and held-out prompts use the same scale.
- :func:`fit_ols` / :func:`fit_logit`: statsmodels fits (OLS with HC3 robust errors; logistic);
  :func:`coef_table` gives each term's estimate and 95% CI; :func:`partial_eta_squared` the
  type-II ANOVA share of variance each term explains given the others (an effect size).
- :func:`heldout_r2`, :func:`auc`, :func:`compare_models`: how well a fit on one prompt set
  predicts another, generated with a different seed.
- :func:`replication`: terms whose CI excludes 0 with the same sign in both sets.
- :func:`vif`: variance inflation factors, to say which coefficients collinearity blurs.
- :func:`score_families`: the data: every variation family generated with one seed and scored
  family by family (so the ablation means are each family's own, as in weeks 8-11).
- :func:`ablation_agreement`: the same prompts scored with two ablations (mean vs resample, after
  Miller et al. 2024): per-condition faithfulness under each, and how far the conclusions agree.
"""

from __future__ import annotations

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
    def fit(cls, df: pd.DataFrame, columns=tuple(NUMERIC)) -> "Standardizer":
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
    """Categoricals with more than one level here (a single level has no contrast to fit)."""
    return [c for c in categorical if df[c].nunique() > 1]


def fit_ols(df: pd.DataFrame, spec: str):
    """OLS with heteroscedasticity-robust (HC3) standard errors."""
    import statsmodels.formula.api as smf

    return smf.ols(spec, data=df).fit(cov_type="HC3")


def fit_logit(df: pd.DataFrame, spec: str):
    """Logistic regression (maximum likelihood)."""
    import statsmodels.formula.api as smf

    return smf.logit(spec, data=df).fit(disp=0, maxiter=200)


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
    (statsmodels' ANOVA would otherwise turn HC3 errors into Wald statistics)."""
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
    """The nested comparison: the sweep's labels (condition, + template) against generic features
    without and with the model's own confidence."""
    numeric = [c for c in NUMERIC if c != "model_ld" and df[c].std() > 0]
    cats = _levels_present(df, CATEGORICAL)
    return {
        "condition labels": f"{response} ~ C(condition)",
        "condition + template": f"{response} ~ C(condition) + C(template)",
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
            fit = fit_ols(train, spec)
        row = {"model": name, "n_params": int(fit.df_model) + 1,
               "rank_deficient": bool(fit.model.rank < fit.model.exog.shape[1]),
               "r2_train": fit.rsquared, "r2_heldout": heldout_r2(fit, test, response)}
        if response == "circuit_wrong":
            row["auc_heldout"] = auc(test[response], fit.predict(test))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def replication(a: pd.DataFrame, b: pd.DataFrame, names=("train", "heldout")) -> pd.DataFrame:
    """Two coefficient tables side by side; ``verdict``: ``replicates`` (both CIs exclude the null
    on the same side), ``one set only``, ``opposite signs`` or ``no clear effect``. The null is 0,
    or 1 for odds ratios (``coef_table(..., exp=True)``)."""
    null = 1.0 if a.attrs.get("odds_ratio") else 0.0
    x, y = names
    out = a[["estimate", "lo", "hi"]].add_suffix(f"_{x}").join(
        b[["estimate", "lo", "hi"]].add_suffix(f"_{y}"), how="outer")

    def side(lo, hi):
        return np.where(lo > null, 1, np.where(hi < null, -1, 0))

    sa = side(out[f"lo_{x}"], out[f"hi_{x}"])
    sb = side(out[f"lo_{y}"], out[f"hi_{y}"])
    out["verdict"] = np.select(
        [(sa != 0) & (sa == sb), (sa != 0) & (sb != 0), (sa != 0) | (sb != 0)],
        ["replicates", "opposite signs", "one set only"], "no clear effect")
    return out


def score_families(model, spec, seed: int, n_per_condition: int, families=None,
                   ablation=None, batch_size: int = 16, save: bool = False,
                   output_dir: str | None = None) -> pd.DataFrame:
    """Every family in ``families`` (default: all) generated with ``seed`` and scored with
    :func:`circuitgen.sweeps.run_sweep` one family at a time; rows keep ``family`` and
    ``condition``; ``attrs["prompt_sets"]`` has each family's scoring metadata and, with ``save``,
    ``attrs["saved"]`` the prompt CSVs written (:func:`circuitgen.sweeps.save_prompt_set`)."""
    from circuitgen import sweeps, variations

    parts, metas, saved = [], {}, []
    for fam in families or variations.FAMILIES:
        ps = variations.generate_family(fam, model, n_per_condition=n_per_condition, seed=seed)
        if save:
            saved.append(sweeps.save_prompt_set(ps, model.circuitgen.model, seed, output_dir))
        parts.append(sweeps.run_sweep(model, spec, ps, seed=seed, ablation=ablation,
                                      batch_size=batch_size))
        metas[fam] = parts[-1].attrs["circuitgen"]
    out = pd.concat(parts, ignore_index=True)
    out.attrs["prompt_sets"] = metas
    out.attrs["saved"] = saved
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


__all__ = ["score_families", "ablation_agreement", "NUMERIC", "CATEGORICAL", "REFERENCE_LEVELS", "feature_table", "Standardizer",
           "formula", "fit_ols", "fit_logit", "coef_table", "partial_eta_squared", "heldout_r2",
           "auc", "vif", "model_specs", "compare_models", "replication", "term_label"]
