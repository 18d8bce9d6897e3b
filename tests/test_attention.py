"""Attention rebuilt by hand from the weights equals what the model computes (circuitgen.attention).

Tolerance: max |rebuilt - cached| <= 1e-5 + 1e-5 * max |cached| for every step (float32 einsums
sum in another order than the model's matmuls; measured differences are below 1e-5 absolute).
The negative tests check that the comparison can fail: a wrong rotary base, the wrong KV-head
grouping, or no GQA expansion at all do not reproduce the model.
"""

from __future__ import annotations

import math

import pytest
import torch

from circuitgen import attention as A

PROMPT = "When Mary and John went to the store, John gave a drink to"
TOL = 1e-5


def _assert_all_match(check: A.AttentionCheck) -> None:
    bad = check.table.loc[~check.table["matches"]]
    assert bad.empty, f"{check.model_name} layer {check.layer}:\n{bad.to_string()}"


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_rebuild_matches_cache_tiny(request, fixture, layer):
    model = request.getfixturevalue(fixture)
    check = A.check_layer(model, PROMPT, layer)
    _assert_all_match(check)
    for step in ("pattern", "z", "attention output"):
        assert A.max_diff(check, step) < TOL
    expected_steps = {"norm", "norm weight", "queries", "keys", "values", "scores (unmasked)",
                      "pattern", "z", "attention output"}
    if fixture == "tiny_llama":
        expected_steps |= {"rotary queries", "rotary keys"}
    assert set(check.table["step"]) == expected_steps


def test_rows_of_pattern_sum_to_one_and_respect_the_mask(tiny_llama):
    check = A.check_layer(tiny_llama, PROMPT, 1)
    pattern = check.rebuilt.pattern
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
    assert float(pattern.triu(diagonal=1).abs().max()) == 0.0


def test_rebuild_with_biases_and_norm_weights_gpt2(tiny_gpt2):
    """Real GPT-2 has biases and (unfolded) LN weights; random init has them at 0 / 1. Perturb them
    so those code paths are exercised, then restore the shared fixture."""
    params = {n: p for n, p in tiny_gpt2.blocks[1].named_parameters()
              if n.endswith("bias") or ".ln_1." in n}
    saved = {n: p.detach().clone() for n, p in params.items()}
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            for p in params.values():
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
        assert float(tiny_gpt2.blocks[1].attn.b_O.detach().abs().max()) > 0.1
        check = A.check_layer(tiny_gpt2, PROMPT, 1)
        _assert_all_match(check)
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])


@pytest.mark.parametrize("layer", [0, 13, 29])
def test_rebuild_matches_cache_smollm2(smollm2, layer):
    check = A.check_layer(smollm2, PROMPT, layer)
    _assert_all_match(check)
    for step in ("pattern", "z"):
        assert A.max_diff(check, step) < TOL
    # the attention output of late layers is large (|out| ~ 27), so its bound is relative
    assert A.max_diff(check, "attention output") < TOL * (1 + check.table["max_abs_cached"].max())
    n_pos = check.tokens.shape[1]
    assert tuple(check.rebuilt.q.shape) == (1, n_pos, 9, 64)
    assert tuple(check.rebuilt.k.shape) == (1, n_pos, 3, 64)
    assert tuple(check.rebuilt.pattern.shape) == (1, 9, n_pos, n_pos)


