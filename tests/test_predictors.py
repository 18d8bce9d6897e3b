"""What predicts circuit failure: features, fits, held-out checks, effect sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import predictors as P
from circuitgen import scorer, sweeps, variations


@pytest.fixture(scope="module")
def tiny_scores(tiny_gpt2, tiny_spec):
    spec = tiny_spec
    parts = [variations.generate_adversarial(tiny_gpt2, n_per_condition=3, seed=0,
                                             conditions=["base", "distractor", "double_io"]),
             variations.generate_lexical(tiny_gpt2, n_per_condition=3, seed=0,
                                         conditions=["names_same_gender", "names_mixed_gender"])]
    return pd.concat([sweeps.run_sweep(tiny_gpt2, spec, ps, seed=0) for ps in parts],
                     ignore_index=True)


def test_feature_table_values(tiny_scores):
    ft = P.feature_table(tiny_scores)
    ok = tiny_scores[tiny_scores.status == "ok"]
    assert len(ft) == len(ok) and ft.attrs["n_unscored"] == len(tiny_scores) - len(ok)
    assert set(P.NUMERIC) <= set(ft.columns) and not ft[list(P.NUMERIC)].isna().any().any()
    np.testing.assert_allclose(ft.log_io_rank, np.log10(ok.io_rank.astype(float)))
    assert (ft.distractor == (ok.x != "").astype(float)).all()
    assert ft.loc[ok.condition == "distractor", "distractor"].eq(1).all()
    assert ft.loc[ok.condition == "double_io", "io_mentions"].eq(2).all()
    assert (ft.circuit_wrong == (ok.circuit_logit_diff <= 0)).all()
    right = ok.logit_diff > 0
    assert ft.circuit_wrong_model_right[~right].isna().all()
    assert (ft.circuit_wrong_model_right[right] == (ok.circuit_logit_diff[right] <= 0)).all()
    assert (ft.model_ld == ok.logit_diff).all()
    assert set(ft.loc[ok.condition == "names_same_gender", "gender_pair"]) == {"same"}
    assert set(ft.loc[ok.condition == "names_mixed_gender", "gender_pair"]) == {"mixed"}
    assert ft.condition.str.startswith(("adversarial/", "lexical/")).all()


def test_feature_table_rejects_missing_columns(tiny_scores):
    with pytest.raises(ValueError, match="io_rank"):
        P.feature_table(tiny_scores.drop(columns=["io_rank"]))


def _planted(n: int, seed: int) -> pd.DataFrame:
    """Synthetic prompts where circuit_ld = 2 * z(dist_s1_s2) - 1 * z(model_ld) + 0.5 * ABBA + noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.normal(size=n) for c in P.NUMERIC})
    df["dist_s1_s2"] = rng.normal(10, 3, n)
    df["model_ld"] = rng.normal(4, 2, n)
    df["order"] = rng.choice(["ABBA", "BABA"], n)
    df["template"] = rng.integers(0, 60, n).astype(str)  # clusters without shared effects
    df["circuit_ld"] = (2 * (df.dist_s1_s2 - 10) / 3 - (df.model_ld - 4) / 2
                        + 0.5 * (df.order == "ABBA") + rng.normal(0, 1, n))
    return df


def test_ols_recovers_a_planted_effect_and_replicates():
    train, test = _planted(600, 0), _planted(600, 1)
    z = P.Standardizer.fit(train)
    spec = P.formula("circuit_ld", list(P.NUMERIC), ["order"])
    fa, fb = P.fit_ols(z.transform(train), spec), P.fit_ols(z.transform(test), spec)
    tab = P.coef_table(fa)
    for term, true in (("dist_s1_s2", 2.0), ("model_ld", -1.0), ("order=ABBA", 0.5)):
        assert tab.loc[term, "lo"] < true < tab.loc[term, "hi"], term
    rep = P.replication(tab, P.coef_table(fb))
    assert rep.loc["dist_s1_s2", "verdict"] == "replicates"
    assert rep.loc["model_ld", "verdict"] == "replicates"
    # Features with no effect do not all come out as replicated effects.
    assert (rep.loc[["io_pos", "n_tokens", "log_io_rank", "log_s_rank"], "verdict"] != "replicates").all()
    # Noise variance 1, signal variance 4 + 1 + 0.0625: the held-out R^2 is near 5.06 / 6.06.
    r2 = P.heldout_r2(fa, z.transform(test), "circuit_ld")
    assert r2 == pytest.approx(5.06 / 6.06, abs=0.04)
    # ... and it is exactly the test set's 1 - SSE/SST of the training fit (the in-sample value
    # also lies within 0.04 of 5.06 / 6.06, so the line above alone cannot tell them apart).
    assert r2 == pytest.approx(_hand_r2(fa.predict(z.transform(test)), test.circuit_ld), rel=1e-9)
    assert r2 != pytest.approx(fa.rsquared, abs=1e-3)


def _hand_r2(pred, y) -> float:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def _hand_auc(labels, scores) -> float:
    y, s = np.asarray(labels, bool), np.asarray(scores, float)
    pos, neg = s[y], s[~y]
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum())
                 / (len(pos) * len(neg)))


