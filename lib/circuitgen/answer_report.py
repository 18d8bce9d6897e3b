"""Week 15 as a report: what predicts failure, and the series' answer.

The chapter (``notebooks/w15-the-answer``) and ``scripts/week15.py`` share this module:

- :func:`handwritten_scores` scores the circuits under test on the hand-written held-out prompts
  (each with its family's seed-1 mean-ablation reference, :func:`circuitgen.heldout.
  score_handwritten`) and, as a check of that choice, with the scorer's default reference (their
  own ABC counterparts); both cached under ``data/scores/``;
- :func:`reference_choice` sets the two references' normalised faithfulness side by side;
- :func:`analyse` runs week 12's two held-out checks (:mod:`circuitgen.predictors`) for one
  circuit;
- :func:`run` reads the week-14 score tables (:func:`circuitgen.generalise_report.score_tables`)
  and the hand-written scores, analyses the headline circuits and returns an
  :class:`AnswerReport`, whose methods give each section the chapter shows (text for the cells
  nbval checks, figures) and :meth:`AnswerReport.findings`, every value the chapter's prose and
  the book's introduction glue.

Nothing here is fingerprinted: the caches' inputs are what :mod:`circuitgen.heldout` and
:mod:`circuitgen.faithful` record.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import faithful, generalise, generalise_report, heldout, paths, plots, predictors, runtime
from circuitgen import nodes as N
from circuitgen import stats as S

OWNREF_NAME = "heldout-handwritten-ownref-circuits"
ABLATIONS = ("mean", "resample")
KEYS = {"eap-ig": "eap", "path-patching": "pp", "week 6": "w6"}  # glue keys; the top-k is "mid"


def headline(circuits: Sequence[str]) -> list[str]:
    """The circuits the chapter analyses: EAP-IG's top k, the chosen EAP-IG and path-patching
    circuits (when this model has them) and the week-6 circuit."""
    mid = generalise_report.mid_label(circuits)
    return [c for c in (mid, "eap-ig", "path-patching", "week 6") if c in circuits]


@dataclass
class HandwrittenScores:
    """The hand-written prompts and the circuits' scores on them under each reference."""

    prompts: pd.DataFrame  # heldout.load_handwritten (attrs["skipped"]: rows this tokenizer splits)
    family: pd.DataFrame  # mean (family seed-1 reference) and resample ablation
    own: pd.DataFrame  # mean ablation with the prompts' own ABC counterparts (the scorer's default)


def handwritten_scores(model, circuits: dict[str, Sequence[N.Node]],
                       scores_dir: str | pathlib.Path | None = None,
                       log: Callable | None = print) -> HandwrittenScores:
    """Score ``circuits`` on the hand-written prompts under both references (cached under
    ``scores_dir``, default ``data/scores``; a table whose inputs are unchanged is re-used)."""
    out = pathlib.Path(scores_dir) if scores_dir else paths.DATA_DIR / "scores"
    prompts = heldout.load_handwritten(model)
    family = heldout.score_handwritten(model, prompts, circuits, out_dir=out, log=log).df
    own = faithful.circuit_scores(model, prompts, circuits, OWNREF_NAME, ablations=("mean",),
                                  out_dir=out, log=log).df
    return HandwrittenScores(prompts, family, own)


def normalised_by_circuit(scores: pd.DataFrame) -> pd.Series:
    """Normalised faithfulness per circuit, a ratio of means over all its prompts."""
    g = scores.assign(num=scores.circuit_logit_diff - scores.empty_logit_diff,
                      den=scores.logit_diff - scores.empty_logit_diff)
    s = g.groupby("circuit", sort=False)[["num", "den"]].mean()
    return s.num / s.den


def reference_choice(hand: HandwrittenScores) -> pd.DataFrame:
    """Per circuit: the normalised faithfulness on the hand-written prompts under mean ablation
    with the family reference and with their own counterparts, and under resample ablation."""
    fam, own = hand.family, hand.own
    return pd.DataFrame({
        "mean, family reference": normalised_by_circuit(fam[fam.ablation == "mean"]),
        "mean, own counterparts": normalised_by_circuit(own[own.ablation == "mean"]),
        "resample": normalised_by_circuit(fam[fam.ablation == "resample"])})


