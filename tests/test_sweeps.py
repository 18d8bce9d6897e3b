"""Sweeps: per-prompt scoring of a variation family, per-condition intervals, contrasts with the
reference condition (FDR-adjusted) and their replication across seeds."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pathlib

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from circuitgen import ioi, paths, stats, sweeps, variations


@pytest.fixture(scope="module")
def spec(tiny_spec):
    return tiny_spec


@pytest.fixture(scope="module")
def prompt_set(tiny_gpt2):
    return variations.generate_domain(tiny_gpt2, n_per_condition=4, seed=0,
                                      conditions=["everyday", "sport", "law"])


@pytest.fixture(scope="module")
def scores(tiny_gpt2, spec, prompt_set):
    return sweeps.run_sweep(tiny_gpt2, spec, prompt_set, seed=0)


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


def test_plot_draws_an_estimate_outside_its_interval_where_it_is():
    """With few templates a ratio of means can lie outside its percentile interval; the plot
    shows the point at the estimate and the interval where it is, instead of failing."""
    cols = {}
    for col, (est, lo, hi) in {"logit_diff": (2.0, 1.0, 3.0), "circuit_logit_diff": (1.0, 0.5, 1.5),
                               "faithfulness": (0.9, 0.2, 0.6)}.items():
        cols |= {col: [est, est], f"{col}_lo": [lo, lo], f"{col}_hi": [hi, hi]}
    table = pd.DataFrame(cols | {"n": [3, 3]}, index=["a", "b"])
    fig = sweeps.plot_conditions(table, "t", base="a")
    ax = fig.axes[1]
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(points) == 1 and np.allclose(points[0].get_xdata(), 0.9)
    segments = np.concatenate([c.get_segments() for c in ax.collections])
    assert np.allclose(sorted({seg[0][0] for seg in segments} | {seg[1][0] for seg in segments}), [0.2, 0.6])


def test_flag_lines_counts_and_reasons(scores, prompt_set):
    table = sweeps.by_condition(scores, seed=0)
    lines = sweeps.flag_lines(scores, prompt_set, table)
    n_ok = int((scores.status == "ok").sum())
    assert lines[0] == f"prompts: 12, scored: {n_ok}, flagged: {12 - n_ok}"
    assert lines[1] == "conditions skipped by the generator: none"
    assert lines[2].endswith(f": {prompt_set.meta['n_names_dropped']}")
    # The per-condition counts, with and without the summary table, agree.
    assert lines == sweeps.flag_lines(scores, prompt_set)
    # Two rows of the first condition flagged for one reason: counted per condition and by reason.
    flagged = scores.copy()
    flagged["status"] = "ok"
    flagged.loc[flagged.index[:2], "status"] = ["row 0: IO ' Zyx' is not a single token",
                                                 "row 1: IO ' Zyx' is not a single token"]
    lines = sweeps.flag_lines(flagged)
    assert lines[0] == "prompts: 12, scored: 10, flagged: 2"
    assert lines[1].split() == ["condition", "everyday", "sport", "law"]
    assert lines[2].split() == ["n", "2", "4", "4"]
    assert lines[3].split() == ["n_flagged", "2", "0", "0"]
    assert lines[-1] == "flagged because IO ' Zyx' is not a single token: 2"


def test_flag_lines_names_skipped_conditions(tiny_gpt2, spec):
    ps = variations.generate_lexical(tiny_gpt2, n_per_condition=2, seed=0,
                                     conditions=["names_origin_african", "verbs_gave"])
    scores = sweeps.run_sweep(tiny_gpt2, spec, ps, seed=0)
    lines = sweeps.flag_lines(scores, ps)
    assert "names_origin_african" in lines[1]
    assert "verbs_gave" not in lines[1]


def _toy_scores(shift: dict[str, float], n: int = 30, noise: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Scored prompts per condition: logit difference 3 + shift + noise, circuit half of it + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for cond, d in shift.items():
        ld = 3 + d + rng.normal(0, noise, n)
        rows += [{"condition": cond, "status": "ok", "logit_diff": v,
                  "circuit_logit_diff": 0.5 * v + rng.normal(0, 0.1), "sig_movers": 0.3,
                  "prompt": f"{cond} {i}", "io": "A", "s": "B"} for i, v in enumerate(ld)]
    return pd.DataFrame(rows)


def test_difference_interval_covers_the_true_difference():
    """Simulated conditions whose true difference is known (-2): the 95% interval covers it in
    about 95% of draws, and its width is that of the normal interval, 2 * 1.96 * SE."""
    n_sims, cover, widths = 200, 0, []
    for seed in range(n_sims):
        d = sweeps.difference_from_reference(_toy_scores({"ref": 0.0, "low": -2.0}, seed=seed),
                                             "ref", "logit_diff", seed=seed)
        lo, hi = d.loc["low", "lo"], d.loc["low", "hi"]
        cover += lo <= -2.0 <= hi
        widths.append(hi - lo)
    se = np.sqrt(2 * 0.5 ** 2 / 30)  # two means of 30 prompts, noise SD 0.5
    assert 0.89 <= cover / n_sims <= 0.99, cover
    assert np.mean(widths) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_difference_from_reference_estimates_and_screen():
    scores = _toy_scores({"ref": 0.0, "low": -2.0, "high": 2.0, "same": 0.05})
    d = sweeps.difference_from_reference(scores, "ref", "logit_diff")
    assert list(d.index) == ["low", "high", "same"]
    means = scores.groupby("condition").logit_diff.mean()
    assert d.loc["low", "difference"] == pytest.approx(means["low"] - means["ref"])
    assert (d.lo < d.difference).all() and (d.difference < d.hi).all()
    assert d.loc["same", "lo"] < 0 < d.loc["same", "hi"]
    for stat in ("logit_diff", "accuracy", "circuit_logit_diff"):
        diff = sweeps.clearly_different(scores, "ref", stat)
        assert "ref" not in diff["lower"] + diff["higher"]
    assert sweeps.clearly_different(scores, "ref", "logit_diff") == {"lower": ["low"], "higher": ["high"]}
    # Faithfulness is about 0.5 everywhere: no condition differs.
    assert sweeps.clearly_different(scores, "ref", "faithfulness") == {"lower": [], "higher": []}
    with pytest.raises(KeyError, match="nope"):
        sweeps.clearly_different(scores, "nope", "accuracy")


def test_the_reference_uncertainty_counts():
    """A noisy reference of 5 prompts: the old screen (condition CI vs the reference's point
    estimate) would call a condition different that the difference CI does not."""
    precise = _toy_scores({"cond": 0.6}, n=200, noise=0.5, seed=1)
    noisy_ref = _toy_scores({"ref": 0.0}, n=5, noise=1.5, seed=2)
    scores = pd.concat([noisy_ref, precise], ignore_index=True)
    table = sweeps.by_condition(scores, seed=0)
    old_screen = table.loc["cond", "logit_diff_lo"] > table.loc["ref", "logit_diff"]
    d = sweeps.difference_from_reference(scores, "ref", "logit_diff")
    assert old_screen and d.loc["cond", "lo"] < 0


def test_compare_with_reference_lines(scores):
    table = sweeps.by_condition(scores, seed=0)
    lines = sweeps.compare_with_reference(scores, table, "everyday")
    for stat, line in zip(("accuracy", "logit_diff", "faithfulness"), lines):
        d = sweeps.difference_from_reference(scores, "everyday", stat)
        diff = sweeps.clearly_different(scores, "everyday", stat)

        def named(names, d=d):
            return ", ".join(f"{n} (q={d.loc[n, 'q']:.2g})" for n in names) or "none"

        assert line == (f"{stat} (reference {table.loc['everyday', stat]:.2f}): clearly lower in "
                        f"{named(diff['lower'])}; clearly higher in {named(diff['higher'])}")
    assert lines[3].startswith("clearly = Benjamini-Hochberg q < 0.05 over the 2 contrasts with everyday")
    assert "bootstrap by template" in lines[3]
    assert lines[4].startswith(f"lowest faithfulness: {table.faithfulness.idxmin()}")
    assert lines[5] == f"lowest accuracy: {table.accuracy.idxmin()} ({table.accuracy.min():.2f})"


def test_failure_counts_and_worst_prompt_lines(scores):
    ok = scores[scores.status == "ok"]
    c = sweeps.failure_counts(scores)
    assert c == {"n": len(ok), "circuit_wrong": int((ok.circuit_logit_diff <= 0).sum()),
                 "model_wrong": int((ok.logit_diff <= 0).sum()),
                 "both_wrong": int(((ok.circuit_logit_diff <= 0) & (ok.logit_diff <= 0)).sum())}
    assert c["both_wrong"] <= min(c["circuit_wrong"], c["model_wrong"])
    lines = sweeps.worst_prompt_lines(scores, 4)
    assert lines[0] == (f"circuit wrong: {c['circuit_wrong']} of {c['n']}; model wrong: "
                        f"{c['model_wrong']}; both wrong: {c['both_wrong']}")
    assert len(lines) == 5
    circuit = [float(line.rsplit("circuit ", 1)[1]) for line in lines[1:]]
    assert circuit == sorted(circuit)
    # The first line is the prompt with the lowest circuit logit difference of all.
    lowest = ok.loc[ok.circuit_logit_diff.idxmin()]
    assert lines[1].startswith(f"[{lowest.condition}] {lowest.prompt!r}")
    assert circuit[0] == pytest.approx(lowest.circuit_logit_diff, abs=0.005)


def test_save_prompt_set_paths(prompt_set, tmp_path):
    assert sweeps.prompt_set_name("domain", "org/model", 3) == "domain-org--model-seed3"
    path = sweeps.save_prompt_set(prompt_set, "tiny-gpt2", 0, tmp_path / "run")
    assert path == tmp_path / "run" / "prompts" / "domain-tiny-gpt2-seed0.csv"
    back = ioi.load_prompt_set(path, require_meta=True)
    assert back.meta["seed"] == 0 and back.meta["family"] == "domain"
    assert back.df.prompt.tolist() == prompt_set.df.prompt.tolist()
    assert sweeps.shown_path(path) == str(path)
    assert sweeps.shown_path(paths.PROMPTS_DIR / "x.csv") == "data/prompts/x.csv"
    with pytest.raises(ValueError, match="family"):
        sweeps.save_prompt_set(ioi.PromptSet(df=prompt_set.df, meta={}), "m", 0, tmp_path)


def _clustered_scores(shift: dict[str, float], n_templates: int = 4, per_template: int = 10,
                      between: float = 1.0, within: float = 0.3, seed: int = 0,
                      offsets: list[float] | None = None) -> pd.DataFrame:
    """Scored prompts whose logit difference shares a per-template offset (as prompts of one
    template share their ablation means and wording); templates are per condition. The offsets
    are drawn with sd ``between``, or are ``offsets`` (one per template) in every condition."""
    rng = np.random.default_rng(seed)
    rows = []
    for cond, d in shift.items():
        for t in range(n_templates):
            offset = rng.normal(0, between) if offsets is None else offsets[t]
            for i in range(per_template):
                ld = 3 + d + offset + rng.normal(0, within)
                rows.append({"condition": cond, "template": f"{cond}:{t}", "status": "ok",
                             "logit_diff": ld, "circuit_logit_diff": 0.5 * ld + rng.normal(0, 0.1),
                             "sig_movers": 0.3 + 0.1 * offset, "prompt": f"{cond} {t} {i}",
                             "io": "A", "s": "B"})
    return pd.DataFrame(rows)


def _accuracy_scores(correct: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Scored prompts with ``k`` of ``n`` correct per condition (logit difference +1 or -1)."""
    rows = []
    for cond, (k, n) in correct.items():
        rows += [{"condition": cond, "status": "ok", "logit_diff": 1.0 if i < k else -1.0,
                  "circuit_logit_diff": 0.5 if i < k else -0.5, "sig_movers": 0.3,
                  "prompt": f"{cond} {i}", "io": "A", "s": "B"} for i in range(n)]
    return pd.DataFrame(rows)


