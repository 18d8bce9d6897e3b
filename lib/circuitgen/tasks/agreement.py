"""Subject-verb agreement across an attractor: "The keys to the cabinet" -> " are" (not " is").

The answer is read where the verb comes: the verb forms agreeing with the subject's number are
the answer set, the other number's forms the wrong set (:data:`words.VERB_PAIRS`: is/are,
was/were, has/have). The metric is ``logit_diff``: the mean logit of the agreeing forms minus the
mean logit of the others (three verbs, so the reading does not hang on the model's choice of
tense).

Named positions: ``SUBJ`` (the subject noun's last token: the circuit moves its number to the
verb position, Finlayson et al. 2021) and ``END`` (the last token, where the verb is predicted;
in the generator's prompts it is the attractor noun). The attractor is data (``attractor``,
``attractor_number``), not a position: in "The keys to the cabinet" it *is* END.

Columns: ``prompt``, ``subject`` (as written in the prompt, exactly once), ``number``
(``singular`` or ``plural``); optional ``cf_subject`` (the subject in the other number; looked up
in :data:`words.NOUN_PAIRS` when absent), ``attractor``. Counterfactual (``cf_prompt``): the
subject's number flipped ("The key to the cabinet"), aligned token for token, so the answer and
wrong sets swap. Reference groups: ``template``.
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
NUMBERS = ("singular", "plural")
OTHER = {"singular": "plural", "plural": "singular"}
TEMPLATES = (
    "The {subject} near the {attractor}",
    "The {subject} behind the {attractor}",
    "The {subject} next to the {attractor}",
    "The {subject} beside the {attractor}",
    "The {subject} of the {attractor}",
    "The {subject} with the {attractor}",
)
ATTRACTORS = ("same", "other")  # the attractor's number relative to the subject's
_PAIRS = W.NOUN_PAIRS + W.IRREGULAR_PAIRS + W.COLLECTIVE_PAIRS
_NUMBER_OF = {w: num for pair in _PAIRS for w, num in zip(pair, NUMBERS)}
_FLIP = {a: b for s, p in _PAIRS for a, b in ((s, p), (p, s))}

# Variation families (issue 20 item 2). Slots: {subject}, {attractor}, {attractor2}. The lexical
# and syntactic families' base is the generator's (attractors of either number, balanced by
# chance); the adversarial family's base has attractors of the subject's number.
_BASE = C.Condition(TEMPLATES, "the generator's templates and nouns, attractors of either number")
FAMILIES = {
    "lexical": {
        "base": _BASE,
        "irregular": C.Condition(TEMPLATES, "subjects with irregular plurals (child/children, "
                                 "mouse/mice, ...)", "irregular"),
        "collective": C.Condition(TEMPLATES, "collective nouns as subjects (team, committee, ...): "
                                  "singular takes the singular verb, as in American usage",
                                  "collective"),
    },
    "syntactic": {
        "base": _BASE,
        "relative_clause": C.Condition((
            "The {subject} that the {attractor} saw",
            "The {subject} that the {attractor} liked",
            "The {subject} that the {attractor} found",
            "The {subject} that the {attractor} mentioned",
            "The {subject} that the {attractor} described",
        ), "the attractor inside an object relative clause; END is its verb"),
        "long_pp": C.Condition((
            "The {subject} near the {attractor} in the old house",
            "The {subject} behind the {attractor} on the left",
            "The {subject} next to the {attractor} by the window",
            "The {subject} beside the {attractor} at the back",
            "The {subject} of the {attractor} from the city",
        ), "a second prepositional phrase after the attractor's"),
    },
    "adversarial": {
        "base": C.Condition(TEMPLATES, "attractors of the subject's number", "same"),
        "attractor_other": C.Condition(TEMPLATES, "attractors of the other number", "other"),
        "two_attractors_other": C.Condition((
            "The {subject} near the {attractor} behind the {attractor2}",
            "The {subject} next to the {attractor} with the {attractor2}",
            "The {subject} of the {attractor} beside the {attractor2}",
            "The {subject} behind the {attractor} near the {attractor2}",
            "The {subject} with the {attractor} of the {attractor2}",
        ), "two attractors, both of the other number", "other"),
    },
}


def _fill(pools: dict[str, tuple]):
    def fill(cond: C.Condition, template: str, rng: random.Random) -> dict:
        number = rng.choice(NUMBERS)
        relation = cond.draw if cond.draw in ATTRACTORS else rng.choice(ATTRACTORS)
        attr_number = number if relation == "same" else OTHER[number]
        subj_pair = rng.choice(pools.get(cond.draw, pools["nouns"]))
        a1, a2 = rng.sample([p for p in pools["nouns"] if subj_pair[0] not in p], 2)
        subject, attractor = subj_pair[NUMBERS.index(number)], a1[NUMBERS.index(attr_number)]
        attractor2 = a2[NUMBERS.index(attr_number)] if "{attractor2}" in template else ""
        return {"prompt": template.format(subject=subject, attractor=attractor, attractor2=attractor2),
                "subject": subject, "number": number, "attractor": attractor,
                "attractor_number": attr_number, "attractor2": attractor2}
    return fill


def number_of(row: Mapping[str, Any], idx: Any) -> str:
    number = C.text(row, "number", idx).lower()
    if number not in NUMBERS:
        raise PromptError(f"{C.where(idx)}number {row.get('number')!r} is not 'singular' or 'plural'.")
    subject = C.optional(row, "subject")
    known = _NUMBER_OF.get(subject.lower()) if subject else None
    if known is not None and known != number:
        raise PromptError(f"{C.where(idx)}the subject {subject!r} is {known}, but number says {number}; "
                          "fix the number column.")
    return number


def verb_ids(tokenizer, number: str) -> list[int]:
    i = NUMBERS.index(number)
    return [single_token(tokenizer, pair[i], "the verb") for pair in W.VERB_PAIRS]


class AgreementTask(Task):
    name = "agreement"
    positions = ("SUBJ", "END")
    metric = "logit_diff"
    required_columns = ("prompt", "subject", "number")
    counterfactual_column = "cf_prompt"
    counterfactual_label = "counterpart with the subject's number flipped"
    group_columns = ("template",)
    description = "subject-verb agreement across an attractor: is/was/has vs are/were/have"

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        prompt = row["prompt"]
        C.check_end(prompt, idx)
        subject = C.text(row, "subject", idx)
        number_of(row, idx)
        span = C.one_span(prompt, subject, "subject", idx)
        subj, n = C.last_token(tokenizer, prompt, span, "subject", idx)
        attractor = C.optional(row, "attractor")
        if attractor is not None and not any(a >= span[1] for a, _ in C.word_spans(prompt, attractor)):
            raise PromptError(f"{C.where(idx)}the attractor {attractor!r} does not follow the subject "
                              f"{subject!r} in {prompt!r}.")
        if subj >= n - 1:
            raise PromptError(f"{C.where(idx)}the subject {subject!r} is the last token of {prompt!r}; "
                              "the prompt must go on past the subject (an attractor phrase) up to "
                              "just before the verb.")
        return {"pos_subj": subj, "pos_end": n - 1, "n_tokens": n}

    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        number = number_of(row, None)
        return verb_ids(tokenizer, number), verb_ids(tokenizer, OTHER[number])

    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        out = df.copy()
        cfs, cf_subjects = [], []
        for idx, row in zip(out.index, C.records(out)):
            subject = C.text(row, "subject", idx)
            number_of(row, idx)
            flipped = C.optional(row, "cf_subject") or _FLIP.get(subject.lower())
            if flipped is None:
                raise PromptError(f"{C.where(idx)}no other-number form of the subject {subject!r} is "
                                  "known; add a cf_subject column (e.g. keys -> key).")
            if subject[:1].isupper():
                flipped = flipped[:1].upper() + flipped[1:]
            cf = C.replace_span(row["prompt"], C.one_span(row["prompt"], subject, "subject", idx), flipped)
            C.check_aligned(tokenizer, row["prompt"], cf, idx,
                            "use a subject whose singular and plural are both one token.")
            cfs.append(cf)
            cf_subjects.append(flipped)
        out[self.counterfactual_column] = cfs
        out["cf_subject"] = cf_subjects
        return out

    def generate(self, tokenizer, n: int, seed: int = 0, attractors=ATTRACTORS) -> pd.DataFrame:
        """``n`` prompts over :data:`TEMPLATES` x subject number x ``attractors`` (the attractor's
        number: ``same`` as the subject's or the ``other``), balanced."""
        C.check_n(n)
        bad = [a for a in attractors if a not in ATTRACTORS]
        if bad or not attractors:
            raise PromptError(f"attractors must be a non-empty subset of {ATTRACTORS}, "
                              f"not {list(attractors)}.")
        pairs = C.single_token_words(tokenizer, W.NOUN_PAIRS, key=lambda pair: pair)
        if len(pairs.kept) < 2:
            raise PromptError(f"only {len(pairs.kept)} noun pairs are one token in both numbers in "
                              f"tokenizer {C.tokenizer_label(tokenizer)}; give more.")
        rng = random.Random(seed)
        cells = [(t, num, att) for t in range(len(TEMPLATES)) for num in NUMBERS for att in attractors]
        rows = []
        for i, (tpl, number, att) in enumerate(C.balanced_plan(cells, n, rng)):
            subj_pair, attr_pair = rng.sample(pairs.kept, 2)
            attr_number = number if att == "same" else OTHER[number]
            subject, attractor = subj_pair[NUMBERS.index(number)], attr_pair[NUMBERS.index(attr_number)]
            rows.append({"prompt_id": i,
                         "prompt": TEMPLATES[tpl].format(subject=subject, attractor=attractor),
                         "subject": subject, "number": number, "attractor": attractor,
                         "attractor_number": attr_number, "condition": f"attractor_{att}",
                         "template": tpl, "tokenizer": C.tokenizer_label(tokenizer), "seed": seed,
                         "generator_version": GENERATOR_VERSION})
        df = pd.DataFrame(rows)
        for idx, row in zip(df.index, C.records(df)):
            self.locate(tokenizer, row, idx)
        meta = {"task": self.name, "generator_version": GENERATOR_VERSION, "seed": seed, "n_prompts": n,
                "tokenizer": C.tokenizer_label(tokenizer), "templates": list(TEMPLATES),
                "attractors": list(attractors), **pairs.record("noun_pairs"),
                "counterfactual": "the subject's number flipped",
                "metric": "mean logit of the agreeing verb forms (is/was/has or are/were/have) minus "
                          "mean logit of the other number's"}
        return C.with_meta(self.counterfactuals(df, tokenizer, seed), meta)


    def generate_family(self, family: str, tokenizer, n_per_condition: int = 40, seed: int = 0
                        ) -> pd.DataFrame:
        """``n_per_condition`` prompts for each condition of :data:`FAMILIES` ``[family]``."""
        both = lambda pair: pair  # noqa: E731  (both forms one token)
        filters = {"nouns": C.single_token_words(tokenizer, W.NOUN_PAIRS, key=both),
                   "irregular": C.single_token_words(tokenizer, W.IRREGULAR_PAIRS, key=both),
                   "collective": C.single_token_words(tokenizer, W.COLLECTIVE_PAIRS, key=both)}
        meta = {k: v for name, f in filters.items() for k, v in f.record(f"{name}_pairs").items()}
        pools = {name: f.kept for name, f in filters.items()}
        return C.family_table(self, FAMILIES, family, tokenizer, n_per_condition, seed, _fill(pools),
                              GENERATOR_VERSION, meta)


AGREEMENT = register(AgreementTask())

__all__ = ["AgreementTask", "AGREEMENT", "TEMPLATES", "FAMILIES", "NUMBERS", "verb_ids", "number_of"]
