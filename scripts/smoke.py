"""Smoke run (``make smoke``): every chapter, in _toc.yml order, on the random tiny models.

Each chapter runs with papermill on ``tiny-gpt2`` (the GPT-2 code path) and ``tiny-llama`` (the
Llama path: RMSNorm, rotary, grouped-query attention) with the small sizes below, into
``runs/smoke-<model>/`` (notebooks and everything they write), so the committed reference
notebooks are never touched. The models are random, so the chapters find no circuit worth the
name; the run checks that every chapter says so and goes on, not what it finds.

    python scripts/smoke.py                      # both models, every chapter
    python scripts/smoke.py --models tiny-gpt2 --only w01 w02 --keep-going
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run_book  # noqa: E402

MODELS = ["tiny-gpt2", "tiny-llama"]

# The smallest sizes each chapter's own parameters allow (papermill parameters; a chapter not
# listed runs with its defaults, which are already small on a 2-layer model). N_PER_CONDITION=2
# saved no time when tried (2026-11-27: week 14 was not faster; the ablation reference pads each
# (condition, order) group to 20 prompts whatever N is) and week 12's interval plot then failed
# on negative error bars (plots may have been fixed since).
SMALL: dict[str, dict] = {
    "w03": {"SEQ_LEN": 20, "N_SEQS": 2},
    "w04": {"N_PROMPTS": 36},
    "w05": {"N_PROMPTS": 2, "TL_LAYERS": 1},
    "w06": {"N_PROMPTS": 4, "N_EVAL": 4, "N_RANDOM_SUBSETS": 2, "N_RANDOM_CIRCUITS": 2},
    "w07": {"N_PROMPTS": 36, "N_RANDOM_CIRCUITS": 2, "N_NULL_PER_GROUP": 1},
    "w08": {"N_PER_CONDITION": 4},
    "w09": {"N_PER_CONDITION": 4},
    "w10": {"N_PER_CONDITION": 4},
    "w11": {"N_PER_CONDITION": 4},
    "w12": {"N_PER_CONDITION": 4},
    "w13": {"N_DISCOVERY": 8, "N_EVAL": 36, "N_RANDOM": 1,
            "SETS_PER_METHOD": {"eap-ig": 1, "pruning": 1, "path-patching": 1}},
    # REDISCOVER=False: the re-discovery half is 2 x 22 EAP-IG runs, about 2.5 min a model here
    # (it passes on both tiny models with N_REDISCOVERY=8: `--params REDISCOVER=True` turns it on)
    "w14": {"N_PER_CONDITION": 4, "N_REDISCOVERY": 8, "REDISCOVER": False},
    "w15": {"N_PER_CONDITION": 4},
}

# Steps a chapter needs that it does not compute itself: week 15 reads the circuits' scores on the
# hand-written held-out prompts (and their own-reference check), which only scripts/week15.py
# writes (about 40 s here).
BEFORE: dict[str, list[str]] = {
    "w15": ["scripts/week15.py", "--model", "{model}", "--output-dir", "{output_dir}"],
}

# Chapters that cannot yet run on a model, with the reason; the run lists them at the end (and
# still fails the build only if a chapter it runs fails). Empty: every chapter runs on both.
SKIP: dict[tuple[str, str], str] = {}


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the children it has waited for
    (papermill's kernels, scripts/week15.py)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--only", nargs="*", help="run only these chapters (e.g. w01 w03); later "
                    "chapters need what earlier ones wrote in the same run folder")
    ap.add_argument("--keep-going", action="store_true", help="run the next chapter after a failure")
    ap.add_argument("--fresh", action="store_true", help="delete runs/smoke-<model>/ first")
    ap.add_argument("--params", nargs="*", default=[], help="papermill parameters for every "
                    "chapter, KEY=VALUE, over the small sizes (e.g. REDISCOVER=True)")
    args = ap.parse_args()
    extra = run_book.parse_params(args.params)

    stems = run_book.toc_notebooks()
    if args.only:
        stems = [s for s in stems if any(pathlib.Path(s).name.startswith(o) for o in args.only)]
    failures: list[str] = []
    timings: list[tuple[str, str, float]] = []
    skipped: list[str] = []
    start_all = time.time()
    cpu_start = _cpu_seconds()
    for model in args.models:
        run_dir = run_book.ROOT / "runs" / f"smoke-{model}"
        if args.fresh and run_dir.exists():
            shutil.rmtree(run_dir)
        for stem in stems:
            week = pathlib.Path(stem).name[:3]
            if (model, week) in SKIP:
                skipped.append(f"{model} {week}: {SKIP[model, week]}")
                continue
            params = {"MODEL": model, "OUTPUT_DIR": str(run_dir / "outputs"), **SMALL.get(week, {}),
                      **extra}
            start = time.time()
            try:
                if week in BEFORE:
                    cmd = [a.format(model=model, output_dir=params["OUTPUT_DIR"]) for a in BEFORE[week]]
                    subprocess.run([sys.executable, *cmd], cwd=run_book.ROOT, check=True)
                run_book.execute([stem], run_dir / "notebooks", params)
            except Exception as exc:  # papermill's error names the cell and the traceback
                failures.append(f"{model} {week}: {str(exc).strip().splitlines()[-1]}")
                executed = run_dir / "notebooks" / f"{pathlib.Path(stem).name}.ipynb"
                print(f"FAILED {model} {week}: see {executed}", file=sys.stderr)
                print(exc, file=sys.stderr)
                if not args.keep_going:  # later chapters read what this one should have written
                    break
            timings.append((model, week, time.time() - start))
    print("\nseconds per chapter (wall clock, including papermill's kernel start):")
    for model in args.models:
        mine = [(w, s) for m, w, s in timings if m == model]
        if mine:
            print(f"  {model}: {sum(s for _, s in mine):.0f} s in all; "
                  + ", ".join(f"{w} {s:.0f}" for w, s in mine))
    slowest = sorted(timings, key=lambda t: -t[2])[:5]
    print("  slowest: " + ", ".join(f"{m} {w} {s:.0f} s" for m, w, s in slowest))
    if skipped:
        print("skipped (not yet runnable on that model):\n  " + "\n  ".join(skipped))
    print(f"smoke run: {time.time() - start_all:.0f} s wall clock, {_cpu_seconds() - cpu_start:.0f} s "
          "CPU (this process and the kernels it ran; on a shared machine the CPU time is the "
          "steadier figure)")
    if failures:
        sys.exit("smoke run failed:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
