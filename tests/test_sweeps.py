"""Sweeps: per-prompt scoring of a variation family and per-condition bootstrap summaries."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from circuitgen import ioi, paths, sweeps, variations

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


def test_difference_from_reference_estimates_and_screen():
    scores = _toy_scores({"ref": 0.0, "low": -2.0, "high": 2.0, "same": 0.05})
    d = sweeps.difference_from_reference(scores, "ref", "logit_diff")
    assert list(d.index) == ["low", "high", "same"]
    means = scores.groupby("condition").logit_diff.mean()
    assert d.loc["low", "difference"] == pytest.approx(means["low"] - means["ref"])
    assert (d.lo <= d.difference).all() and (d.difference <= d.hi).all()
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
        diff = sweeps.clearly_different(scores, "everyday", stat)
        assert line == (f"{stat} (reference {table.loc['everyday', stat]:.2f}): clearly lower in "
                        f"{diff['lower'] or 'none'}; clearly higher in {diff['higher'] or 'none'}")
    assert lines[3].startswith(f"lowest faithfulness: {table.faithfulness.idxmin()}")
    assert lines[4] == f"lowest accuracy: {table.accuracy.idxmin()} ({table.accuracy.min():.2f})"


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
