"""Sweeps: per-prompt scoring of a variation family and per-condition bootstrap summaries."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from circuitgen import circuits, ioi, paths, sweeps, variations

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


def _toy_table():
    """Three conditions around a reference 'ref' at 1.0: one CI wholly below, one wholly above,
    one overlapping the reference estimate."""
    rows = {"ref": (1.0, 0.5, 1.5), "low": (0.2, 0.0, 0.9), "high": (2.0, 1.2, 2.8),
            "same": (1.3, 0.8, 1.9)}
    table = pd.DataFrame(index=pd.Index(list(rows), name="condition"))
    table["n"], table["n_flagged"] = 20, 0
    for stat, scale in (("accuracy", 0.4), ("logit_diff", 3.0), ("faithfulness", 0.5)):
        for suffix, i in (("", 0), ("_lo", 1), ("_hi", 2)):
            table[f"{stat}{suffix}"] = [scale * v[i] for v in rows.values()]
    return table


def test_clearly_different_uses_the_ci_against_the_reference_estimate():
    table = _toy_table()
    for stat in ("accuracy", "logit_diff", "faithfulness"):
        assert sweeps.clearly_different(table, "ref", stat) == {"lower": ["low"], "higher": ["high"]}
    # Against another reference the screen changes: 'same' (CI [0.8, 1.9]) is not above 2.0.
    assert sweeps.clearly_different(table, "high", "logit_diff") == {"lower": ["ref", "low", "same"],
                                                                     "higher": []}
    with pytest.raises(KeyError, match="nope"):
        sweeps.clearly_different(table, "nope", "accuracy")


def test_compare_with_reference_lines():
    lines = sweeps.compare_with_reference(_toy_table(), "ref")
    assert lines[:3] == [
        "accuracy (reference 0.40): clearly lower in ['low']; clearly higher in ['high']",
        "logit_diff (reference 3.00): clearly lower in ['low']; clearly higher in ['high']",
        "faithfulness (reference 0.50): clearly lower in ['low']; clearly higher in ['high']",
    ]
    assert lines[3] == "lowest faithfulness: low (0.10); highest: high (1.00)"
    assert lines[4] == "lowest accuracy: low (0.08)"


def test_compare_with_reference_on_a_real_sweep(scores):
    table = sweeps.by_condition(scores, seed=0)
    lines = sweeps.compare_with_reference(table, "everyday")
    for stat, line in zip(("accuracy", "logit_diff", "faithfulness"), lines):
        diff = sweeps.clearly_different(table, "everyday", stat)
        ref = table.loc["everyday", stat]
        assert all(table.loc[c, f"{stat}_hi"] < ref for c in diff["lower"])
        assert all(table.loc[c, f"{stat}_lo"] > ref for c in diff["higher"])
        assert "everyday" not in diff["lower"] + diff["higher"]
        assert line.startswith(f"{stat} (reference {ref:.2f})")


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
