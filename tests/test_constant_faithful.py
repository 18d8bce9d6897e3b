"""faithful.n_ranked by hand: it fails when the function returns a constant (issue 13; found by
``scripts/constant_subjects.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitgen import faithful


def test_n_ranked_counts_ranked_heads_only():
    table = pd.DataFrame({"kind": ["head", "head", "head", "mlp", "head"],
                          "rank": [1, np.nan, 2, 3, 4]})
    assert faithful.n_ranked(table) == 3  # the MLP and the unranked head do not count
    assert faithful.n_ranked(table.assign(rank=np.nan)) == 4  # no ranks: every head
    assert faithful.n_ranked(table.drop(columns="rank")) == 4
