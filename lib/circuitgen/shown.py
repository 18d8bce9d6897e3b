"""Numbers as the book prints them in cells whose output nbval checks (``# NBVAL_CHECK_OUTPUT``).

A checked cell must print the same text on every machine, CPU and thread count, while the last
float digits of a model's logits do not reproduce across them (float32 sums in another order).
So a checked cell prints each value at the precision its claim needs (2-3 decimals; never a
full-precision float, and no ``-0.000`` for a value that is 0 to that precision), and a term
whose estimate does not exist (a separated logit term: :func:`circuitgen.predictors.
separated_terms`) prints as ``"separated"`` instead of wherever its optimiser stopped. Values
for the prose are glued (myst-nb ``glue``) in unchecked cells: a glued value is display data at
full precision, which nbval would compare too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

SEPARATED = "separated"


def number(value, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``-0.000`` as ``0.000``; NaN as ``NaN``, infinities as
    ``inf``/``-inf``; anything that is not a real number as ``str(value)``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fixed(df: pd.DataFrame | pd.Series, digits: int = 3) -> pd.DataFrame | pd.Series:
    """A copy of ``df`` with every float column (or a float Series) as text at ``digits``
    decimals (:func:`number`), right-aligned by ``to_string`` as numbers are; other columns
    unchanged."""
    if isinstance(df, pd.Series):
        return df.map(lambda v: number(v, digits)) if pd.api.types.is_float_dtype(df) else df.copy()
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: number(v, digits))
    return out


def coefficients(table: pd.DataFrame, separated: Mapping[str, Iterable[str]] | None = None,
                 digits: int = 3, sort_by: str | None = None) -> pd.DataFrame:
    """A coefficient or :func:`circuitgen.predictors.replication` table for printing: floats at
    ``digits`` decimals, and for each set ``name`` in ``separated`` (``{"train": [...],
    "heldout": [...]}``, e.g. from ``HeldoutCheck.separated``) its terms' ``estimate_<name>``,
    ``lo_<name>``, ``hi_<name>`` and ``q_<name>`` (or, without a suffix, ``estimate``, ``lo``,
    ``hi``, ``p``) as ``"separated"``. ``sort_by``: a column to sort the rows by, terms it
    shows as separated last (their values are not estimates, so they have no place in an
    order)."""
    separated = {name: [t for t in terms if t in table.index]
                 for name, terms in (separated or {}).items()}
    if sort_by is not None:
        stem, _, name = sort_by.partition("_")
        hidden = separated.get(name, []) if stem == "estimate" else []
        key = table[sort_by].astype(float).mask(table.index.isin(hidden))
        table = table.loc[key.sort_values(na_position="last", kind="stable").index]
    out = fixed(table, digits)
    for name, rows in separated.items():
        stems = ("estimate", "lo", "hi", "q", "p")
        cols = [c for c in ((f"{s}_{name}" if name else s) for s in stems) if c in out.columns]
        if rows and cols:
            out[cols] = out[cols].astype(object)
            out.loc[rows, cols] = SEPARATED
    return out


def mapping(values: Mapping, digits: int = 2) -> str:
    """``{key: value}`` as ``"key value, ..."`` with each value at ``digits`` decimals."""
    return ", ".join(f"{k}: {number(v, digits)}" for k, v in values.items())


__all__ = ["SEPARATED", "number", "fixed", "coefficients", "mapping"]
