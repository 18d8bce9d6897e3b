"""Greater-than (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17" -> a
digit that makes the end year later than 1732.

**Digits, not two-digit tokens.** GPT-2 reads "1732" as ``17`` ``32`` and predicts a two-digit
token YY; Hanna et al.'s metric is p(YY' > YY) - p(YY' < YY). SmolLM2 and Gemma split numbers into
single digits (" 1732" is `` `` ``1`` ``7`` ``3`` ``2``), so after "to the year 17" the model
predicts the end year's **tens digit** d. The metric (``prob_diff``) is the probability of the
digits that make the end year surely later (d > t, t the start's tens digit) minus that of the
digits that make it surely earlier (d < t).

**The equal tens digit is in neither set.** With d = t (1732 -> 173x) the end year is later only
if the ones digit, not predicted yet, exceeds the start's: predicting t is neither right nor
wrong, so p(t) counts on neither side (as Hanna et al. leave YY itself out of both sums). Start
years whose tens digit is 0 or 9 would leave one side empty (no digit is surely earlier than 0 or
later than 9); they are refused, and the generator draws the last two digits from 10-89.

**Which digit is compared.** The prompt ends with the start's leading digits (its "century" in
the generator's prompts, so the next digit is compared with the start's tens digit). A prompt may
end one digit later ("from the year 1798 to the year 179": the ones digit 8 is compared, 9 is
later, 0-7 earlier), which is how the ``late_start`` condition scores starts ending in 91-98
(:data:`FAMILIES`); the rule is the same: the next digit against the start's digit at the
same place, the equal digit in neither set, a compared digit 0 or 9 refused.

A tokenizer that does not split the start year into single digits (GPT-2's) is refused with a
one-line :class:`PromptError`: this task's answer is a digit.

Named positions: ``TENS`` and ``ONES`` (the start year's last two digits, the token Hanna et
al.'s heads attend to from END, here two tokens), ``END`` (the last digit of the end year's
century, where the answer is read). Columns: ``prompt`` and ``start`` (the start number as
written, at least 3 digits; the prompt must end with its leading digits, all but the last two).
Counterfactual (``cf_prompt``, Hanna et al.'s): the start's last two digits replaced by ``01``
(``cf_start``); it is aligned token for token. Reference groups: ``template``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

import circuitgen.tasks.common as C
import circuitgen.tasks.words as W
from circuitgen.task import PromptError, Task, encode_with_offsets, register

GENERATOR_VERSION = 1
DIGITS = "0123456789"
CF_ENDING = "01"
# {start}: the whole start year; {cc}: its first two digits (the century), ending the prompt.
TEMPLATES = (
    "The {noun} lasted from the year {start} to the year {cc}",
    "The {noun} began in the year {start} and ended in the year {cc}",
    "The {noun} ran from the year {start} until the year {cc}",
    "The {noun} lasted from {start} to {cc}",
    "The {noun} went on from the year {start} to the year {cc}",
)


# Variation families (issue 20 item 2), each with its base condition (the generator's prompts).
# Slots: {noun}, {start}, {cc} (the start's first two digits), {ccc} (its first three),
# {other} (a distractor year), {item} (a thing with a price).
_BASE = C.Condition(TEMPLATES, "the generator's templates, Hanna et al.'s nouns, centuries 11-17")
_LATE = tuple(t.replace("{cc}", "{ccc}") for t in TEMPLATES)
FAMILIES = {
    "lexical": {
        "base": _BASE,
        "new_nouns": C.Condition(TEMPLATES, "event nouns outside Hanna et al.'s list", "new_nouns"),
        "late_centuries": C.Condition(TEMPLATES, "centuries 18-19 instead of 11-17", "late_centuries"),
    },
    "syntactic": {
        "base": _BASE,
        "clause": C.Condition((
            "The {noun}, which began in {start}, was over by {cc}",
            "Having started in {start}, the {noun} finally ended in {cc}",
            "The {noun} that began in {start} came to an end in {cc}",
            "The {noun} began in {start}. It ended in {cc}",
            "It was in {start} that the {noun} began, and it ended in {cc}",
        ), "the start and the end in clauses, not 'from ... to'"),
        "long": C.Condition((
            "The {noun} lasted from the year {start}, as most historians agree, to the year {cc}",
            "The {noun} lasted from the year {start}, through many hard winters and several changes "
            "of leadership, to the year {cc}",
            "According to the records kept in the old archive, the {noun} lasted from the year "
            "{start} to the year {cc}",
            "The {noun} lasted from the year {start} (a date still debated) to the year {cc}",
            "The {noun}, which changed the region for good, lasted from the year {start} to the "
            "year {cc}",
        ), "words inserted between or before the years"),
    },
    "domain": {
        "base": _BASE,
        "prices": C.Condition((
            "The price of the {item} rose from ${start} to ${cc}",
            "The {item} used to cost ${start}, but now it costs ${cc}",
            "Last year the {item} sold for ${start}; this year it sells for ${cc}",
            "After the increase, the {item} went from ${start} to ${cc}",
            "The {item} was priced at ${start} and then raised to ${cc}",
        ), "rising prices: a larger number instead of a later year", "numbers"),
        "counts": C.Condition((
            "The population of the town grew from {start} to {cc}",
            "The number of visitors increased from {start} to {cc}",
            "Attendance at the fair went up from {start} to {cc}",
            "The museum's collection expanded from {start} objects to {cc}",
            "The club's membership rose from {start} to {cc}",
        ), "growing counts instead of years", "numbers"),
    },
    "adversarial": {
        "base": _BASE,
        "late_start": C.Condition(_LATE, "starts ending in 91-98; the prompt ends with the start's "
                                  "first three digits, so the ones digit is compared", "late_start"),
        "distractor": C.Condition((
            "In {other}, historians wrote that the {noun} lasted from the year {start} to the year {cc}",
            "A book printed in {other} says the {noun} lasted from the year {start} to the year {cc}",
            "First described in {other}, the {noun} lasted from the year {start} to the year {cc}",
            "The {noun} was remembered in {other}; it lasted from the year {start} to the year {cc}",
            "Long before {other}, the {noun} lasted from the year {start} to the year {cc}",
        ), "another year of the same century, with another tens digit, earlier in the prompt",
            "distractor"),
    },
}


def _fill(nouns, new_nouns, items):
    def fill(cond: C.Condition, template: str, rng: random.Random) -> dict:
        century = rng.choice(W.LATE_CENTURIES if cond.draw == "late_centuries" else W.CENTURIES)
        if cond.draw == "numbers":
            century = rng.randint(11, 97)
        yy = rng.randint(91, 98) if cond.draw == "late_start" else rng.randint(10, 89)
        start = f"{century}{yy:02d}"
        other = ""
        if cond.draw == "distractor":
            other = f"{century}{rng.choice([t for t in range(1, 9) if t != yy // 10])}{rng.randint(0, 9)}"
        noun = rng.choice(new_nouns if cond.draw == "new_nouns" else nouns)
        item = rng.choice(items)
        prompt = template.format(noun=noun, start=start, cc=century, ccc=start[:3], other=other,
                                 item=item)
        return {"prompt": prompt, "start": start, "noun": noun if "{noun}" in template else "",
                "item": item if "{item}" in template else "", "distractor": other}
    return fill


def start_digits(value: Any, idx: Any = None) -> str:
    """The start number of a row as a digit string (a CSV may have read it as an int or float)."""
    s = "" if value is None else str(value).strip()
    s = s[:-2] if re.fullmatch(r"\d+\.0", s) else s
    if not re.fullmatch(r"\d{3,}", s):
        raise PromptError(f"{C.where(idx)}start {value!r} is not a number of at least 3 digits "
                          "(the year the prompt starts from, e.g. 1732).")
    return s


def digit_ids(tokenizer) -> list[int]:
    """The token id of each digit 0-9 (as predicted after a digit: no leading space)."""
    out = []
    for d in DIGITS:
        ids = tokenizer(d, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise PromptError(f"the digit {d!r} is {len(ids)} tokens in tokenizer "
                              f"{C.tokenizer_label(tokenizer)}; greater-than reads single digits.")
        out.append(ids[0])
    return out


def answer_digits(tens: int) -> tuple[list[int], list[int]]:
    """The digits that make the end year surely later, and surely earlier, than a start whose
    tens digit is ``tens`` (the equal digit is in neither)."""
    return [d for d in range(10) if d > tens], [d for d in range(10) if d < tens]


def compared_digit(prompt: str, start: str, idx: Any = None) -> int:
    """The start's digit the next one is compared with: the one after the digits the prompt ends
    with, which must be the start's leading digits (all but at least the last one)."""
    tail = re.search(r"(?<!\d)(\d+)$", prompt)
    if tail is None or not start.startswith(tail.group(1)) or not 1 <= len(tail.group(1)) < len(start):
        raise PromptError(f"{C.where(idx)}the prompt {prompt!r} must end with the start's leading "
                          f"digits {start[:-2]} (the end year's century), after the start {start}.")
    return int(start[len(tail.group(1))])