def _overfit(n: int, seed: int, n_noise: int = 20) -> pd.DataFrame:
    """y = x + noise, and ``n_noise`` features of pure noise: with few rows a fit on all of them
    explains much of its own training set and little of another."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"noise{i}": rng.normal(size=n) for i in range(n_noise)})
    df["x"] = rng.normal(size=n)
    df["circuit_ld"] = df.x + rng.normal(0, 1.5, n)
    df["circuit_wrong"] = (df.circuit_ld <= 0).astype(float)
    df["condition"] = np.where(np.arange(n) % 2, "a", "b")
    df["template"] = [f"t{i % 3}" for i in range(n)]
    return df


OVERFIT_SPEC = "{y} ~ x + " + " + ".join(f"noise{i}" for i in range(20))


def _lstsq_predict(train: pd.DataFrame, test: pd.DataFrame, y: str, cols) -> tuple[np.ndarray, np.ndarray]:
    """Least squares by hand: (predictions on train, predictions on test)."""
    X = lambda d: np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in cols])  # noqa: E731
    beta, *_ = np.linalg.lstsq(X(train), train[y].to_numpy(float), rcond=None)
    return X(train) @ beta, X(test) @ beta


def test_heldout_r2_is_out_of_sample_with_few_rows_and_many_noise_features():
    train, test = _overfit(30, 20), _overfit(300, 21)
    fit = P.fit_ols(train, OVERFIT_SPEC.format(y="circuit_ld"), cov="nonrobust")
    cols = ["x"] + [f"noise{i}" for i in range(20)]
    in_pred, out_pred = _lstsq_predict(train, test, "circuit_ld", cols)
    hand_train, hand_test = _hand_r2(in_pred, train.circuit_ld), _hand_r2(out_pred, test.circuit_ld)
    assert fit.rsquared == pytest.approx(hand_train, rel=1e-9)
    assert P.heldout_r2(fit, test, "circuit_ld") == pytest.approx(hand_test, rel=1e-9)
    assert hand_train > 0.6 and hand_test < hand_train - 0.4, (hand_train, hand_test)


def test_compare_models_scores_the_heldout_set():
    """R^2 and AUC on the held-out rows, by hand; both far below their in-sample values."""
    train, test = _overfit(30, 22), _overfit(300, 23)
    cols = ["x"] + [f"noise{i}" for i in range(20)]
    specs = {"x alone": "circuit_ld ~ x", "x + noise": OVERFIT_SPEC.format(y="circuit_ld")}
    tab = P.compare_models(train, test, "circuit_ld", specs)
    for name, use in (("x alone", ["x"]), ("x + noise", cols)):
        in_pred, out_pred = _lstsq_predict(train, test, "circuit_ld", use)
        assert tab.loc[name, "r2_train"] == pytest.approx(_hand_r2(in_pred, train.circuit_ld), rel=1e-9)
        assert tab.loc[name, "r2_heldout"] == pytest.approx(_hand_r2(out_pred, test.circuit_ld), rel=1e-9)
        assert tab.loc[name, "n_params"] == len(use) + 1
    noisy = tab.loc["x + noise"]
    assert noisy.r2_heldout < noisy.r2_train - 0.4
    assert noisy.r2_heldout < tab.loc["x alone", "r2_heldout"]
    wrong = P.compare_models(train, test, "circuit_wrong",
                             {"x + noise": OVERFIT_SPEC.format(y="circuit_wrong")})
    in_pred, out_pred = _lstsq_predict(train, test, "circuit_wrong", cols)
    auc_test = _hand_auc(test.circuit_wrong, out_pred)
    assert wrong.loc["x + noise", "auc_heldout"] == pytest.approx(auc_test, rel=1e-12)
    assert _hand_auc(train.circuit_wrong, in_pred) > auc_test + 0.15


def test_heldout_r2_on_the_training_set_is_the_in_sample_r2():
    df = _planted(200, 2)
    fit = P.fit_ols(df, "circuit_ld ~ dist_s1_s2 + model_ld")
    assert P.heldout_r2(fit, df, "circuit_ld") == pytest.approx(fit.rsquared, rel=1e-9)


def test_partial_eta_squared_of_a_single_predictor_is_r2():
    df = _planted(200, 3)
    fit = P.fit_ols(df, "circuit_ld ~ dist_s1_s2")
    assert P.partial_eta_squared(fit)["dist_s1_s2"] == pytest.approx(fit.rsquared, rel=1e-9)


def test_standardizer_uses_training_statistics():
    train, test = _planted(100, 4), _planted(50, 5)
    train["filler_tokens"] = 0.0
    z = P.Standardizer.fit(train)
    t = z.transform(train)
    np.testing.assert_allclose(t.dist_s1_s2.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(t.dist_s1_s2.std(ddof=0), 1)
    assert (t.filler_tokens == 0).all()
    np.testing.assert_allclose(z.transform(test).dist_s1_s2,
                               (test.dist_s1_s2 - train.dist_s1_s2.mean()) / train.dist_s1_s2.std(ddof=0))


def test_auc_equals_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80).astype(bool)
    s = np.round(rng.normal(size=80) + y, 1)  # rounded: ties
    pos, neg = s[y], s[~y]
    wins = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    brute = wins / (len(pos) * len(neg))
    assert P.auc(y, s) == pytest.approx(brute)
    with pytest.raises(ValueError, match="both"):
        P.auc(np.ones(5), np.arange(5))


def test_vif_is_one_over_one_minus_r2():
    df = _planted(300, 6)
    df["n_tokens"] = df.dist_s1_s2 * 0.8 + np.random.default_rng(7).normal(0, 1, 300)
    v = P.vif(df)
    others = [c for c in P.NUMERIC if c != "n_tokens"]
    X = np.column_stack([np.ones(300)] + [df[c] for c in others])
    beta, *_ = np.linalg.lstsq(X, df.n_tokens, rcond=None)
    r2 = 1 - ((df.n_tokens - X @ beta) ** 2).sum() / ((df.n_tokens - df.n_tokens.mean()) ** 2).sum()
    assert v["n_tokens"] == pytest.approx(1 / (1 - r2))
    assert v["n_tokens"] > 2 > v["io_pos"]


def test_compare_models_refuses_unseen_levels(tiny_scores):
    ft = P.feature_table(tiny_scores)
    train = ft[ft.family == "adversarial"]
    with pytest.raises(ValueError, match="levels?"):
        P.compare_models(train, ft)


def test_compare_models_on_its_own_training_set(tiny_scores):
    ft = P.Standardizer.fit(P.feature_table(tiny_scores)).transform(P.feature_table(tiny_scores))
    tab = P.compare_models(ft, ft)
    assert list(tab.index) == ["condition labels", "condition + template", "confidence alone",
                               "features", "features + confidence"]
    # Scored on the prompts it was fitted on, held-out R^2 is the in-sample R^2.
    np.testing.assert_allclose(tab.r2_heldout, tab.r2_train, atol=1e-9)
    assert tab.loc["features + confidence", "r2_train"] >= tab.loc["features", "r2_train"]


def test_replication_of_odds_ratios_uses_one_as_the_null():
    a = pd.DataFrame({"estimate": [2.0, 1.1], "lo": [1.5, 0.9], "hi": [3.0, 1.3]}, index=["x", "y"])
    a.attrs["odds_ratio"] = True
    rep = P.replication(a, a)
    assert list(rep.verdict) == ["replicates", "no clear effect"]


def test_term_label():
    assert P.term_label("C(order, Treatment(reference='BABA'))[T.ABBA]") == "order=ABBA"
    assert P.term_label("C(family)[T.syntactic]") == "family=syntactic"
    assert P.term_label("dist_s1_s2") == "dist_s1_s2"


def test_score_families_equals_one_sweep_per_family(tiny_gpt2, tiny_spec, tmp_path):
    spec = tiny_spec
    both = P.score_families(tiny_gpt2, spec, seed=3, n_per_condition=1,
                            families=["domain", "adversarial"], save=True, output_dir=tmp_path)
    saved = both.attrs["saved"]
    assert [p.parent for p in saved] == [tmp_path / "prompts"] * 2
    assert [p.name.split("-")[0] for p in saved] == ["domain", "adversarial"]
    assert "seed3" in saved[0].name and pd.read_csv(saved[0]).prompt.tolist() == \
        both[both.family == "domain"].prompt.tolist()
    for fam in ("domain", "adversarial"):
        generated = variations.generate_family(fam, tiny_gpt2, 1, seed=3)
        alone = sweeps.run_sweep(tiny_gpt2, spec, generated, seed=3)
        part = both[both.family == fam].reset_index(drop=True)
        assert (part.prompt == alone.prompt).all()
        np.testing.assert_array_equal(part.circuit_logit_diff, alone.circuit_logit_diff)
    assert set(both.attrs["prompt_sets"]) == {"domain", "adversarial"}
    # The families were scored through their score files, which a second call reads back.
    files = both.attrs["score_files"]
    assert [f.parent for f in files] == [tmp_path / "scores"] * 2 and all(f.exists() for f in files)
    again = P.score_families(tiny_gpt2, spec, seed=3, n_per_condition=1,
                             families=["domain", "adversarial"], output_dir=tmp_path, log=None)
    pd.testing.assert_frame_equal(again, both)
    assert again.attrs["prompt_sets"] == both.attrs["prompt_sets"]


def test_ablation_agreement(tiny_gpt2, tiny_spec, tiny_scores):
    spec = tiny_spec
    table, summary = P.ablation_agreement(tiny_scores, tiny_scores)
    assert summary["pearson_r_circuit_ld"] == pytest.approx(1.0)
    assert summary["wrong_label_agreement"] == 1.0
    assert (table.faith_mean == table.faith_resample).all()
    parts = [sweeps.run_sweep(tiny_gpt2, spec, tiny_scores[tiny_scores.family == f], seed=0,
                              ablation=scorer.Ablation("resample")) for f in ("adversarial", "lexical")]
    assert all(p.attrs["circuitgen"]["ablation"]["method"] == "resample" for p in parts)
    resampled = pd.concat(parts, ignore_index=True)
    table, summary = P.ablation_agreement(tiny_scores, resampled)
    ok = tiny_scores[tiny_scores.condition == "distractor"]
    assert table.loc["adversarial/distractor", "faith_mean"] == pytest.approx(
        ok.circuit_logit_diff.mean() / ok.logit_diff.mean())
    assert len(table) == 5
    # Spearman's rho by hand: Pearson's r of the ranks of the conditions' faithfulness (no ties).
    ra, rb = (table[c].rank().to_numpy() for c in ("faith_mean", "faith_resample"))
    assert len(set(ra)) == len(set(rb)) == 5
    assert summary["spearman_rho_conditions"] == pytest.approx(np.corrcoef(ra, rb)[0, 1], abs=1e-12)
    both = tiny_scores.assign(circuit_logit_diff_r=resampled.circuit_logit_diff.to_numpy())
    assert (both.status == "ok").all() and (resampled.prompt.to_numpy() == both.prompt.to_numpy()).all()
    assert summary["pearson_r_circuit_ld"] == pytest.approx(
        np.corrcoef(both.circuit_logit_diff, both.circuit_logit_diff_r)[0, 1], abs=1e-9)
    assert summary["wrong_label_agreement"] == pytest.approx(
        ((both.circuit_logit_diff <= 0) == (both.circuit_logit_diff_r <= 0)).mean())
    with pytest.raises(ValueError, match="same prompts"):
        P.ablation_agreement(tiny_scores, tiny_scores.iloc[::-1])


# --- Clustered standard errors -------------------------------------------------------------


def _clustered(n_clusters: int, per: int, seed: int, shared: float = 1.0) -> pd.DataFrame:
    """x and y each carry a cluster-level random effect (SD ``shared``) on top of their own
    noise: the design where treating rows as independent understates the SE of x's slope."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), per)
    x = shared * rng.normal(size=n_clusters)[g] + rng.normal(size=g.size)
    v = shared * rng.normal(size=n_clusters)[g]
    y = 1 + 0.5 * x + v + rng.normal(size=g.size)
    df = pd.DataFrame({"x": x, "y": y, "template": [f"t{i}" for i in g]})
    df["wrong"] = (0.5 * x + 2 * v + rng.logistic(size=g.size) > 0).astype(float)
    return df


