"""Week 15's expensive step outside the notebook: the week-14 circuits scored on the hand-written
held-out prompts (data/prompts/heldout-handwritten.csv, loaded by circuitgen.heldout), under mean
and resample ablation. Writes the cached table the chapter reads,
data/scores/<model>-heldout-handwritten-circuits.csv (re-used while its inputs are unchanged).

Mean ablation takes, for each hand-written prompt, its family's generated (condition, order)
reference of seed 1 (circuitgen.heldout.family_reference). Two checks run beside it:

- the scorer-default reference (the hand-written prompts' own ABC counterparts, padded by name
  substitution), written as <model>-heldout-handwritten-ownref-circuits.csv, and the two
  references' normalised faithfulness per circuit printed side by side;
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

from circuitgen import curves as C
from circuitgen import faithful, generalise, heldout, runtime
from circuitgen import tables as T
from circuitgen.paths import DATA_DIR


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
    p.add_argument("--no-checks", action="store_true", help="write the table only")
    args = p.parse_args()
    model = runtime.start(args.model)
    circuits = generalise.circuits_under_test(model, args.output_dir)
    out = DATA_DIR / "scores" if args.output_dir is None else pathlib.Path(args.output_dir) / "scores"
    prompts = heldout.load_handwritten(model)
    if prompts.attrs["skipped"]:  # rows whose names this model's tokenizer splits
        print(heldout.skipped_note(prompts), flush=True)
    print(f"{len(prompts)} hand-written prompts; circuits: "
          + ", ".join(f"{k} ({len(v)} nodes)" for k, v in circuits.items()), flush=True)
    t0 = time.perf_counter()
    table = heldout.score_handwritten(model, prompts, circuits, out_dir=out)
    print(f"heldout-handwritten: {table.df.prompt_id.nunique()} prompts, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    if args.no_checks:
        return 0
    own = faithful.circuit_scores(model, prompts, circuits, "heldout-handwritten-ownref-circuits",
                                  ablations=("mean",), out_dir=out)
    fam = table.df[table.df.ablation == "mean"]
    side = C.summarise(fam)[["circuit", "n_nodes", "normalised"]].merge(
        C.summarise(own.df)[["circuit", "normalised"]], on="circuit",
        suffixes=("_family_ref", "_own_ref"))
    with pd.option_context("display.width", 200, "display.precision", 3):
        print("normalised faithfulness on the hand-written prompts, mean ablation, by reference:")
        print(side.to_string(index=False))
    if args.output_dir is None:
        worst = check_family_reference(model, circuits, out)
        print(f"family reference vs the week-14 seed-1 tables: largest |difference| {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
