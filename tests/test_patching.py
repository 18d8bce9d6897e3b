"""Week 5 patching: the fast tiled sweeps equal TransformerLens's loops, attribution patching
equals TransformerLens's and is the derivative of the patched metric, and patching clean into
clean changes nothing."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.utilities import get_act_name

from circuitgen import batch as B
from circuitgen import ioi
from circuitgen import patching as P

TOL = 1e-4
_SETUPS: dict = {}


def ioi_setup(model, n: int = 4) -> P.PatchSetup:
    key = (id(model), n)
    if key not in _SETUPS:
        ps = P.aligned_prompts(model, n, seed=0)
        _SETUPS[key] = P.setup(model, ps.df)
    return _SETUPS[key]


@pytest.fixture(scope="module")
def reference(smollm2):
    return smollm2, ioi_setup(smollm2, 4)


# --------------------------------------------------------------------------------------------
# Set-up and metric


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_aligned_prompts_share_positions(fixture, request):
    model = request.getfixturevalue(fixture)
    ps = P.aligned_prompts(model, 12, seed=1)
    for col in list(ioi.POSITION_COLUMNS.values()) + ["n_tokens"]:
        assert ps.df[col].nunique() == 1, col
    s = P.setup(model, ps.df)
    assert bool(s.clean.mask.all()) and bool(s.corrupted.mask.all()), "aligned prompts need no padding"
    labels = s.labels
    assert len(labels) == s.clean.tokens.shape[1]
    for role in ("IO", "S1", "S2"):
        assert labels[int(s.clean.pos[role][0])] == role
    assert labels[-1].endswith("(END)")
    assert "[place]" in labels and "[object]" in labels


def test_mixed_orders_are_refused(tiny_gpt2):
    with pytest.raises(ioi.PromptError, match="not aligned"):
        P.aligned_prompts(tiny_gpt2, 8, seed=0, orders=("ABBA", "BABA"))


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_metric_is_one_clean_and_zero_corrupted(fixture, request):
    model = request.getfixturevalue(fixture)
    s = ioi_setup(model)
    with torch.no_grad():
        clean, corrupted = model(s.clean.tokens), model(s.corrupted.tokens)
    assert float(s.metric(clean)) == pytest.approx(1.0, abs=1e-5)
    assert float(s.metric(corrupted)) == pytest.approx(0.0, abs=1e-5)


# --------------------------------------------------------------------------------------------
# Exact patching: fast == TransformerLens


@pytest.mark.parametrize("kind", sorted(P.KINDS))
def test_fast_equals_tl_tiny_gpt2(kind, tiny_gpt2):
    s = ioi_setup(tiny_gpt2)
    fast = P.patch(tiny_gpt2, s, kind, progress=False)
    tl = P.patch(tiny_gpt2, s, kind, fast=False)
    assert fast.shape == tl.shape == P.result_shape(tiny_gpt2, kind, s.clean.tokens.shape[1])
    assert not fast.isnan().any()
    assert P.max_abs_diff(fast, tl) <= TOL


@pytest.mark.parametrize("kind", ["head_out", "head_v", "head_k", "head_pattern", "resid_pre"])
def test_fast_equals_tl_tiny_llama_gqa(kind, tiny_llama):
    s = ioi_setup(tiny_llama)
    fast = P.patch(tiny_llama, s, kind, progress=False)
    tl = P.patch(tiny_llama, s, kind, fast=False)
    if kind in ("head_v", "head_k"):
        assert fast.shape[1] == tiny_llama.cfg.n_key_value_heads < tiny_llama.cfg.n_heads
    assert P.max_abs_diff(fast, tl) <= TOL


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_head_patching_moves_the_metric(fixture, request):
    """Guards the agreement tests against a patch that silently does nothing in both."""
    model = request.getfixturevalue(fixture)
    s = ioi_setup(model)
    for kind in ("head_out", "resid_pre"):
        assert P.patch(model, s, kind, progress=False).abs().max() > 0.05, kind


def test_tiling_and_skipping_do_not_change_results(tiny_llama):
    s = ioi_setup(tiny_llama)
    args = (tiny_llama, s.corrupted.tokens, s.clean_cache, s.metric, "resid_pre")
    one = P.fast_patch(*args, per_forward=1, progress=False)
    for per_forward in (3, 64):
        for cache in (None, s.corrupted_cache):
            other = P.fast_patch(*args, per_forward=per_forward, corrupted_cache=cache, progress=False)
            assert P.max_abs_diff(one, other) <= 1e-5


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_end_only_unembedding_is_exact(fixture, request):
    """The IOI metric unembeds END only in fast_patch; a plain callable gets full logits."""
    model = request.getfixturevalue(fixture)
    s = ioi_setup(model)
    assert isinstance(s.metric, P.EndMetric)
    plain = lambda logits: s.metric(logits)  # noqa: E731 - not an EndMetric: full logits
    for kind in ("head_out", "resid_pre"):
        end_only = P.patch(model, s, kind, progress=False)
        full = P.fast_patch(model, s.corrupted.tokens, s.clean_cache, plain, kind, progress=False)
        assert P.max_abs_diff(end_only, full) <= 1e-5


def test_skipping_only_skips_unchanged_activations(tiny_gpt2):
    """Positions before the first name are identical in the clean and ABC runs at every layer."""
    s = ioi_setup(tiny_gpt2)
    first_name = int(min(s.clean.pos["IO"][0], s.clean.pos["S1"][0]))
    calls = []
    model = tiny_gpt2
    real = model.run_with_hooks

    def counting(tokens, *a, **k):
        calls.append(tokens.shape[0])
        return real(tokens, *a, **k)

    model.run_with_hooks = counting
    try:
        skipped = P.fast_patch(model, s.corrupted.tokens, s.clean_cache, s.metric, "resid_pre",
                               per_forward=1, corrupted_cache=s.corrupted_cache, progress=False)
    finally:
        del model.run_with_hooks
    n_indices = model.cfg.n_layers * s.clean.tokens.shape[1]
    # one unpatched baseline forward + one per changed index
    assert len(calls) - 1 <= n_indices - model.cfg.n_layers * first_name
    assert torch.all(skipped[:, :first_name].abs() < 1e-6)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_clean_into_clean_changes_nothing(fixture, request):
    model = request.getfixturevalue(fixture)
    s = ioi_setup(model)
    clean_ld = float(s.clean_ld.mean())

    def mean_ld(logits):
        return B.logit_diff(logits, s.clean).mean()

    for kind in ("head_out", "resid_pre", "head_pattern", "mlp_layer"):
        # no corrupted cache: every patch really runs (nothing is skipped as unchanged)
        out = P.fast_patch(model, s.clean.tokens, s.clean_cache, mean_ld, kind, progress=False)
        assert torch.allclose(out, torch.full_like(out, clean_ld), atol=1e-5), kind


def test_layers_subset_and_nan_elsewhere(tiny_gpt2):
    s = ioi_setup(tiny_gpt2)
    fast = P.patch(tiny_gpt2, s, "head_out", layers=[1], progress=False)
    tl = P.patch(tiny_gpt2, s, "head_out", layers=[1], fast=False)
    assert fast[0].isnan().all() and not fast[1].isnan().any()
    assert P.max_abs_diff(fast, tl) <= TOL
    full = P.patch(tiny_gpt2, s, "head_out", progress=False)
    assert P.max_abs_diff(fast[1], full[1]) <= TOL
    with pytest.raises(ValueError, match="different cells"):
        P.max_abs_diff(fast, full)


def test_fast_equals_tl_reference_model(reference):
    """SmolLM2 (GQA, rotary, real weights), 4 prompts, three layers' heads (TL's loop is slow)."""
    model, s = reference
    layers = [0, model.cfg.n_layers // 2, model.cfg.n_layers - 1]
    fast = P.patch(model, s, "head_out", layers=layers, progress=False)
    tl = P.patch(model, s, "head_out", layers=layers, fast=False)
    assert P.max_abs_diff(fast, tl) <= TOL
    assert fast[layers].abs().max() > 1e-3


# --------------------------------------------------------------------------------------------
# Attribution patching


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_attribution_equals_tl(fixture, request):
    model = request.getfixturevalue(fixture)
    s = ioi_setup(model)
    ours = P.attribute(model, s)
    tl = P.attribute(model, s, tl=True)
    assert ours.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert ours.abs().max() > 1e-3
    torch.testing.assert_close(ours, tl, atol=1e-5, rtol=1e-4)


def test_attribution_equals_tl_reference_model(reference):
    model, s = reference
    ours = P.attribute(model, s)
    tl = P.attribute(model, s, tl=True)
    torch.testing.assert_close(ours, tl, atol=1e-4, rtol=1e-3)


def _metric_along_patch(model, s, layer, head, eps):
    """The metric with head (layer, head)'s z moved a fraction ``eps`` from corrupted to clean."""
    name = get_act_name("z", layer)

    def hook(z, hook):
        z = z.clone()
        z[:, :, head] += eps * (s.clean_cache[name][:, :, head] - z[:, :, head])
        return z

    with torch.no_grad():
        return float(s.metric(model.run_with_hooks(s.corrupted.tokens, fwd_hooks=[(name, hook)])))


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_attribution_is_the_derivative_of_patching(fixture, request):
    """Attribution = d metric / d eps at eps = 0, patching z_corr + eps (z_clean - z_corr)."""
    model = request.getfixturevalue(fixture)
    s = ioi_setup(model)
    attr = P.attribute(model, s)
    eps = 1e-2
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            slope = (_metric_along_patch(model, s, layer, head, eps)
                     - _metric_along_patch(model, s, layer, head, -eps)) / (2 * eps)
            assert attr[layer, head] == pytest.approx(slope, abs=2e-3, rel=1e-2), (layer, head)
    # and at eps = 1 the endpoint is the exact patch
    exact = P.patch(model, s, "head_out", progress=False)
    assert _metric_along_patch(model, s, 1, 0, 1.0) == pytest.approx(float(exact[1, 0]), abs=1e-5)