def _crv1(X: np.ndarray, scores: np.ndarray, bread: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Hand-computed CRV1 sandwich: c * B^-1 (sum_g S_g S_g') B^-1, with S_g the cluster's summed
    score rows and c = G/(G-1) * (N-1)/(N-K) (Stata's and statsmodels' small-sample factor)."""
    n, k = X.shape
    labels = np.unique(groups)
    S = np.vstack([scores[groups == lab].sum(axis=0) for lab in labels])
    inv = np.linalg.inv(bread)
    c = len(labels) / (len(labels) - 1) * (n - 1) / (n - k)
    return c * inv @ (S.T @ S) @ inv


def _shuffled_small(seed: int) -> pd.DataFrame:
    """A small clustered case with the rows shuffled and a non-default index, so cluster ids
    that are not row-aligned would give a different answer."""
    df = _clustered(8, 5, seed).sample(frac=1, random_state=seed)
    df.index = np.arange(100, 100 + len(df))[::-1]
    return df


def test_clustered_ols_errors_equal_the_hand_sandwich():
    df = _shuffled_small(0)
    fit = P.fit_ols(df, "y ~ x")
    X = np.column_stack([np.ones(len(df)), df.x])
    beta = np.linalg.solve(X.T @ X, X.T @ df.y.to_numpy())
    e = df.y.to_numpy() - X @ beta
    V = _crv1(X, X * e[:, None], X.T @ X, df.template.to_numpy())
    np.testing.assert_allclose(fit.bse.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-8)
    # Inference uses t with G - 1 = 7 degrees of freedom.
    from scipy.stats import t

    half = fit.conf_int().loc["x"].diff().iloc[-1] / 2
    assert half == pytest.approx(t.ppf(0.975, 7) * np.sqrt(V[1, 1]), rel=1e-8)


def test_clustered_logit_errors_equal_the_hand_sandwich():
    df = _shuffled_small(1)
    fit = P.fit_logit(df, "wrong ~ x")
    X = np.column_stack([np.ones(len(df)), df.x])
    p = 1 / (1 + np.exp(-X @ fit.params.to_numpy()))  # the MLE, checked next
    np.testing.assert_allclose(X.T @ (df.wrong.to_numpy() - p), 0, atol=1e-6)
    H = X.T @ (X * (p * (1 - p))[:, None])
    V = _crv1(X, X * (df.wrong.to_numpy() - p)[:, None], H, df.template.to_numpy())
    np.testing.assert_allclose(fit.bse.to_numpy(), np.sqrt(np.diag(V)), rtol=1e-5)


def test_clustered_errors_are_wider_than_hc3_when_clusters_share_effects():
    df = _clustered(40, 15, 2)
    cl, hc3 = P.fit_ols(df, "y ~ x"), P.fit_ols(df, "y ~ x", cov="HC3")
    np.testing.assert_allclose(cl.params, hc3.params)  # the same estimates, wider intervals
    assert cl.bse["x"] > 1.4 * hc3.bse["x"]
    lcl, lhc0 = P.fit_logit(df, "wrong ~ x"), P.fit_logit(df, "wrong ~ x", cov="HC0")
    assert lcl.bse["x"] > 1.3 * lhc0.bse["x"]


def test_clustered_errors_with_one_row_per_cluster_are_hc1():
    df = _clustered(200, 1, 3)
    cl, hc1 = P.fit_ols(df, "y ~ x"), P.fit_ols(df, "y ~ x", cov="HC1")
    np.testing.assert_allclose(cl.bse, hc1.bse, rtol=1e-8)
    # Logit has no HC1 in statsmodels: HC0 with the same N / (N - K) factor.
    lcl, lhc0 = P.fit_logit(df, "wrong ~ x"), P.fit_logit(df, "wrong ~ x", cov="HC0")
    np.testing.assert_allclose(lcl.bse, lhc0.bse * np.sqrt(200 / 198), rtol=1e-6)


def test_fits_refuse_missing_values_and_logit_hc3():
    df = _clustered(10, 4, 4)
    df.loc[df.index[3], "y"] = np.nan
    with pytest.raises(Exception, match="(?i)missing|nan"):
        P.fit_ols(df, "y ~ x")
    with pytest.raises(ValueError, match="HC0"):
        P.fit_logit(df, "wrong ~ x", cov="HC3")
    with pytest.raises(ValueError, match="template"):
        P.fit_ols(df.drop(columns="template").dropna(), "y ~ x")


def test_cluster_groups_by_template_or_family_and_template():
    df = pd.DataFrame({"family": ["lexical", "domain", "lexical", "domain"],
                       "template": ["ioi:0", "ioi:0", "ioi:1", "x:1"]})
    assert list(P.cluster_groups(df)) == [0, 0, 1, 2]
    assert list(P.cluster_groups(df, by=("family", "template"))) == [0, 1, 2, 3]


# --- Outcomes not tied to the model's confidence -------------------------------------------


def _shares(n: int, seed: int, slope: float = 0.4, base: float = -0.5, effect: float = 0.0,
            n_templates: int = 50) -> pd.DataFrame:
    """Feature-table-like rows where the circuit keeps ``base + slope * model_ld`` plus noise,
    plus ``effect`` nats per SD of io_pos that the share does not carry. model_ld rises with
    dist_s1_s2, so with effect = 0 dist_s1_s2 predicts circuit_ld only through the model."""
    df = _planted(n, seed)
    df["template"] = np.random.default_rng(seed + 100).integers(0, n_templates, n).astype(str)
    rng = np.random.default_rng(seed + 200)
    df["model_ld"] = 4 + 0.8 * (df.dist_s1_s2 - 10) + rng.normal(0, 1.5, n)
    df["circuit_ld"] = base + slope * df.model_ld + effect * df.io_pos + rng.normal(0, 0.5, n)
    df["circuit_wrong"] = (df.circuit_ld <= 0).astype(float)
    df["circuit_wrong_model_right"] = df.circuit_wrong.where(df.model_ld > 0)
    return df


def test_proportional_share_is_fitted_on_training_rows_only():
    train, test = _shares(300, 10, slope=0.4), _shares(300, 11, slope=0.8, base=1.0)
    share = P.ProportionalShare.fit(train)
    b, a = np.polyfit(train.model_ld, train.circuit_ld, 1)
    assert (share.slope, share.intercept) == pytest.approx((b, a), rel=1e-9)
    np.testing.assert_allclose(share.excess(test), test.circuit_ld - (a + b * test.model_ld))
    # Refitting on the held-out rows would give other residuals (here, centred on zero).
    refit = P.ProportionalShare.fit(test).excess(test)
    assert abs(refit.mean()) < 1e-9 < abs(share.excess(test).mean()) - 0.5
    # With an intercept the training excess is orthogonal to the model's confidence.
    ex = share.add_excess(train).circuit_excess
    assert np.corrcoef(ex, train.model_ld)[0, 1] == pytest.approx(0, abs=1e-9)
    origin = P.ProportionalShare.fit(train, intercept=False)
    x, y = train.model_ld.to_numpy(), train.circuit_ld.to_numpy()
    assert origin.slope == pytest.approx((x * y).sum() / (x * x).sum()) and origin.intercept == 0


def test_a_constant_share_circuit_predicts_circuit_ld_but_not_its_excess():
    train, test = _shares(800, 12), _shares(800, 13)
    z = P.Standardizer.fit(train)
    share = P.ProportionalShare.fit(train)
    tr, te = (z.transform(share.add_excess(d)) for d in (train, test))
    spec = P.formula("{y}", [c for c in P.NUMERIC if c != "filler_tokens"], ["order"])
    ld = P.heldout_check(tr, te, "circuit_ld", spec.format(y="circuit_ld"))
    assert ld.score > 0.5  # the tautology: confidence "predicts" the circuit's logit difference
    assert ld.table.loc["model_ld", "verdict"] == "replicates"
    ex = P.heldout_check(tr, te, "circuit_excess", spec.format(y="circuit_excess"))
    assert ex.score < 0.02 and ex.score_name == "r2_heldout"
    assert not (ex.table.verdict == "replicates").any()


def test_heldout_check_recovers_an_effect_beyond_the_share():
    train, test = _shares(800, 14, effect=0.5), _shares(800, 15, effect=0.5)
    z = P.Standardizer.fit(train)
    share = P.ProportionalShare.fit(train)
    tr, te = (z.transform(share.add_excess(d)) for d in (train, test))
    ex = P.heldout_check(tr, te, "circuit_excess")
    assert ex.table.loc["io_pos", "verdict"] == "replicates"
    per_sd = 0.5 * train.io_pos.std(ddof=0)  # the planted effect in nats per training SD
    row = ex.table.loc["io_pos"]
    assert abs(row.estimate_train - per_sd) < 1.5 * (row.hi_train - row.lo_train) / 2  # ~3 SE
    assert ex.n_clusters == (50, 50) and "q_train" in ex.table.columns
    assert ex.score > 0.2
    # The two fits are of their own rows (statsmodels directly, no library code), and the score
    # is the training fit's R^2 on the held-out rows.
    import statsmodels.formula.api as smf

    own_tr, own_te = smf.ols(ex.spec, tr).fit(), smf.ols(ex.spec, te).fit()
    assert ex.table.loc["io_pos", "estimate_train"] == pytest.approx(own_tr.params["io_pos"], rel=1e-9)
    assert ex.table.loc["io_pos", "estimate_heldout"] == pytest.approx(own_te.params["io_pos"], rel=1e-9)
    assert abs(own_te.params["io_pos"] - own_tr.params["io_pos"]) > 1e-3
    assert ex.score == pytest.approx(_hand_r2(own_tr.predict(te), te.circuit_excess), rel=1e-9)
    # The logit outcome uses only the prompts the model gets right.
    wr = P.heldout_check(tr, te, "circuit_wrong_model_right")
    assert wr.fit_train.nobs == (train.model_ld > 0).sum() < len(train)
    assert wr.score_name == "auc_heldout" and 0.6 < wr.score <= 1 and wr.converged == (True, True)
    assert wr.table.attrs["odds_ratio"] and wr.table.loc["io_pos", "estimate_train"] < 1
    right_tr, right_te = tr[train.model_ld.to_numpy() > 0], te[test.model_ld.to_numpy() > 0]
    logit = smf.logit(wr.spec, right_tr).fit(disp=0)
    assert wr.score == pytest.approx(
        _hand_auc(right_te.circuit_wrong_model_right, logit.predict(right_te)), rel=1e-6)
    held = smf.logit(wr.spec, right_te).fit(disp=0)
    assert wr.table.loc["io_pos", "estimate_heldout"] == pytest.approx(np.exp(held.params["io_pos"]),
                                                                       rel=1e-5)
    cmp = P.compare_classifiers(tr, te)
    assert list(cmp.index) == ["confidence alone", "features", "features + confidence"]
    assert cmp.attrs["n"] == ((train.model_ld > 0).sum(), (test.model_ld > 0).sum())
    assert cmp.loc["features + confidence", "auc_heldout"] == pytest.approx(wr.score)


def test_outcomes_need_their_rows_and_columns():
    df = _shares(50, 16)
    with pytest.raises(Exception, match="(?i)missing|nan"):
        P.fit_logit(df, "circuit_wrong_model_right ~ io_pos")
    with pytest.raises(ValueError, match="add_excess"):
        P.outcome_rows(df, "circuit_excess")
    with pytest.raises(ValueError, match="outcome"):
        P.outcome_rows(df, "circuit_ld")


# --- Replication with a false-discovery-rate correction --------------------------------------


def test_replication_uses_benjamini_hochberg_across_terms():
    # p = 0.01, 0.04, 0.045, 0.5 -> BH q = 0.04, 0.06, 0.06, 0.5 (by hand: p * m / rank, then
    # the running minimum from the largest p down). Every CI but the last excludes 0.
    tab = pd.DataFrame({"estimate": [1.0, 0.8, -0.7, 0.1], "lo": [0.3, 0.05, -1.3, -0.2],
                        "hi": [1.7, 1.5, -0.05, 0.4], "p": [0.01, 0.04, 0.045, 0.5]},
                       index=["a", "b", "c", "d"])
    np.testing.assert_allclose(P.bh_adjust(tab.p), [0.04, 0.06, 0.06, 0.5])
    rep = P.replication(tab, tab)
    assert list(rep.verdict) == ["replicates", "no clear effect", "no clear effect", "no clear effect"]
    np.testing.assert_allclose(rep.q_heldout, [0.04, 0.06, 0.06, 0.5])
    uncorrected = P.replication(tab, tab, fdr=None)
    assert list(uncorrected.verdict) == ["replicates"] * 3 + ["no clear effect"]
    flipped = tab.assign(estimate=-tab.estimate, lo=-tab.hi, hi=-tab.lo)
    assert P.replication(tab, flipped).loc["a", "verdict"] == "opposite signs"
    assert P.replication(tab, tab.assign(p=1.0)).loc["a", "verdict"] == "one set only"


def test_summarise_terms_lists_the_verdicts_terms_largest_first():
    tab = pd.DataFrame({"estimate_train": [0.2, -0.5, 0.1], "lo_train": [0.1, -0.7, -0.1],
                        "hi_train": [0.3, -0.3, 0.3],
                        "verdict": ["replicates", "replicates", "no clear effect"]},
                       index=["a", "b", "c"])
    assert P.summarise_terms(tab) == "b -0.50 [-0.70, -0.30]; a +0.20 [0.10, 0.30]"
    assert P.summarise_terms(tab, "opposite signs") == "none"
    odds = tab.assign(estimate_train=[2.0, 0.4, 1.1], lo_train=[1.5, 0.3, 0.9],
                      hi_train=[2.5, 0.6, 1.3])
    odds.attrs["odds_ratio"] = True
    assert P.summarise_terms(odds) == "b x0.40 [0.30, 0.60]; a x2.00 [1.50, 2.50]"


def test_heldout_check_reports_a_logit_that_does_not_converge():
    train, test = _shares(400, 17), _shares(400, 18)
    z = P.Standardizer.fit(train)
    tr, te = z.transform(train), z.transform(test)
    # A rare flag that, in the held-out set, only ever marks circuit-right prompts: separation.
    tr["distractor"] = (np.arange(len(tr)) % 20 == 0).astype(float)
    te["distractor"] = ((te.circuit_wrong == 0) & (np.arange(len(te)) % 10 == 0)).astype(float)
    wr = P.heldout_check(tr, te, "circuit_wrong_model_right",
                         spec="circuit_wrong_model_right ~ model_ld + distractor")
    assert wr.converged == (True, False) and wr.separated == ([], ["distractor"])
    # Its sandwich error collapses (here to about 0.5 on a coefficient past -20), so without the
    # guard it would be the "clearest" held-out effect; it must not count as one.
    assert wr.fit_heldout.params["distractor"] < -P.SEPARATION_BOUND
    row = wr.table.loc["distractor"]
    assert np.isnan(row.q_heldout) and row.hi_heldout == np.inf and row.lo_heldout == 0
    assert row.verdict in ("no clear effect", "one set only")
    assert wr.table.loc["model_ld", "verdict"] == "replicates"  # the other terms keep theirs


def test_heldout_check_auc_is_nan_when_the_heldout_outcome_has_one_class():
    """A model whose circuit is never wrong on the held-out prompts (a tiny random model in the
    smoke run): no AUC to compute, NaN instead of an error (issue 12, item 8)."""
    train, test = _shares(400, 17), _shares(400, 18)
    z = P.Standardizer.fit(train)
    tr, te = z.transform(train), z.transform(test)
    right = te.circuit_wrong_model_right.notna()
    te.loc[right, "circuit_wrong_model_right"] = 0.0  # never wrong where the model is right
    wr = P.heldout_check(tr, te, "circuit_wrong_model_right", spec="circuit_wrong_model_right ~ model_ld")
    assert wr.score_name == "auc_heldout" and np.isnan(wr.score)
    both = P.heldout_check(tr, z.transform(test), "circuit_wrong_model_right",
                           spec="circuit_wrong_model_right ~ model_ld")
    assert 0 <= both.score <= 1


# --------------------------------------------------------------------------------------------
# Per-circuit inputs from long score tables (week 15)


def _long_scores(prompts: pd.DataFrame, circuits=("a", "b"), ablations=("mean", "resample"),
                 seed: int = 0) -> pd.DataFrame:
    """A score table in the curves.score_circuits format, values drawn at random."""
    rng = np.random.default_rng(seed)
    frames = []
    for abl in ablations:
        for k, c in enumerate(circuits):
            f = prompts[["prompt_id", "family", "condition", "template", "order"]].copy()
            f.insert(0, "circuit", c)
            f.insert(1, "n_nodes", k + 2)
            f["logit_diff"] = rng.normal(3, 1, len(f))
            f["empty_logit_diff"] = rng.normal(0, 1, len(f))
            f["circuit_logit_diff"] = rng.normal(1, 1, len(f))
            f["ablation"] = abl
            frames.append(f)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def family_prompts(tiny_gpt2):
    df = variations.generate_adversarial(tiny_gpt2, n_per_condition=3, seed=0,
                                         conditions=["base", "distractor", "double_io"]).df
    return df.assign(status="ok")


def test_circuit_rows_join_scores_to_their_prompts(family_prompts):
    scores = _long_scores(family_prompts)
    rows = P.circuit_rows(scores, family_prompts, "b", "resample", source="seed 1")
    want = scores[(scores.circuit == "b") & (scores.ablation == "resample")]
    assert len(rows) == len(family_prompts) and (rows.status == "ok").all()
    assert (rows.source == "seed 1").all()
    np.testing.assert_array_equal(rows.circuit_logit_diff,
                                  want.set_index("prompt_id").loc[rows.prompt_id, "circuit_logit_diff"])
    ft = P.feature_table(rows)  # the existing pipeline runs on it
    assert (ft.model_ld.to_numpy() == rows.logit_diff.to_numpy()).all()
    assert ft.loc[rows.condition == "double_io", "io_mentions"].eq(2).all()
    # shuffled prompt rows are matched by id, not by position
    again = P.circuit_rows(scores, family_prompts.sample(frac=1, random_state=0), "b", "resample")
    pd.testing.assert_series_equal(again.set_index("prompt_id").circuit_logit_diff.sort_index(),
                                   rows.set_index("prompt_id").circuit_logit_diff.sort_index())


def test_circuit_rows_raise_on_misaligned_prompts(family_prompts):
    scores = _long_scores(family_prompts)
    swapped = family_prompts.copy()
    swapped.loc[swapped.index[0], "template"] = "ioi:99"  # another draw's prompt under this id
    with pytest.raises(ValueError, match=r"misaligned: prompt_id 0 has template .*'ioi:99' in the prompts"):
        P.circuit_rows(scores, swapped, "a")
    other = family_prompts.copy()
    other["condition"] = other["condition"].iloc[::-1].to_numpy()
    with pytest.raises(ValueError, match="misaligned"):
        P.circuit_rows(scores, other, "a")
    with pytest.raises(ValueError, match=r"scored but not in the prompts"):
        P.circuit_rows(scores, family_prompts.iloc[1:], "a")
    with pytest.raises(ValueError, match=r"in the prompts but not scored"):
        P.circuit_rows(scores[scores.prompt_id != 2], family_prompts, "a")
    with pytest.raises(ValueError, match=r"no rows for circuit 'c'.*\['a', 'b'\]"):
        P.circuit_rows(scores, family_prompts, "c")
    with pytest.raises(ValueError, match="appears twice"):
        P.circuit_rows(pd.concat([scores, scores.iloc[:1]]), family_prompts, "a")


def test_circuit_inputs_keep_each_rows_source(family_prompts):
    lex = variations.generate_lexical("tiny-gpt2", n_per_condition=2, seed=1,
                                      conditions=["names_rare"]).df.assign(status="ok")
    hand = family_prompts.iloc[:4].assign(template=[f"hand:adversarial:{i}" for i in range(4)])
    src = P.ScoreSources(
        train=[("seed 0", _long_scores(family_prompts, seed=1), family_prompts)],
        heldout=[("seed 1", _long_scores(lex, seed=2), lex),
                 (P.HANDWRITTEN_SOURCE, _long_scores(hand, seed=3), hand)])
    assert src.circuits == ["a", "b"]
    train, held = P.circuit_inputs(src, "a")
    assert (train.source == "seed 0").all() and train.index.is_unique and held.index.is_unique
    assert held.source.value_counts().to_dict() == {"seed 1": len(lex), P.HANDWRITTEN_SOURCE: 4}
    ft_train, ft_held = P.circuit_feature_tables(train, held)
    assert (ft_held.source == held.source).all() and len(ft_held) == len(held)
    assert (ft_held.loc[ft_held.source == P.HANDWRITTEN_SOURCE, "template"]
            .str.startswith("hand:").all())


def test_prompts_as_scored_regenerates_the_size_the_table_was_scored_at(tiny_gpt2):
    """A small run's week-14 table (4 per condition) is matched with its own prompts, not weeks
    8-11's 20 per condition; a table of the default size keeps the default (issue 12, item 8)."""
    from circuitgen import generalise
    from circuitgen import tables as T

    def table(prompts):  # what tables.cached records of faithful.circuit_scores' inputs
        return T.ResultTable(_long_scores(prompts), {"inputs": {"prompts": T._canonical(prompts)}})

    def same(a, b):
        return T.fingerprint({"p": a}) == T.fingerprint({"p": b})

    small = generalise.family_prompts(tiny_gpt2, "adversarial", 1, n_per_condition=4)
    default = generalise.family_prompts(tiny_gpt2, "adversarial", 1)
    assert len(small) < len(default)
    for prompts in (small, default):
        scored = table(prompts)
        assert same(P.prompts_as_scored(tiny_gpt2, "adversarial", 1, scored), prompts)
    # no recorded prompts (an older table): the default size, as before
    assert same(P.prompts_as_scored(tiny_gpt2, "adversarial", 1, T.ResultTable(_long_scores(small))),
                default)


def test_circuit_inputs_carry_each_sources_own_scores(family_prompts):
    """Each row's logit differences are those of its own source's table, matched by prompt id
    (fails when circuit_inputs or circuit_feature_tables return constants; issue 13)."""
    lex = variations.generate_lexical("tiny-gpt2", n_per_condition=2, seed=1,
                                      conditions=["names_rare"]).df.assign(status="ok")
    tables = {"seed 0": _long_scores(family_prompts, seed=1), "seed 1": _long_scores(lex, seed=2)}
    src = P.ScoreSources(train=[("seed 0", tables["seed 0"], family_prompts)],
                         heldout=[("seed 1", tables["seed 1"], lex)])
    train, held = P.circuit_inputs(src, "b", "mean")
    for rows in (train, held):
        for _, r in rows.iterrows():
            t = tables[r["source"]]
            want = t[(t.circuit == "b") & (t.ablation == "mean") & (t.prompt_id == r["prompt_id"])]
            assert (r["logit_diff"], r["circuit_logit_diff"]) == (
                want.logit_diff.item(), want.circuit_logit_diff.item())
    ft_train, ft_held = P.circuit_feature_tables(train, held)
    np.testing.assert_array_equal(ft_train.model_ld.to_numpy(), train.logit_diff.to_numpy())
    np.testing.assert_array_equal(ft_held.model_ld.to_numpy(), held.logit_diff.to_numpy())


def test_separated_terms_flag_a_runaway_coefficient_and_an_exploded_error():
    """Quasi-separation shows either as a coefficient past the bound or, where the optimiser
    stopped earlier (week 12's io_mentions: -8.4 log-odds, SE 45), as an error no data could
    give; both are separated, a term with an ordinary error is not."""
    class Fit:
        mle_retvals = {"converged": False}
        params = pd.Series({"Intercept": -2.5, "a": 0.3, "b": -8.4, "c": 12.0, "d": 1.0})
        bse = pd.Series({"Intercept": 0.2, "a": 0.2, "b": 45.0, "c": 0.5, "d": np.nan})

    assert P.separated_terms(Fit()) == ["b", "c", "d"]
    Fit.bse = Fit.bse.fillna(4.9)
    assert P.separated_terms(Fit()) == ["b", "c"]