@dataclass
class CircuitAnalysis:
    """Week 12's two held-out checks for one circuit (standardised feature tables, the fits)."""

    train: pd.DataFrame
    heldout: pd.DataFrame
    excess: predictors.HeldoutCheck  # (b) the circuit's excess over its proportional share (OLS)
    wrong: predictors.HeldoutCheck  # (a) circuit wrong where the model is right (logistic)
    r2_hand: float  # the training fit's R² for the excess on the hand-written prompts alone
    auc_hand: float  # its AUC for (a) there (NaN when those prompts hold one class only)


def analyse(sources: predictors.ScoreSources, circuit: str, ablation: str = "mean") -> CircuitAnalysis:
    """Week 12's two held-out checks for one circuit."""
    tr, ho = predictors.circuit_feature_tables(*predictors.circuit_inputs(sources, circuit, ablation))
    share = predictors.ProportionalShare.fit(tr)
    tr, ho = share.add_excess(tr), share.add_excess(ho)
    z = predictors.Standardizer.fit(tr)
    tr, ho = z.transform(tr), z.transform(ho)
    excess = predictors.heldout_check(tr, ho, "circuit_excess")
    wrong = predictors.heldout_check(tr, ho, "circuit_wrong_model_right")
    hand = ho[ho.source == predictors.HANDWRITTEN_SOURCE]
    hand_right = predictors.outcome_rows(hand, "circuit_wrong_model_right")
    both_classes = hand_right.circuit_wrong_model_right.nunique() == 2
    return CircuitAnalysis(tr, ho, excess, wrong,
                           predictors.heldout_r2(excess.fit_train, hand, "circuit_excess"),
                           (predictors.auc(hand_right.circuit_wrong_model_right,
                                           wrong.fit_train.predict(hand_right))
                            if both_classes else float("nan")))


def wrong_rates(results: dict[str, CircuitAnalysis]) -> pd.DataFrame:
    """Per circuit and prompt set: prompts the model gets right, how many of them the circuit
    alone gets wrong, and that share with its exact 95% interval."""
    rows = []
    for c, r in results.items():
        held = r.heldout
        hand = held.source == predictors.HANDWRITTEN_SOURCE
        for label, df in (("train (seed 0)", r.train), ("held out, seed 1", held[~hand]),
                          ("held out, hand-written", held[hand])):
            y = predictors.outcome_rows(df, "circuit_wrong_model_right").circuit_wrong_model_right
            ci = S.clopper_pearson(int(y.sum()), len(y))
            rows.append({"circuit": c, "prompts": label, "model right": len(y), "circuit wrong": int(y.sum()),
                         "share": f"{ci.estimate:.2f} [{ci.lo:.2f}, {ci.hi:.2f}]"})
    return pd.DataFrame(rows)


def check_summary(results: dict[str, CircuitAnalysis]) -> pd.DataFrame:
    """Per circuit: the fits' sizes, how well the training fits predict held-out and hand-written
    prompts, and how many terms replicate."""
    rows = []
    for c, r in results.items():
        e, w = r.excess, r.wrong
        rows.append({"circuit": c, "n train": int(e.fit_train.nobs), "n held out": int(e.fit_heldout.nobs),
                     "(b) R² train": round(e.fit_train.rsquared, 2), "(b) R² held out": round(e.score, 2),
                     "(b) R² hand-written": round(r.r2_hand, 2),
                     "(a) AUC held out": round(w.score, 2), "(a) AUC hand-written": round(r.auc_hand, 2),
                     "(b) replicate": int((e.table.verdict == "replicates").sum()),
                     "(a) replicate": int((w.table.verdict == "replicates").sum())})
    return pd.DataFrame(rows).set_index("circuit")


