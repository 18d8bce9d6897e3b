"""Week 14 as a report: do the faithful circuits of week 13 generalise?

The chapter (``notebooks/w14-does-it-generalise``) and ``scripts/week14.py`` share this module,
as weeks 8-11 share :mod:`circuitgen.sweep_report`:

- :func:`score_tables` scores the circuits under test (:func:`circuitgen.generalise.
  circuits_under_test`) on every variation family, for each seed, through the cached score files
  of :func:`circuitgen.generalise.score_family`;
- :func:`rediscover` runs EAP-IG on the canonical 40-prompt subsets and on every condition's own
  prompts, compares each condition's circuit with the canonical one (:mod:`circuitgen.
  rediscovery`) and scores the condition's own top-k circuits beside the canonical ones;
- :func:`run` does both for the chapter and returns a :class:`GeneraliseReport`, whose methods
  give each section the chapter shows (text for the cells nbval checks, figures with titles and
  labelled axes) and :meth:`GeneraliseReport.findings`, every value the chapter's prose and the
  book's introduction glue.

Nothing here is fingerprinted: the caches' inputs are the prompts, circuits and parameters that
:mod:`circuitgen.generalise` and :mod:`circuitgen.rediscovery` record.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import curves, faithful, generalise, paths, plots, rediscovery, runtime, stats, sweeps
from circuitgen import equivalence as EQ
from circuitgen import nodes as N
from circuitgen import shown as S
from circuitgen import tables as T

# Nainani et al. (2024), GPT-2 small: Wang et al.'s circuit's F(C)/F(M) on their base, DoubleIO and
# TripleIO prompts (published values, compared with our adversarial conditions of the same names)
NAINANI = {"base": 0.895, "double_io": 1.285, "triple_io": 2.586}
# syntactic conditions that hold one order only (every canonical run mixes ABBA and BABA)
SINGLE_ORDER = ("order_abba", "order_baba", "io_first", "s_first")
CLASS_COLOURS = dict(zip(rediscovery.CLASSES, ("tab:green", "tab:orange", "tab:red")))
NOT_RUN = "(not run)"
NO_REDISCOVERY = "re-discovery not run (REDISCOVER = False)"


def mid_label(circuits: Sequence[str]) -> str:
    """The label of EAP-IG's top-k circuit (k = 5% of the head nodes), the chapter's headline."""
    return next(label for label in circuits if label.startswith("eap-ig top "))


def score_tables(model, circuits: dict[str, Sequence[N.Node]], seeds: Sequence[int],
                 families: Sequence[str] = generalise.FAMILIES, *, n_per_condition: int = 20,
                 scores_dir: str | pathlib.Path | None = None, log: Callable | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[int, dict[str, pd.DataFrame]]:
    """``{seed: {family: long score table}}`` of ``circuits`` (:func:`circuitgen.generalise.
    score_family`, cached under ``scores_dir``); ``progress`` gets a line per family scored."""
    out: dict[int, dict[str, pd.DataFrame]] = {}
    for seed in seeds:
        out[seed] = {}
        for family in families:
            t0 = time.perf_counter()
            out[seed][family] = generalise.score_family(
                model, family, seed, circuits, n_per_condition=n_per_condition, out_dir=scores_dir,
                log=log).df
            if progress:
                progress(f"{family} seed {seed}: {out[seed][family].prompt_id.nunique()} prompts, "
                         f"{time.perf_counter() - t0:.0f} s")
    return out


def rediscovery_sizes(circuits: dict[str, Sequence[N.Node]]) -> list[int]:
    """The sizes a condition's own circuit is scored at: EAP-IG's chosen size (when week 13 found
    an in-band EAP-IG circuit) and :data:`circuitgen.rediscovery.RULE_SIZE`."""
    chosen = len(circuits["eap-ig"]) if "eap-ig" in circuits else None
    return sorted({chosen, rediscovery.RULE_SIZE} - {None})


@dataclass
class Rediscovery:
    """EAP-IG re-run on every condition, against the canonical runs (week 14's second half)."""

    canonical: pd.DataFrame  # node scores of the canonical 40-prompt subsets (column ``set``)
    found_on: dict[str, pd.DataFrame]  # {family: node scores, one ``set`` per condition}
    reference: list[N.Node]  # week 13's EAP-IG ranking on discovery set 1 (its top k scored above)
    n_reference_prompts: int  # the prompts that ranking was found on
    sizes: list[int]  # sizes the own circuits were scored at
    own: pd.DataFrame  # own and canonical top-k circuits scored per condition (column ``family``)

    @functools.cached_property
    def overlap(self) -> pd.DataFrame:
        """:func:`circuitgen.rediscovery.overlap_table` of every family, stacked."""
        return pd.concat([rediscovery.overlap_table(self.canonical, t, sizes=self.sizes,
                                                    reference=self.reference).assign(family=f)
                          for f, t in self.found_on.items()], ignore_index=True)

    @functools.cached_property
    def null(self) -> dict[str, float]:
        return rediscovery.null_minima(rediscovery.rankings(self.canonical), rediscovery.RULE_SIZE)

    @functools.cached_property
    def own_summary(self) -> pd.DataFrame:
        """Normalised faithfulness (template-bootstrap 95% interval) per (family, condition,
        circuit, ablation) of :attr:`own`."""
        return own_summary(self.own)


def rediscover(model, circuits: dict[str, Sequence[N.Node]], families: Sequence[str] = generalise.FAMILIES,
               *, n_prompts: int = rediscovery.N_PROMPTS, n_per_condition: int = 20,
               output_dir: str | pathlib.Path | None = None, log: Callable | None = None,
               progress: Callable[[str], None] | None = None) -> Rediscovery:
    """EAP-IG on the first ``n_prompts`` of week 13's three discovery sets and on ``n_prompts``
    fresh prompts of every condition (seed :data:`circuitgen.rediscovery.SEED`), then each
    condition's own top-k circuits (:func:`rediscovery_sizes`) scored on its seed-0 prompts beside
    the canonical ones; every step cached under ``output_dir`` (default ``data/``)."""
    out = paths.output_dir(output_dir)
    disc_dir, scores_dir = out / "discovery", out / "scores"
    name = model.circuitgen.model
    canonical = rediscovery.discover_sets(model, rediscovery.canonical_subsets(model, n_prompts),
                                          f"canonical{n_prompts}", out_dir=disc_dir, log=log).df
    set1 = T.load_table(paths.result_path("discovery", name, rediscovery.METHOD, "set1", folder=disc_dir))
    reference = faithful.ranking(set1.df)
    sizes = rediscovery_sizes(circuits)
    found_on, own = {}, []
    for family in families:
        t0 = time.perf_counter()
        found_on[family] = rediscovery.discover_sets(
            model, rediscovery.condition_sets(model, family, n=n_prompts),
            f"{family}-seed{rediscovery.SEED}", out_dir=disc_dir, log=log).df
        own.append(rediscovery.own_circuit_scores(
            model, family, found_on[family], reference, sizes=sizes, n_per_condition=n_per_condition,
            out_dir=scores_dir, log=log).df.assign(family=family))
        if progress:
            progress(f"re-discovery {family}: {time.perf_counter() - t0:.0f} s")
    return Rediscovery(canonical, found_on, reference, int(set1.meta["n_prompts"]), sizes, pd.concat(own))


def own_summary(own: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, condition, circuit, ablation) of an own-circuit score table: the
    normalised faithfulness and its 95% interval (templates resampled)."""
    rows = []
    for (f, cond, circuit, ablation), g in own.groupby(["family", "condition", "circuit", "ablation"],
                                                       sort=False):
        est = sweeps.condition_intervals(g, "normalised").iloc[0]
        rows.append({"family": f, "condition": cond, "circuit": circuit, "ablation": ablation,
                     "estimate": est.estimate, "lo": est.lo, "hi": est.hi})
    return pd.DataFrame(rows)


def own_against_canonical(summary: pd.DataFrame, overlap: pd.DataFrame, k: int) -> dict[str, int]:
    """At ``k`` nodes, mean ablation: on how many conditions the condition's own circuit scores
    above the canonical one (``above``), is the canonical one (node Jaccard 1: ``same``), or
    scores no higher (``below``), of ``n`` conditions."""
    m = summary[summary.ablation == "mean"].pivot(index=["family", "condition"], columns="circuit",
                                                  values="estimate")
    same = overlap.set_index(["family", "condition"])[f"node_jaccard_{k}"].reindex(m.index) == 1.0
    above = (m[f"own top {k}"] > m[f"canonical top {k}"]) & ~same
    return {"above": int(above.sum()), "same": int(same.sum()), "below": int((~above & ~same).sum()),
            "n": len(m)}


@dataclass
class Agreement:
    """Scoring's verdicts against re-discovery's classes, over the conditions."""

    table: pd.DataFrame  # 2x2: degrades / other verdict x different circuit / same or other roles
    p: float  # Fisher's exact test of the 2x2 (NaN when a row is empty)
    n_fail: int  # conditions that degrade or exceed (not pre-registered)
    n_fail_different: int  # ... of them a different circuit
    n_other: int  # conditions with another verdict
    n_other_different: int  # ... of them a different circuit

    @property
    def both(self) -> int:
        """Conditions that degrade *and* are a different circuit."""
        return int(self.table.iloc[0, 0])


def agreement(verdicts: pd.DataFrame, overlap: pd.DataFrame, circuit: str,
              ablation: str = "mean") -> Agreement:
    """Do the conditions where ``circuit`` degrades (``verdicts``) match those where
    re-discovery finds a different circuit (``overlap``)?"""
    v = verdicts[(verdicts.circuit == circuit) & (verdicts.ablation == ablation)]
    j = v.merge(overlap[["family", "condition", "class"]], on=["family", "condition"])
    different = j["class"] == rediscovery.CLASSES[2]
    table = pd.crosstab(j.verdict == "degrades", different)
    table = table.reindex(index=[True, False], columns=[True, False], fill_value=0)
    table.index, table.columns = ["degrades", "other verdict"], ["different circuit", "same or other roles"]
    a, b = int(table.iloc[0, 0]), int(table.iloc[0].sum())
    c, d = int(table.iloc[1, 0]), int(table.iloc[1].sum())
    p = stats.fisher_exact_p(a, b, c, d) if b and d else float("nan")
    fails = j.verdict.isin(["degrades", "exceeds"])
    return Agreement(table, p, int(fails.sum()), int((fails & different).sum()), int((~fails).sum()),
                     int((~fails & different).sum()))


def replication_counts(both: pd.DataFrame, order: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per (circuit, ablation), of the seed-0 verdicts *degrades* / *exceeds* (``found``), how
    many the replication draw repeats (``replicated``); rows in ``order``."""
    found = both[both.replicates.notna()]
    present = set(zip(found.circuit, found.ablation))
    return (found.groupby(["circuit", "ablation"]).replicates.agg(found="size", replicated="sum").astype(int)
            .reindex([i for i in order if i in present]))


def interval_cells(estimate, lo, hi) -> list[str]:
    """``"e [lo, hi]"`` at 2 decimals, element-wise."""
    return [f"{e:.2f} [{a:.2f}, {b:.2f}]" for e, a, b in zip(estimate, lo, hi)]


@dataclass
class GeneraliseReport:
    """Week 14's circuits, scores, verdicts and re-discovery, and the sections drawn from them."""

    model_name: str
    seed: int
    replication_seed: int
    n_per_condition: int
    n_rediscovery: int
    circuits: generalise.CircuitsUnderTest
    loading_note: str  # what loading the circuits printed (the week-6 spec, skipped circuits)
    tables: dict[int, dict[str, pd.DataFrame]]  # {seed: {family: long score table}}
    rediscovered: Rediscovery | None = None

    # ---- the circuits under test
    @property
    def mid(self) -> str:
        return mid_label(self.circuits)

    @property
    def k_mid(self) -> int:
        return len(self.circuits[self.mid])

    @property
    def k_chosen(self) -> int | None:
        """EAP-IG's chosen size: None on a model where EAP-IG reached no size in the band."""
        return len(self.circuits["eap-ig"]) if "eap-ig" in self.circuits else None

    def circuits_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"circuit": label, "nodes": len(v), "heads": len(N.heads_of(v))}
                             for label, v in self.circuits.items()])

    def circuits_text(self) -> str:
        return self.loading_note + self.circuits_table().to_string(index=False)

    # ---- scoring
    @functools.cached_property
    def verdicts(self) -> pd.DataFrame:
        return generalise.family_verdicts(self.tables[self.seed])

    @functools.cached_property
    def verdicts_rep(self) -> pd.DataFrame:
        return generalise.family_verdicts(self.tables[self.replication_seed])

    @property
    def n_prompts(self) -> int:
        return sum(t.prompt_id.nunique() for t in self.tables[self.seed].values())

    @property
    def n_conditions(self) -> int:
        return self.verdicts.groupby(["family", "condition"]).ngroups

    def templates(self) -> pd.DataFrame:
        """Templates per (family, condition), with ``reference`` (the family's base condition)."""
        return (self.verdicts.drop_duplicates(["family", "condition"])
                [["family", "condition", "n_templates", "reference"]].reset_index(drop=True))

    def templates_range(self, reference: bool | None = None) -> str:
        """``"lo-hi"``: the fewest and most templates a condition has (over the reference
        conditions only, or the others, when ``reference`` says which)."""
        t = self.templates()
        n = t.n_templates if reference is None else t[t.reference == reference].n_templates
        return f"{n.min()}-{n.max()}" if n.min() != n.max() else str(n.min())

    def scope_line(self) -> str:
        return (f"{self.n_prompts} prompts in {self.n_conditions} conditions; "
                f"{len(self.circuits)} circuits x 2 ablations")

    def forest_figure(self):
        """Normalised faithfulness per condition of EAP-IG's chosen and top-k circuits, path
        patching's chosen circuit and the week-6 circuit, under each ablation."""
        shown = [c for c in ("eap-ig", self.mid, "path-patching", "week 6") if c in self.circuits]
        fig, axes = plt.subplots(1, 2, figsize=(13, 13))
        for ax, ablation in zip(axes, ("mean", "resample")):
            plots.condition_forest(ax, self.verdicts[self.verdicts.ablation == ablation], shown,
                                   labels=ablation == "mean", title=f"{ablation} ablation",
                                   xlabel="normalised faithfulness (F(C) − F(∅)) / (F(M) − F(∅)), "
                                          "ratio")
        axes[0].legend(loc="lower left", fontsize=8)
        fig.suptitle(f"Normalised faithfulness per condition ({self.model_name}, seed {self.seed}, "
                     f"{self.n_prompts} prompts; 95% intervals by template)")
        fig.tight_layout()
        return fig

    @functools.cached_property
    def counts(self) -> pd.DataFrame:
        return generalise.verdict_counts(self.verdicts)

    def counts_text(self) -> str:
        return self.counts.to_string()

    def reference_conditions(self) -> pd.DataFrame:
        """Each circuit on each family's reference condition, mean ablation: ``e [lo, hi]``."""
        v = self.verdicts
        ref = v[v.reference & (v.ablation == "mean")]
        return (ref.assign(cell=interval_cells(ref.estimate, ref.lo, ref.hi))
                .pivot(index="circuit", columns="family", values="cell")
                .reindex(list(self.circuits))[list(generalise.FAMILIES)])

    def reference_text(self) -> str:
        return self.reference_conditions().to_string()

    @functools.cached_property
    def replication(self) -> pd.DataFrame:
        """:func:`circuitgen.generalise.replication` of the two draws."""
        return generalise.replication(self.verdicts, self.verdicts_rep)

    def flagged(self) -> pd.DataFrame:
        """The (condition, circuit, ablation) verdicts *degrades* / *exceeds*, with the
        replication draw's verdict and estimate (``rep``)."""
        keys = ["family", "condition", "circuit", "ablation"]
        f = self.verdicts.merge(self.replication[keys + ["verdict_rep", "estimate_rep"]], on=keys)
        f = f[f.verdict.isin(["degrades", "exceeds"])]
        return f.assign(est=interval_cells(f.estimate, f.lo, f.hi), diff=f.difference.round(2),
                        q=f.q.map("{:.3f}".format),
                        rep=[f"{v} ({e:.2f})" for v, e in zip(f.verdict_rep, f.estimate_rep)])[
            keys[:2] + ["circuit", "ablation", "n_nodes", "est", "diff", "q", "verdict", "rep"]]

    def flagged_text(self) -> str:
        return self.flagged().to_string(index=False)

    @functools.cached_property
    def replication_counts(self) -> pd.DataFrame:
        return replication_counts(self.replication, list(self.counts.index))

    def replication_text(self) -> str:
        r = self.replication_counts
        return r.to_string() if len(r) else "no condition degrades or exceeds"

    # ---- verdicts by equivalence (issue 23 item 3; the rule in circuitgen.equivalence)
    def _equivalence(self, seed: int) -> pd.DataFrame:
        return pd.concat([EQ.equivalence_table(t).assign(family=f)
                          for f, t in self.tables[seed].items()], ignore_index=True)

    @functools.cached_property
    def equivalence(self) -> pd.DataFrame:
        """:func:`circuitgen.equivalence.equivalence_table` of every family (seed ``seed``)."""
        return self._equivalence(self.seed)

    @functools.cached_property
    def equivalence_rep(self) -> pd.DataFrame:
        return self._equivalence(self.replication_seed)

    def equivalence_counts(self) -> pd.DataFrame:
        """Verdicts by equivalence per (circuit, ablation), the median power and the median
        templates that 80% power would need; rows in the order of :attr:`counts`."""
        e = self.equivalence
        c = EQ.verdict_counts(e)
        c["templates for 80%"] = e.groupby(["circuit", "ablation"]).templates_for_80.median()
        return c.reindex(list(self.counts.index))

    def equivalence_text(self) -> str:
        return S.fixed(self.equivalence_counts(), 2).to_string()

    def rules_crosstab(self) -> pd.DataFrame:
        """Every (family, condition, circuit, ablation): the first rule's verdict (rows) against
        the verdict by equivalence (columns)."""
        keys = ["family", "condition", "circuit", "ablation"]
        m = self.verdicts[keys + ["verdict"]].merge(self.equivalence[keys + ["verdict"]], on=keys,
                                                    suffixes=("_first", "_equiv"), validate="one_to_one")
        order = list(EQ.VERDICTS)
        return (pd.crosstab(m.verdict_first, m.verdict_equiv)
                .reindex(index=order, columns=order, fill_value=0)
                .rename_axis(index="estimate in band", columns="by equivalence"))

    def equivalence_replication(self) -> pd.DataFrame:
        """Per verdict by equivalence on seed ``seed`` other than *unclear*: how many the
        replication draw repeats."""
        keys = ["family", "condition", "circuit", "ablation"]
        m = self.equivalence[keys + ["verdict"]].merge(
            self.equivalence_rep[keys + ["verdict"]], on=keys, suffixes=("", "_rep"), how="left",
            validate="one_to_one")
        found = m[m.verdict != "unclear"]
        return (found.assign(replicated=found.verdict == found.verdict_rep)
                .groupby("verdict").replicated.agg(found="size", replicated="sum")
                .reindex([v for v in EQ.VERDICTS if v != "unclear"], fill_value=0))

    def power_figure(self):
        """Each condition's power to show equivalence (at a normalised faithfulness of 1) against
        its number of templates, per circuit, mean and resample ablation."""
        e = self.equivalence
        shown_c = [c for c in ("eap-ig", self.mid, "path-patching", "week 6") if c in self.circuits]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        for ax, ablation in zip(axes, ("mean", "resample")):
            for i, c in enumerate(shown_c):
                g = e[(e.circuit == c) & (e.ablation == ablation)]
                ax.scatter(g.n_templates + (i - 1.5) * 0.12, g.power, s=14, alpha=0.7, label=c)
            ax.axhline(0.8, ls="--", color="0.5", lw=1)
            ax.set(title=f"{ablation} ablation", xlabel="templates in the condition (count)",
                   ylim=(-0.03, 1.03))
        axes[0].set_ylabel("power of the equivalence test (probability)")
        axes[0].legend(fontsize=8, loc="upper left")
        fig.suptitle(f"Power to show a faithful circuit faithful, per condition ({self.model_name}, "
                     f"{self.n_per_condition} prompts a condition; dashed: 0.8)")
        fig.tight_layout()
        return fig

    def equivalence_findings(self) -> dict[str, int | str]:
        c, e = self.equivalence_counts(), self.equivalence
        x, r = self.rules_crosstab(), self.equivalence_replication()
        found: dict[str, int | str] = {
            "eq_first_holds": int(x.loc["holds"].sum()), "eq_first_holds_shown": int(x.loc["holds", "holds"]),
            "eq_holds_total": int((e.verdict == "holds").sum()), "eq_n_units": int(len(e)),
            "eq_holds_under_10_templates": int(((e.verdict == "holds") & (e.n_templates < 10)).sum()),
            "eq_unclear_to_degrades": int(x.loc["unclear", "degrades"]),
            "eq_power_median": f"{e.power.median():.2f}",
            "eq_power_over_80": int((e.power >= 0.8).sum()),
            "eq_templates_80_median": f"{e.templates_for_80.median():.0f}",
            "eq_rep_found": int(r.found.sum()), "eq_rep_replicated": int(r.replicated.sum())}
        for abl in ("mean", "resample"):
            for label, key in ((self.mid, "mid"), ("eap-ig", "eap")):
                for col in EQ.VERDICTS:
                    found[f"eq_{key}_{abl}_{col}"] = (int(c.loc[(label, abl), col]) if label in self.circuits
                                                      else "(none)")
        return found

    def nainani(self) -> pd.DataFrame:
        """F(C)/F(M) (95% interval) and the normalised faithfulness on the adversarial base,
        double_io and triple_io conditions, mean ablation, beside Nainani et al.'s GPT-2 values."""
        rows = []
        for circuit, g in self._nainani_scores().groupby("circuit", sort=False):
            ratio = sweeps.condition_intervals(g, "faithfulness")
            norm = sweeps.condition_intervals(g, "normalised")
            for cond in NAINANI:
                rows.append({"circuit": circuit, "condition": cond,
                             "F(C)/F(M)": f"{ratio.loc[cond, 'estimate']:.2f} "
                                          f"[{ratio.loc[cond, 'lo']:.2f}, {ratio.loc[cond, 'hi']:.2f}]",
                             "normalised": f"{norm.loc[cond, 'estimate']:.2f}",
                             "GPT-2 (Nainani et al.)": NAINANI[cond]})
        return pd.DataFrame(rows)

    def _nainani_scores(self) -> pd.DataFrame:
        adv = self.tables[self.seed]["adversarial"]
        return adv[(adv.ablation == "mean") & adv.condition.isin(list(NAINANI))]

    def nainani_text(self) -> str:
        return self.nainani().to_string(index=False)

    def nainani_mid(self) -> pd.Series:
        """F(C)/F(M) of the headline circuit on the three conditions."""
        adv = self._nainani_scores()
        return sweeps.condition_intervals(adv[adv.circuit == self.mid], "faithfulness")["estimate"]

    # ---- re-discovery
    def null_line(self) -> str:
        if self.rediscovered is None:
            return NO_REDISCOVERY
        null = self.rediscovered.null
        return (f"null at {rediscovery.RULE_SIZE} nodes: smallest canonical-vs-canonical node Jaccard "
                f"{null['node_jaccard']:.2f}, head Jaccard {null['head_jaccard']:.2f}")

    def overlap_figure(self):
        """Node Jaccard of each condition's circuit with the canonical ones, against the null."""
        if self.rediscovered is None:
            return None
        overlap, k = self.rediscovered.overlap, rediscovery.RULE_SIZE
        fig, ax = plt.subplots(figsize=(7, 10))
        y = range(len(overlap))[::-1]
        ax.scatter(overlap[f"node_jaccard_{k}"], y, c=[CLASS_COLOURS[c] for c in overlap["class"]],
                   s=25, zorder=3)
        ax.scatter(overlap[f"node_jaccard_{k}_ref"], y, facecolors="none", edgecolors="0.4", s=25,
                   label="vs the 200-prompt ranking")
        ax.axvline(self.rediscovered.null["node_jaccard"], color="0.3", ls="--", lw=1,
                   label="null: smallest canonical-vs-canonical")
        ax.set_yticks(list(y), [f"{f}: {c}" for f, c in zip(overlap.family, overlap.condition)], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"node Jaccard with the canonical circuit ({k} head nodes; 0 to 1)")
        for cls, col in CLASS_COLOURS.items():
            ax.scatter([], [], c=col, label=cls)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=8)
        ax.set_title(f"Re-discovered circuits vs canonical ({self.model_name}, EAP-IG, "
                     f"{self.n_rediscovery} prompts each)")
        fig.tight_layout()
        return fig

    def overlap_text(self) -> str:
        if self.rediscovered is None:
            return NO_REDISCOVERY
        overlap, k, kc = self.rediscovered.overlap, rediscovery.RULE_SIZE, self.k_chosen
        cols = ["family", "condition", f"node_jaccard_{k}", f"head_jaccard_{k}", "weighted_jaccard",
                *([f"node_jaccard_{kc}"] if kc else []), "class"]
        classes = overlap["class"].value_counts().reindex(list(rediscovery.CLASSES), fill_value=0)
        return overlap[cols].round(2).to_string(index=False) + "\n\n" + classes.to_string()

    def top5_text(self) -> str:
        """The five nodes each canonical and each condition's own run ranks first."""
        if self.rediscovered is None:
            return NO_REDISCOVERY
        r = self.rediscovered

        def top5(rank):
            return ", ".join(n.label for n in rank[:5])

        lines = [f"{'canonical (200 prompts)':<36} {top5(r.reference)}"]
        lines += [f"{s:<36} {top5(x)}" for s, x in rediscovery.rankings(r.canonical).items()]
        for f, t in r.found_on.items():
            lines += [f"{f + ': ' + s:<36} {top5(x)}" for s, x in rediscovery.rankings(t).items()]
        return "\n".join(lines)

    def different(self) -> pd.DataFrame:
        """The conditions classed as a different circuit."""
        o = self.rediscovered.overlap
        return o[o["class"] == rediscovery.CLASSES[2]]

    def entered_left_text(self) -> str:
        """For each condition that is a different circuit: the first three nodes that enter its
        top :data:`~circuitgen.rediscovery.RULE_SIZE` and the first three that leave."""
        if self.rediscovered is None:
            return NO_REDISCOVERY
        r, k = self.rediscovered, rediscovery.RULE_SIZE
        canon = rediscovery.rankings(r.canonical)[rediscovery.CANONICAL]
        lines = []
        for f, c in zip(self.different().family, self.different().condition):
            entered, left = rediscovery.entered_left(canon, rediscovery.rankings(r.found_on[f])[c], k)
            came, went = ", ".join(n.label for n in entered[:3]), ", ".join(n.label for n in left[:3])
            lines.append(f"{f + '/' + c:<28} +{len(entered):>2}: {came:<32} -{len(left):>2}: {went}")
        return "\n".join(lines)

    def own_figure(self):
        """Each condition's own top-k circuit against the canonical top-k, mean ablation."""
        if self.rediscovered is None:
            return None
        r = self.rediscovered
        fig, axes = plt.subplots(1, 2, figsize=(11, 5))
        s = r.own_summary[r.own_summary.ablation == "mean"].pivot(index=["family", "condition"],
                                                                  columns="circuit", values="estimate")
        cls = r.overlap.set_index(["family", "condition"])["class"].reindex(s.index)
        for ax, k in zip(axes, r.sizes):
            pair = s[[f"canonical top {k}", f"own top {k}"]]
            ax.scatter(pair.iloc[:, 0], pair.iloc[:, 1], c=[CLASS_COLOURS[c] for c in cls], s=22)
            lim = [min(-0.2, pair.min().min()), max(1.6, pair.max().max())]
            ax.plot(lim, lim, color="0.5", lw=0.8)
            ax.axhspan(*curves.TARGET_BAND, color="0.92", zorder=0)
            ax.set_xlabel(f"canonical top {k}: normalised faithfulness (ratio)")
            ax.set_ylabel(f"the condition's own top {k}: normalised faithfulness (ratio)")
            ax.set_title(f"{k} head nodes, mean ablation")
        for cls_name, col in CLASS_COLOURS.items():
            axes[0].scatter([], [], c=col, label=cls_name)
        axes[0].legend(loc="upper left", fontsize=8, title="re-discovery class", title_fontsize=8)
        for ax in axes[len(r.sizes):]:
            ax.axis("off")
        fig.suptitle(f"Own circuit vs canonical circuit, per condition ({self.model_name}, "
                     f"{len(s)} conditions; colour: re-discovery class)")
        fig.tight_layout()
        return fig

    def own_against_canonical(self) -> dict[int, dict[str, int]]:
        r = self.rediscovered
        return {k: own_against_canonical(r.own_summary, r.overlap, k) for k in r.sizes}

    def own_text(self) -> str:
        if self.rediscovered is None:
            return NO_REDISCOVERY
        wide = self.rediscovered.own_summary.pivot_table(index=["circuit"], columns="ablation",
                                                         values="estimate", aggfunc="median")
        lines = ["median over conditions of the normalised faithfulness", wide.round(2).to_string()]
        for k, c in self.own_against_canonical().items():
            lines.append(f"own top {k} vs canonical top {k}: above on {c['above']}, the same nodes on "
                         f"{c['same']}, below on {c['below']} of {c['n']} conditions")
        return "\n".join(lines)

    @functools.cached_property
    def agreement(self) -> Agreement | None:
        if self.rediscovered is None:
            return None
        return agreement(self.verdicts, self.rediscovered.overlap, self.mid)

    def agreement_text(self) -> str:
        g = self.agreement
        if g is None:
            return NO_REDISCOVERY
        return "\n".join([
            g.table.to_string(),
            f"Fisher's exact p = {g.p:.2f}" if g.p == g.p else "no condition degrades: nothing to compare",
            # not in the plan (added after the verdicts were seen): failures in either direction
            f"degrades or exceeds (not pre-registered): {g.n_fail} conditions, {g.n_fail_different} of "
            f"them a different circuit; other verdicts: {g.n_other_different} of {g.n_other}"])

    # ---- the values the prose quotes
    def findings(self) -> dict[str, int | float | str]:
        """Every value the chapter's prose and the book's introduction glue, by glue name."""
        found: dict[str, int | float | str] = {
            "w14_n_per_condition": self.n_per_condition, "w14_n_prompts": self.n_prompts,
            "w14_n_conditions": self.n_conditions, "w14_k_mid": self.k_mid,
            "w14_rep_seed": self.replication_seed, "w14_n_rediscovery": self.n_rediscovery,
            "w14_rule_k": rediscovery.RULE_SIZE,
            "w14_k_chosen": self.k_chosen if self.k_chosen else "(no chosen circuit)"}
        found |= {"w14_templates_median": f"{self.templates().n_templates.median():g}",
                  "w14_templates_range": self.templates_range(),
                  "w14_ref_templates_range": self.templates_range(reference=True)}
        ratio_mid = self.nainani_mid()
        found["w14_nainani_mid"] = ", ".join(f"{c} {ratio_mid[c]:.2f}" for c in NAINANI)
        found["w14_triple_vs_gpt2"] = ("TripleIO is below DoubleIO (unlike GPT-2)"
                                       if ratio_mid["triple_io"] < ratio_mid["double_io"]
                                       else "TripleIO is above DoubleIO, as in GPT-2")
        for abl in ("mean", "resample"):
            for label, key in ((self.mid, "mid"), ("eap-ig", "eap"), ("path-patching", "pp"),
                               ("week 6", "w6")):
                present = label in self.circuits  # a method with no in-band circuit has no chosen circuit
                for col in (*generalise.VERDICTS, "within"):
                    found[f"w14_{key}_{abl}_{col}"] = (int(self.counts.loc[(label, abl), col]) if present
                                                       else "(none)")
        r = self.replication_counts
        found["w14_rep_found"] = int(r["found"].sum()) if len(r) else 0
        found["w14_rep_replicated"] = int(r["replicated"].sum()) if len(r) else 0
        v = self.verdicts
        flagged_mid = v[(v.circuit == self.mid) & (v.ablation == "mean")
                        & v.verdict.isin(["degrades", "exceeds"])]
        found["w14_flagged_list"] = ", ".join(
            f"{f}/{c} ({x})" for f, c, x in
            zip(flagged_mid.family, flagged_mid.condition, flagged_mid.verdict)) or "none"
        found |= {f"w14_{k}": v for k, v in self.equivalence_findings().items()}
        return found | {f"w14_{k}": v for k, v in self._rediscovery_findings().items()}

    def _rediscovery_findings(self) -> dict[str, str]:
        """The re-discovery numbers as text, so that a run without it says so."""
        keys = ("n_canonical", "single_order", "class_same", "class_roles", "class_different",
                "different_list", "null_node", "own_better_mid", "own_better_chosen", "agree_both",
                "agree_any", "agree_other", "agree_p")
        if self.rediscovered is None:
            return dict.fromkeys(keys, NOT_RUN)
        r, k = self.rediscovered, rediscovery.RULE_SIZE
        o = r.overlap
        found = {"n_canonical": str(r.n_reference_prompts)}
        single = o[(o.family == "syntactic") & o.condition.isin(SINGLE_ORDER)]
        found["single_order"] = "; ".join(
            f"{c} {j:.2f} ({x})" for c, j, x in
            zip(single.condition, single[f"node_jaccard_{k}"], single["class"]))
        n_class = o["class"].value_counts()
        for cls, key in zip(rediscovery.CLASSES, ("same", "roles", "different")):
            found[f"class_{key}"] = str(int(n_class.get(cls, 0)))
        d = self.different()
        found["different_list"] = ", ".join(f"{f}/{c}" for f, c in zip(d.family, d.condition)) or "none"
        better = {size: c["above"] for size, c in self.own_against_canonical().items()}
        g = self.agreement
        found |= {"null_node": f"{r.null['node_jaccard']:.2f}", "own_better_mid": str(better[k]),
                  "own_better_chosen": str(better[self.k_chosen]) if self.k_chosen else "(no chosen circuit)",
                  "agree_both": str(g.both), "agree_any": f"{g.n_fail_different} of {g.n_fail}",
                  "agree_other": f"{g.n_other_different} of {g.n_other}",
                  "agree_p": "–" if g.p != g.p else f"{g.p:.2f}"}
        return {key: found[key] for key in keys}

    def glue(self) -> None:
        """Glue every value of :meth:`findings` (myst-nb) for the chapter's prose."""
        from myst_nb import glue  # the book's dependency, needed only inside a notebook

        for name, value in self.findings().items():
            glue(name, value, display=False)


