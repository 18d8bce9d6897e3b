"""How checked cells print numbers (circuitgen.shown): the same text on every machine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitgen import shown


def test_number_prints_the_precision_asked_and_no_negative_zero():
    assert shown.number(0.459199110550367) == shown.number(0.4591990528718741) == "0.459"
    assert shown.number(-0.0001) == shown.number(0.0001) == "0.000"
    assert shown.number(-0.0006) == "-0.001"
    assert shown.number(np.float32(0.06), 2) == "0.06"
    assert [shown.number(v) for v in (np.nan, np.inf, -np.inf, 3, "x", True)] == [
        "NaN", "inf", "-inf", "3.000", "x", "True"]


def test_fixed_formats_float_columns_only():
    df = pd.DataFrame({"a": [1.23456, -1e-9], "n": [1, 2], "v": ["x", "y"]})
    out = shown.fixed(df, 2)
    assert out.a.tolist() == ["1.23", "0.00"] and out.n.tolist() == [1, 2]
    assert shown.fixed(pd.Series([np.float32(0.06)]), 2).tolist() == ["0.06"]


def test_coefficients_print_a_separated_term_as_separated():
    tab = pd.DataFrame({"estimate_train": [0.000235, 1.66], "lo_train": [1e-81, 1.27],
                        "hi_train": [5.1e73, 2.18], "estimate_heldout": [0.644, 1.53],
                        "q_train": [0.94, 0.003], "verdict": ["no clear effect", "replicates"]},
                       index=pd.Index(["io_mentions", "log_io_rank"], name="term"))
    out = shown.coefficients(tab, {"train": ["io_mentions"], "heldout": []})
    assert out.loc["io_mentions", ["estimate_train", "lo_train", "hi_train", "q_train"]].tolist() == [
        "separated"] * 4
    assert out.loc["io_mentions", "estimate_heldout"] == "0.644"
    assert out.loc["log_io_rank"].tolist() == ["1.660", "1.270", "2.180", "1.530", "0.003", "replicates"]
    assert "e+" not in out.to_string()
    ordered = shown.coefficients(tab, {"train": ["io_mentions"]}, sort_by="estimate_train")
    assert ordered.index.tolist() == ["log_io_rank", "io_mentions"]       # separated: last
    assert shown.mapping({8: -0.05999999865889549, 13: 0.09}) == "8: -0.06, 13: 0.09"
