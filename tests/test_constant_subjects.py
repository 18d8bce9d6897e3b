"""Tests for library functions that no fast test exercised, found by
``scripts/constant_subjects.py``: each fails when its subject returns a constant of the right shape
and checks the value against an oracle that does not reuse the function (issue 13)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import transformer_lens.patching as tlp

from circuitgen import attention, curves, ioi, nodes, residual
from circuitgen import patching as P
from circuitgen.models import hf_model_and_tokenizer


def test_mlp_nodes_lists_every_layer_and_role():
    got = nodes.mlp_nodes(2, roles=("IO", "END"))
    assert [(n.layer, n.head, n.role) for n in got] == [
        (0, None, "IO"), (0, None, "END"), (1, None, "IO"), (1, None, "END")]
    assert len(nodes.mlp_nodes(3)) == 3 * len(nodes.NODE_ROLES)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_n_kv_heads_matches_the_hf_config(name, request):
    model = request.getfixturevalue(name.replace("-", "_"))
    config = hf_model_and_tokenizer(name, seed=0)[0].config
    expected = getattr(config, "num_key_value_heads", None) or config.n_head
    assert attention.n_kv_heads(model) == expected
    if name == "tiny-llama":  # the GQA model: fewer key/value heads than query heads
        assert expected < model.cfg.n_heads


def test_layer_all_pos_patch_setter_copies_the_clean_layer():
    corrupted, clean = torch.zeros(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4)
    out = P.layer_all_pos_patch_setter(corrupted, [1], clean)
    assert torch.equal(out, clean) and torch.equal(corrupted, clean)


def test_patch_all_heads_equals_transformer_lens(tiny_gpt2):
    ps = P.aligned_prompts(tiny_gpt2, 4, seed=0)
    s = P.setup(tiny_gpt2, ps.df)
    ours = P.patch_all_heads(tiny_gpt2, s.corrupted.tokens, s.clean_cache, s.metric)
    with torch.no_grad():
        theirs = tlp.get_act_patch_attn_head_out_all_pos(tiny_gpt2, s.corrupted.tokens, s.clean_cache,
                                                         s.metric)
    assert ours.shape == (tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads)
    assert theirs.std() > 1e-3  # the heads differ, so a constant cannot pass
    assert torch.allclose(ours.cpu(), theirs.cpu(), atol=1e-4)


@pytest.fixture(scope="module")
def gpt2_run(tiny_gpt2):
    tokens = tiny_gpt2.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        logits, cache = tiny_gpt2.run_with_cache(tokens)
    return tokens, logits, cache


def test_residual_norms_are_the_stream_rebuilt_from_its_writes(tiny_gpt2, gpt2_run):
    # Oracle: the stream entering layer 0 is the token plus position embedding, and each block
    # adds its attention and MLP outputs; the norms of that sum, position by position.
    tokens, _, cache = gpt2_run
    n = tiny_gpt2.cfg.n_layers
    x = cache["hook_embed"][0] + cache["hook_pos_embed"][0]
    expected = [x.norm(dim=-1)]
    for layer in range(n):
        x = x + cache[f"blocks.{layer}.hook_attn_out"][0] + cache[f"blocks.{layer}.hook_mlp_out"][0]
        expected.append(x.norm(dim=-1))
    got = residual.residual_norms(cache, n)
    assert got.shape == (n + 1, tokens.shape[1])
    assert torch.allclose(got, torch.stack(expected), rtol=1e-4, atol=1e-4)


def test_component_writes_are_the_differences_of_the_stream(tiny_gpt2, gpt2_run):
    _, _, cache = gpt2_run
    got = residual.component_writes(cache, tiny_gpt2.cfg.n_layers, pos=-1)
    for layer in range(tiny_gpt2.cfg.n_layers):
        pre, mid, post = (cache[f"blocks.{layer}.hook_resid_{k}"][0, -1] for k in ("pre", "mid", "post"))
        assert got.loc[layer, "attention"] == pytest.approx((mid - pre).norm().item(), rel=1e-4)
        assert got.loc[layer, "mlp"] == pytest.approx((post - mid).norm().item(), rel=1e-4)
    assert got["attention"].nunique() == tiny_gpt2.cfg.n_layers


def test_logit_lens_answer_ends_at_the_model_logits(tiny_gpt2, gpt2_run):
    # The last entry of the lens is the final residual stream: its logits are the model's.
    tokens, logits, _ = gpt2_run
    answer, other = tiny_gpt2.to_single_token(" Mary"), tiny_gpt2.to_single_token(" John")
    got = residual.logit_lens_answer(tiny_gpt2, tokens, answer, other)
    final = logits[0, -1]
    last = got.iloc[-1]
    assert last["answer_logit"] == pytest.approx(final[answer].item(), abs=1e-3)
    assert last["other_logit"] == pytest.approx(final[other].item(), abs=1e-3)
    assert last["logit_diff"] == pytest.approx((final[answer] - final[other]).item(), abs=1e-3)
    assert last["answer_rank"] == int((final > final[answer]).sum())
    assert got["answer_logit"].nunique() > 1


def test_aligned_prompts_are_distinct_prompts_at_decoded_positions(tiny_gpt2):
    ps = P.aligned_prompts(tiny_gpt2, 6, seed=2, template=1)
    df = ps.df
    assert df["prompt_id"].tolist() == list(range(6))  # ids join tables: one per prompt
    assert df["prompt"].nunique() == 6 and set(df["template"]) == {1}
    for _, row in df.iterrows():
        ids = ioi.tokenize(tiny_gpt2.tokenizer, row["prompt"])
        word = lambda pos, ids=ids: tiny_gpt2.tokenizer.decode([ids[pos]]).strip()  # noqa: E731
        decoded = (word(row["pos_io"]), word(row["pos_s1"]), word(row["pos_s2"]))
        assert decoded == (row["io"], row["s"], row["s"])
        assert row["n_tokens"] == len(ids)


def test_random_circuit_is_a_uniform_sample_without_replacement():
    every = nodes.head_nodes(3, 4)
    draws = [curves.random_circuit(3, 4, 5, seed) for seed in range(400)]
    for d in draws[:20]:
        assert len(set(d)) == 5 and d == sorted(d) and set(d) <= set(every)
    assert curves.random_circuit(3, 4, 5, 7) == draws[7]  # seeded
    assert len({tuple(d) for d in draws}) > 300
    # Each of the 72 nodes is drawn with probability 5/72: ~27.8 times in 400 draws.
    counts = Counter(n for d in draws for n in d)
    assert len(counts) == len(every)
    assert max(abs(c - 400 * 5 / 72) for c in counts.values()) < 20
