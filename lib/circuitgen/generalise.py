"""The week-13 circuits on the variation families of weeks 8-11 (issue 11, week 14).

Which circuits are under test is fixed in the lab notebook's "weeks 14-15 plan": each discovery
method's chosen circuit (the smallest in the target band, written by week 13 to
``data/circuits/<model>-ioi-<method>.yaml``), each method's top 5% of head nodes (one size for
all methods) and the week-6 circuit. :func:`score_family` scores them on one family's prompts
under mean and resample ablation, with the same ablation reference as the sweeps (ABC prompts
grouped by condition and order), and caches the long table under ``data/scores/`` with a
fingerprint of the prompts and circuits (:mod:`circuitgen.tables`): a stale file is recomputed.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import pandas as pd

from circuitgen import circuits as CS
from circuitgen import curves as C
from circuitgen import faithful, sweeps, variations
from circuitgen import nodes as N
from circuitgen import tables as T
from circuitgen.paths import DATA_DIR, result_path
from circuitgen.scorer import scorable_rows

FAMILIES = tuple(variations.FAMILIES)  # lexical, syntactic, domain, adversarial
MID_FRACTION_INDEX = 5  # C.MIB_FRACTIONS[5] = 5% of all head nodes
# each family's reference condition, as weeks 8-11 chose it
BASES = {"lexical": "objects_base", "syntactic": "order_abba", "domain": "everyday",
         "adversarial": "base"}
VERDICTS = ("holds", "degrades", "exceeds", "unclear")


class CircuitsUnderTest(dict):
    """``{label: nodes}`` of the circuits under test, with ``skipped``: ``{label: why}`` for each
    circuit the plan names that this model does not have (a week-13 method that found no circuit
    in the target band). A plain ``dict`` otherwise."""

    def __init__(self, *args, skipped: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped = dict(skipped or {})

    def note(self) -> str:
        """One line per skipped circuit ("" when none is)."""
        return "\n".join(f"not under test: {k}: {why}" for k, why in self.skipped.items())


def _found_nothing(disc_dir: pathlib.Path, name: str, method: str) -> bool:
    """Whether week 13's table of smallest in-band circuits says ``method`` reached no size in
    the band (``k`` missing), as opposed to week 13 not having run (no table, or a ``k``)."""
    path = result_path("discovery", name, "smallest", folder=disc_dir)
    if not path.exists():
        return False
    t = T.load_table(path).df
    row = t[t["method"] == method]
    return len(row) == 1 and bool(pd.isna(row["k"].iloc[0]))


def circuits_under_test(model, output_dir: str | pathlib.Path | None = None,
                        methods: Sequence[str] = faithful.METHODS, log=print) -> CircuitsUnderTest:
    """``{label: nodes}``: ``<method>`` (chosen), ``<method> top <k>`` and ``week 6``.

    Reads what weeks 6 and 13 wrote (``output_dir`` for a non-reference run); a missing file
    says which notebook makes it. A method whose week-13 curve never reached the target band has
    no chosen circuit (week 13 writes no spec for it): its ``<method>`` entry is left out and
    listed, with the reason, in the result's ``skipped`` (and ``log``-ged); its top-k circuit,
    which needs no band, stays."""
    name = model.circuitgen.model
    disc_dir = (DATA_DIR if output_dir is None else pathlib.Path(output_dir)) / "discovery"
    cfg = model.cfg
    k_mid = C.counts_for(cfg.n_layers * cfg.n_heads * len(N.NODE_ROLES))[MID_FRACTION_INDEX]
    out = CircuitsUnderTest()
    for m in methods:
        spec_path = CS.spec_file(name, m, output_dir)
        table_path = result_path("discovery", name, m, "set1", folder=disc_dir)
        needed = [table_path]
        if spec_path.exists() or not _found_nothing(disc_dir, name, m):
            needed.append(spec_path)
        for path in needed:
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: missing. Week 13 writes it: run notebooks/w13-faithful-circuits with "
                    f"MODEL={name!r} (and the same OUTPUT_DIR) first.")
        if spec_path.exists():
            out[m] = CS.load_circuit(spec_path).nodes()
        else:
            lo, hi = C.TARGET_BAND
            out.skipped[m] = (f"week 13 found no {m} circuit with normalised faithfulness in "
                              f"[{lo}, {hi}] on {name} (no size on its curve reached the band), "
                              "so it has no chosen circuit")
        out[f"{m} top {k_mid}"] = faithful.ranking(T.load_table(table_path).df)[:k_mid]
    out["week 6"] = CS.found_circuit(name, None, output_dir).nodes()
    if out.skipped and log:
        log(out.note())
    return out


def family_prompts(model, family: str, seed: int, n_per_condition: int = 20) -> pd.DataFrame:
    """The family's prompts as weeks 8-11 made them (same generator, seed and size), keeping only
    the rows this model can score (the rest are counted in the table's metadata)."""

    df = variations.generate_family(family, model, n_per_condition=n_per_condition, seed=seed).df
    return scorable_rows(model, df).reset_index(drop=True)


def score_family(model, family: str, seed: int, circuits: dict[str, Sequence[N.Node]], *,
                 n_per_condition: int = 20, ablations: Sequence[str] = ("mean", "resample"),
                 out_dir: str | pathlib.Path | None = None, log=print) -> T.ResultTable:
    """Per-prompt scores of ``circuits`` on ``family``'s prompts (seed ``seed``), cached as
    ``data/scores/<model>-<family>-seed<seed>-circuits.csv``: the long table of
    :func:`circuitgen.curves.score_circuits` with ``family`` and ``condition``."""
    prompts = family_prompts(model, family, seed, n_per_condition)
    out = pathlib.Path(out_dir) if out_dir else DATA_DIR / "scores"
    return faithful.circuit_scores(model, prompts, dict(circuits), f"{family}-seed{seed}-circuits",
                                   ablations=ablations, out_dir=out, log=log)


def load_scores(model_name: str, family: str, seed: int,
                out_dir: str | pathlib.Path | None = None) -> pd.DataFrame:
    """The long score table :func:`score_family` wrote (a missing file says how to make it)."""
    path = result_path("scores", model_name, family, f"seed{seed}", "circuits", folder=out_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; make it with `python scripts/week14.py "
                                f"--model {model_name} --families {family} --seeds {seed}`.")
    return T.load_table(path).df


def faithfulness_verdict(estimate: float, difference: float, q: float,
                         band: tuple[float, float] = C.TARGET_BAND, fdr: float = 0.05) -> str:
    """The pre-registered verdict (LAB_NOTEBOOK, weeks 14-15 plan): *holds* in the band;
    *degrades* below it and clearly below the reference (BH q < ``fdr``); *exceeds* above it and
    clearly above; else *unclear* (no clear difference is not "the same"). The reference
    condition (no contrast: NaN ``q``) can only hold or be unclear."""
    if pd.isna(estimate):
        return "unclear"
    if band[0] <= estimate <= band[1]:
        return "holds"
    clear = not pd.isna(q) and q < fdr
    if estimate < band[0] and clear and difference < 0:
        return "degrades"
    if estimate > band[1] and clear and difference > 0:
        return "exceeds"
    return "unclear"


def verdict_table(scores: pd.DataFrame, base: str, *, seed: int = 0) -> pd.DataFrame:
    """Per (circuit, ablation, condition) of one family's long score table: n, n_templates, the
    normalised faithfulness with its template-bootstrap 95% interval, the difference from
    ``base`` with its interval, p and BH q (across the family's conditions, per circuit and
    ablation), and :func:`faithfulness_verdict`."""

    frames = []
    for (circuit, ablation), g in scores.groupby(["circuit", "ablation"], sort=False):
        est = sweeps.condition_intervals(g, "normalised", seed=seed)
        diff = sweeps.difference_from_reference(g, base, "normalised", seed=seed)
        diff = diff[["difference", "lo", "hi", "p", "q"]].add_prefix("diff_").rename(
            columns={"diff_difference": "difference", "diff_p": "p", "diff_q": "q"})
        t = est.join(diff).reset_index().rename(columns={"n_clusters": "n_templates"})
        t.insert(0, "ablation", ablation)
        t.insert(0, "circuit", circuit)
        t.insert(3, "n_nodes", int(g.n_nodes.iloc[0]))
        t["reference"] = t.condition == base
        t["verdict"] = [faithfulness_verdict(e, d, q) for e, d, q in zip(t.estimate, t.difference, t.q)]
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def family_verdicts(tables: dict[str, pd.DataFrame], *, seed: int = 0) -> pd.DataFrame:
    """:func:`verdict_table` of each family's scores (``{family: long table}``), stacked with a
    ``family`` column; BH runs within each family, per circuit and ablation."""
    return pd.concat([verdict_table(t, BASES[f], seed=seed).assign(family=f)
                      for f, t in tables.items()], ignore_index=True)


def verdict_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Conditions per verdict, per (circuit, ablation), with ``n`` conditions and ``within``: how
    many whole 95% intervals lie inside the band (a stricter reading than the pre-registered
    rule, which looks at the estimate)."""
    lo, hi = C.TARGET_BAND
    v = verdicts.assign(within=(verdicts.lo >= lo) & (verdicts.hi <= hi))
    counts = pd.crosstab([v.circuit, v.ablation], v.verdict).reindex(columns=list(VERDICTS), fill_value=0)
    counts["n"] = counts.sum(axis=1)
    counts["within"] = v.groupby(["circuit", "ablation"]).within.sum()
    order = list(dict.fromkeys(zip(verdicts.circuit, verdicts.ablation)))
    return counts.reindex(order)


def replication(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The verdicts of two draws side by side (``verdict``, ``verdict_rep``); ``replicates`` is
    set where the first draw found a difference (*degrades* or *exceeds*): whether the second
    draw gave the same verdict."""
    keys = ["family", "condition", "circuit", "ablation"]
    m = first[keys + ["estimate", "verdict"]].merge(
        second[keys + ["estimate", "verdict"]], on=keys, suffixes=("", "_rep"), how="left",
        validate="one_to_one")
    found = m.verdict.isin(["degrades", "exceeds"])
    m["replicates"] = pd.Series(pd.NA, index=m.index, dtype="boolean")
    m.loc[found, "replicates"] = (m.verdict_rep == m.verdict)[found]
    return m


def answer_table(tables: dict[str, pd.DataFrame], verdicts: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The series' answer per (family, circuit, ablation): the family's pooled normalised
    faithfulness (all its prompts, 95% interval resampling templates) and how many of its
    conditions hold / degrade / exceed / are unclear."""

    rows = []
    for family, t in tables.items():
        for (circuit, ablation), g in t.groupby(["circuit", "ablation"], sort=False):
            est = sweeps.condition_intervals(g.assign(_all=family), "normalised", by="_all",
                                             seed=seed).iloc[0]
            v = verdicts[(verdicts.family == family) & (verdicts.circuit == circuit)
                         & (verdicts.ablation == ablation)].verdict.value_counts()
            rows.append({"family": family, "circuit": circuit, "ablation": ablation, "n": int(est.n),
                         "n_templates": int(est.n_clusters), "estimate": est.estimate, "lo": est.lo,
                         "hi": est.hi, "n_conditions": int(v.sum()),
                         **{x: int(v.get(x, 0)) for x in VERDICTS}})
    return pd.DataFrame(rows)


__all__ = ["FAMILIES", "BASES", "VERDICTS", "CircuitsUnderTest", "circuits_under_test", "family_prompts",
           "score_family", "load_scores", "faithfulness_verdict", "verdict_table",
           "family_verdicts", "verdict_counts", "replication", "answer_table"]