def load_circuits(model, output_dir: str | pathlib.Path | None = None
                  ) -> tuple[generalise.CircuitsUnderTest, str]:
    """:func:`circuitgen.generalise.circuits_under_test` and what it printed (which week-6 spec
    was loaded, which circuits this model lacks), to be shown with the circuits' table."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        circuits = generalise.circuits_under_test(model, output_dir)
    return circuits, printed.getvalue()


def run(model_name: str, seed: int = 0, replication_seed: int = 1, device: str = "cpu",
        output_dir: str | None = None, n_per_condition: int = 20, rediscover_: bool = True,
        n_rediscovery: int = rediscovery.N_PROMPTS) -> GeneraliseReport:
    """Load the model and the circuits under test, score them on every family for ``seed`` and
    ``replication_seed`` and, with ``rediscover_``, re-discover the circuit on every condition;
    every step reads its cache under ``output_dir`` (default ``data/``) while its inputs match."""
    model = runtime.start(model_name, seed, device)
    circuits, note = load_circuits(model, output_dir)
    out = paths.output_dir(output_dir)
    tables = score_tables(model, circuits, (seed, replication_seed), n_per_condition=n_per_condition,
                          scores_dir=out / "scores")
    found = (rediscover(model, circuits, n_prompts=n_rediscovery, n_per_condition=n_per_condition,
                        output_dir=output_dir) if rediscover_ else None)
    return GeneraliseReport(model_name, seed, replication_seed, n_per_condition, n_rediscovery,
                            circuits, note, tables, found)


__all__ = ["NAINANI", "SINGLE_ORDER", "CLASS_COLOURS", "mid_label", "score_tables", "rediscovery_sizes",
           "Rediscovery", "rediscover", "own_summary", "own_against_canonical", "Agreement", "agreement",
           "replication_counts", "interval_cells", "GeneraliseReport", "load_circuits", "run"]