def test_by_condition_accuracy_is_exact():
    """20/20 correct no longer prints 1.00 [1.0, 1.0]: the Clopper-Pearson interval is [0.83, 1]."""
    table = sweeps.by_condition(_accuracy_scores({"all": (20, 20), "some": (16, 20)}))
    for cond, (k, n) in {"all": (20, 20), "some": (16, 20)}.items():
        for stat in ("accuracy", "circuit_accuracy"):
            got = tuple(table.loc[cond, [stat, f"{stat}_lo", f"{stat}_hi"]])
            assert got == pytest.approx(tuple(stats.clopper_pearson(k, n))), (cond, stat)
    assert table.loc["all", "accuracy_lo"] == pytest.approx(0.8316, abs=1e-4)
    assert sweeps.format_table(table).loc["all", "accuracy"] == "1.00 [0.83, 1.00]"
    assert table.attrs["cluster"] is None and "Clopper-Pearson" in table.attrs["intervals"]


def test_by_condition_resamples_templates():
    scores = _clustered_scores({"a": 0.0, "b": 1.0})
    table = sweeps.by_condition(scores, seed=0)
    iid = sweeps.by_condition(scores.drop(columns="template"), seed=0)
    assert table.n_clusters.tolist() == [4, 4] and iid.n_clusters.tolist() == [40, 40]
    assert table.attrs["cluster"] == "template" and "templates" in table.attrs["intervals"]
    ok = scores[scores.condition == "a"]
    for stat, x, y in (("logit_diff", ok.logit_diff, None), ("signature", ok.sig_movers, None),
                       ("faithfulness", ok.circuit_logit_diff, ok.logit_diff)):
        data = x if y is None else (x.to_numpy(), y.to_numpy())
        expected = stats.cluster_bootstrap_ci(data, ok.template.to_numpy(), seed=0)
        assert tuple(table.loc["a", [stat, f"{stat}_lo", f"{stat}_hi"]]) == pytest.approx(tuple(expected))
    width = lambda t, s: t[f"{s}_hi"] - t[f"{s}_lo"]  # noqa: E731
    assert (width(table, "logit_diff") > 2 * width(iid, "logit_diff")).all()
    assert table.logit_diff.tolist() == pytest.approx(iid.logit_diff.tolist())


