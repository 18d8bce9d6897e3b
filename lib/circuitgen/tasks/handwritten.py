"""Hand-written held-out prompts of the greater-than, agreement, capitals and pronoun tasks.

``data/heldout/<task>.csv`` holds at least 30 prompts per task, written by hand in templates the
generator never uses (``template`` is ``hand:<task>:<i>``; ``tests/test_tasks_four.py`` checks
that no prompt matches a generator template). A person writes what a person can see: the prompt
and the task's columns (e.g. ``subject``, ``number``) and a ``note``; everything else comes from
**the task's own code**, as for generated prompts: positions (:meth:`Task.locate`), answer and
wrong tokens (:meth:`Task.answer_tokens`) and counterfactual partners
(:meth:`Task.counterfactuals`, seeded where the task draws one).

The CSVs are written for the reference tokenizer (SmolLM2's), where every row is scored (a
test). With another tokenizer a row it cannot score (a word of several tokens, a year not split
into digits) is **skipped and recorded** in ``frame.attrs["skipped"]`` (row, template, reason);
only a table with no usable row raises.
"""

from __future__ import annotations

import pathlib

import pandas as pd

import circuitgen.tasks.common as C
from circuitgen.paths import DATA_DIR
from circuitgen.task import PromptError, Task, get_task

HELDOUT_DIR = DATA_DIR / "heldout"
TASKS = ("greater_than", "agreement", "capitals", "pronouns")


def heldout_path(task: str | Task) -> pathlib.Path:
    return HELDOUT_DIR / f"{get_task(task).name}.csv"


def load_heldout(task: str | Task, tokenizer, seed: int = 0, path: str | pathlib.Path | None = None
                 ) -> pd.DataFrame:
    """The task's hand-written prompts with positions, counterfactuals (``cf_prompt``) and a
    ``prompt_id`` (the CSV row), checked with the task's own code; rows this tokenizer cannot
    score are skipped and listed in ``attrs["skipped"]``."""
    task = get_task(task)
    path = pathlib.Path(path) if path is not None else heldout_path(task)
    if not path.exists():
        raise FileNotFoundError(f"no hand-written prompts for the {task.name} task at {path}.")
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    task.check_columns(df)
    df.insert(0, "prompt_id", range(len(df)))
    kept, skipped, found = [], [], []
    for idx, row in zip(df.index, C.records(df)):
        try:
            pos = task.locate(tokenizer, row, idx)
            task.answer_tokens(tokenizer, row)
            cf = task.counterfactuals(df.loc[[idx]], tokenizer, seed=seed + int(idx))
        except PromptError as err:
            skipped.append({"row": int(idx), "template": row.get("template", ""), "reason": str(err)})
            continue
        kept.append(cf)
        found.append(pos)
    if not kept:
        raise PromptError(f"{path}: no row can be scored with tokenizer {C.tokenizer_label(tokenizer)}; "
                          f"first reason: {skipped[0]['reason'] if skipped else 'the table is empty'}")
    out = pd.concat(kept)
    out = pd.concat([out, pd.DataFrame(found, index=out.index)], axis=1)
    out.attrs["skipped"] = skipped
    out.attrs["circuitgen"] = {"task": task.name, "source": str(path.relative_to(DATA_DIR.parent))
                               if path.is_relative_to(DATA_DIR.parent) else str(path),
                               "n_rows": len(df), "n_skipped": len(skipped), "seed": seed,
                               "tokenizer": C.tokenizer_label(tokenizer)}
    return out


__all__ = ["HELDOUT_DIR", "TASKS", "heldout_path", "load_heldout"]