def home_and_away(tables: dict[str, pd.DataFrame], verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per (circuit, ablation): the normalised faithfulness at home (pooled over the families'
    reference conditions), the share of conditions on which it holds, and the spread of its
    per-condition estimates relative to home (median of |estimate / home - 1|)."""
    home = pd.concat([t[t.condition == generalise.BASES[f]] for f, t in tables.items()])
    rows = []
    for (c, a), g in home.groupby(["circuit", "ablation"], sort=False):
        h = (g.circuit_logit_diff - g.empty_logit_diff).mean() / (g.logit_diff - g.empty_logit_diff).mean()
        v = verdicts[(verdicts.circuit == c) & (verdicts.ablation == a)]
        rows.append({"circuit": c, "ablation": a, "home": h, "share holds": (v.verdict == "holds").mean(),
                     "spread": (v.estimate / h - 1).abs().median()})
    return pd.DataFrame(rows)


def answer_cell(r) -> str:
    """One family and circuit of the answer table: estimate [95% interval]; verdict counts."""
    return (f"{r.estimate:.2f} [{r.lo:.2f}, {r.hi:.2f}]; h {r.holds} d {r.degrades} e {r.exceeds} "
            f"u {r.unclear} of {r.n_conditions}")


@dataclass
class AnswerReport:
    """Week 15's score tables, held-out checks and answer, and the sections drawn from them."""

    model_name: str
    seed: int
    heldout_seed: int
    n_per_condition: int
    circuits: generalise.CircuitsUnderTest
    tables: dict[int, dict[str, pd.DataFrame]]  # {seed: {family: long score table}}
    hand: HandwrittenScores
    results: dict[str, CircuitAnalysis]  # headline circuit -> its held-out checks

    @property
    def mid(self) -> str:
        return generalise_report.mid_label(self.circuits)

    @property
    def headline(self) -> list[str]:
        return headline(self.circuits)

    # ---- the answer
    @functools.cached_property
    def verdicts(self) -> pd.DataFrame:
        return generalise.family_verdicts(self.tables[self.seed])

    @functools.cached_property
    def answer(self) -> pd.DataFrame:
        return generalise.answer_table(self.tables[self.seed], self.verdicts)

    def answer_text(self) -> str:
        parts = []
        for ablation in ABLATIONS:
            a = self.answer[(self.answer.ablation == ablation) & self.answer.circuit.isin(self.headline)]
            parts.append(f"{ablation} ablation\n"
                         + a.assign(cell=[answer_cell(r) for r in a.itertuples()])
                         .pivot(index="family", columns="circuit", values="cell")
                         .reindex(list(generalise.FAMILIES))[self.headline].to_string() + "\n")
        return "\n".join(parts)

    def answer_figure(self):
        """Each headline circuit's pooled normalised faithfulness per family, both ablations."""
        a = self.answer[self.answer.circuit.isin(self.headline)]
        # one row per (family, circuit), the two ablations side by side
        shown = a.rename(columns={"circuit": "condition", "ablation": "circuit"}).assign(reference=False)
        n = int(a.drop_duplicates("family")["n"].sum())
        fig, ax = plt.subplots(figsize=(8, 7))
        plots.condition_forest(ax, shown, list(ABLATIONS), xlim=(0, 1.6),
                               xlabel="normalised faithfulness (F(C) − F(∅)) / (F(M) − F(∅)), ratio",
                               title=f"Per family, pooled ({self.model_name}, seed {self.seed}, "
                                     f"{n} prompts; 95% intervals by template)")
        ax.legend(title="ablation", fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig

    # ---- the hand-written prompts
    def examples_text(self) -> str:
        """The first hand-written prompt of each family, and the rows this tokenizer skipped."""
        p = self.hand.prompts
        lines = [f"{r.family:<12} {r.condition:<20} {r.prompt}  -> {r.io.strip()}"
                 for _, r in p.groupby("family", sort=False).head(1).iterrows()]
        if p.attrs["skipped"]:  # rows whose names this model's tokenizer splits
            lines.append(heldout.skipped_note(p))
        return "\n".join(lines)

    @functools.cached_property
    def reference_choice(self) -> pd.DataFrame:
        return reference_choice(self.hand)

    def reference_text(self) -> str:
        return self.reference_choice.round(2).to_string()

    @property
    def reference_shift(self) -> pd.Series:
        """Own counterparts minus family reference, per circuit (mean ablation)."""
        r = self.reference_choice
        return r["mean, own counterparts"] - r["mean, family reference"]

    # ---- what predicts failure
    @functools.cached_property
    def wrong_rates(self) -> pd.DataFrame:
        return wrong_rates(self.results)

    def wrong_rates_text(self) -> str:
        return self.wrong_rates.to_string(index=False)

    def checks_text(self) -> str:
        lines = [check_summary(self.results).T.to_string(), ""]
        for c, r in self.results.items():
            lines.append(f"{c}: (b) {predictors.summarise_terms(r.excess.table)}")
            lines.append(f"{' ' * len(c)}  (a) {predictors.summarise_terms(r.wrong.table)}")
        return "\n".join(lines)

    def coefficient_figure(self):
        """The excess model's coefficients for the headline circuit, training fit and refit."""
        tab = self.results[self.mid].excess.table
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(tab) + 1.2))
        plots.coefficient_forest(ax, tab, label=predictors.term_label,
                                 sets=(("train", "training (seed 0)"),
                                       ("heldout", "held out (seed 1 + hand-written)")),
                                 xlabel="circuit excess, nats per SD (or per level), 95% CI clustered by "
                                        "template",
                                 title=f"What predicts the excess of {self.mid} ({self.model_name}, mean "
                                       f"ablation; * replicates)")
        fig.tight_layout()
        return fig

    # ---- faithful at home, generalises?
    @functools.cached_property
    def by_circuit(self) -> pd.DataFrame:
        return home_and_away(self.tables[self.seed], self.verdicts)

    @property
    def rho_holds(self) -> float:
        return self.by_circuit[["home", "share holds"]].corr(method="spearman").iloc[0, 1]

    @property
    def rho_spread(self) -> float:
        return self.by_circuit[["home", "spread"]].corr(method="spearman").iloc[0, 1]

    def home_figure(self):
        b = self.by_circuit
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, col, label in ((axes[0], "share holds", "share of conditions on which it holds (0 to 1)"),
                               (axes[1], "spread", "median |condition / home − 1| (a fraction of home)")):
            for a, marker in (("mean", "o"), ("resample", "s")):
                s = b[b.ablation == a]
                ax.scatter(s.home, s[col], marker=marker, label=f"{a} ablation")
                for _, r in s.iterrows():
                    ax.annotate(r.circuit, (r.home, r[col]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
            ax.axvspan(0.85, 1.15, color="0.92", zorder=0)
            ax.set_xlabel("normalised faithfulness at home (reference conditions; ratio)")
            ax.set_ylabel(label)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Faithful at home vs generalises ({self.model_name}, seed {self.seed}; "
                     f"{len(self.circuits)} circuits x {b.ablation.nunique()} ablations)")
        fig.tight_layout()
        return fig

    def home_text(self) -> str:
        return (self.by_circuit.round(2).to_string(index=False)
                + f"\n\nSpearman rho (n = {len(self.by_circuit)}): home vs share holding "
                  f"{self.rho_holds:.2f}; home vs spread {self.rho_spread:.2f}")

    # ---- the values the prose quotes
    def findings(self) -> dict[str, int | float | str]:
        """Every value the chapter's prose and the book's introduction glue, by glue name."""
        p, answer, mid = self.hand.prompts, self.answer, self.mid
        found: dict[str, int | float | str] = {
            "w15_n_hand": len(p), "w15_n_hand_per_family": int(p.groupby("family").size().min()),
            "w15_ref_shift_min": float(self.reference_shift.min()),
            "w15_ref_shift_max": float(self.reference_shift.max()),
            "w15_k_mid": len(self.circuits[mid]), "w15_n_per_condition": self.n_per_condition,
            "w15_n_points": len(self.by_circuit), "w15_n_circuits": len(self.circuits)}
        t = self.verdicts.drop_duplicates(["family", "condition"]).n_templates
        found["w15_templates_median"] = f"{t.median():g}"
        keys = {mid: "mid", **KEYS}

        def pick(family: str, circuit: str, ablation: str):
            return answer[(answer.family == family) & (answer.circuit == circuit)
                          & (answer.ablation == ablation)].iloc[0]

        for f in generalise.FAMILIES:
            for c in self.headline:
                for a in ABLATIONS:
                    r = pick(f, c, a)
                    found[f"w15_{f}_{keys[c]}_{a}"] = f"{r.estimate:.2f} [{r.lo:.2f}, {r.hi:.2f}]"
                    found[f"w15_{f}_{keys[c]}_{a}_verdicts"] = (f"{r.holds}/{r.n_conditions} hold, "
                                                                f"{r.degrades} degrade, {r.exceeds} exceed")
            r = pick(f, mid, "mean")
            found[f"w15_{f}_n"] = f"{r.n} prompts, {r.n_templates} templates, {r.n_conditions} conditions"
        chosen_resample = answer[answer.circuit.isin(list(faithful.METHODS))
                                 & (answer.ablation == "resample")].estimate
        found["w15_chosen_resample_range"] = f"{chosen_resample.min():.2f} to {chosen_resample.max():.2f}"
        counts = generalise.verdict_counts(self.verdicts)
        v = self.verdicts
        fl = v[(v.circuit == mid) & (v.ablation == "mean") & v.verdict.isin(["degrades", "exceeds"])]
        found["w15_mid_flagged"] = ", ".join(f"{f}/{c} ({x}, {e:.2f})" for f, c, x, e in
                                             zip(fl.family, fl.condition, fl.verdict, fl.estimate)) or "none"
        for a in ABLATIONS:
            found[f"w15_mid_within_{a}"] = int(counts.loc[(mid, a), "within"])
            found[f"w15_mid_holds_{a}"] = int(counts.loc[(mid, a), "holds"])
            found[f"w15_eap_holds_{a}"] = (int(counts.loc[("eap-ig", a), "holds"])
                                           if "eap-ig" in self.circuits else "(none)")
        found["w15_n_conditions"] = int(counts["n"].iloc[0])
        found["w15_rho_spread"] = float(self.rho_spread)
        found["w15_rho_holds"] = float(self.rho_holds)
        r = self.results[mid]
        found["w15_mid_excess_replicated"] = predictors.summarise_terms(r.excess.table)
        found["w15_mid_wrong_replicated"] = predictors.summarise_terms(r.wrong.table)
        found["w15_mid_r2_heldout"] = r.excess.score
        found["w15_mid_r2_hand"] = r.r2_hand
        found["w15_w6_excess_replicated"] = predictors.summarise_terms(self.results["week 6"].excess.table)
        mr = self.wrong_rates[self.wrong_rates.circuit == mid].set_index("prompts")
        found["w15_mid_wrong_train"] = mr.loc["train (seed 0)", "share"]
        found["w15_mid_wrong_hand"] = mr.loc["held out, hand-written", "share"]
        return found

    def glue(self) -> None:
        """Glue every value of :meth:`findings` (myst-nb) for the chapter's prose."""
        from myst_nb import glue  # the book's dependency, needed only inside a notebook

        for name, value in self.findings().items():
            glue(name, value, display=False)


def run(model_name: str, seed: int = 0, heldout_seed: int = 1, device: str = "cpu",
        output_dir: str | None = None, n_per_condition: int = 20) -> AnswerReport:
    """Load the model and the circuits under test, read week 14's score tables of ``seed`` and
    ``heldout_seed`` and the hand-written prompts' scores (each through its cache under
    ``output_dir``, default ``data/scores``: recomputed only if its inputs changed), and run the
    held-out checks of the headline circuits."""
    model = runtime.start(model_name, seed, device)
    circuits = generalise.circuits_under_test(model, output_dir)
    scores_dir = paths.output_dir(output_dir) / "scores"
    tables = generalise_report.score_tables(model, circuits, (seed, heldout_seed),
                                            n_per_condition=n_per_condition, scores_dir=scores_dir)
    hand = handwritten_scores(model, circuits, scores_dir, log=None)
    sources = predictors.score_sources(model, scores_dir=scores_dir)
    results = {c: analyse(sources, c) for c in headline(circuits)}
    return AnswerReport(model_name, seed, heldout_seed, n_per_condition, circuits, tables, hand, results)


__all__ = ["OWNREF_NAME", "headline", "HandwrittenScores", "handwritten_scores", "normalised_by_circuit",
           "reference_choice", "CircuitAnalysis", "analyse", "wrong_rates", "check_summary",
           "home_and_away", "answer_cell", "AnswerReport", "run"]