def test_proportion_contrast_is_newcombe_and_fisher():
    """Issue 9's w11 case: 16/20 vs 20/20 is not clearly different (Fisher p = 0.106)."""
    scores = _accuracy_scores({"base": (20, 20), "words": (16, 20)})
    d = sweeps.difference_from_reference(scores, "base", "accuracy")
    row = d.loc["words"]
    assert (row.difference, row.lo, row.hi) == pytest.approx(tuple(stats.newcombe_diff(16, 20, 20, 20)))
    assert row.p == pytest.approx(0.1060, abs=1e-4) and row.q == pytest.approx(row.p)
    assert row.estimate == 0.8 and row.reference == 1.0 and row.method == "Newcombe + Fisher"
    assert sweeps.clearly_different(scores, "base", "accuracy") == {"lower": [], "higher": []}


def test_clearly_different_is_fdr_adjusted_across_the_family():
    """14/20 vs 20/20 (Fisher p = 0.02) is clear on its own, but not among ten contrasts of which
    nine are null: q = 10 p."""
    alone = _accuracy_scores({"base": (20, 20), "c0": (14, 20)})
    d = sweeps.difference_from_reference(alone, "base", "accuracy")
    p = d.loc["c0", "p"]
    assert p == pytest.approx(stats.fisher_exact_p(14, 20, 20, 20)) and p < 0.05
    assert sweeps.clearly_different(alone, "base", "accuracy")["lower"] == ["c0"]
    family = _accuracy_scores({"base": (20, 20), "c0": (14, 20), **{f"n{i}": (20, 20) for i in range(9)}})
    d = sweeps.difference_from_reference(family, "base", "accuracy")
    assert d.loc["c0", "q"] == pytest.approx(min(1.0, 10 * p))
    assert d.q.to_numpy() == pytest.approx(multipletests(d.p, method="fdr_bh")[1])
    assert sweeps.clearly_different(family, "base", "accuracy") == {"lower": [], "higher": []}


