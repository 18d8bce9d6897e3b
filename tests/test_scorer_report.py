"""Week 7's report (circuitgen.scorer_report) on hand-made per-prompt scores."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as sps

from circuitgen import scorer_report as R

# template, order, model logit difference, circuit logit difference
ROWS = [(1, "ABBA", 2.0, 1.0), (1, "BABA", 4.0, -1.0), (2, "ABBA", 0.5, 0.5), (2, "BABA", -1.0, 2.0),
        (3, "ABBA", 3.0, 3.0), (3, "BABA", 1.0, 0.0)]


def _scores() -> pd.DataFrame:
    df = pd.DataFrame(ROWS, columns=["template", "order", "logit_diff", "circuit_logit_diff"])
    df["prompt"] = [f"p{i}" for i in range(len(df))]
    df["io"], df["s"] = " A", " B"
    df["faithfulness"] = df.circuit_logit_diff / df.logit_diff
    df["sig_x"] = [0.9, 0.1, 0.5, 0.4, 0.8, 0.2]
    return df


def test_ratio_by_order_is_a_ratio_of_means():
    got = R.ratio_by_order(_scores())
    assert got == pytest.approx({"ABBA": 4.5 / 5.5, "BABA": 1.0 / 4.0, "all": 5.5 / 9.5})


def test_model_right_circuit_wrong_and_the_worst_prompts():
    s = _scores()
    # the model is right on 5 prompts; the circuit is wrong (<= 0) on p1 (-1.0) and p5 (0.0)
    assert R.model_right_circuit_wrong(s).tolist() == [False, True, False, False, False, True]
    report = R.ScorerReport("tiny", 0, None, s, s, s, pd.DataFrame(), s, pd.DataFrame())
    worst = report.worst_fails(6)
    assert worst.prompt.tolist() == ["p1", "p5"]  # the circuit's most negative first
    assert worst["circuit (nats)"].tolist() == [-1.0, 0.0]
    lines = report.fails_text().splitlines()
    assert lines[0] == "model right, circuit wrong: 2 of 5 prompts the model gets right"
    # template 2's mean model logit difference is -0.25: under 1; of the others, 1 keeps 0/6, 3 keeps 3/4
    assert lines[1].endswith("[2]")
    assert lines[2] == "worst other templates by ratio of means: 1: 0.00, 3: 0.75"


def test_correlations_with_faithfulness_and_their_correction():
    s = _scores()
    got = R.correlations(s, ["sig_x", "logit_diff"]).set_index("score")
    for col in ("sig_x", "logit_diff"):
        rho, p = sps.spearmanr(s.faithfulness, s[col])
        assert got.loc[col, "spearman_rho"] == pytest.approx(rho) and got.loc[col, "p"] == pytest.approx(p)
    ps = got.p.sort_values()  # Benjamini-Hochberg over two tests, by hand
    q_small = min(ps.iloc[0] * 2, ps.iloc[1])
    assert got.loc[ps.index[0], "q (BH)"] == pytest.approx(q_small)
    assert got.loc[ps.index[1], "q (BH)"] == pytest.approx(ps.iloc[1])


def test_per_template_means():
    t = R.per_template(_scores())
    assert t.loc[1].to_dict() == pytest.approx({"model": 3.0, "circuit": 0.0, "n": 2, "ratio_of_means": 0.0})
    assert t.loc[3, "ratio_of_means"] == pytest.approx(0.75)


def test_s2_text_compares_the_prompts_above_one():
    s = _scores()
    check = pd.DataFrame({"circuit_logit_diff": s.circuit_logit_diff,
                          "circuit_logit_diff_s2_intact": s.circuit_logit_diff + 1.0, "model": s.logit_diff})
    report = R.ScorerReport("tiny", 0, None, s, s, s, pd.DataFrame(), s, check)
    lines = report.s2_text().splitlines()
    # per-prompt faithfulness is at most 1 here (p2 and p4 are exactly 1): no line for prompts above 1
    assert lines[0] == "prompts with faithfulness > 1: 0 of 6" and len(lines) == 3
    assert lines[2].endswith(f"{(5.5 + 6) / 9.5:.2f}")
