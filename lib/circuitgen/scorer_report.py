"""Week 7 as a report: the circuit scorer, prompt by prompt, on the canonical IOI distribution.

:func:`run` does what the chapter (``notebooks/w07-circuit-scorer``) shows: it scores the week-6
circuit on fresh canonical prompts (:func:`circuitgen.scorer.score_circuit`), measures it against
random circuits of its shape (:func:`circuitgen.evaluation.random_circuit_null`), scores the same
prompts under the old ablation reference (template only, the prompts' own counterparts) and runs
the S2-hacking check (:func:`circuitgen.evaluation.s2_check`). The :class:`ScorerReport` it
returns gives each section (text for the cells nbval checks, tables, figures with titles and
labelled axes) and :meth:`ScorerReport.findings`, every value the chapter's prose and the other
pages glue. Nothing is cached on disk: the chapter recomputes every number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
from scipy import stats as sps

from circuitgen import circuits, evaluation, ioi, plots, runtime, scorer, shown
from circuitgen import stats as S
from circuitgen.circuits import CircuitSpec

PROMPT_SEED_OFFSET = 7  # the scored prompts' seed is SEED + 7: a draw the circuit was not found on
CLIP = (-1, 3)  # per-prompt faithfulness is drawn clipped to this range (it explodes near F(M) = 0)
ORDERS = ("ABBA", "BABA")
FAITHFULNESS_ROWS = {"ratio": "F(C)/F(M)", "norm": "(F(C)-F(∅))/(F(M)-F(∅))", "f_m": "F(M)", "f_0": "F(∅)"}


def ratio_by_order(scores: pd.DataFrame) -> dict[str, float]:
    """The ratio of means F(C)/F(M) of each order and of all prompts."""
    def ratio(s: pd.DataFrame) -> float:
        return s.circuit_logit_diff.mean() / s.logit_diff.mean()

    return {o: ratio(scores[scores.order == o]) for o in ORDERS} | {"all": ratio(scores)}


def correlations(scores: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Spearman's rho of each column with per-prompt faithfulness, its p and the BH q."""
    rows = []
    for col in columns:
        rho, p = sps.spearmanr(scores.faithfulness, scores[col])
        rows.append({"score": col, "spearman_rho": rho, "p": p})
    corr = pd.DataFrame(rows)
    corr["q (BH)"] = S.benjamini_hochberg(corr.p)[1]
    return corr


