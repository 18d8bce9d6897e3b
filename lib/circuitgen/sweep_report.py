"""The body that the four sweep chapters (weeks 8-11) share, so each keeps only its own question,
its planned contrasts and its findings.

:func:`run` generates one variation family, saves the prompt set, scores the circuit on it
through its score file (:func:`circuitgen.sweeps.family_scores`, recomputed so that running the
chapter re-checks the scores week 12 reads; a fresh file that the recomputation matches within
float noise is kept as it is, so the chapter does not rewrite committed results on another
machine) and summarises it per condition. The
:class:`SweepReport` it returns prints each section the chapters show, in the same words for
every family, and collects the values their findings quote (:meth:`SweepReport.findings`), with
the statistics of :mod:`circuitgen.sweeps` and :mod:`circuitgen.evaluation`.
"""

from __future__ import annotations

import functools
import pathlib
from dataclasses import dataclass

import pandas as pd

from circuitgen import circuits, evaluation, runtime, sweeps, variations
from circuitgen.circuits import CircuitSpec
from circuitgen.ioi import PromptSet

WIDTH = 250  # characters: the tables are wider than pandas' default 80


@dataclass
class SweepReport:
    """One family's prompts, scores and per-condition table, and the sections drawn from them."""

    family: str
    model_name: str
    seed: int
    n_per_condition: int
    model: object
    spec: CircuitSpec
    prompt_set: PromptSet
    scores: pd.DataFrame
    table: pd.DataFrame
    base: str
    saved: dict[str, pathlib.Path]

    @property
    def meta(self) -> dict:
        return self.scores.attrs["circuitgen"]

    def prompt_lines(self) -> list[str]:
        """Where the prompt set and the scores were written, and the generator's notes."""
        notes = {k: v for k, v in variations.condition_notes(self.family).items() if v}
        return ([f"{what} saved: {sweeps.shown_path(p)}" for what, p in self.saved.items()]
                + [f"{cond}: {note}" for cond, note in notes.items()])

    def examples(self) -> pd.DataFrame:
        """The first prompt of each condition."""
        df = self.prompt_set.df
        return df.groupby("condition", sort=False).head(1)[["condition", "prompt", "io", "s"]]

    def check_lines(self) -> list[str]:
        """Prompts made, scored and flagged, and the ablation reference the scores used."""
        return sweeps.flag_lines(self.scores, self.prompt_set, self.table) + [
            sweeps.reference_line(self.scores)]

    def table_text(self) -> str:
        head = f"main signature: {self.table.attrs['signature']}; reference condition: {self.base}"
        with pd.option_context("display.width", WIDTH, "display.max_colwidth", 40):
            return head + "\n" + sweeps.format_table(self.table).to_string()

    def figure(self, title: str):
        """:func:`circuitgen.sweeps.plot_conditions` with the prompts counted in the title."""
        return sweeps.plot_conditions(
            self.table, f"{title}: {self.model_name}, {self.meta['n_scored']} prompts "
            f"({self.n_per_condition} per condition)", base=self.base)

    @functools.cached_property
    def faithfulness(self) -> pd.DataFrame:
        """F(M), F(C), F(∅), ratio of means and normalised faithfulness over the family."""
        return evaluation.faithfulness_table(self.scores, seed=self.seed)

    @functools.cached_property
    def contrasts(self) -> pd.DataFrame:
        """Every condition against :attr:`base` (:func:`circuitgen.sweeps.contrast_table`)."""
        return sweeps.contrast_table(self.scores, self.base, seed=self.seed)

    def contrast_text(self) -> str:
        lines = sweeps.compare_with_reference(self.scores, self.table, self.base, seed=self.seed)
        return self.contrasts_as_text(self.contrasts) + "\n\n" + "\n".join(lines)

    def pair_contrasts(self, pairs: list[tuple[str, str]]) -> pd.DataFrame:
        """A chapter's planned contrasts (:func:`circuitgen.sweeps.pair_contrasts`)."""
        return sweeps.pair_contrasts(self.scores, pairs, seed=self.seed)

    @staticmethod
    def contrasts_as_text(contrasts: pd.DataFrame) -> str:
        with pd.option_context("display.width", WIDTH):
            return sweeps.format_contrasts(contrasts).to_string()

    def worst_lines(self, k: int = 6) -> list[str]:
        return sweeps.worst_prompt_lines(self.scores, k)

    def findings(self) -> dict[str, int | float | str]:
        """The values every sweep chapter's findings quote (:func:`circuitgen.sweeps.findings`)
        and the conditions the generator skipped."""
        found = sweeps.findings(self.scores, self.table, self.contrasts, self.base, self.faithfulness)
        found["skipped"] = sweeps.names_or_none(self.prompt_set.meta.get("conditions_skipped") or {})
        return found

    @staticmethod
    def glue(prefix: str, found: dict[str, int | float | str]) -> None:
        """Glue every value as ``<prefix>_<key>`` for the chapter's prose."""
        from myst_nb import glue

        for key, value in found.items():
            glue(f"{prefix}_{key}", value, display=False)


def run(family: str, model_name: str, seed: int = 0, device: str = "cpu",
        n_per_condition: int = 20, circuit: str | None = None, output_dir: str | None = None,
        base: str | None = None) -> SweepReport:
    """Load the model and circuit, generate ``family`` and score it; ``base`` is the reference
    condition (the first condition when ``base`` was not generated for this tokenizer)."""
    model = runtime.start(model_name, seed, device)
    spec = circuits.found_circuit(model_name, circuit, output_dir)
    prompt_set = variations.generate_family(family, model, n_per_condition=n_per_condition, seed=seed)
    saved = {"prompt set": sweeps.save_prompt_set(prompt_set, model_name, seed, output_dir)}
    scores = sweeps.family_scores(model, spec, prompt_set, seed=seed, output_dir=output_dir,
                                  refresh=True, log=None)
    saved["scores"] = pathlib.Path(scores.attrs.pop("score_file"))
    table = sweeps.by_condition(scores, seed=seed)
    chosen = base if base in table.index else table.index[0]
    return SweepReport(family, model_name, seed, n_per_condition, model, spec, prompt_set, scores,
                       table, chosen, saved)


__all__ = ["SweepReport", "run"]
