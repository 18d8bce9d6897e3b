"""Country-capital factual recall: "The capital of France is" -> " Paris".

The counterfactual is the same prompt about another country ("The capital of Poland is"), and
the wrong answer is that country's capital: the metric (``logit_diff``) is logit(capital) -
logit(counterfactual country's capital) at END, so a circuit is credited for recalling *this*
country's capital rather than for saying "a capital". Recall is expected to rest on MLPs at the
country's last token (Meng et al. 2022; Geva et al. 2023), which is why circuits for this task
need MLP nodes.

Named positions: ``COUNTRY`` (the country's last token, where the fact is looked up) and ``END``
(the last token, where the capital is predicted). Columns: ``prompt``, ``country`` (exactly once
in the prompt), ``capital`` (one token with a leading space), ``cf_country`` (the counterfactual
country); optional ``cf_capital`` (else looked up in :data:`words.CAPITALS`). Reference groups:
``template``. The generator draws from countries whose capital is their largest city
(:data:`words.CAPITAL_NOT_LARGEST` are kept for a family of their own) and leaves out the
countries in :data:`words.CAPITALS_EXCLUDED` (the reason beside each).
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
TEMPLATES = (
    "The capital of {country} is",
    "The capital city of {country} is",
    "Question: What is the capital of {country}? Answer:",
    "The name of the capital of {country} is",
    "Everyone knows that the capital of {country} is",
)


# Variation families (issue 20 item 2). Slots: {country}, {other} (a third country), {wrong} (the
# counterfactual country's capital, named in the prompt).
_BASE = C.Condition(TEMPLATES, "the generator's templates and countries")
FAMILIES = {
    "lexical": {
        "base": _BASE,
        "not_largest": C.Condition(TEMPLATES, "countries whose capital is not their largest city "
                                   "(few are one token: prompts repeat, each with another "
                                   "counterfactual country)", "not_largest"),
    },
    "syntactic": {
        "base": _BASE,
        "paraphrase": C.Condition((
            "The seat of government of {country} is the city of",
            "The capital and seat of government of {country} is",
            "The main city and capital of {country} is called",
            "When people speak of the capital of {country}, they mean",
            "The official capital of {country} is",
        ), "other phrasings of the relation"),
        "long_context": C.Condition((
            "Here is a fact about {country}: it has a long history, and its capital is",
            "I have always wanted to visit {country}, a country with a long history. Its capital is",
            "After many years of studying the geography of {country}, I can tell you that its "
            "capital is",
            "The travel guide says that {country} has mountains, rivers and old towns, and that its "
            "capital is",
            "In school we learned about {country}, its rivers, its mountains and its capital,",
        ), "the country several words before the answer, referred back to by 'its'"),
    },
    "adversarial": {
        "base": _BASE,
        "distractor_country": C.Condition((
            "I have been to {other} many times, but the capital of {country} is",
            "After a week in {other}, we flew on to the capital of {country}, which is",
            "Forget about {other} for a moment: the capital of {country} is",
            "My friend from {other} told me that the capital of {country} is",
            "We left {other} and drove to the capital of {country}, which is",
        ), "a third country named before the question", "distractor"),
        "wrong_capital_named": C.Condition((
            "Some people think it is {wrong}, but the capital of {country} is",
            "It is not {wrong}: the capital of {country} is",
            "After a trip to {wrong}, we flew on to the capital of {country}, which is",
            "{wrong} is a lovely city, but the capital of {country} is",
            "My train went through {wrong} on the way to the capital of {country}, which is",
        ), "the wrong answer (the counterfactual country's capital) named in the prompt"),
    },
}


def _fill(base: list[tuple[str, str]], not_largest: list[tuple[str, str]]):
    def fill(cond: C.Condition, template: str, rng: random.Random) -> dict:
        country, capital = rng.choice(not_largest if cond.draw == "not_largest" else base)
        other, other_capital = rng.choice([cc for cc in base if cc[0] != country])
        third = rng.choice([cc[0] for cc in base if cc[0] not in (country, other)])
        prompt = template.format(country=country, other=third, wrong=other_capital)
        return {"prompt": prompt, "country": country, "capital": capital, "cf_country": other,
                "cf_capital": other_capital, "distractor": third if "{other}" in template else ""}
    return fill


def cf_capital(row: Mapping[str, Any], idx: Any) -> str:
    given = C.optional(row, "cf_capital")
    country = C.text(row, "cf_country", idx)
    found = given or W.CAPITALS.get(country)
    if found is None:
        raise PromptError(f"{C.where(idx)}the capital of the counterfactual country {country!r} is not "
                          "in circuitgen.tasks.words.CAPITALS; add a cf_capital column.")
    return found


class CapitalsTask(Task):
    name = "capitals"
    positions = ("COUNTRY", "END")
    metric = "logit_diff"
    required_columns = ("prompt", "country", "capital", "cf_country")
    counterfactual_column = "cf_prompt"
    counterfactual_label = "counterpart about another country"
    group_columns = ("template",)
    description = "country-capital recall: logit(capital) - logit(the counterfactual country's capital)"

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        prompt = row["prompt"]
        C.check_end(prompt, idx)
        country = C.text(row, "country", idx)
        pos, n = C.last_token(tokenizer, prompt, C.one_span(prompt, country, "country", idx), "country", idx)
        if pos >= n - 1:
            raise PromptError(f"{C.where(idx)}the country {country!r} is the last token of {prompt!r}; "
                              "the prompt must go on to just before the capital ('... is').")
        return {"pos_country": pos, "pos_end": n - 1, "n_tokens": n}

    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        capital, wrong = C.text(row, "capital", None), cf_capital(row, None)
        if C.text(row, "cf_country", None) == C.text(row, "country", None) or wrong == capital:
            raise PromptError(f"the counterfactual country {row.get('cf_country')!r} (capital {wrong!r}) "
                              f"must differ from {row.get('country')!r} and have another capital.")
        return ([single_token(tokenizer, capital, "the capital")],
                [single_token(tokenizer, wrong, "the capital")])

    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        out = df.copy()
        cfs = []
        for idx, row in zip(out.index, C.records(out)):
            country, other = C.text(row, "country", idx), C.text(row, "cf_country", idx)
            cf = C.replace_span(row["prompt"], C.one_span(row["prompt"], country, "country", idx), other)
            C.check_aligned(tokenizer, row["prompt"], cf, idx, "choose a cf_country of the same "
                            "number of tokens as the country (and not the country itself).")
            cfs.append(cf)
        out[self.counterfactual_column] = cfs
        out["cf_capital"] = [cf_capital(r, i) for i, r in zip(out.index, C.records(out))]
        return out

    def generate(self, tokenizer, n: int, seed: int = 0, countries=None) -> pd.DataFrame:
        """``n`` prompts over :data:`TEMPLATES` (balanced); ``countries`` (default: every country of
        :data:`words.CAPITALS` whose capital is its largest city) and their counterfactual
        countries are drawn from those whose name and capital are one token each."""
        C.check_n(n)
        pool = [c for c in (W.CAPITALS if countries is None else countries)
                if c not in W.CAPITALS_EXCLUDED and (countries is not None or c not in W.CAPITAL_NOT_LARGEST)]
        unknown = [c for c in pool if c not in W.CAPITALS]
        if unknown:
            raise PromptError(f"countries {unknown} are not in circuitgen.tasks.words.CAPITALS.")
        kept = C.single_token_words(tokenizer, [(c, W.CAPITALS[c]) for c in pool], key=lambda cc: cc)
        if len(kept.kept) < 2:
            raise PromptError(f"only {len(kept.kept)} countries have a one-token name and capital in "
                              f"tokenizer {C.tokenizer_label(tokenizer)}; a prompt and its "
                              "counterfactual need 2.")
        rng = random.Random(seed)
        rows = []
        for i, tpl in enumerate(C.balanced_plan(range(len(TEMPLATES)), n, rng)):
            (country, capital), (other, other_capital) = rng.sample(kept.kept, 2)
            rows.append({"prompt_id": i, "prompt": TEMPLATES[tpl].format(country=country),
                         "country": country, "capital": capital, "cf_country": other,
                         "cf_capital": other_capital, "template": tpl,
                         "tokenizer": C.tokenizer_label(tokenizer), "seed": seed,
                         "generator_version": GENERATOR_VERSION})
        df = pd.DataFrame(rows)
        for idx, row in zip(df.index, C.records(df)):
            self.locate(tokenizer, row, idx)
        record = kept.record("countries")
        record["countries_refused"] = [c for c, _ in kept.refused]
        meta = {"task": self.name, "generator_version": GENERATOR_VERSION, "seed": seed, "n_prompts": n,
                "tokenizer": C.tokenizer_label(tokenizer), "templates": list(TEMPLATES), **record,
                "countries_excluded": dict(W.CAPITALS_EXCLUDED),
                "counterfactual": "the same prompt about another country; wrong answer its capital",
                "metric": "logit(capital) - logit(counterfactual country's capital)"}
        return C.with_meta(self.counterfactuals(df, tokenizer, seed), meta)


    def generate_family(self, family: str, tokenizer, n_per_condition: int = 40, seed: int = 0
                        ) -> pd.DataFrame:
        """``n_per_condition`` prompts for each condition of :data:`FAMILIES` ``[family]``."""
        both = lambda cc: cc  # noqa: E731  (country and capital one token each)
        base = C.single_token_words(tokenizer, [(c, W.CAPITALS[c]) for c in W.CAPITALS if c not in
                                                W.CAPITALS_EXCLUDED and c not in W.CAPITAL_NOT_LARGEST],
                                    key=both)
        odd = C.single_token_words(tokenizer, [(c, W.CAPITALS[c]) for c in W.CAPITAL_NOT_LARGEST], key=both)
        if len(base.kept) < 3 or not odd.kept:
            raise PromptError(f"too few one-token countries in tokenizer {C.tokenizer_label(tokenizer)} "
                              f"({len(base.kept)} base, {len(odd.kept)} not-largest-city).")
        meta = {**base.record("countries"), **odd.record("not_largest_countries")}
        return C.family_table(self, FAMILIES, family, tokenizer, n_per_condition, seed,
                              _fill(list(base.kept), list(odd.kept)), GENERATOR_VERSION, meta)


CAPITALS = register(CapitalsTask())

__all__ = ["CapitalsTask", "CAPITALS", "TEMPLATES", "FAMILIES", "cf_capital"]