def test_continuous_contrast_resamples_templates():
    """A shift smaller than the spread between templates: prompt by prompt it looks clear, with
    templates resampled it does not."""
    scores = _clustered_scores({"ref": 0.0, "shifted": 1.0}, offsets=[-1.5, -0.5, 0.5, 1.5], seed=3)
    clustered = sweeps.difference_from_reference(scores, "ref", "logit_diff")
    iid = sweeps.difference_from_reference(scores.drop(columns="template"), "ref", "logit_diff")
    assert iid.loc["shifted", "q"] < 0.01 and clustered.loc["shifted", "q"] > 0.05
    assert clustered.loc["shifted", "method"] == "bootstrap by template"
    assert iid.loc["shifted", "method"] == "bootstrap by prompt"
    assert clustered.loc["shifted", "difference"] == pytest.approx(iid.loc["shifted", "difference"])
    g, r = (scores[scores.condition == c] for c in ("shifted", "ref"))
    expected = stats.cluster_bootstrap_diff(g.logit_diff, g.template, r.logit_diff, r.template, seed=0)
    got = clustered.loc["shifted", ["difference", "lo", "hi", "p"]]
    assert tuple(got) == pytest.approx(tuple(expected))


def test_replication_table():
    """'real' is lower in both seeds, 'fluke' only in seed 0, 'weak' in both but clear only in
    seed 0, 'flip' clear in both with opposite signs, 'only0' is missing from seed 1."""
    seed0 = _toy_scores({"ref": 0.0, "real": -1.5, "fluke": -1.5, "weak": -1.5, "flip": -1.5,
                         "only0": 0.0}, n=30, noise=0.5, seed=10)
    seed1 = _toy_scores({"ref": 0.0, "real": -1.5, "fluke": 0.0, "weak": -0.1, "flip": 1.5},
                        n=30, noise=0.5, seed=11)
    rep = sweeps.replication_table(seed0, seed1, "ref", stats=("logit_diff", "accuracy"))
    assert rep.index.names == ["statistic", "condition"]
    assert rep.loc["logit_diff"].index.tolist() == ["real", "fluke", "weak", "flip", "only0"]
    for col in ("difference", "lo", "hi", "p", "q"):
        assert {f"{col}_seed0", f"{col}_seed1"} <= set(rep.columns)
    ld = rep.loc["logit_diff"]
    assert ld.replicates.tolist() == [True, False, False, False, False]
    assert ld.loc["weak", "direction_only"] and not ld.loc["real", "direction_only"]
    assert ld.loc["real", "verdict"] == "replicates"
    assert ld.loc["flip", "verdict"] == "reverses"
    assert ld.loc["weak", "verdict"] == "direction only (seed 0 clear)"
    assert ld.loc["fluke", "verdict"] in ("direction only (seed 0 clear)", "seed 0 only, sign flips")
    assert ld.loc["only0", "verdict"] == "missing in seed 1" and not ld.loc["only0", "replicates"]
    # Each seed's q is its own family's BH adjustment.
    d0 = sweeps.difference_from_reference(seed0, "ref", "logit_diff")
    assert ld.q_seed0.tolist() == pytest.approx(d0.q.tolist())
    assert ld.loc["real", "q_seed1"] < 0.05 and ld.loc["weak", "q_seed1"] > 0.05


