"""Week 15's expensive step outside the notebook, through the chapter's entry point
(circuitgen.answer_report.handwritten_scores): the week-14 circuits scored on the hand-written
held-out prompts (data/prompts/heldout-handwritten.csv, loaded by circuitgen.heldout), under mean
and resample ablation. Writes the cached tables the chapter reads,
data/scores/<model>-heldout-handwritten-circuits.csv and its -ownref- check (re-used while their
inputs are unchanged).

Mean ablation takes, for each hand-written prompt, its family's generated (condition, order)
reference of seed 1 (circuitgen.heldout.family_reference). Two checks run beside it:

- the scorer-default reference (the hand-written prompts' own ABC counterparts, padded by name
  substitution), written as <model>-heldout-handwritten-ownref-circuits.csv, and the two
  references' normalised faithfulness per circuit printed side by side (the chapter's table,
  answer_report.reference_choice);
- the family reference reproduces week 14: a few generated seed-1 prompts per family, scored by
  the same code path, against the committed seed-1 tables (largest difference printed).

    python scripts/week15.py
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import pandas as pd

from circuitgen import answer_report, generalise, heldout, paths, runtime
from circuitgen import tables as T


def check_family_reference(model, circuits, scores_dir: pathlib.Path, n: int = 4) -> float:
    """Largest |difference| between the seed-1 tables and a re-score, through
    heldout.score_with_family_reference, of the first ``n`` prompts of each family."""
    worst = 0.0
    for family in generalise.FAMILIES:
        prompts = generalise.family_prompts(model, family, heldout.REFERENCE_SEED)
        path = scores_dir / f"{model.circuitgen.model}-{family}-seed{heldout.REFERENCE_SEED}-circuits.csv"
        table = T.load_table(path).df
        table = table[table.ablation == "mean"]
        got = heldout.score_with_family_reference(model, prompts.head(n), circuits, "mean")
        want = table.merge(got[["circuit", "prompt_id"]], on=["circuit", "prompt_id"])
        got = got.merge(want[["circuit", "prompt_id"]], on=["circuit", "prompt_id"])
        if len(got) != n * len(circuits):
            raise SystemExit(f"{family}: {len(got)} re-scored rows match the table, expected "
                             f"{n * len(circuits)}")
        for col in ("logit_diff", "empty_logit_diff", "circuit_logit_diff"):
            worst = max(worst, float(np.abs(got[col].to_numpy() - want[col].to_numpy()).max()))
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--output-dir", default=None, help="non-reference runs: where weeks 6 and 13 wrote")
    p.add_argument("--no-checks", action="store_true", help="write the family-reference table only")
    args = p.parse_args()
    model = runtime.start(args.model)
    circuits = generalise.circuits_under_test(model, args.output_dir)
    out = paths.output_dir(args.output_dir) / "scores"
    prompts = heldout.load_handwritten(model)
    if prompts.attrs["skipped"]:  # rows whose names this model's tokenizer splits
        print(heldout.skipped_note(prompts), flush=True)
    print(f"{len(prompts)} hand-written prompts; circuits: "
          + ", ".join(f"{k} ({len(v)} nodes)" for k, v in circuits.items()), flush=True)
    t0 = time.perf_counter()
    if args.no_checks:
        table = heldout.score_handwritten(model, prompts, circuits, out_dir=out)
        print(f"heldout-handwritten: {table.df.prompt_id.nunique()} prompts, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        return 0
    hand = answer_report.handwritten_scores(model, circuits, out)  # the chapter's entry point
    print(f"heldout-handwritten: {hand.family.prompt_id.nunique()} prompts, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    with pd.option_context("display.width", 200):
        print("normalised faithfulness on the hand-written prompts, by reference:")
        print(answer_report.reference_choice(hand).round(3).to_string())
    if args.output_dir is None:
        worst = check_family_reference(model, circuits, out)
        print(f"family reference vs the week-14 seed-1 tables: largest |difference| {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
