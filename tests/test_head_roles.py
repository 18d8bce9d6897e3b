"""The OV copy score against an independent computation through the model's own forward pass
(hooks), on an MHA and a grouped-query tiny model; signatures and the functional-role rule."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from circuitgen import batch as B
from circuitgen import head_roles as HR
from circuitgen import ioi


def hook_ov_logits(model, resid: torch.Tensor, layer: int, head: int, sign: int) -> torch.Tensor:
    """``sign`` x the head's OV output on ``resid`` (``[n, d_model]``), read through the model's
    own forward: every position of layer ``layer``'s input is set to the residual (so attention,
    whatever its pattern, returns the head's value of it), every other head's ``z`` is zeroed,
    the attention output without any head (its bias) is subtracted, and that output replaces the
    final residual, which the model then normalises and unembeds itself."""
    n = resid.shape[0]
    tokens = torch.full((n, 3), 1, dtype=torch.long)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"

    def set_input(x, hook):
        return resid[:, None].to(x.dtype).expand_as(x).clone()

    def only(z, hook):
        out = torch.zeros_like(z)
        out[:, :, head] = sign * z[:, :, head]
        return out

    store = {}

    def grab(x, hook):
        store["out"] = x.clone()
        return x

    def run(z_hook):
        hooks = [(f"blocks.{layer}.hook_resid_pre", set_input),
                 (f"blocks.{layer}.attn.hook_z", z_hook),
                 (f"blocks.{layer}.hook_attn_out", grab)]
        model.run_with_hooks(tokens, fwd_hooks=hooks)
        return store["out"]

    bias = run(lambda z, hook: torch.zeros_like(z))  # attention output of no head: b_O (or 0)
    head_out = run(only) - bias
    logits = model.run_with_hooks(tokens, fwd_hooks=[(last, lambda x, hook: head_out.to(x.dtype))])
    return logits[:, -1]


def independent_copy_score(model, batch, layer, head, sign, k):
    name = "blocks.0.hook_resid_post"
    _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.mask)
    hits = []
    for role, ids in (("IO", batch.answer_id), ("S1", batch.wrong_id), ("S2", batch.wrong_id)):
        resid = cache[name][torch.arange(len(batch)), batch.pos[role]]
        top = hook_ov_logits(model, resid, layer, head, sign).topk(k, dim=-1).indices
        hits += [(ids[i] in top[i]) for i in range(len(batch))]
    return sum(hits) / len(hits)


@pytest.fixture(params=["tiny_llama", "tiny_gpt2"])
def model_batch(request):
    model = request.getfixturevalue(request.param)
    df = ioi.generate_prompts(model, n=6, seed=3).df
    return model, B.encode(model, df)


def test_ov_logits_match_the_forward_pass(model_batch):
    model, batch = model_batch
    resid, _ = HR.name_residuals(model, batch)
    for layer, head in [(0, 1), (1, 3)]:  # on tiny-llama, 1.3 reads KV head 1, 0.1 KV head 0
        for sign in (1, -1):
            ours = HR.ov_logits(model, resid, layer, head, sign)
            ref = hook_ov_logits(model, resid, layer, head, sign)
            torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_ov_logits_use_the_heads_own_kv_group(tiny_llama):
    """On the GQA model, query heads 0 and 1 share KV head 0; 2 reads KV head 1: so 0 and 2 must
    differ beyond their W_O, i.e. a wrong group would fail the forward-pass match above."""
    assert HR.kv_group(tiny_llama, 1) == 0 and HR.kv_group(tiny_llama, 2) == 1
    assert tiny_llama.blocks[0].attn.W_V.shape[0] == 2


@pytest.mark.parametrize("k", [5, "half"])
def test_copy_score_matches_independent_computation(model_batch, k):
    model, batch = model_batch
    k = model.cfg.d_vocab // 2 if k == "half" else k
    heads = [(0, 1), (1, 2)]
    table = HR.copy_scores(model, batch, heads, k=k)
    for layer, head in heads:
        row = table.loc[f"{layer}.{head}"]
        assert row.copy_score == pytest.approx(independent_copy_score(model, batch, layer, head, 1, k))
        assert row.neg_copy_score == pytest.approx(independent_copy_score(model, batch, layer, head, -1, k))
    if k > 5:  # a random head ranks a name in the top half about half the time: not degenerate
        assert 0 < table.copy_score.mean() < 1


def test_signatures_are_probabilities(tiny_llama):
    df = ioi.generate_prompts(tiny_llama, n=4, seed=0).df
    sig = HR.attention_signatures(tiny_llama, B.encode(tiny_llama, df), [(1, 0), (0, 3)])
    assert list(sig.index) == ["1.0", "0.3"] and list(sig.columns) == list(HR.SIGNATURES)
    assert ((sig >= 0) & (sig <= 1)).all().all()


def _row(top: str, copy: float = 0.0, neg: float = 0.0) -> pd.Series:
    sig = {s: 0.1 for s in HR.SIGNATURES} | {top: 0.6}
    return pd.Series(sig | {"copy_score": copy, "neg_copy_score": neg})


@pytest.mark.parametrize("top, copy, neg, role", [
    ("END->IO", 0.9, 0.0, "name_mover"), ("END->IO", 0.0, 0.8, "negative_name_mover"),
    ("END->IO", 0.1, 0.1, "attends IO (no copy)"), ("END->S2", 0.0, 0.0, "s_inhibition"),
    ("S2->S1", 0.0, 0.0, "duplicate_token"), ("S2->S1+1", 0.0, 0.0, "induction"),
    ("S1+1->S1", 0.0, 0.0, "previous_token"),
])
def test_functional_role_rule(top, copy, neg, role):
    assert HR.functional_role(_row(top, copy, neg)) == role


def test_head_roles_rows_are_each_heads_own_scores(tiny_gpt2):
    """head_roles joins each head's signatures and copy scores (checked against the independent
    computation above) to its row (fails when head_roles returns constants; issue 13)."""
    batch = B.encode(tiny_gpt2, ioi.generate_prompts(tiny_gpt2, n=6, seed=3).df)
    heads, k = [(0, 1), (1, 2), (1, 3)], tiny_gpt2.cfg.d_vocab // 2
    table = HR.head_roles(tiny_gpt2, batch, heads, k=k)
    sig = HR.attention_signatures(tiny_gpt2, batch, heads)
    for layer, head in heads:
        row = table.loc[f"{layer}.{head}"]
        assert row.copy_score == pytest.approx(independent_copy_score(tiny_gpt2, batch, layer, head, 1, k))
        for col in HR.SIGNATURES:
            assert row[col] == pytest.approx(sig.loc[f"{layer}.{head}", col])
    assert table.copy_score.nunique() > 1
