"""Result tables as files: a CSV with a ``.meta.json`` sidecar, read back losslessly, and reused
only while the inputs that made them are unchanged.

Expensive results (discovery runs, size curves, scores) are written by the code that computes
them, with a fingerprint of their inputs (prompt sets, model, method parameters, code version).
:func:`cached` reuses a file only when the fingerprint matches; a stale file is recomputed and
overwritten, never silently used. Column dtypes are stored in the sidecar so nullable integers,
booleans and strings come back as they were written (floats round-trip exactly: pandas writes the
shortest repr). One loss is inherent to CSV: an empty string and a missing text value are both
written as an empty field and read back as missing.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SIDE = ".meta.json"


@dataclass
class ResultTable:
    """A frame and its metadata (provenance, inputs' fingerprint)."""

    df: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.df.to_csv(path, index=False, lineterminator="\n")
        meta = {**self.meta, "dtypes": {c: str(t) for c, t in self.df.dtypes.items()},
                "n_rows": len(self.df)}
        meta_file(path).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
        return path


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
    text_cols = {c: str for c, t in dtypes.items() if t in ("object", "str", "string")}
    other_na = ["", "NaN", "nan", "<NA>", "NA", "None"]
    na = {c: ([""] if c in text_cols else other_na) for c in dtypes}
    df = pd.read_csv(path, dtype=text_cols or None, keep_default_na=False, na_values=na)
    for c, t in dtypes.items():
        if c in df.columns and t != "str":
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
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """sha256 (16 hex) of the inputs: frames by content, everything else by its JSON form."""
    text = json.dumps(_canonical(dict(inputs)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(path: str | pathlib.Path, inputs: Mapping[str, Any],
           compute: Callable[[], pd.DataFrame | ResultTable],
           *, meta: Mapping[str, Any] | None = None, log: Callable[[str], None] | None = print
           ) -> ResultTable:
    """The table at ``path`` if it was made from these ``inputs``; else ``compute()``, saved.

    The sidecar records the fingerprint and, for reading, a JSON form of the inputs (frames by
    hash). ``meta`` adds provenance; ``compute`` may return a :class:`ResultTable` whose own
    ``meta`` (seconds, counts) is kept too."""
    path = pathlib.Path(path)
    fp = fingerprint(inputs)
    if path.exists() and meta_file(path).exists():
        old = load_table(path)
        if old.meta.get("inputs_sha") == fp:
            if log:
                log(f"reusing {path.name} (inputs {fp} unchanged)")
            return old
        if log:
            log(f"{path.name} is stale (inputs {old.meta.get('inputs_sha')} -> {fp}); recomputing")
    result = compute()
    df, extra = (result.df, result.meta) if isinstance(result, ResultTable) else (result, {})
    table = ResultTable(df, {**(meta or {}), **extra, "inputs_sha": fp,
                             "inputs": _canonical(dict(inputs))})
    table.save(path)
    return load_table(path)  # what later runs will read, so first and later runs see the same


__all__ = ["ResultTable", "load_table", "fingerprint", "cached", "meta_file"]
