"""Week 14's expensive steps outside the notebook, through the same entry points as the chapter
(circuitgen.generalise_report): the week-13 circuits (each method's chosen circuit and top 5% of
nodes) and the week-6 circuit scored on every variation family of weeks 8-11, under mean and
resample ablation (generalise_report.score_tables), and with --rediscover, EAP-IG re-run on
every condition and its own circuits scored (generalise_report.rediscover). Writes the cached
tables the chapter reads (data/scores/ and data/discovery/ for the reference model); a table
whose inputs are unchanged is re-used.

    python scripts/week14.py                      # every family, seeds 0 and 1
    python scripts/week14.py --families domain --seeds 0
    python scripts/week14.py --rediscover         # + EAP-IG per condition (seed 2) and the null
"""

from __future__ import annotations

import argparse

from circuitgen import generalise, generalise_report, paths, rediscovery, runtime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--families", nargs="*", default=list(generalise.FAMILIES), choices=generalise.FAMILIES)
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    p.add_argument("--n-per-condition", type=int, default=20)
    p.add_argument("--output-dir", default=None, help="non-reference runs: where weeks 6 and 13 wrote")
    p.add_argument("--rediscover", action="store_true",
                   help="also re-discover the circuit per condition (EAP-IG) and score it")
    p.add_argument("--n-rediscovery", type=int, default=rediscovery.N_PROMPTS,
                   help="prompts per re-discovery run (the chapter's N_REDISCOVERY)")
    args = p.parse_args()
    model = runtime.start(args.model)
    circuits = generalise.circuits_under_test(model, args.output_dir)
    print("circuits:", ", ".join(f"{k} ({len(v)} nodes)" for k, v in circuits.items()), flush=True)
    generalise_report.score_tables(model, circuits, args.seeds, args.families,
                                   n_per_condition=args.n_per_condition,
                                   scores_dir=paths.output_dir(args.output_dir) / "scores", log=print,
                                   progress=print_flushed)
    if args.rediscover:
        generalise_report.rediscover(model, circuits, args.families, n_prompts=args.n_rediscovery,
                                     n_per_condition=args.n_per_condition, output_dir=args.output_dir,
                                     log=print, progress=print_flushed)
    return 0


def print_flushed(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