def test_pair_contrasts_are_subset_contrasts_with_bh_across_pairs():
    scores = _clustered_scores({"a": 0.0, "b": 2.0, "c": 0.1, "d": 0.0}, seed=4)
    pairs = [("b", "a"), ("c", "d"), ("b", "missing")]
    pc = sweeps.pair_contrasts(scores, pairs, stats=("logit_diff", "accuracy"))
    assert pc.index.names == ["statistic", "contrast"]
    assert pc.loc["logit_diff"].index.tolist() == ["b vs a", "c vs d"]  # the pair without scores left out
    alone = sweeps.difference_from_reference(scores[scores.condition.isin(["b", "a"])], "a", "logit_diff")
    got = pc.loc[("logit_diff", "b vs a"), ["difference", "lo", "hi", "p"]]
    assert tuple(got) == pytest.approx(tuple(alone.loc["b", ["difference", "lo", "hi", "p"]]))
    ld = pc.loc["logit_diff"]
    assert ld.q.to_numpy() == pytest.approx(stats.benjamini_hochberg(ld.p.to_numpy())[1])
    assert (pc.clear == (pc.q < 0.05)).all()
    assert pc.loc[("accuracy", "b vs a"), "method"] == "Newcombe + Fisher"
    shown = sweeps.format_contrasts(pc)
    assert shown.loc[("logit_diff", "b vs a"), "difference [95% CI]"].startswith(
        f"{pc.loc[('logit_diff', 'b vs a'), 'difference']:+.2f} [")
    assert set(shown["q < 0.05"]) <= {"yes", ""}
    assert sweeps.pair_contrasts(scores, [("x", "y")]).empty


