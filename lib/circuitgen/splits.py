"""Discovery and evaluation prompt sets for finding faithful circuits (week 13).

A circuit found on some prompts and scored on the same prompts says nothing about whether it
holds. So the split is fixed before any circuit is found:

- **names**: the tokenizer's single-token names are shuffled with :data:`SPLIT_SEED`; the first
  two thirds belong to discovery, the rest to evaluation (IO, S *and* the ABC names of every
  prompt come from its side's pool), so evaluation names were never seen in discovery;
- **templates**: :data:`HELD_OUT_TEMPLATES` appear only in the evaluation set (which also has the
  other templates, so faithfulness can be read on seen and unseen templates separately);
- **discovery sets**: :data:`N_DISCOVERY_SETS` sets of ``n_discovery`` prompts from different
  seeds; no prompt text occurs in two of them (checked), for the stability comparison.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from circuitgen import ioi, ioi_templates

SPLIT_SEED = 20261126
HELD_OUT_TEMPLATES = (5, 8, 9, 10)   # sorted(random.Random(13).sample(range(18), 4)), drawn once
DISCOVERY_SEEDS = (1301, 1302, 1303)
EVAL_SEED = 1399
N_DISCOVERY_SETS = len(DISCOVERY_SEEDS)


@dataclass
class Splits:
    """The prompt sets and how they were split."""

    discovery: list[ioi.PromptSet]
    evaluation: ioi.PromptSet
    discovery_names: list[str]
    eval_names: list[str]

    def describe(self) -> dict:
        return {"split_seed": SPLIT_SEED, "held_out_templates": list(HELD_OUT_TEMPLATES),
                "discovery_seeds": list(DISCOVERY_SEEDS), "eval_seed": EVAL_SEED,
                "n_discovery_names": len(self.discovery_names), "n_eval_names": len(self.eval_names),
                "n_discovery": [len(d) for d in self.discovery], "n_eval": len(self.evaluation)}


def name_split(tokenizer) -> tuple[list[str], list[str]]:
    """(discovery names, evaluation names): the single-token names, shuffled once, 2/3 : 1/3."""
    kept = list(ioi.single_token_names(tokenizer, ioi_templates.NAMES, log=False).kept)
    random.Random(SPLIT_SEED).shuffle(kept)
    cut = (2 * len(kept)) // 3
    disc, ev = sorted(kept[:cut]), sorted(kept[cut:])
    if len(ev) < 5:
        raise ioi.PromptError(f"only {len(ev)} evaluation names survive in this tokenizer; a prompt "
                              "and its ABC counterpart need 5 distinct names.")
    return disc, ev


def make_splits(model_or_tokenizer, n_discovery: int = 200, n_eval: int = 144) -> Splits:
    """The three discovery sets and the evaluation set (see the module docstring)."""
    tokenizer, _ = ioi.resolve_tokenizer(model_or_tokenizer)
    disc_names, eval_names = name_split(tokenizer)
    seen = [t for t in range(len(ioi.TEMPLATES)) if t not in HELD_OUT_TEMPLATES]
    discovery = []
    for i, seed in enumerate(DISCOVERY_SEEDS, start=1):
        ps = ioi.generate_prompts(model_or_tokenizer, n=n_discovery, seed=seed, names=disc_names,
                                  templates=seen)
        ps.meta.update(split="discovery", discovery_set=i, split_info=_info(disc_names, seen))
        discovery.append(ps)
    _check_disjoint(discovery)
    evaluation = ioi.generate_prompts(model_or_tokenizer, n=n_eval, seed=EVAL_SEED, names=eval_names)
    evaluation.df["held_out_template"] = evaluation.df["template"].isin(HELD_OUT_TEMPLATES)
    evaluation.meta.update(split="evaluation", split_info=_info(eval_names, list(range(len(ioi.TEMPLATES)))),
                           held_out_templates=list(HELD_OUT_TEMPLATES))
    return Splits(discovery, evaluation, disc_names, eval_names)


def _info(names: list[str], templates: list[int]) -> dict:
    return {"split_seed": SPLIT_SEED, "names": names, "templates": templates,
            "held_out_templates": list(HELD_OUT_TEMPLATES)}


def _check_disjoint(sets: list[ioi.PromptSet]) -> None:
    seen: dict[str, int] = {}
    for i, ps in enumerate(sets, start=1):
        for p in ps.df["prompt"]:
            if p in seen and seen[p] != i:
                raise ioi.PromptError(f"prompt {p!r} is in discovery sets {seen[p]} and {i}; "
                                      "the sets must be disjoint (change DISCOVERY_SEEDS).")
            seen[p] = i


def save_splits(splits: Splits, model_label: str, out_dir=None) -> list:
    """Write every set as ``faithful-<split>-<model>.csv`` with its sidecar; returns the paths."""
    import pathlib

    from circuitgen.paths import PROMPTS_DIR

    out = pathlib.Path(out_dir) if out_dir else PROMPTS_DIR
    paths = [ps.save(out / f"faithful-disc{i}-{model_label}") for i, ps in enumerate(splits.discovery, 1)]
    paths.append(splits.evaluation.save(out / f"faithful-eval-{model_label}"))
    return paths


__all__ = ["Splits", "make_splits", "name_split", "save_splits", "HELD_OUT_TEMPLATES",
           "DISCOVERY_SEEDS", "EVAL_SEED", "SPLIT_SEED"]
