"""Week 15's report (circuitgen.answer_report) on hand-made tables."""

from __future__ import annotations

import pandas as pd
import pytest

from circuitgen import answer_report as R
from circuitgen import generalise as G


def _scores(circuit: str, ablation: str, rows: list[tuple[float, float, float]], **extra) -> pd.DataFrame:
    """Prompts of one circuit: (model, circuit, empty) logit differences."""
    return pd.DataFrame([{"circuit": circuit, "ablation": ablation, "logit_diff": m, "circuit_logit_diff": c,
                          "empty_logit_diff": e, **extra} for m, c, e in rows])


def test_normalised_by_circuit_is_a_ratio_of_means():
    s = pd.concat([_scores("b", "mean", [(3.0, 2.0, 0.0), (1.0, 1.0, 1.0)]),
                   _scores("a", "mean", [(2.0, 1.0, -1.0)])])
    got = R.normalised_by_circuit(s)
    assert list(got.index) == ["b", "a"]  # in order of appearance
    # b: mean(c - e) / mean(m - e) = (2 + 0) / 2 / ((3 + 0) / 2) = 2/3, not the mean of 2/3 and 0/0
    assert got["b"] == pytest.approx(2 / 3) and got["a"] == pytest.approx(2 / 3)


def test_reference_choice_puts_the_references_side_by_side():
    family = pd.concat([_scores("x", "mean", [(2.0, 1.0, 0.0)]), _scores("x", "resample", [(2.0, 0.5, 0.0)])])
    own = _scores("x", "mean", [(2.0, 1.5, 0.0)])
    hand = R.HandwrittenScores(pd.DataFrame(), family, own)
    got = R.reference_choice(hand).loc["x"].to_dict()
    assert got == pytest.approx({"mean, family reference": 0.5, "mean, own counterparts": 0.75,
                                 "resample": 0.25})


def test_home_and_away_by_hand():
    # home = the families' reference conditions pooled: domain/everyday and adversarial/base
    tables = {"domain": pd.concat([_scores("c", "mean", [(2.0, 1.0, 0.0)], condition="everyday"),
                                   _scores("c", "mean", [(2.0, 0.0, 0.0)], condition="law")]),
              "adversarial": _scores("c", "mean", [(4.0, 4.0, 0.0)], condition="base")}
    verdicts = pd.DataFrame({"circuit": "c", "ablation": "mean",
                             "condition": ["everyday", "law", "base", "double_io"],
                             "estimate": [0.75, 0.0, 1.0, 1.5],
                             "verdict": ["unclear", "degrades", "holds", "exceeds"]})
    got = R.home_and_away(tables, verdicts).iloc[0]
    home = (1 + 4) / (2 + 4)  # law is not a reference condition
    assert got.home == pytest.approx(home)
    assert got["share holds"] == pytest.approx(1 / 4)
    spread = pd.Series([0.75, 0.0, 1.0, 1.5]).div(home).sub(1).abs().median()
    assert got.spread == pytest.approx(spread)


def test_headline_and_the_answer_cell():
    assert R.headline(["week 6", "eap-ig top 81", "pruning", "path-patching"]) == [
        "eap-ig top 81", "path-patching", "week 6"]  # no chosen EAP-IG circuit here
    # a row as answer_text gives it (itertuples: the counts stay ints)
    row = next(pd.DataFrame([{"estimate": 1.049, "lo": 0.99, "hi": 1.13, "holds": 12, "degrades": 0,
                              "exceeds": 0, "unclear": 3, "n_conditions": 15}]).itertuples())
    assert R.answer_cell(row) == "1.05 [0.99, 1.13]; h 12 d 0 e 0 u 3 of 15"


def test_the_bases_are_the_families():
    assert set(G.BASES) == set(G.FAMILIES)  # home_and_away needs a reference condition per family