def _start_span(prompt: str, start: str, idx: Any) -> tuple[int, int]:
    spans = [(m.start(), m.end()) for m in re.finditer(r"(?<!\d)" + start + r"(?!\d)", prompt)]
    if len(spans) != 1:
        raise PromptError(f"{C.where(idx)}the start {start} appears {len(spans)} times as a number in "
                          f"{prompt!r}; it must appear exactly once.")
    return spans[0]


class GreaterThanTask(Task):
    name = "greater_than"
    positions = ("TENS", "ONES", "END")
    metric = "prob_diff"
    required_columns = ("prompt", "start")
    counterfactual_column = "cf_prompt"
    counterfactual_label = "01 counterpart (the start's last two digits 01)"
    group_columns = ("template",)
    description = ("greater-than (Hanna et al. 2023) as the next digit: p(digits making the year "
                   "later) - p(digits making it earlier)")

    def locate(self, tokenizer, row: Mapping[str, Any], idx: Any) -> dict[str, Any]:
        prompt = row["prompt"]
        C.check_end(prompt, idx)
        start = start_digits(row.get("start"), idx)
        a, b = _start_span(prompt, start, idx)
        digit = compared_digit(prompt, start, idx)
        if len(prompt) - len(re.search(r"\d+$", prompt).group(0)) < b:
            raise PromptError(f"{C.where(idx)}the prompt {prompt!r} must end with the start's leading "
                              f"digits {start[:-2]} (the end year's century), after the start {start}.")
        ids, offsets = encode_with_offsets(tokenizer, prompt)
        found = {}
        for name, char in (("TENS", b - 2), ("ONES", b - 1), ("END", len(prompt) - 1)):
            hits = C.token_of_span(offsets, (char, char + 1))
            if len(hits) != 1 or tuple(offsets[hits[0]]) != (char, char + 1):
                shown = [tokenizer.decode([ids[i]]) for i in C.token_of_span(offsets, (a, b))]
                raise PromptError(f"{C.where(idx)}tokenizer {C.tokenizer_label(tokenizer)} does not "
                                  f"split numbers into single digits (the start {start} is {shown}); "
                                  "greater-than reads the next digit and needs a digit-splitting "
                                  "tokenizer such as SmolLM2's or Gemma's.")
            found[name] = hits[0] + 1  # + 1: BOS
        if digit in (0, 9):
            left = len(start) - len(re.search(r"\d+$", prompt).group(0))
            place = {2: "tens", 1: "ones"}.get(left, "compared")
            raise PromptError(f"{C.where(idx)}the start {start} has {place} digit {digit}, so no next "
                              f"digit makes the year surely {'earlier' if digit == 0 else 'later'} "
                              f"(the equal digit counts on neither side); use a start whose {place} "
                              "digit is 1-8.")
        return {"pos_tens": found["TENS"], "pos_ones": found["ONES"], "pos_end": found["END"],
                "n_tokens": len(ids) + 1}

    def answer_tokens(self, tokenizer, row: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        ids = digit_ids(tokenizer)
        later, earlier = answer_digits(compared_digit(str(row["prompt"]), start_digits(row.get("start"))))
        return [ids[d] for d in later], [ids[d] for d in earlier]

    def counterfactuals(self, df: pd.DataFrame, tokenizer, seed: int = 0) -> pd.DataFrame:
        out = df.copy()
        cfs, cf_starts = [], []
        for idx, prompt, value in zip(out.index, out["prompt"], out["start"]):
            start = start_digits(value, idx)
            cf_start = start[:-2] + CF_ENDING
            cf = C.replace_span(prompt, _start_span(prompt, start, idx), cf_start)
            C.check_aligned(tokenizer, prompt, cf, idx, "the start must be a plain number of digits "
                            "the tokenizer splits one by one, and not end in 01.")
            cfs.append(cf)
            cf_starts.append(cf_start)
        out[self.counterfactual_column] = cfs
        out["cf_start"] = cf_starts
        return out

    def generate(self, tokenizer, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` prompts over :data:`TEMPLATES` (balanced), Hanna et al.'s nouns and centuries
        11-17, last two digits 10-89."""
        C.check_n(n)
        digit_ids(tokenizer)
        nouns = C.single_token_words(tokenizer, W.YEAR_NOUNS)
        rng = random.Random(seed)
        rows = []
        for i, tpl in enumerate(C.balanced_plan(range(len(TEMPLATES)), n, rng)):
            noun, century, yy = rng.choice(nouns.kept), rng.choice(W.CENTURIES), rng.randint(10, 89)
            start = f"{century}{yy:02d}"
            rows.append({"prompt_id": i, "prompt": TEMPLATES[tpl].format(noun=noun, start=start, cc=century),
                         "start": start, "noun": noun, "template": tpl,
                         "tokenizer": C.tokenizer_label(tokenizer), "seed": seed,
                         "generator_version": GENERATOR_VERSION})
        df = pd.DataFrame(rows)
        for idx, row in zip(df.index, C.records(df)):
            self.locate(tokenizer, row, idx)  # every generated prompt is one the task scores
        meta = {"task": self.name, "generator_version": GENERATOR_VERSION, "seed": seed, "n_prompts": n,
                "tokenizer": C.tokenizer_label(tokenizer), "templates": list(TEMPLATES),
                **nouns.record("nouns"), "counterfactual": "the start's last two digits replaced by 01",
                "metric": "p(next digit > start's tens digit) - p(next digit < it); the equal digit "
                          "in neither set"}
        return C.with_meta(self.counterfactuals(df, tokenizer, seed), meta)


    def generate_family(self, family: str, tokenizer, n_per_condition: int = 40, seed: int = 0
                        ) -> pd.DataFrame:
        """``n_per_condition`` prompts for each condition of :data:`FAMILIES` ``[family]``."""
        digit_ids(tokenizer)
        nouns = C.single_token_words(tokenizer, W.YEAR_NOUNS)
        new = C.single_token_words(tokenizer, W.NEW_YEAR_NOUNS)
        items = C.single_token_words(tokenizer, W.PRICE_ITEMS)
        meta = {**nouns.record("nouns"), **new.record("new_nouns"), **items.record("items")}
        return C.family_table(self, FAMILIES, family, tokenizer, n_per_condition, seed,
                              _fill(nouns.kept, new.kept, items.kept), GENERATOR_VERSION, meta)


GREATER_THAN = register(GreaterThanTask())

__all__ = ["GreaterThanTask", "GREATER_THAN", "TEMPLATES", "FAMILIES", "compared_digit", "answer_digits",
           "digit_ids", "start_digits"]
