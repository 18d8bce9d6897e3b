"""Verdicts by equivalence, with power (issue 23, item 3).

The first rule (:func:`circuitgen.generalise.faithfulness_verdict`, weeks 14-15) calls a
condition *holds* when its point estimate of the normalised faithfulness lies in the target band.
A reviewer reads that as under-powered: with 20 prompts over a few templates most estimates in
the band have an interval reaching out of it, so "holds" there means "not shown to fail", not
"shown to work". This rule asks for a test in each direction:

- **holds**: equivalence to the band shown, by two one-sided tests (TOST) on the template-cluster
  bootstrap (:func:`circuitgen.stats.cluster_equivalence`): Benjamini-Hochberg ``q`` of the TOST
  p-value below ``fdr``;
- **degrades**: shown to lie *below* the band (one-sided test against the band's low edge, BH q
  below ``fdr``);
- **exceeds**: shown to lie *above* the band (the same against its high edge);
- **unclear**: none of the three shown. Each row also carries the TOST's power, at a normalised
  faithfulness of 1 with the condition's own standard error, and the templates that power would
  need to reach 0.8: an unclear verdict with power 0.2 says "too few templates", not "no effect".

The three hypotheses exclude one another, so at most one is rejected per condition; BH runs over
the conditions of one family, per circuit, ablation and test. The rule was fixed before any
verdict under it was seen (LAB_NOTEBOOK, 2026-12-03, "verdicts by equivalence: the rule").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitgen import curves as C
from circuitgen import stats as st
from circuitgen.task import normalised_parts

ALPHA = 0.05  # each one-sided test's level (the TOST's 90% interval)
FDR = 0.05  # Benjamini-Hochberg level across a family's conditions
POWER_AT = 1.0  # the normalised faithfulness at which power is reported (a perfect circuit)
CLUSTER = "template"
VERDICTS = ("holds", "degrades", "exceeds", "unclear")
KEYS = ("circuit", "ablation", "condition")


def equivalence_verdict(q_equiv: float, q_below: float, q_above: float, fdr: float = FDR) -> str:
    """The verdict from the three BH q-values (NaN: not tested, never a finding)."""
    shown = [v for v, q in (("holds", q_equiv), ("degrades", q_below), ("exceeds", q_above))
             if pd.notna(q) and q < fdr]
    if len(shown) > 1:  # cannot happen with disjoint hypotheses; a bug upstream if it does
        raise ValueError(f"more than one verdict shown ({shown}) from q-values "
                         f"{q_equiv}, {q_below}, {q_above}: the tests are not one-sided against one band.")
    return shown[0] if shown else "unclear"


def _condition(g: pd.DataFrame, band, alpha: float, seed: int) -> st.Equivalence:
    ok = g[g.status == "ok"] if "status" in g.columns else g
    num, den = normalised_parts(ok.logit_diff.to_numpy(float), ok.circuit_logit_diff.to_numpy(float),
                                ok.empty_logit_diff.to_numpy(float))
    return st.cluster_equivalence((num, den), ok[CLUSTER].to_numpy(), band, alpha=alpha,
                                  power_at=POWER_AT, seed=seed)


def equivalence_table(scores: pd.DataFrame, *, band: tuple[float, float] = C.TARGET_BAND,
                      alpha: float = ALPHA, fdr: float = FDR, seed: int = 0) -> pd.DataFrame:
    """Per (circuit, ablation, condition) of a long score table (:func:`circuitgen.curves.
    score_circuits` with ``condition`` and ``template`` columns): ``n``, ``n_templates``, the
    normalised faithfulness with its 90% interval, the three p-values and their BH q-values
    (within each circuit and ablation), ``power`` and ``templates_for_80``, and the verdict."""
    missing = {"logit_diff", "circuit_logit_diff", "empty_logit_diff", CLUSTER, *KEYS} - set(scores.columns)
    if missing:
        raise KeyError(f"the score table lacks {sorted(missing)}: score with "
                       "circuitgen.curves.score_circuits and keep the prompts' condition and template.")
    rows = []
    for key, g in scores.groupby(list(KEYS), sort=False):
        e = _condition(g, band, alpha, seed)
        rows.append({**dict(zip(KEYS, key)), "n": int(len(g)), "n_templates": e.n_clusters,
                     "estimate": e.estimate, "lo90": e.lo90, "hi90": e.hi90, "p_equiv": e.p_equiv,
                     "p_below": e.p_below, "p_above": e.p_above, "se": e.se, "power": e.power,
                     "templates_for_80": e.clusters_for_80})
    t = pd.DataFrame(rows)
    for p in ("p_equiv", "p_below", "p_above"):
        t["q" + p[1:]] = np.nan
        for _, idx in t.groupby(["circuit", "ablation"], sort=False).groups.items():
            t.loc[idx, "q" + p[1:]] = st.benjamini_hochberg(t.loc[idx, p].to_numpy(float), fdr)[1]
    t["verdict"] = [equivalence_verdict(a, b, c, fdr)
                    for a, b, c in zip(t.q_equiv, t.q_below, t.q_above)]
    return t


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Conditions per verdict per (circuit, ablation), with ``n`` conditions and the median power."""
    counts = pd.crosstab([table.circuit, table.ablation], table.verdict).reindex(
        columns=list(VERDICTS), fill_value=0)
    counts["n"] = counts.sum(axis=1)
    counts["median power"] = table.groupby(["circuit", "ablation"]).power.median()
    order = list(dict.fromkeys(zip(table.circuit, table.ablation)))
    return counts.reindex(order)


def compare_rules(first: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The first rule's verdicts (``verdict`` of :func:`circuitgen.generalise.verdict_table`)
    against this rule's, counted: which of the first rule's *holds* are shown equivalent."""
    keys = list(KEYS)
    m = first[keys + ["verdict"]].merge(table[keys + ["verdict"]], on=keys,
                                        suffixes=(" (estimate in band)", " (equivalence)"),
                                        validate="one_to_one")
    return pd.crosstab(m["verdict (estimate in band)"], m["verdict (equivalence)"]).reindex(
        index=list(VERDICTS), columns=list(VERDICTS), fill_value=0)


__all__ = ["ALPHA", "FDR", "POWER_AT", "VERDICTS", "equivalence_verdict", "equivalence_table",
           "verdict_counts", "compare_rules"]
