"""What predicts circuit failure: features, fits, held-out checks, effect sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import predictors as P, scorer, sweeps, variations

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
    assert P.heldout_r2(fa, z.transform(test), "circuit_ld") == pytest.approx(5.06 / 6.06, abs=0.04)


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
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
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
    assert list(tab.index) == ["condition labels", "condition + template", "features",
                               "features + confidence"]
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
        alone = sweeps.run_sweep(tiny_gpt2, spec, variations.generate_family(fam, tiny_gpt2, 1, seed=3), seed=3)
        part = both[both.family == fam].reset_index(drop=True)
        assert (part.prompt == alone.prompt).all()
        np.testing.assert_array_equal(part.circuit_logit_diff, alone.circuit_logit_diff)
    assert set(both.attrs["prompt_sets"]) == {"domain", "adversarial"}


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
    assert len(table) == 5 and -1 <= summary["spearman_rho_conditions"] <= 1
    with pytest.raises(ValueError, match="same prompts"):
        P.ablation_agreement(tiny_scores, tiny_scores.iloc[::-1])
