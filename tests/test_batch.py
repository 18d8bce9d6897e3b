"""Batches of mixed-length prompts score exactly as prompts one at a time."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from circuitgen import batch as B
from circuitgen import ioi

MIXED = pd.DataFrame({
    "prompt": [
        "When Mary and John went to the store, John gave a drink to",
        "Then, Anna and Tom had a long and tiring day at the school. Tom handed a book to",
        "Sarah and David met. David thanked",
    ],
    "io": ["Mary", "Anna", "Sarah"],
    "s": ["John", "Tom", "David"],
})


def one_at_a_time(model, df):
    out = []
    for i in range(len(df)):
        b = B.encode(model, df.iloc[[i]])
        assert b.mask.all(), "a single prompt needs no padding"
        with torch.no_grad():
            out.append(B.logit_diff(B.forward(model, b), b))
    return torch.cat(out)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_batched_equals_one_at_a_time_tiny(fixture, request):
    model = request.getfixturevalue(fixture)
    b = B.encode(model, MIXED)
    assert len(set(b.mask.sum(1).tolist())) == 3, "the prompts must differ in length"
    with torch.no_grad():
        batched = B.logit_diff(B.forward(model, b), b)
    torch.testing.assert_close(batched, one_at_a_time(model, MIXED), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_batched_equals_one_at_a_time_reference(smollm2):
    b = B.encode(smollm2, MIXED)
    with torch.no_grad():
        batched = B.logit_diff(B.forward(smollm2, b), b)
    single = one_at_a_time(smollm2, MIXED)
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    # Reading at -1 instead of END would be wrong for the padded rows: the check can fail.
    with torch.no_grad():
        last = B.forward(smollm2, b)[:, -1]
    wrong = last[torch.arange(3), b.answer_id] - last[torch.arange(3), b.wrong_id]
    assert (wrong - single).abs().max() > 0.1


def test_positions_and_answers(tiny_gpt2):
    b = B.encode(tiny_gpt2, MIXED)
    tok = tiny_gpt2.tokenizer
    for i, row in MIXED.iterrows():
        assert tok.decode(b.tokens[i, b.pos["IO"][i]]).strip() == row.io
        assert tok.decode(b.tokens[i, b.pos["S2"][i]]).strip() == row.s
        assert b.mask[i, b.end[i]] == 1 and (b.end[i] + 1 == b.mask.shape[1] or b.mask[i, b.end[i] + 1] == 0)
        assert tok.decode(b.answer_id[i]) == " " + row.io


def test_corrupted_prompts_must_match_length(tiny_gpt2):
    df = MIXED.copy()
    df["abc_prompt"] = df["prompt"] + " and"
    with pytest.raises(ioi.PromptError, match="length"):
        B.encode(tiny_gpt2, df, prompt_col="abc_prompt")
