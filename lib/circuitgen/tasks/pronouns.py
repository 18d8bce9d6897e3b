"""Gendered pronouns (Mathwin et al. 2023): "So Mary is such a good friend, isn't" -> " she".

The answer is the subject pronoun of the name's gender (:data:`words.PRONOUNS`: " she" for
female names, " he" for male ones), the wrong answer the other one; the metric is
``logit_diff``: logit(pronoun) - logit(other pronoun) at END. The counterfactual replaces the name
by one of the other gender ("So John is such a good friend, isn't"), aligned token for token, so
the answer and the wrong pronoun swap.

Named positions: ``NAME`` (the name's last token: Mathwin et al.'s circuit moves the name's
gender from there to the pronoun position) and ``END`` (the last token, "'t" in the generator's
tag questions). Columns: ``prompt``, ``name`` (exactly once in the prompt), ``gender``
(``female`` or ``male``); optional ``cf_name`` (else drawn, seeded, from the other gender's
one-token names of :data:`words`). A name the lists give the other gender is refused; a
gender-ambiguous name (:data:`words.AMBIGUOUS_NAMES`) is scored with the gender its row states.
Reference groups: ``template``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pandas as pd

import circuitgen.tasks.common as C
import circuitgen.tasks.words as W
from circuitgen.task import PromptError, Task, register, single_token

GENERATOR_VERSION = 1
GENDERS = ("female", "male")
OTHER = {"female": "male", "male": "female"}
NAMES = {"female": W.FEMALE_NAMES, "male": W.MALE_NAMES}
TEMPLATES = (
    "So {name} is such a good friend, isn't",
    "So {name} is such a good cook, isn't",
    "Well, {name} is really talented, isn't",
    "So {name} was such a kind neighbour, wasn't",
    "Honestly, {name} is so funny, isn't",
    "So {name} has been very helpful, hasn't",
)
RARE_NAMES = {"female": W.RARE_FEMALE_NAMES, "male": W.RARE_MALE_NAMES}
_GENDER_OF = {name: g for lists in (NAMES, RARE_NAMES) for g, names in lists.items() for name in names}

# Variation families (issue 20 item 2). Slots: {name}, {other} (a name of the other gender).
# Gender-ambiguous names are not a condition yet: their answer needs a gender the prompt states,
# and the counterfactual (another name) would not change it.
_BASE = C.Condition(TEMPLATES, "the generator's templates and names")
FAMILIES = {
    "lexical": {
        "base": _BASE,
        "rare_names": C.Condition(TEMPLATES, "rarer, old-fashioned names (Edith, Horace, ...)", "rare"),
        "new_words": C.Condition((
            "So {name} is such a great singer, isn't",
            "So {name} is a very careful driver, isn't",
            "Well, {name} is a wonderful teacher, isn't",
            "So {name} was a brilliant student, wasn't",
            "Honestly, {name} has been a loyal friend, hasn't",
        ), "tag questions with other words (gender-neutral roles)"),
    },
    "syntactic": {
        "base": _BASE,
        "long_gap": C.Condition((
            "So {name}, who lives next door, is such a good friend, isn't",
            "So {name}, the one from the office, is really talented, isn't",
            "Well, {name}, after all these years, is still so funny, isn't",
            "So {name}, as everyone knows, was a kind neighbour, wasn't",
            "So {name}, who cooked for us last week, has been very helpful, hasn't",
        ), "a phrase between the name and the rest of the tag question"),
        "no_tag": C.Condition((
            "Yesterday {name} called and said that",
            "This morning {name} woke up early because",
            "Last week {name} told me that",
            "After dinner {name} went for a walk, and then",
            "When {name} arrived at the station,",
        ), "a pronoun is likely next, but no tag question asks for it"),
    },
    "adversarial": {
        "base": _BASE,
        "distractor_name": C.Condition((
            "According to {other}, {name} is such a good friend, isn't",
            "I told {other} that {name} is really talented, isn't",
            "Even {other} admits that {name} is so funny, isn't",
            "So {other} and I agree that {name} was a kind neighbour, wasn't",
            "After meeting {other}, {name} has been very helpful, hasn't",
        ), "a name of the other gender earlier in the prompt"),
    },
}


def _fill(pools: dict[str, dict[str, tuple]]):
    def fill(cond: C.Condition, template: str, rng: random.Random) -> dict:
        gender = rng.choice(GENDERS)
        names = pools["rare" if cond.draw == "rare" else "common"]
        name = rng.choice(names[gender])
        others = [n for n in pools["common"][OTHER[gender]]]
        other = rng.choice(others) if "{other}" in template else ""
        cf_name = rng.choice([n for n in others if n != other])
        return {"prompt": template.format(name=name, other=other), "name": name, "gender": gender,
                "cf_name": cf_name, "distractor": other}
    return fill


def gender_of(row: Mapping[str, Any], idx: Any) -> str:
    gender = C.text(row, "gender", idx).lower()
    if gender not in GENDERS:
        raise PromptError(f"{C.where(idx)}gender {row.get('gender')!r} is not 'female' or 'male'.")
    name = C.optional(row, "name")
    known = _GENDER_OF.get(name) if name else None
    if known is not None and known != gender:
        raise PromptError(f"{C.where(idx)}the name {name!r} is {known} in the name lists, but gender "
                          f"says {gender}; fix the gender column.")
    return gender


def single_token_names(tokenizer) -> dict[str, C.WordFilter]:
    return {g: C.single_token_words(tokenizer, names) for g, names in NAMES.items()}


class PronounsTask(Task):
    name = "pronouns"
    positions = ("NAME", "END")
    metric = "logit_diff"
    required_columns = ("prompt", "name", "gender")
    counterfactual_column = "cf_prompt"
    counterfactual_label = "counterpart with a name of the other gender"
    group_columns = ("template",)
    description = "gendered pronoun after a name (Mathwin et al. 2023): logit(she/he) - logit(he/she)"

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        prompt = row["prompt"]
        C.check_end(prompt, idx)
        name = C.text(row, "name", idx)
        gender_of(row, idx)
        pos, n = C.last_token(tokenizer, prompt, C.one_span(prompt, name, "name", idx), "name", idx)
        if pos >= n - 1:
            raise PromptError(f"{C.where(idx)}the name {name!r} is the last token of {prompt!r}; the "
                              "prompt must go on to just before the pronoun.")
        return {"pos_name": pos, "pos_end": n - 1, "n_tokens": n}

    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        gender = gender_of(row, None)
        return ([single_token(tokenizer, W.PRONOUNS[gender], "the pronoun")],
                [single_token(tokenizer, W.PRONOUNS[OTHER[gender]], "the pronoun")])

    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        out = df.copy()
        rng = random.Random(seed)
        pools = {g: list(f.kept) for g, f in single_token_names(tokenizer).items()}
        cfs, cf_names = [], []
        for idx, row in zip(out.index, C.records(out)):
            name, gender = C.text(row, "name", idx), gender_of(row, idx)
            span = C.one_span(row["prompt"], name, "name", idx)
            other = C.optional(row, "cf_name")
            if other is not None and _GENDER_OF.get(other) == gender:
                raise PromptError(f"{C.where(idx)}cf_name {other!r} is {gender} too; the counterfactual "
                                  "name must be of the other gender.")
            # a given cf_name is used as is; else the first of a seeded shuffle that aligns
            candidates = [other] if other is not None else rng.sample(pools[OTHER[gender]],
                                                                      len(pools[OTHER[gender]]))
            for cand in candidates:
                cf = C.replace_span(row["prompt"], span, cand)
                try:
                    C.check_aligned(tokenizer, row["prompt"], cf, idx, "give a cf_name of the other "
                                    "gender with as many tokens as the name.")
                    break
                except PromptError:
                    if other is not None:
                        raise
            else:
                raise PromptError(f"{C.where(idx)}no {OTHER[gender]} name aligns token for token with "
                                  f"{name!r} in {row['prompt']!r}; give a cf_name column.")
            cfs.append(cf)
            cf_names.append(cand)
        out[self.counterfactual_column] = cfs
        out["cf_name"] = cf_names
        return out

    def generate(self, tokenizer, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` prompts over :data:`TEMPLATES` x gender (balanced), one-token names."""
        C.check_n(n)
        filters = single_token_names(tokenizer)
        short = {g: len(f.kept) for g, f in filters.items() if len(f.kept) < 1}
        if short:
            raise PromptError(f"no one-token {list(short)} names in tokenizer "
                              f"{C.tokenizer_label(tokenizer)}.")
        rng = random.Random(seed)
        cells = [(t, g) for t in range(len(TEMPLATES)) for g in GENDERS]
        rows = []
        for i, (tpl, gender) in enumerate(C.balanced_plan(cells, n, rng)):
            name, cf_name = rng.choice(filters[gender].kept), rng.choice(filters[OTHER[gender]].kept)
            rows.append({"prompt_id": i, "prompt": TEMPLATES[tpl].format(name=name), "name": name,
                         "gender": gender, "cf_name": cf_name, "template": tpl,
                         "tokenizer": C.tokenizer_label(tokenizer), "seed": seed,
                         "generator_version": GENERATOR_VERSION})
        df = pd.DataFrame(rows)
        for idx, row in zip(df.index, C.records(df)):
            self.locate(tokenizer, row, idx)
        meta = {"task": self.name, "generator_version": GENERATOR_VERSION, "seed": seed, "n_prompts": n,
                "tokenizer": C.tokenizer_label(tokenizer), "templates": list(TEMPLATES),
                **filters["female"].record("female_names"), **filters["male"].record("male_names"),
                "counterfactual": "the name replaced by one of the other gender",
                "metric": "logit(pronoun of the name's gender) - logit(the other pronoun)"}
        return C.with_meta(self.counterfactuals(df, tokenizer, seed), meta)


    def generate_family(self, family: str, tokenizer, n_per_condition: int = 40, seed: int = 0
                        ) -> pd.DataFrame:
        """``n_per_condition`` prompts for each condition of :data:`FAMILIES` ``[family]``."""
        common = single_token_names(tokenizer)
        rare = {g: C.single_token_words(tokenizer, names) for g, names in RARE_NAMES.items()}
        meta = {k: v for prefix, filters in (("", common), ("rare_", rare))
                for g, f in filters.items() for k, v in f.record(f"{prefix}{g}_names").items()}
        pools = {"common": {g: f.kept for g, f in common.items()},
                 "rare": {g: f.kept for g, f in rare.items()}}
        return C.family_table(self, FAMILIES, family, tokenizer, n_per_condition, seed, _fill(pools),
                              GENERATOR_VERSION, meta)


PRONOUNS = register(PronounsTask())

__all__ = ["PronounsTask", "PRONOUNS", "TEMPLATES", "FAMILIES", "GENDERS", "gender_of", "single_token_names"]
