"""heldout's scoring of hand-written prompts, which no fast test exercised (found by
``scripts/constant_subjects.py``): each test fails when its subject returns a
constant of the right shape (issue 13). The hand-written prompts are checked for SmolLM2's
tokenizer, so the scoring tests use tiny-llama (which has it). The model's logit difference is
computed here from a plain forward pass, not by the library."""

from __future__ import annotations

import pytest
import torch

from circuitgen import generalise, heldout, ioi
from circuitgen import nodes as N
from circuitgen.scorer import mean_reference


@pytest.fixture(scope="module")
def hand(tiny_llama):
    df = heldout.load_handwritten(tiny_llama)
    # Two prompts of each of two families keep it fast.
    fams = list(dict.fromkeys(df["family"]))[:2]
    sub = df[df["family"].isin(fams)].groupby("family").head(2).reset_index(drop=True)
    return sub.assign(prompt_id=range(len(sub)))


@pytest.fixture(scope="module")
def circuits(tiny_llama):
    full = N.head_nodes(tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads)
    return {"full": full, "one": [N.Node(1, 0, "END")]}


def _logit_diffs(model, prompts) -> list[float]:
    """IO minus S logit at the last token, one prompt at a time."""
    tok = model.tokenizer
    out = []
    for _, r in prompts.iterrows():
        ids = torch.tensor([ioi.tokenize(tok, r["prompt"])])
        with torch.no_grad():
            logits = model(ids)[0, -1]
        (io,), (s,) = (tok.encode(" " + r[k].strip(), add_special_tokens=False) for k in ("io", "s"))
        out.append((logits[io] - logits[s]).item())
    return out


def _check(model, prompts, scores, circuits):
    expected = _logit_diffs(model, prompts)
    assert scores["circuit"].tolist() == [c for c in circuits for _ in range(len(prompts))]
    for c in circuits:
        rows = scores[scores["circuit"] == c]
        assert rows["logit_diff"].tolist() == pytest.approx(expected, abs=1e-3)
    full = scores[scores["circuit"] == "full"]
    # Every head kept: the circuit is the model.
    assert full["circuit_logit_diff"].tolist() == pytest.approx(expected, abs=1e-3)
    one = scores[scores["circuit"] == "one"]
    assert (one["circuit_logit_diff"] - one["logit_diff"]).abs().max() > 1e-3


def test_family_reference_is_the_mean_reference_of_the_family_prompts(tiny_gpt2):
    fam = generalise.FAMILIES[0]
    got = heldout.family_reference(tiny_gpt2, fam, seed=1)
    expected = mean_reference(tiny_gpt2, generalise.family_prompts(tiny_gpt2, fam, 1))
    assert got.groups == expected.groups
    assert torch.allclose(got.means, expected.means, atol=1e-6)
    assert got.means.std() > 1e-3


def test_score_with_family_reference_by_a_plain_forward(tiny_llama, hand, circuits):
    scores = heldout.score_with_family_reference(tiny_llama, hand, circuits, "resample")
    _check(tiny_llama, hand, scores, circuits)


def test_score_handwritten_by_a_plain_forward(tiny_llama, hand, circuits, tmp_path):
    table = heldout.score_handwritten(tiny_llama, hand, circuits, ablations=("mean",),
                                      out_dir=tmp_path, log=lambda *a: None)
    scores = table.df if hasattr(table, "df") else table
    _check(tiny_llama, hand, scores, circuits)
    assert list(tmp_path.glob("*.csv"))


def test_rows_come_circuit_by_circuit_whatever_the_prompt_ids(tiny_llama, hand, circuits):
    """A subset keeps its ids (here far above the number of rows): the rows still come grouped
    by circuit in the given order, each group by ascending prompt id (an id-arithmetic sort key
    once interleaved them)."""
    ids = [907, 3, 511, 40][: len(hand)]
    sub = hand.assign(prompt_id=ids)
    scores = heldout.score_with_family_reference(tiny_llama, sub, circuits, "resample")
    assert scores["circuit"].tolist() == [c for c in circuits for _ in range(len(sub))]
    for c in circuits:
        assert scores.loc[scores.circuit == c, "prompt_id"].tolist() == sorted(ids)
