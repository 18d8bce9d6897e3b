"""Week 13's expensive steps outside the notebook, through the same entry points as the chapter
(circuitgen.faithful_report): discovery runs (discover_all), size curves, the smallest faithful
circuits and their scores (curves_and_smallest), and the chosen circuits' specs (write_specs).
Writes the same cached tables the notebook reads (data/discovery/ for the reference model), so
`make book` re-uses them while their inputs are unchanged.

    python scripts/week13.py --methods eap-ig pruning --sets 1 2 3
    python scripts/week13.py --curves           # needs every method's set-1 run
    python scripts/week13.py --curves --specs   # and write the chosen circuits' specs, as the chapter does
"""

from __future__ import annotations

import argparse

from circuitgen import circuits, faithful, faithful_report, paths, runtime, splits


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--methods", nargs="*", default=list(faithful.METHODS), choices=faithful.METHODS)
    p.add_argument("--sets", nargs="*", type=int, default=[1, 2, 3])
    p.add_argument("--curves", action="store_true", help="also the size curves and the smallest circuits")
    p.add_argument("--specs", action="store_true", help="with --curves: write the chosen circuits' specs")
    p.add_argument("--output-dir", default=None, help="non-reference runs: where to write")
    args = p.parse_args()
    model = runtime.start(args.model)
    out = paths.output_dir(args.output_dir) / "discovery"
    sets = splits.make_splits(model)
    faithful_report.discover_all(model, sets, dict.fromkeys(args.methods, args.sets), out_dir=out,
                                 progress=lambda line: print(line, flush=True))
    if args.curves:
        runs = faithful_report.discover_all(model, sets, dict.fromkeys(faithful.METHODS, [1]), out_dir=out)
        rank1 = {m: faithful.ranking(runs[(m, "set1")].df) for m in faithful.METHODS}
        week6 = circuits.found_circuit(args.model, None, args.output_dir)
        found = faithful_report.curves_and_smallest(model, sets.evaluation.df, rank1, week6.nodes(),
                                                    out_dir=out)
        print(found.found.to_string())
        if args.specs:
            score_of = {m: dict(zip(runs[(m, "set1")].df.node, runs[(m, "set1")].df.score))
                        for m in faithful.METHODS}
            print("written:", faithful_report.write_specs(args.model, found.chosen, found.found, score_of,
                                                          output_dir=args.output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
