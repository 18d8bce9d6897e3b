"""Result tables as files: a CSV with a ``.meta.json`` sidecar, read back losslessly, and reused
only while the inputs that made them are unchanged.

Expensive results (discovery runs, size curves, scores) are written by the code that computes
them, with a fingerprint of their inputs (prompt sets, model, method parameters, code version).
:func:`cached` reuses a file only when the fingerprint matches; a stale file is recomputed and
overwritten, never silently used. Column dtypes are stored in the sidecar so nullable integers,
booleans and strings come back as they were written (floats round-trip exactly: pandas writes the
shortest repr). CSV writes an empty string and a missing text value alike, as an empty field, so
the sidecar lists the rows where each text column is missing (``text_missing``) and everything
else in a text column reads back as the string it was, empty ones included.

Files are the same on every machine: a path inside the repository is written relative to it
(:func:`repo_relative`, never ``/home/...``), and a chapter that recomputes a fresh file to re-check
it (``cached(..., refresh=True)``) rewrites it only when the values differ beyond float noise
(:data:`RTOL`, :data:`ATOL`), so re-running the book on another CPU or thread count leaves the
committed files as they were.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from circuitgen import paths

SIDE = ".meta.json"
TEXT = ("object", "str", "string")
ATTRS = "circuitgen"  # the DataFrame.attrs key the scorer writes its provenance under
# A recomputed table "matches" its file when every numeric value is within ATOL + RTOL * |file|:
# far above float32 summation-order noise (another thread count or CPU moves a logit difference
# by ~1e-6) and far below any precision the book prints or claims (2-3 decimals).
RTOL = 1e-3
ATOL = 1e-4


def repo_relative(x: Any, root: pathlib.Path | None = None) -> Any:
    """``x`` with every absolute path inside the repository (a string or a ``pathlib`` path, in
    nested mappings and lists too) as a POSIX path relative to it, so a sidecar does not record
    the machine that wrote it. Other values, paths outside the repository, and everything in an
    installed copy (``paths.REPO_ROOT`` is None) are returned as they are."""
    root = paths.REPO_ROOT if root is None else root
    if root is None:
        return x
    if isinstance(x, Mapping):
        return {k: repo_relative(v, root) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [repo_relative(v, root) for v in x]
    if isinstance(x, (str, pathlib.PurePath)) and pathlib.PurePath(x).is_absolute():
        p = pathlib.Path(x)
        for base in dict.fromkeys((root, root.resolve())):
            if p.is_relative_to(base):
                return p.relative_to(base).as_posix()
    return x


@dataclass
class ResultTable:
    """A frame and its metadata (provenance, inputs' fingerprint)."""

    df: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.df.to_csv(path, index=False, lineterminator="\n")
        meta = {**repo_relative(self.meta), "dtypes": {c: str(t) for c, t in self.df.dtypes.items()},
                "n_rows": len(self.df),
                "text_missing": {c: np.flatnonzero(self.df[c].isna().to_numpy()).tolist()
                                 for c, t in self.df.dtypes.items() if str(t) in TEXT}}
        meta_file(path).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
        return path


class ScoreTable(ResultTable):
    """Scores and their provenance (model, circuit, ablation reference, F(M), F(C), ...) as one
    object. In memory the scorer keeps the provenance in ``DataFrame.attrs["circuitgen"]``, which
    many pandas operations drop; on disk it lives in the sidecar, under ``provenance``."""

    @classmethod
    def from_scores(cls, scores: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> ScoreTable:
        frame = scores.copy()
        frame.attrs = {}
        return cls(frame, {**(meta or {}), "provenance": dict(scores.attrs.get(ATTRS, {}))})

    @classmethod
    def load(cls, path: str | pathlib.Path) -> ScoreTable:
        table = load_table(path)
        return cls(table.df, table.meta)

    @property
    def provenance(self) -> dict:
        return self.meta.get("provenance", {})

    def scores(self) -> pd.DataFrame:
        """The frame with its provenance back in ``attrs``, as the scorer returned it."""
        frame = self.df.copy()
        frame.attrs[ATTRS] = dict(self.provenance)
        return frame


def meta_file(path: str | pathlib.Path) -> pathlib.Path:
    p = pathlib.Path(path)
    return p.with_name(p.name.removesuffix(".csv") + SIDE)


def load_table(path: str | pathlib.Path) -> ResultTable:
    """Read a table written by :meth:`ResultTable.save`, with its dtypes."""
    path = pathlib.Path(path)
    mp = meta_file(path)
    if not path.exists() or not mp.exists():
        raise FileNotFoundError(f"no result table at {path} (with sidecar {mp.name}); it is written "
                                "by the code that computes it (circuitgen.tables.cached).")
    meta = json.loads(mp.read_text())
    dtypes = meta.get("dtypes", {})
    text_cols = {c: str for c, t in dtypes.items() if t in TEXT}
    missing = meta.get("text_missing")  # absent in tables written before it was recorded
    other_na = ["", "NaN", "nan", "<NA>", "NA", "None"]
    na = {c: ([] if missing is not None else [""]) if c in text_cols else other_na for c in dtypes}
    df = pd.read_csv(path, dtype=text_cols or None, keep_default_na=False, na_values=na)
    for c, rows in (missing or {}).items():
        if c in df.columns and rows:
            df[c] = df[c].astype(object)
            df.loc[df.index[rows], c] = np.nan
    for c, t in dtypes.items():
        if c in df.columns and (t != "str" or (missing or {}).get(c)):
            df[c] = df[c].astype(t)
    return ResultTable(df, meta)


def _canonical(x: Any) -> Any:
    if isinstance(x, pd.DataFrame):
        return {"frame_sha": hashlib.sha256(
            pd.util.hash_pandas_object(x, index=False).to_numpy().tobytes()
            + ",".join(map(str, x.columns)).encode()).hexdigest()}
    if isinstance(x, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x]
    if isinstance(x, (str, pathlib.PurePath)):  # the same fingerprint in every checkout
        return str(repo_relative(x))
    if isinstance(x, (int, float, bool)) or x is None:
        return x
    return str(x)


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """sha256 (16 hex) of the inputs: frames by content, everything else by its JSON form."""
    text = json.dumps(_canonical(dict(inputs)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(old: pd.DataFrame, new: pd.DataFrame, rtol: float = RTOL,
                atol: float = ATOL) -> list[str]:
    """How ``new`` differs from ``old`` beyond float noise, one line per column (empty: they
    match). Same columns and rows are required; numeric columns (not booleans) may differ by
    ``atol + rtol * |old|``, NaN matching NaN; every other column must be equal, missing values
    matching missing values."""
    if list(old.columns) != list(new.columns) or len(old) != len(new):
        return [f"shape or columns differ: {len(old)} x {list(old.columns)} vs "
                f"{len(new)} x {list(new.columns)}"]
    out = []
    for c in old.columns:
        a, b = old[c], new[c]
        numeric = all(pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
                      for x in (a, b))
        if numeric:
            x, y = a.to_numpy(float, na_value=np.nan), b.to_numpy(float, na_value=np.nan)
            bad = ~np.isclose(y, x, rtol=rtol, atol=atol, equal_nan=True)
            if bad.any():
                with np.errstate(invalid="ignore"):
                    d = np.abs(y - x)[bad]
                worst = d[np.isfinite(d)].max() if np.isfinite(d).any() else np.nan
                out.append(f"{c}: {int(bad.sum())} value(s) beyond {atol:g} + {rtol:g} x |value| "
                           f"(max |difference| {worst:.3g})")
        else:
            x, y = (list(s.astype(object).where(s.notna(), None)) for s in (a, b))
            n = sum(u != v for u, v in zip(x, y))
            if n:
                out.append(f"{c}: {n} value(s) differ")
    return out


def cached(path: str | pathlib.Path, inputs: Mapping[str, Any],
           compute: Callable[[], pd.DataFrame | ResultTable],
           *, meta: Mapping[str, Any] | None = None, log: Callable[[str], None] | None = print,
           refresh: bool = False, rtol: float = RTOL, atol: float = ATOL) -> ResultTable:
    """The table at ``path`` if it was made from these ``inputs``; else ``compute()``, saved.

    The sidecar records the fingerprint and, for reading, a JSON form of the inputs (frames by
    hash). ``meta`` adds provenance; ``compute`` may return a :class:`ResultTable` whose own
    ``meta`` (seconds, counts) is kept too.

    ``refresh``: compute even when the file is fresh (for the chapter whose job is the
    computation, so that running it re-checks it), and compare the result with the file
    (:func:`differences`, within ``rtol``/``atol``). When they match, the file is left as it is,
    byte for byte, and returned: a committed result whose inputs are unchanged is not rewritten
    by a run on another machine or thread count, whose last float digits differ. When they do
    not (the same inputs and code gave other numbers), a warning says where, and the file is
    rewritten with the new values. A missing or stale file is computed and written as always."""
    path = pathlib.Path(path)
    fp = fingerprint(inputs)
    old = None
    if path.exists() and meta_file(path).exists():
        old = load_table(path)
        if old.meta.get("inputs_sha") != fp:
            if log:
                log(f"{path.name} is stale (inputs {old.meta.get('inputs_sha')} -> {fp}); recomputing")
            old = None
        elif not refresh:
            if log:
                log(f"reusing {path.name} (inputs {fp} unchanged)")
            return old
    result = compute()
    df, extra = (result.df, result.meta) if isinstance(result, ResultTable) else (result, {})
    table = ResultTable(df, {**(meta or {}), **extra, "inputs_sha": fp,
                             "inputs": _canonical(dict(inputs))})
    if old is not None:
        diff = differences(old.df, df, rtol, atol)
        if not diff:
            if log:
                log(f"recomputed {path.name}: it matches the file (within {atol:g} + {rtol:g} x "
                    "|value|); the file is kept")
            return old
        warnings.warn(f"{path.name}: recomputed from the same inputs ({fp}), the values differ from "
                      f"the file beyond float noise ({'; '.join(diff[:5])}); rewriting it",
                      stacklevel=2)
    table.save(path)
    return load_table(path)  # what later runs will read, so first and later runs see the same


__all__ = ["ResultTable", "ScoreTable", "load_table", "fingerprint", "cached", "meta_file",
           "differences", "repo_relative", "RTOL", "ATOL"]