def per_template(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean model and circuit logit difference per template, with n and the ratio of means."""
    t = scores.groupby("template").agg(model=("logit_diff", "mean"), circuit=("circuit_logit_diff", "mean"),
                                       n=("prompt", "size"))
    t["ratio_of_means"] = t.circuit / t.model
    return t


def model_right_circuit_wrong(scores: pd.DataFrame) -> pd.Series:
    """Prompts the model gets right (logit difference > 0) where the circuit alone does not."""
    return (scores.logit_diff > 0) & (scores.circuit_logit_diff <= 0)


@dataclass
class ScorerReport:
    """Week 7's scores, null, old-reference comparison and S2 check, and the sections drawn
    from them."""

    model_name: str
    seed: int
    spec: CircuitSpec
    prompts: pd.DataFrame
    scores: pd.DataFrame  # scorer.score_circuit: one row per prompt
    null_prompts: pd.DataFrame
    null: pd.DataFrame  # the circuit ('spec', first row) and random circuits of its shape
    legacy: pd.DataFrame  # the same prompts under the old reference (template only, own counterparts)
    check: pd.DataFrame  # the S2 check, per prompt, with the model's logit difference

    @property
    def meta(self) -> dict:
        return self.scores.attrs["circuitgen"]

    @property
    def n(self) -> int:
        return int(self.meta["n_scored"])

    @property
    def sig_cols(self) -> list[str]:
        return [c for c in self.scores.columns if c.startswith("sig_")]

    @property
    def ko_cols(self) -> list[str]:
        return [c for c in self.scores.columns if c.startswith("ko_")]

    # ---- the scores
    def ablation_table(self) -> pd.DataFrame:
        """The ablation reference the scores used, as the scorer recorded it."""
        return pd.DataFrame({"value": [str(v) for v in self.meta["ablation"].values()]},
                            index=pd.Index(list(self.meta["ablation"]), name="ablation"))

    def summary_text(self) -> str:
        m = self.meta
        return (f"prompts scored: {m['n_scored']} of {m['n_prompts']} (flagged: {m['n_flagged']})\n"
                + scorer.summary(self.scores).round(2).to_string())

    @functools.cached_property
    def faithfulness(self) -> pd.DataFrame:
        """F(M), F(C), F(∅), the ratio of means and the normalised faithfulness, with intervals."""
        return evaluation.faithfulness_table(self.scores, seed=self.seed)

    def faithfulness_text(self) -> str:
        return self.faithfulness.round(2).to_string()

    def scores_figure(self):
        """Model vs circuit logit difference, per-prompt faithfulness and the class knock-outs."""
        s, ko = self.scores, self.ko_cols
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        axes[0].hist([s.logit_diff, s.circuit_logit_diff], bins=25, label=["model", "circuit"])
        axes[0].set_xlabel("logit difference IO - S (nats)")
        axes[0].set_ylabel("prompts")
        axes[0].legend()
        axes[0].set_title("Model vs circuit")
        axes[1].hist(s.faithfulness.clip(*CLIP), bins=30, color="C2")
        axes[1].axvline(1, color="k", lw=1)
        axes[1].set_xlabel(f"faithfulness per prompt, circuit / model (ratio, clipped to {list(CLIP)})")
        axes[1].set_ylabel("prompts")
        axes[1].set_title("Circuit / model, per prompt")
        axes[2].boxplot([s[c] for c in ko], orientation="horizontal")
        axes[2].set_yticks(range(1, len(ko) + 1), [c[3:] for c in ko])
        axes[2].axvline(0, color="k", lw=1)
        axes[2].set_xlabel("change in logit difference when the class is knocked out (nats)")
        axes[2].set_title("Knock-outs")
        fig.suptitle(f"Scores per prompt ({self.model_name}, {self.n} prompts)")
        fig.tight_layout()
        return fig

    def signatures_figure(self):
        sig = self.sig_cols
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.boxplot([self.scores[c] for c in sig], orientation="horizontal")
        ax.set_yticks(range(1, len(sig) + 1), [c[4:] for c in sig])
        ax.set_xlabel("attention along the class's signature (probability)")
        ax.set_title(f"Attention signatures per prompt ({self.model_name}, {self.n} prompts)")
        fig.tight_layout()
        return fig

    # ---- the null
    @property
    def random(self) -> pd.DataFrame:
        return self.null[self.null.circuit != "spec"]

    def null_figure(self):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        plots.null_histogram(ax, self.null, title=f"Circuit vs random circuits ({self.model_name}, "
                                                  f"{len(self.null_prompts)} prompts)")
        fig.tight_layout()
        return fig

    def null_line(self) -> str:
        rand, null = self.random, self.null
        at_least = int((rand.F >= null.F.iloc[0]).sum())
        return (f"on {len(self.null_prompts)} prompts: circuit {null.normalised.iloc[0]:.2f}; random median "
                f"{rand.normalised.median():.2f}, max {rand.normalised.max():.2f}; "
                f"{at_least} of {len(rand)} at least as faithful "
                f"(empirical p = {(at_least + 1) / (len(rand) + 1):.3f})")

    # ---- the old reference
    @functools.cached_property
    def by_order(self) -> pd.DataFrame:
        return pd.DataFrame({"old: template only, own counterparts": ratio_by_order(self.legacy),
                             "new: template and order, fixed": ratio_by_order(self.scores)})

    @functools.cached_property
    def shift(self):
        """The change in the ratio of means, new reference minus old, with a template bootstrap."""
        paired = pd.DataFrame({"template": self.prompts.template, "d_new": self.scores.circuit_logit_diff,
                               "d_old": self.legacy.circuit_logit_diff, "m": self.scores.logit_diff})
        return S.cluster_bootstrap_ci(
            paired, "template", lambda new, old, m: new.mean() / m.mean() - old.mean() / m.mean(),
            columns=["d_new", "d_old", "m"], seed=self.seed)

    def legacy_text(self) -> str:
        return ("ratio of means F(C)/F(M) by order, under each reference:\n"
                + self.by_order.round(2).to_string() + "\n"
                f"change in the ratio of means, new - old: {self.shift.estimate:+.2f} "
                f"(95% CI {self.shift.lo:+.2f} to {self.shift.hi:+.2f}, templates resampled)")

    # ---- do the scores go together?
    @functools.cached_property
    def correlations(self) -> pd.DataFrame:
        return correlations(self.scores, self.sig_cols + self.ko_cols + ["logit_diff"])

    def correlations_text(self) -> str:
        return self.correlations.round(3).to_string(index=False)

    def signature_figure(self):
        """The main signature's attention against per-prompt faithfulness."""
        s, sig_main = self.scores, self.sig_cols[0]
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        sc = ax.scatter(s[sig_main], s.faithfulness.clip(*CLIP), c=s.logit_diff, cmap="viridis", s=16)
        ax.set_xlabel(f"{sig_main[4:]} attention along its signature (probability)")
        ax.set_ylabel(f"faithfulness per prompt, circuit / model (clipped to {list(CLIP)})")
        ax.set_title(f"Signature vs faithfulness ({self.model_name}, {self.n} prompts)")
        fig.colorbar(sc, label="model logit difference (nats)")
        fig.tight_layout()
        return fig

    # ---- where the circuit does not do the work
    @functools.cached_property
    def per_template(self) -> pd.DataFrame:
        return per_template(self.scores)

    def template_figure(self):
        fig, ax = plt.subplots(figsize=(11, 3.8))
        self.per_template[["model", "circuit"]].plot.bar(ax=ax)
        ax.set_xlabel("template")
        ax.set_ylabel("mean logit difference (nats)")
        ax.set_title(f"Model vs circuit by template ({self.model_name}, {self.n} prompts)")
        fig.tight_layout()
        return fig

    def fails_text(self) -> str:
        s, t = self.scores, self.per_template
        solid = t[t.model >= 1]  # a ratio is meaningless where the model is near 0
        return "\n".join([
            f"model right, circuit wrong: {int(model_right_circuit_wrong(s).sum())} of "
            f"{(s.logit_diff > 0).sum()} prompts the model gets right",
            f"templates where the model's mean logit difference is under 1 nats: "
            f"{sorted(t.index[t.model < 1].tolist())}",
            f"worst other templates by ratio of means: {shown.mapping(solid.ratio_of_means.nsmallest(3))}"])

    def worst_fails(self, k: int = 6) -> pd.DataFrame:
        """The ``k`` prompts the model gets right where the circuit most prefers S."""
        f = self.scores[model_right_circuit_wrong(self.scores)].nsmallest(k, "circuit_logit_diff")
        return (f[["template", "order", "prompt", "io", "s", "logit_diff", "circuit_logit_diff"]]
                .rename(columns={"logit_diff": "model (nats)", "circuit_logit_diff": "circuit (nats)"})
                .reset_index(drop=True).round(2))

    # ---- the S2-hacking check
    def s2_figure(self):
        c = self.check
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        ax.scatter(c.circuit_logit_diff / c.model, c.circuit_logit_diff_s2_intact / c.model, s=14)
        ax.axhline(1, color="grey", lw=1)
        ax.axvline(1, color="grey", lw=1)
        ax.set_xlim(*CLIP)
        ax.set_ylim(*CLIP)
        ax.set_xlabel("faithfulness per prompt, complement ablated everywhere (circuit / model)")
        ax.set_ylabel("faithfulness per prompt, complement intact at S2 (circuit / model)")
        ax.set_title(f"S2-hacking check ({self.model_name}, {self.n} prompts)")
        fig.tight_layout()
        return fig

    def s2_ratio(self, col: str, rows: pd.Series | None = None) -> float:
        c = self.check if rows is None else self.check[rows]
        return c[col].mean() / c.model.mean()

    def s2_text(self) -> str:
        above = self.scores.faithfulness > 1
        lines = [f"prompts with faithfulness > 1: {int(above.sum())} of {len(self.scores)}",
                 f"ratio of means, complement ablated everywhere: {self.s2_ratio('circuit_logit_diff'):.2f}",
                 f"ratio of means, complement intact at S2:      "
                 f"{self.s2_ratio('circuit_logit_diff_s2_intact'):.2f}"]
        if above.any():
            lines.append(f"on the prompts above 1: {self.s2_ratio('circuit_logit_diff', above):.2f} -> "
                         f"{self.s2_ratio('circuit_logit_diff_s2_intact', above):.2f} with S2 intact")
        return "\n".join(lines)

    # ---- the values the prose quotes
    def findings(self) -> dict[str, int | float | str]:
        """Every value the chapter's prose and the other pages glue, by glue name."""
        found: dict[str, int | float | str] = {}
        for key, row in FAITHFULNESS_ROWS.items():
            for col in ("estimate", "lo", "hi"):
                found[f"w07_{key}_{col}"] = float(self.faithfulness.loc[row, col])
        rand, old, new = self.random, self.by_order.iloc[:, 0], self.by_order.iloc[:, 1]
        found |= {"w07_n": self.n, "w07_null_n": len(rand),
                  "w07_null_median": float(rand.normalised.median()),
                  "w07_null_max": float(rand.normalised.max()),
                  "w07_null_circuit": float(self.null.normalised.iloc[0]),
                  "w07_old_all": float(old["all"]), "w07_old_abba": float(old["ABBA"]),
                  "w07_old_baba": float(old["BABA"]), "w07_new_abba": float(new["ABBA"]),
                  "w07_new_baba": float(new["BABA"]), "w07_shift": self.shift.estimate,
                  "w07_shift_lo": self.shift.lo, "w07_shift_hi": self.shift.hi,
                  "w07_s2_everywhere": float(self.s2_ratio("circuit_logit_diff")),
                  "w07_s2_intact": float(self.s2_ratio("circuit_logit_diff_s2_intact")),
                  "w07_min_per_group": int(self.meta["ablation"]["min_per_group"])}
        corr = self.correlations
        clear = corr[corr["q (BH)"] < 0.05]
        found["w07_n_corr_clear"] = len(clear)
        found["w07_n_corr"] = len(corr)
        found["w07_corr_list"] = ", ".join(f"{r.score} (ρ = {r.spearman_rho:+.2f})"
                                           for r in clear.itertuples()) or "none"
        s = self.scores
        found["w07_circuit_wrong"] = float(model_right_circuit_wrong(s).sum() / (s.logit_diff > 0).sum())
        return found

    def glue(self) -> None:
        """Glue every value of :meth:`findings` (myst-nb) for the chapter's prose."""
        from myst_nb import glue  # the book's dependency, needed only inside a notebook

        for name, value in self.findings().items():
            glue(name, value, display=False)


def run(model_name: str, seed: int = 0, device: str = "cpu", output_dir: str | None = None, *,
        n_prompts: int = 144, circuit: str | None = None, n_random_circuits: int = 20,
        n_null_per_group: int = 2) -> ScorerReport:
    """Load the model and the circuit (``circuit``, or the one week 6 found for ``model_name``),
    score it on ``n_prompts`` fresh canonical prompts, against ``n_random_circuits`` random
    circuits of its shape (on ``n_null_per_group`` prompts per template and order), under the old
    reference, and with the complement intact at S2."""
    model = runtime.start(model_name, seed, device)
    spec = circuits.found_circuit(model_name, circuit, output_dir)
    prompts = ioi.generate_prompts(model, n=n_prompts, seed=seed + PROMPT_SEED_OFFSET).df
    scores = scorer.score_circuit(model, spec, prompts, progress=False)
    means = scorer.mean_reference(model, prompts)
    null_prompts = prompts.groupby(["template", "order"]).head(n_null_per_group)
    null = evaluation.random_circuit_null(model, spec, null_prompts, means, n_draws=n_random_circuits,
                                          seed=seed)
    legacy = scorer.score_circuit(model, spec, prompts, ablation=scorer.Ablation.legacy_template_only(),
                                  progress=False, knockouts=False)
    check = evaluation.s2_check(model, spec, scores, scorer.mean_reference(model, prompts))
    check["model"] = scores.logit_diff
    return ScorerReport(model_name, seed, spec, prompts, scores, null_prompts, null, legacy, check)


__all__ = ["PROMPT_SEED_OFFSET", "CLIP", "ratio_by_order", "correlations", "per_template",
           "model_right_circuit_wrong", "ScorerReport", "run"]