def test_rope_theta_comes_from_hf_config_not_bridge_cfg(smollm2):
    """The forward uses the HF config's theta (100000 for SmolLM2); the bridge's cfg.rotary_base
    (10000 in TransformerLens 4.3) is not what runs, and its cos/sin tables do not match."""
    theta = A.rope_theta(smollm2)
    assert theta == smollm2.original_model.config.rope_parameters["rope_theta"] == 100000.0
    check = A.check_layer(smollm2, PROMPT, 0)
    n_pos, dim = check.tokens.shape[1], A.rotary_dim(smollm2)
    cached_cos = check.cache["blocks.0.attn.hook_cos"][0]
    cos, sin = A.rotary_cos_sin(n_pos, dim, theta)
    torch.testing.assert_close(cached_cos, cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(check.cache["blocks.0.attn.hook_sin"][0], sin, atol=1e-6, rtol=0)
    if smollm2.cfg.rotary_base != theta:
        bridge_cos, _ = A.rotary_cos_sin(n_pos, dim, float(smollm2.cfg.rotary_base))
        assert float((cached_cos - bridge_cos).abs().max()) > 0.1


@pytest.mark.parametrize("fixture, layer, min_pattern_diff", [
    ("tiny_llama", 1, 1e-4),  # random weights: near-uniform attention, so smaller but >> TOL
    ("smollm2", 13, 1e-2),
])
def test_wrong_rope_theta_does_not_match(request, fixture, layer, min_pattern_diff):
    model = request.getfixturevalue(fixture)
    wrong = 10000.0 if A.rope_theta(model) != 10000.0 else 100000.0
    check = A.check_layer(model, PROMPT, layer, theta=wrong)
    assert A.max_diff(check, "queries") < TOL  # before rotation all is still right
    assert A.max_diff(check, "rotary queries") > 1e-2
    assert A.max_diff(check, "pattern") > min_pattern_diff
    assert not check.all_match


@pytest.mark.parametrize("fixture, layer", [("tiny_llama", 1), ("smollm2", 13)])
def test_wrong_gqa_grouping_does_not_match(request, fixture, layer):
    model = request.getfixturevalue(fixture)
    check = A.check_layer(model, PROMPT, layer, grouping="strided")
    assert A.max_diff(check, "rotary keys") < TOL  # keys are right, only their sharing is wrong
    assert A.max_diff(check, "pattern") > 1e-3
    assert A.max_diff(check, "z") > 1e-2
    assert not check.all_match


def test_no_gqa_expansion_cannot_even_be_computed(smollm2):
    """Without expanding the 3 KV heads to the 9 query heads, q·k does not line up at all."""
    tokens = smollm2.to_tokens(PROMPT)
    cache = A.run_with_layer_cache(smollm2, tokens, 0)
    x = A.apply_norm_weight(smollm2, 0, A.normalize(smollm2, cache["blocks.0.hook_resid_pre"]))
    q, k, _ = A.project_qkv(smollm2, 0, x)
    with pytest.raises(RuntimeError):
        A.attention_scores(q, k, A.attention_scale(smollm2))


def test_kv_head_index():
    assert A.kv_head_index(9, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert A.kv_head_index(9, 3, grouping="strided").tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert A.kv_head_index(4, 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        A.kv_head_index(9, 2)


def test_rotary_preserves_norm_and_depends_only_on_offset():
    """Rotation keeps each vector's length, and q_i·k_j depends on i - j only."""
    torch.manual_seed(0)
    cos, sin = A.rotary_cos_sin(8, 16, 100000.0)
    v = torch.randn(1, 1, 1, 16).expand(1, 8, 1, 16)
    w = torch.randn(1, 1, 1, 16).expand(1, 8, 1, 16)
    rv, rw = A.apply_rotary(v, cos, sin), A.apply_rotary(w, cos, sin)
    torch.testing.assert_close(rv.norm(dim=-1), v.norm(dim=-1))
    dots = torch.einsum("bihe,bjhe->ij", rv, rw)
    torch.testing.assert_close(dots[3, 1], dots[6, 4])
    torch.testing.assert_close(dots[5, 5], dots[0, 0])
    assert not math.isclose(float(dots[3, 1]), float(dots[3, 2]), rel_tol=1e-3)


def test_bad_layer_says_what_is_wrong(tiny_gpt2):
    with pytest.raises(ValueError, match="out of range"):
        A.check_layer(tiny_gpt2, PROMPT, 7)