def test_contrast_values_and_verdicts():
    scores = _toy_scores({"ref": 0.0, "low": -2.0, "same": 0.05})
    ct = sweeps.contrast_table(scores, "ref")
    v = sweeps.contrast_values(ct, "logit_diff", "low")
    assert set(v) == {f"logit_diff_low{s}" for s in ("_diff", "_diff_lo", "_diff_hi", "_p", "_q", "_verdict")}
    assert v["logit_diff_low_verdict"] == "clearly lower"
    assert v["logit_diff_low_diff"] == pytest.approx(ct.loc[("logit_diff", "low"), "difference"])
    assert type(v["logit_diff_low_q"]) is float
    assert sweeps.contrast_values(ct, "logit_diff", "same", key="k")["k_verdict"] == "not clearly different"
    gone = sweeps.contrast_values(ct, "faithfulness", "absent")
    assert gone["faithfulness_absent_verdict"] == "not scored" and np.isnan(gone["faithfulness_absent_q"])
    assert sweeps.verdict(0.4, 0.01) == "clearly higher" and sweeps.verdict(0.4, float("nan")) == "not tested"


def test_findings_are_plain_values_that_glue_can_format(scores):
    from circuitgen import evaluation

    variables = pytest.importorskip("myst_nb.core.variables")
    table = sweeps.by_condition(scores, seed=0)
    ct = sweeps.contrast_table(scores, "everyday")
    faith = evaluation.faithfulness_table(scores, seed=0, n_resamples=200)
    f = sweeps.findings(scores, table, ct, "everyday", faith, worst=4)
    ok = scores[scores.status == "ok"]
    assert f["n_scored"] == len(ok) and f["n_conditions"] == 3 and f["n_contrasts"] == 2
    assert f["base"] == "everyday" and f["n_tests"] == 6
    assert f["faithfulness_ref"] == pytest.approx(table.loc["everyday", "faithfulness"])
    assert f["faithfulness_min_cond"] == table.faithfulness.idxmin()
    assert f["norm"] == pytest.approx(faith.loc["(F(C)-F(∅))/(F(M)-F(∅))", "estimate"])
    assert f["n_model_right"] == int((ok.logit_diff > 0).sum())
    assert f["templates_max"] == int(table.n_clusters.max()) and f["n_worst"] == 4
    assert f["n_range"] == "4" and f["templates_range"] in (str(f["templates_min"]),
                                                            f"{f['templates_min']} to {f['templates_max']}")
    for stat in ("accuracy", "logit_diff", "faithfulness"):
        diff = sweeps.clearly_different(scores, "everyday", stat)
        assert f[f"{stat}_n_clear_lower"] == len(diff["lower"])
        if not diff["lower"]:
            assert f[f"{stat}_clear_lower"] == "none"
    assert f["ref_n_groups"] == scores.attrs["circuitgen"]["ablation"]["n_groups"]
    for key, value in f.items():
        assert type(value) in (int, float, str), key
        # What {glue:text}`key:.2f` does with the stored repr.
        fmt = ".2f" if type(value) is float else ("d" if type(value) is int else "s")
        variables.format_plain_text(repr(value), fmt)
    vals = sweeps.condition_values(table, ["sport", "nowhere"], ("accuracy", "faithfulness"))
    assert vals["accuracy_sport_n"] == table.loc["sport", "n"]
    assert vals["accuracy_sport_k"] == round(table.loc["sport", "accuracy"] * table.loc["sport", "n"])
    assert vals["faithfulness_sport_lo"] == pytest.approx(table.loc["sport", "faithfulness_lo"])
    assert np.isnan(vals["faithfulness_nowhere"]) and vals["accuracy_nowhere_n"] == 0


def test_reference_line_says_what_the_means_were_taken_over(scores):
    line = sweeps.reference_line(scores)
    abl = scores.attrs["circuitgen"]["ablation"]
    assert line.startswith(f"ablation reference: means over {abl['n_reference_prompts']} ABC prompts in "
                           f"{abl['n_groups']} groups by (condition, order)")
    assert abl["sha256_16"] in line and f"smallest group {abl['group_size_min']}" in line
    assert sweeps.reference_line(pd.DataFrame()) == "ablation: not recorded"


