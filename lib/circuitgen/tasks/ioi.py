"""IOI as a task: "When Mary and John went to the store, John gave a drink to" -> " Mary".

The prompts, positions and ABC counterparts are :mod:`circuitgen.ioi`'s; the mean-ablation
reference is :mod:`circuitgen.reference`'s (ABC prompts grouped by template and order, or by
condition and order, a fixed generated set for the canonical prompts, every group padded to 20).
The metric is logit(IO) - logit(S) at END.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd

from circuitgen import ioi
from circuitgen import reference as R
from circuitgen.ablation import ReferenceBatch
from circuitgen.task import PromptError, Task, register, single_token


class IOITask(Task):
    name = "ioi"
    positions = ("IO", "S1", "S1+1", "S2", "END")
    metric = "logit_diff"
    required_columns = ("prompt", "io", "s")
    counterfactual_column = "abc_prompt"
    counterfactual_label = "ABC counterpart"
    group_columns = ("template", "order")  # or (condition, order): see circuitgen.reference
    description = "Indirect Object Identification (Wang et al. 2022): the answer is the IO name."

    def position_column(self, name: str) -> str:
        return ioi.POSITION_COLUMNS[name]

    def check_columns(self, df: pd.DataFrame) -> None:
        missing = [c for c in self.required_columns if c not in df.columns]
        if missing:
            raise PromptError(f"the prompt table lacks column(s) {missing}; a prompt CSV needs the "
                              f"columns {list(self.required_columns)} (io, s: the indirect object and "
                              "subject names).")

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        # Adversarial prompts (DoubleIO, S three times) say how often each name is meant to appear.
        pos = ioi.find_positions(tokenizer, row["prompt"], row["io"], row["s"], bos=True, row=idx,
                                 io_count=int(row.get("io_mentions", 1)),
                                 s_count=int(row.get("s_mentions", 2)))
        return pos.as_dict() | {"order": pos.order}

    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        return ([single_token(tokenizer, row["io"], "the name")],
                [single_token(tokenizer, row["s"], "the name")])

    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        return ioi.make_abc(df, tokenizer, seed=seed)

    def generate(self, tokenizer, n: int, seed: int = 0) -> pd.DataFrame:
        return ioi.generate_prompts(tokenizer, n=n, seed=seed).df

    reference_source = "ABC prompts"

    def reference_groups(self, df: pd.DataFrame) -> tuple[str, ...]:
        return R.resolve_group_by(df, None)

    def reference(self, model, prompts: pd.DataFrame, ablation) -> tuple[ReferenceBatch, tuple[str, ...]]:
        with warnings.catch_warnings():
            if ablation.legacy:
                warnings.simplefilter("ignore")
            return R.build_reference(model, prompts, group_by=ablation.group_by,
                                     reference=ablation.reference_prompts,
                                     min_per_group=ablation.min_per_group, seed=ablation.seed,
                                     own_prompts=ablation.legacy)

    def fixed_reference_key(self, prompts: pd.DataFrame, ablation) -> tuple | None:
        cols = R.resolve_group_by(prompts, ablation.group_by)
        if R.uses_generated(prompts, cols, ablation.reference_prompts, ablation.legacy):
            return (cols, ablation.min_per_group, ablation.seed)
        return None


IOI = register(IOITask())

__all__ = ["IOITask", "IOI"]
