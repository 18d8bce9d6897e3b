"""Week 13's expensive steps outside the notebook: discovery runs, size curves, the smallest
faithful circuits. Writes the same cached tables the notebook reads (data/discovery/ for the
reference model), so `make book` re-uses them while their inputs are unchanged.

    python scripts/week13.py --methods eap-ig pruning --sets 1 2 3
    python scripts/week13.py --curves        # needs every method's set-1 run
"""

from __future__ import annotations

import argparse
import time

from circuitgen import circuits, faithful, paths, runtime, splits


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--methods", nargs="*", default=list(faithful.METHODS), choices=faithful.METHODS)
    p.add_argument("--sets", nargs="*", type=int, default=[1, 2, 3])
    p.add_argument("--curves", action="store_true", help="also the size curves and the smallest circuits")
    p.add_argument("--output-dir", default=None, help="non-reference runs: where to write")
    args = p.parse_args()
    model = runtime.start(args.model)
    out = paths.output_dir(args.output_dir) / "discovery"
    sets = splits.make_splits(model)
    runs = {}
    for m in args.methods:
        for i in args.sets:
            t0 = time.perf_counter()
            runs[(m, i)] = faithful.discover(model, sets.discovery[i - 1].df, m, f"set{i}", out_dir=out)
            print(f"{m} set{i}: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.curves:
        rank1 = {m: faithful.ranking(
                     faithful.discover(model, sets.discovery[0].df, m, "set1", out_dir=out).df)
                 for m in faithful.METHODS}
        week6 = circuits.found_circuit(args.model, None, args.output_dir)
        curve = faithful.size_curves(model, sets.evaluation.df, rank1, extra={"week 6": week6.nodes()},
                                     out_dir=out).df
        found = faithful.smallest(model, sets.evaluation.df, rank1, curve, out_dir=out).df
        print(found.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
