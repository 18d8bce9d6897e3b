"""The pre-registered verdict rule at its edges (issue 25): hand-made score tables whose
conditions sit where a wrong statistic or a wrong bound changes the verdict.

The rule (LAB_NOTEBOOK, weeks 14-15 plan), written out here as the oracle: *holds* when the
point estimate of the normalised faithfulness lies in the band [0.85, 1.15] (the estimate, not
its interval); *degrades* below the band when the difference from the family's base condition is
negative and its Benjamini-Hochberg q (across the family's conditions) is below 0.05 (q, not p);
*exceeds* above the band when the difference is positive with q below 0.05; else *unclear*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import generalise as G

BAND = (0.85, 1.15)  # written here, not read from the library
FDR = 0.05


def _rule(estimate: float, difference: float, q: float) -> str:
    if BAND[0] <= estimate <= BAND[1]:
        return "holds"
    clear = q == q and q < FDR  # NaN q (the base condition) is never clear
    if estimate < BAND[0] and clear and difference < 0:
        return "degrades"
    if estimate > BAND[1] and clear and difference > 0:
        return "exceeds"
    return "unclear"


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values, written plainly: q_i = min_{j: p_j >= p_i} p_j m / rank_j."""
    m = len(p)
    rank = {i: r + 1 for r, i in enumerate(np.argsort(p, kind="stable"))}
    return np.array([min(1.0, min(p[j] * m / rank[j] for j in range(m) if p[j] >= p[i]))
                     for i in range(m)])


def _condition(name: str, ratios, rng, circuit: str = "c", per_template: int = 4) -> list[dict]:
    """Prompts whose normalised faithfulness is exactly ``ratios[t]`` in template ``t``."""
    rows = []
    for t, r in enumerate(ratios):
        for _ in range(per_template):
            ld, empty = rng.uniform(2, 4), rng.uniform(-0.5, 0.5)
            rows.append({"circuit": circuit, "n_nodes": 2, "ablation": "mean", "condition": name,
                         "template": f"{name}:{t}", "logit_diff": ld, "empty_logit_diff": empty,
                         "circuit_logit_diff": empty + r * (ld - empty)})
    return rows


SPREAD = np.array([-1.5, -1, -0.5, -0.2, 0.2, 0.5, 1, 1.5])
CONDITIONS = {
    "base": [0.97, 0.99, 1.0, 1.0, 1.01, 1.02, 0.98, 1.03],
    # estimate in the band (~0.98), its lower bound far below it (~0.75): holds
    "in_wide": [0.45, 0.6, 0.8, 0.95, 1.05, 1.15, 1.25, 1.4],
    # estimate above the band (~1.25), its lower bound inside it, clearly above base: exceeds
    "above_wide": [0.95, 1.05, 1.15, 1.25, 1.3, 1.35, 1.45, 1.5],
    # estimate below the band, its upper bound inside it, clearly below base: degrades
    "below_wide": list(0.77 + 0.2 * SPREAD),
    # below the band with p < 0.05 but BH q > 0.05 (one of several contrasts): unclear
    "below_marginal": list(0.78 + 0.33 * SPREAD),
    "null1": [0.8, 0.9, 1.0, 1.1, 1.2, 0.95, 1.05, 1.0],
    "null2": [0.7, 0.9, 1.0, 1.1, 1.3, 0.95, 1.05, 1.0],
    "null3": [0.75, 0.9, 1.0, 1.1, 1.25, 0.95, 1.05, 1.0],
}
WANT = {"base": "holds", "in_wide": "holds", "above_wide": "exceeds", "below_wide": "degrades",
        "below_marginal": "unclear", "null1": "holds", "null2": "holds", "null3": "holds"}


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [r for name, ratios in CONDITIONS.items() for r in _condition(name, ratios, rng)]
    return pd.DataFrame(rows)


def test_verdicts_at_the_edges_of_the_rule(scores):
    t = G.verdict_table(scores, "base").set_index("condition")
    # The table really sits at the edges it is meant to test (else the test proves nothing).
    assert t.loc["in_wide", "lo"] < BAND[0] <= t.loc["in_wide", "estimate"] <= BAND[1]
    assert BAND[0] < t.loc["above_wide", "lo"] < BAND[1] < t.loc["above_wide", "estimate"]
    assert t.loc["below_wide", "estimate"] < BAND[0] < t.loc["below_wide", "hi"] < BAND[1]
    m = t.loc["below_marginal"]
    assert m["estimate"] < BAND[0] and m["difference"] < 0
    assert m["p"] < FDR <= m["q"], (m["p"], m["q"])
    # q is the BH adjustment of the family's p-values (the base condition has none)
    other = t.drop(index="base")
    np.testing.assert_allclose(other.q.to_numpy(), _bh(other.p.to_numpy()), rtol=1e-12)
    assert pd.isna(t.loc["base", "q"]) and t.loc["base", "reference"]
    # The estimate is the ratio of means, by hand.
    for c, g in scores.groupby("condition"):
        want = ((g.circuit_logit_diff - g.empty_logit_diff).mean()
                / (g.logit_diff - g.empty_logit_diff).mean())
        assert t.loc[c, "estimate"] == pytest.approx(want, rel=1e-12), c
    # The verdicts: the rule above, and what it must give at each edge.
    assert t.verdict.to_dict() == WANT
    for c, r in t.iterrows():
        assert r["verdict"] == _rule(r["estimate"], r["difference"], r["q"]), c


def test_bh_runs_per_circuit_and_ablation(scores):
    """Two circuits with the same table: each one's q is the BH adjustment of its own family of
    contrasts (not of both circuits' contrasts pooled, which would double m)."""
    both = pd.concat([scores, scores.assign(circuit="d")], ignore_index=True)
    t = G.verdict_table(both, "base")
    for _, g in t[~t.reference].groupby("circuit"):
        np.testing.assert_allclose(g.q.to_numpy(), _bh(g.p.to_numpy()), rtol=1e-12)
    assert (t[t.circuit == "d"].verdict.tolist() == t[t.circuit == "c"].verdict.tolist())


@pytest.mark.parametrize("estimate, difference, q, want", [
    (0.85, -0.5, 0.001, "holds"),        # both band edges belong to the band
    (1.15, 0.5, 0.001, "holds"),
    (0.849, -0.5, 0.049, "degrades"),
    (0.849, -0.5, 0.05, "unclear"),      # q < 0.05, strictly
    (1.151, 0.5, 0.05, "unclear"),
    (1.151, 0.5, 0.049, "exceeds"),
    (0.5, 0.0, 0.001, "unclear"),        # no direction, no difference
    (0.5, 0.3, 0.001, "unclear"),        # below the band but above the reference
    (1.5, -0.3, 0.001, "unclear"),       # above the band but below the reference
    (0.5, -0.5, float("nan"), "unclear"),  # the base condition: no contrast
    (1.0, float("nan"), float("nan"), "holds"),
])
def test_faithfulness_verdict_by_hand(estimate, difference, q, want):
    assert G.faithfulness_verdict(estimate, difference, q) == want == _rule(estimate, difference, q)
