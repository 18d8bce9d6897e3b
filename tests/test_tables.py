"""Result tables as files (circuitgen.tables): lossless round trip, stale files recomputed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import tables as T


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "node": ["9.9@END", "mlp3@S2", "1.0@other"],
        "head": pd.array([9, None, 0], dtype="Int64"),
        "score": [0.1 + 0.2, -1e-17, np.nan],
        "kept": [True, False, True],
        "n": [1, 2, 3],
        "code": ["007", "1.50", "NA"],       # text that pandas would otherwise parse
        "stage": pd.array(["a", None, "b"], dtype="string"),
        "blank": ["", np.nan, "x"],               # an empty string is not a missing value
    })


def test_round_trip_is_lossless(tmp_path):
    df = _frame()
    path = T.ResultTable(df, {"method": "x", "nested": {"a": [1, 2]}}).save(tmp_path / "t.csv")
    back = T.load_table(path)
    pd.testing.assert_frame_equal(back.df, df)
    assert back.meta["method"] == "x" and back.meta["nested"] == {"a": [1, 2]}
    assert back.df["score"].iloc[0] == 0.1 + 0.2          # exact float, not rounded


def test_cached_reuses_fresh_and_recomputes_stale(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return _frame().assign(run=len(calls))

    path = tmp_path / "r.csv"
    inputs = {"prompts": pd.DataFrame({"p": ["a", "b"]}), "threshold": 0.05}
    first = T.cached(path, inputs, compute, log=None)
    again = T.cached(path, dict(inputs), compute, log=None)
    assert len(calls) == 1 and again.df["run"].eq(1).all()
    stale = {"prompts": pd.DataFrame({"p": ["a", "c"]}), "threshold": 0.05}
    redone = T.cached(path, stale, compute, log=None)
    assert len(calls) == 2 and redone.df["run"].eq(2).all()
    assert T.load_table(path).meta["inputs_sha"] == T.fingerprint(stale) != first.meta["inputs_sha"]
    T.cached(path, {**stale, "threshold": 0.1}, compute, log=None)
    assert len(calls) == 3


def test_fingerprint_sees_frame_content_and_missing_file_is_clear(tmp_path):
    a = {"df": pd.DataFrame({"x": [1.0, 2.0]})}
    b = {"df": pd.DataFrame({"x": [1.0, 2.0000001]})}
    assert T.fingerprint(a) != T.fingerprint(b)
    assert T.fingerprint(a) == T.fingerprint({"df": pd.DataFrame({"x": [1.0, 2.0]})})
    with pytest.raises(FileNotFoundError, match="cached"):
        T.load_table(tmp_path / "none.csv")


def test_refresh_keeps_a_matching_file_and_rewrites_one_that_differs(tmp_path):
    """``refresh`` recomputes a fresh file; float noise (another thread count) leaves it as it
    was, byte for byte; values beyond the tolerance are said and rewritten."""
    base = _frame()
    noise = {"v": 0.0}

    def compute():
        return base.assign(score=base["score"] + noise["v"])

    path = tmp_path / "r.csv"
    inputs = {"threshold": 0.05}
    T.cached(path, inputs, compute, log=None)
    files = (path, T.meta_file(path))
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in files]
    noise["v"] = 1e-7
    kept = T.cached(path, inputs, compute, log=None, refresh=True)
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in files] == before
    assert kept.df["score"].iloc[0] == 0.1 + 0.2                     # the file's value
    noise["v"] = 0.01
    with pytest.warns(UserWarning, match=r"score: 2 value\(s\) beyond"):
        redone = T.cached(path, inputs, compute, log=None, refresh=True)
    assert redone.df["score"].iloc[0] == pytest.approx(0.31)
    assert path.read_bytes() != before[0][0]
    assert T.differences(base, base.assign(code=["007", "1.5", "NA"])) == ["code: 1 value(s) differ"]


def test_sidecars_record_repository_paths_relative_to_it(tmp_path):
    from circuitgen import paths

    root = paths.REPO_ROOT
    spec = root / "data" / "circuits" / "x.yaml"
    meta = {"provenance": {"circuit": str(spec), "files": [spec, "/elsewhere/y.csv"], "n": 3,
                           "text": "When Mary and John went"}}
    assert T.repo_relative(meta) == {"provenance": {
        "circuit": "data/circuits/x.yaml", "files": ["data/circuits/x.yaml", "/elsewhere/y.csv"],
        "n": 3, "text": "When Mary and John went"}}
    assert T.repo_relative(str(spec)) == "data/circuits/x.yaml"
    path = T.ResultTable(_frame(), meta).save(tmp_path / "t.csv")
    assert str(root) not in T.meta_file(path).read_text()
    assert T.load_table(path).meta["provenance"]["circuit"] == "data/circuits/x.yaml"
    # a path in the inputs gives the same fingerprint in every checkout
    assert T.fingerprint({"f": spec}) == T.fingerprint({"f": "data/circuits/x.yaml"})
    for committed in sorted((root / "data").glob("*/*.meta.json")):
        assert str(root) not in committed.read_text(), committed
