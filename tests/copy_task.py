"""A synthetic task, written as a user would add one: copy the word that followed a marker.

    "Words: red tree code lamp house door bell code" -> " lamp"

Named positions: MARK (the first marker), TARGET (the word after it), END (the repeated marker,
where the answer is read). The counterfactual replaces TARGET by another word, which is also the
wrong answer: the metric is logit(target) - logit(counterfactual word). Conditions vary how many
filler words sit between TARGET and END ("near": 2, "far": 4); the template is the filler layout.

Nothing in the core changes for it: this module is the whole task (tests/test_task_interface.py).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pandas as pd

from circuitgen.task import PromptError, Task, encode_with_offsets, register, single_token

WORDS = ("red", "tree", "lamp", "house", "door", "bell", "fish", "milk", "book", "car", "sun",
         "dog", "cat", "hat", "cup", "box", "pen", "bag", "bed", "map")
MARKER = "code"
FILLERS = {"near": 2, "far": 4}


def _render(before: list[str], target: str, after: list[str]) -> str:
    return " ".join(["Words:", *before, MARKER, target, *after, MARKER])


class CopyTask(Task):
    name = "copy"
    positions = ("MARK", "TARGET", "END")
    metric = "logit_diff"
    required_columns = ("prompt", "target", "cf_target")
    counterfactual_column = "cf_prompt"
    group_columns = ("condition",)
    description = "copy the word that followed the marker (a synthetic test task)"

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        ids, offsets = encode_with_offsets(tokenizer, row["prompt"])
        words = [row["prompt"][a:b].strip() for a, b in offsets]
        marks = [i for i, w in enumerate(words) if w == MARKER]
        if len(marks) != 2 or marks[1] != len(words) - 1 or marks[0] + 1 >= marks[1]:
            raise PromptError(f"row {idx}: the prompt must hold the marker {MARKER!r} twice, the "
                              "second time as its last token, with a word after the first.")
        if words[marks[0] + 1] != str(row["target"]):
            raise PromptError(f"row {idx}: the word after the first marker is "
                              f"{words[marks[0] + 1]!r}, not the target {row['target']!r} (the "
                              "target must be one token).")
        return {"pos_mark": marks[0] + 1, "pos_target": marks[0] + 2, "pos_end": marks[1] + 1,
                "n_tokens": len(ids) + 1}  # + 1: BOS

    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        return [single_token(tokenizer, row["target"])], [single_token(tokenizer, row["cf_target"])]

    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        out = df.copy()
        out["cf_prompt"] = [p.replace(f"{MARKER} {t} ", f"{MARKER} {c} ", 1)
                            for p, t, c in zip(out.prompt, out.target, out.cf_target)]
        return out

    def generate(self, tokenizer, n: int, seed: int = 0) -> pd.DataFrame:
        words = [w for w in WORDS if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]
        rng = random.Random(seed)
        rows = []
        for i in range(n):
            condition = list(FILLERS)[i % len(FILLERS)]
            template = (i // len(FILLERS)) % 3
            target, cf, *rest = rng.sample(words, 2 + 2 + FILLERS[condition])
            before, after = rest[:2], rest[2:]
            rows.append({"prompt_id": i, "prompt": _render(before, target, after), "target": target,
                         "cf_target": cf, "condition": condition, "template": f"{condition}-{template}"})
        return self.counterfactuals(pd.DataFrame(rows), tokenizer, seed)


COPY = register(CopyTask())