def test_attribution_needs_a_scalar_metric(tiny_gpt2):
    s = ioi_setup(tiny_gpt2)
    with pytest.raises(ValueError, match="scalar"):
        P.attribute_heads(tiny_gpt2, s.clean.tokens, s.corrupted.tokens,
                          lambda logits: B.logit_diff(logits, s.clean))


def test_attribution_leaves_no_hooks_or_grads(tiny_gpt2):
    s = ioi_setup(tiny_gpt2)
    with torch.no_grad():
        before = tiny_gpt2(s.clean.tokens)
    P.attribute(tiny_gpt2, s)
    assert all(p.grad is None for p in tiny_gpt2.parameters())
    with torch.no_grad():
        after = tiny_gpt2(s.clean.tokens)
    assert torch.equal(before, after)


# --------------------------------------------------------------------------------------------
# Helpers


def test_ranked_heads_by_magnitude():
    values = torch.tensor([[0.1, -0.5, 0.2], [0.05, 0.3, float("nan")]])
    top = P.ranked_heads(values, k=3)
    assert top["head"].tolist() == ["0.1", "1.1", "0.2"]
    assert top["effect"].tolist() == pytest.approx([-0.5, 0.3, 0.2])


def test_correlation_ignores_nan():
    a = torch.tensor([1.0, 2.0, 3.0, float("nan")])
    r, _ = P.correlation(a, torch.tensor([2.0, 4.0, 6.1, 0.0]))
    assert r == pytest.approx(1.0, abs=1e-3)


def test_unknown_kind_says_what_exists(tiny_gpt2):
    with pytest.raises(ValueError, match="head_out"):
        P.result_shape(tiny_gpt2, "heads", 5)
