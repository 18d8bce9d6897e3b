"""The four tasks' behaviour on a model: accuracy and mean metric on generated prompts.

    .venv/bin/python scripts/tasks_behaviour.py                 # smollm2-135m, 40 prompts, seed 0
    .venv/bin/python scripts/tasks_behaviour.py --n 80 --seed 1 --by template
    .venv/bin/python scripts/tasks_behaviour.py --heldout         # the hand-written prompts
    .venv/bin/python scripts/tasks_behaviour.py --families        # every variation family

Accuracy is the share of prompts whose metric is positive (logit_diff: the answer's mean logit
above the wrong one's; prob_diff: more probability on the later digits than on the earlier), with
an exact (Clopper-Pearson) 95% interval; the metric is read at each prompt's END.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from circuitgen import batch as B
from circuitgen import load_model, stats
from circuitgen.task import get_task
from circuitgen.tasks.handwritten import load_heldout

TASKS = ("greater_than", "agreement", "capitals", "pronouns")


@torch.no_grad()
def task_metric(model, df: pd.DataFrame, task, batch_size: int = 32) -> torch.Tensor:
    """The task metric of the model at END, per prompt."""
    out = []
    for sl in B.chunks(len(df), batch_size):
        batch = B.encode(model, df.iloc[sl], task=task)
        out.append(B.logit_diff(B.forward(model, batch), batch))
    return torch.cat(out)


def behaviour(model, task_name: str, n: int, seed: int, heldout: bool = False) -> pd.DataFrame:
    """The task's generated prompts (or its hand-written held-out ones) with the model's metric."""
    task = get_task(task_name)
    df = (load_heldout(task, model.tokenizer, seed=seed) if heldout
          else task.generate(model.tokenizer, n=n, seed=seed))
    return df.assign(task=task_name, metric_name=task.metric,
                     metric=task_metric(model, df, task).numpy())


def family_behaviour(model, task_name: str, n: int, seed: int) -> pd.DataFrame:
    """Every variation family of the task, ``n`` prompts per condition, with the model's metric."""
    import importlib

    task = get_task(task_name)
    parts = []
    for family in importlib.import_module(f"circuitgen.tasks.{task_name}").FAMILIES:
        df = task.generate_family(family, model.tokenizer, n_per_condition=n, seed=seed)
        parts.append(df.assign(task=task_name, metric_name=task.metric,
                               metric=task_metric(model, df, task).numpy()))
    return pd.concat(parts, ignore_index=True)


def summary(scored: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    rows = []
    for key, part in scored.groupby(by, sort=False):
        k = int((part.metric > 0).sum())
        _, lo, hi = stats.clopper_pearson(k, len(part))
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "metric": part.metric_name.iloc[0], "n": len(part), "correct": k,
                     "accuracy": k / len(part), "acc_lo": lo, "acc_hi": hi,
                     "mean_metric": part.metric.mean(), "sd": part.metric.std()})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--by", nargs="*", default=[], help="extra grouping columns (template, ...)")
    ap.add_argument("--heldout", action="store_true",
                    help="the hand-written prompts of data/heldout/ instead of generated ones")
    ap.add_argument("--families", action="store_true",
                    help="every variation family, --n prompts per condition, by family and condition")
    args = ap.parse_args(argv)
    model = load_model(args.model)
    if args.families:
        scored = pd.concat([family_behaviour(model, t, args.n, args.seed) for t in args.tasks],
                           ignore_index=True)
        pd.set_option("display.width", 200)
        print(f"{args.model}, variation families, {args.n} prompts per condition, seed {args.seed}")
        print(summary(scored, ["task", "family", "condition", *args.by]).to_string(
            index=False, float_format=lambda x: f"{x:.3f}"))
        return 0
    scored = pd.concat([behaviour(model, t, args.n, args.seed, args.heldout) for t in args.tasks],
                       ignore_index=True)
    pd.set_option("display.width", 200)
    what = "hand-written held-out prompts" if args.heldout else f"{args.n} generated prompts per task"
    print(f"{args.model}, {what}, seed {args.seed}")
    print(summary(scored, ["task", *args.by]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
