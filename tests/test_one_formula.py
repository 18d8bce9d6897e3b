"""The normalised faithfulness (F(C) - F(∅)) / (F(M) - F(∅)) is defined once
(circuitgen.task.normalised_parts / normalised_faithfulness): every place that reports it gives
the value computed here by hand from the same scores, so a second, diverging definition fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import curves, evaluation, sweeps

M = np.array([3.0, 2.5, 4.0, 1.5, 2.0, 3.5])
C = np.array([2.0, 2.4, 3.1, 0.5, 1.9, 2.2])
E = np.array([0.5, -0.2, 1.0, 0.3, 0.1, 0.4])
BY_HAND = (C.mean() - E.mean()) / (M.mean() - E.mean())


@pytest.fixture
def scores():
    return pd.DataFrame({"logit_diff": M, "circuit_logit_diff": C, "empty_logit_diff": E,
                         "template": [0, 0, 1, 1, 2, 2], "condition": "base", "status": "ok",
                         "circuit": "c", "n_nodes": 3, "prompt": [f"p{i}" for i in range(6)]})


def test_the_hand_value_is_not_the_ratio_of_means():
    assert abs(BY_HAND - C.mean() / M.mean()) > 0.02  # the checks below tell the two apart


def test_curves_summary(scores):
    assert curves.summarise(scores).normalised.iloc[0] == pytest.approx(BY_HAND, rel=1e-12)


def test_curves_intervals_bracket_it(scores):
    s = curves.with_intervals(scores, curves.summarise(scores), n_resamples=200)
    assert s.normalised_lo.iloc[0] <= BY_HAND <= s.normalised_hi.iloc[0]


def test_sweeps_statistic(scores):
    est = sweeps.condition_intervals(scores, "normalised").estimate.iloc[0]
    assert est == pytest.approx(BY_HAND, rel=1e-12)


def test_evaluation_table(scores):
    t = evaluation.faithfulness_table(scores, n_resamples=200)
    assert t.loc["(F(C)-F(∅))/(F(M)-F(∅))", "estimate"] == pytest.approx(BY_HAND, rel=1e-12)
    assert t.loc["F(C)/F(M)", "estimate"] == pytest.approx(C.mean() / M.mean(), rel=1e-12)
