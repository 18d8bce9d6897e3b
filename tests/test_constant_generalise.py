"""generalise's tables against hand-made cases, for the functions no fast test exercised (found
by ``scripts/constant_subjects.py``): each fails when its subject returns a constant of the right
shape (issue 13)."""

from __future__ import annotations

import pandas as pd
import pytest

from circuitgen import generalise as G


def test_verdict_counts_by_hand():
    # Band (0.85, 1.15): "within" counts whole intervals inside it, whatever the verdict.
    v = pd.DataFrame({
        "circuit": ["a", "a", "a", "b", "b"],
        "ablation": ["mean"] * 5,
        "verdict": ["holds", "degrades", "holds", "exceeds", "degrades"],
        "lo": [0.90, 0.20, 0.80, 1.20, 0.10],
        "hi": [1.10, 0.60, 1.10, 1.40, 0.30],
    })
    got = G.verdict_counts(v)
    assert list(got.index) == [("a", "mean"), ("b", "mean")]
    assert got.loc[("a", "mean"), "holds"] == 2 and got.loc[("a", "mean"), "degrades"] == 1
    assert got.loc[("b", "mean"), "exceeds"] == 1 and got.loc[("b", "mean"), "holds"] == 0
    assert got["n"].tolist() == [3, 2]
    assert got["within"].tolist() == [1, 0]


def test_replication_by_hand():
    keys = dict(family=["f"] * 3, condition=["c1", "c2", "c3"], circuit=["a"] * 3, ablation=["mean"] * 3)
    first = pd.DataFrame(keys | {"estimate": [0.5, 0.9, 1.3], "verdict": ["degrades", "holds", "exceeds"]})
    second = pd.DataFrame(keys | {"estimate": [0.6, 0.7, 1.0], "verdict": ["degrades", "degrades", "holds"]})
    got = G.replication(first, second)
    assert got["estimate_rep"].tolist() == [0.6, 0.7, 1.0]
    assert got["verdict_rep"].tolist() == ["degrades", "degrades", "holds"]
    # Only where the first draw found a difference: c1 replicates, c3 does not, c2 is NA.
    assert got.loc[0, "replicates"] == True  # noqa: E712 (pandas' nullable boolean)
    assert got.loc[2, "replicates"] == False  # noqa: E712
    assert pd.isna(got.loc[1, "replicates"])


def _family_table(seed: int, ratios: dict[str, float]):
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for cond, ratio in ratios.items():
        for i in range(24):
            ld, empty = rng.uniform(2, 4), rng.uniform(-0.5, 0.5)
            rows.append({"circuit": "c", "n_nodes": 2, "ablation": "mean", "condition": cond,
                         "template": f"{cond}:{i % 6}", "prompt_id": len(rows), "logit_diff": ld,
                         "empty_logit_diff": empty,
                         "circuit_logit_diff": empty + ratio * (ld - empty) + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_family_verdicts_estimates_each_condition_of_each_family():
    tables = {"domain": _family_table(1, {"everyday": 1.0, "law": 0.2}),
              "adversarial": _family_table(2, {"base": 1.0, "distractor": 0.5})}
    got = G.family_verdicts(tables)
    assert set(zip(got.family, got.condition)) >= {("domain", "law"), ("adversarial", "distractor")}
    for (fam, cond), row in got.set_index(["family", "condition"]).iterrows():
        t = tables[fam][tables[fam].condition == cond]
        want = (t.circuit_logit_diff - t.empty_logit_diff).mean() / (t.logit_diff - t.empty_logit_diff).mean()
        assert row["estimate"] == pytest.approx(want), (fam, cond)