def test_score_file_round_trips_the_scores_and_their_provenance(tiny_gpt2, spec, prompt_set, scores,
                                                              tmp_path):
    """A family scored through its score file equals run_sweep's frame, column for column and
    with the scorer's provenance, both when it is computed and when it is read back."""
    calls = []
    real = sweeps.run_sweep

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    sweeps.run_sweep = counting
    try:
        first = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path, log=None)
        again = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path, log=None)
    finally:
        sweeps.run_sweep = real
    assert len(calls) == 1                                   # the second call read the file
    path = tmp_path / "scores" / f"tiny-gpt2-domain-seed0-{sweeps.circuit_label(spec)}-mean.csv"
    assert first.attrs["score_file"] == again.attrs["score_file"] == str(path) and path.exists()
    for got in (first, again):
        pd.testing.assert_frame_equal(got, scores)
        assert got.attrs["circuitgen"] == scores.attrs["circuitgen"]
    from circuitgen import tables
    back = tables.ScoreTable.load(path)
    assert back.provenance["n_scored"] == scores.attrs["circuitgen"]["n_scored"]
    pd.testing.assert_frame_equal(back.scores(), scores)


def test_a_stale_score_file_is_recomputed_never_used(tiny_gpt2, spec, prompt_set, tmp_path,
                                                     monkeypatch):
    first = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path, log=None)
    path = first.attrs["score_file"]
    # Other prompts under the same file name: the file is stale and is recomputed.
    fewer = ioi.PromptSet(df=prompt_set.df.iloc[:6].reset_index(drop=True), meta=prompt_set.meta)
    second = sweeps.family_scores(tiny_gpt2, spec, fewer, seed=0, output_dir=tmp_path, log=None)
    assert second.attrs["score_file"] == path and len(second) == 6
    pd.testing.assert_frame_equal(pd.read_csv(path).iloc[:, :3], second.iloc[:, :3].reset_index(drop=True),
                                  check_dtype=False)
    # A change to the scoring code makes the file stale too: a planted wrong score written under
    # an old code hash is not read back.
    planted = pd.read_csv(path)
    monkeypatch.setattr(sweeps, "scoring_code_sha", lambda: "another-version")
    from circuitgen import tables
    table = tables.load_table(path)
    table.df["logit_diff"] = 99.0
    table.save(path)
    third = sweeps.family_scores(tiny_gpt2, spec, fewer, seed=0, output_dir=tmp_path, log=None)
    assert (third.logit_diff != 99.0).all()
    assert np.allclose(third.logit_diff, planted.logit_diff, equal_nan=True)


def test_refresh_recomputes_a_fresh_score_file(tiny_gpt2, spec, prompt_set, tmp_path):
    from circuitgen import tables
    first = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path, log=None)
    path = first.attrs["score_file"]
    table = tables.load_table(path)
    table.df["logit_diff"] = 99.0                     # same fingerprint, planted wrong values
    table.save(path)
    assert (sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path,
                                 log=None).logit_diff.dropna() == 99.0).all()
    with pytest.warns(UserWarning, match="logit_diff: .* beyond"):   # said, then rewritten
        fresh = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path,
                                     refresh=True, log=None)
    assert (fresh.logit_diff.dropna() != 99.0).all()
    pd.testing.assert_frame_equal(fresh, first.drop(columns=[]), check_like=False)


def test_refresh_keeps_a_fresh_score_file_that_the_recomputation_matches(tiny_gpt2, spec, prompt_set,
                                                                        tmp_path):
    """A sweep chapter re-scores its family (refresh) but does not rewrite a file whose inputs
    are unchanged and whose values the recomputation reproduces within float noise: bytes and
    mtime stay as they were, and the values returned are the file's."""
    import os

    from circuitgen import tables
    first = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path, log=None)
    path = pathlib.Path(first.attrs["score_file"])
    table = tables.load_table(path)
    noisy = table.df["logit_diff"].notna()
    table.df.loc[noisy, "logit_diff"] += np.float32(2e-6)  # what another thread count gives
    table.save(path)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (path, tables.meta_file(path))}
    os.utime(path, ns=(1, 1))                               # an mtime any rewrite would change
    before[path] = (before[path][0], 1)
    again = sweeps.family_scores(tiny_gpt2, spec, prompt_set, seed=0, output_dir=tmp_path,
                                 refresh=True, log=None)
    for p, (data, mtime) in before.items():
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtime
    pd.testing.assert_series_equal(again.logit_diff, table.df.logit_diff)   # the file's values
