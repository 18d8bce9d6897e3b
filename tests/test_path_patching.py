"""Path patching agrees with TransformerLens's direct path patching, and is a no-op clean-on-clean."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import ioi
from circuitgen import path_patching as PP


@pytest.fixture(scope="module")
def pair(tiny_gpt2):
    df = ioi.generate_prompts(tiny_gpt2, n=6, seed=0, templates=[0]).df
    return B.encode(tiny_gpt2, df), B.encode(tiny_gpt2, df, prompt_col="abc_prompt")


@pytest.mark.parametrize("component", ["q", "k", "v"])
def test_matches_transformer_lens_direct_path(tiny_gpt2, pair, component):
    clean, corr = pair
    assert clean.mask.all(), "one template: no padding, so TL's unmasked run is exact"
    _, cc = tiny_gpt2.run_with_cache(clean.tokens)
    _, kc = tiny_gpt2.run_with_cache(corr.tokens)
    metric = lambda logits: B.logit_diff(logits, clean).mean()  # noqa: E731
    tl = patching.get_act_patch_direct_path(tiny_gpt2, corr.tokens, cc, kc, metric, 0, 1,
                                            component=component, verbose=False)
    deltas = PP.sender_deltas(tiny_gpt2, corr, clean)
    ours = PP.to_receivers(tiny_gpt2, corr, deltas, receivers=[(1, h) for h in range(4)],
                           component=component, position=None, senders=[(0, 1)], progress=False)
    # Ours patches all four receivers at once; compare one receiver at a time too.
    one = [PP.to_receivers(tiny_gpt2, corr, deltas, receivers=[(1, h)], component=component,
                           position=None, senders=[(0, 1)], progress=False).mean().item()
           for h in range(4)]
    torch.testing.assert_close(torch.tensor(one), tl[1], atol=1e-5, rtol=0)
    assert ours.shape == (1, 6)


def test_clean_into_clean_changes_nothing(tiny_llama):
    df = ioi.generate_prompts(tiny_llama, n=5, seed=1).df
    clean = B.encode(tiny_llama, df)
    zero = PP.sender_deltas(tiny_llama, clean, clean)
    assert zero.abs().max() == 0
    base = A.end_logit_diff(A.end_logits(tiny_llama, clean), clean)[0]
    direct = PP.to_logits(tiny_llama, clean, zero)
    torch.testing.assert_close(direct, base.expand_as(direct), atol=1e-5, rtol=0)
    for comp in ("q", "k", "v"):
        via = PP.to_receivers(tiny_llama, clean, zero, receivers=[(1, 0), (1, 3)], component=comp,
                              progress=False)
        torch.testing.assert_close(via, base.expand_as(via), atol=1e-5, rtol=0)


def test_to_logits_is_the_direct_effect(tiny_llama):
    """Adding the sender's delta to the final residual at END, by a hook, gives the same numbers."""
    df = ioi.generate_prompts(tiny_llama, n=4, seed=2).df
    clean, corr = B.encode(tiny_llama, df), B.encode(tiny_llama, df, prompt_col="abc_prompt")
    deltas = PP.sender_deltas(tiny_llama, clean, corr)
    fast = PP.to_logits(tiny_llama, clean, deltas)
    last = f"blocks.{tiny_llama.cfg.n_layers - 1}.hook_resid_post"
    for layer, head in [(0, 0), (1, 2)]:
        def add(x, hook, layer=layer, head=head):
            x = x.clone()
            rows = torch.arange(len(clean))
            x[rows, clean.end] += deltas[rows, clean.end, layer, head]
            return x
        logits = B.forward(tiny_llama, clean, [(last, add)])
        torch.testing.assert_close(fast[layer, head], B.logit_diff(logits, clean), atol=1e-5, rtol=0)
    assert fast.std() > 0


@pytest.mark.parametrize("component,position", [(("k", "v"), None), ("q", None)])
def test_attribution_is_the_derivative_of_exact_path_patching(tiny_llama, component, position):
    df = ioi.generate_prompts(tiny_llama, n=6, seed=0).df
    clean, corr = B.encode(tiny_llama, df), B.encode(tiny_llama, df, prompt_col="abc_prompt")
    # Scaled up: in a random model queries barely matter, and the check must be non-trivial.
    deltas = PP.sender_deltas(tiny_llama, clean, corr) * 50
    recv = [(1, 0), (1, 3)]
    est = PP.attribution_to_receivers(tiny_llama, clean, deltas, recv, component, position)
    eps = 2e-3  # central difference: error O(eps^2), float32 noise O(1e-7 / eps)
    plus, minus = (PP.to_receivers(tiny_llama, clean, deltas * e, recv, component, position,
                                   progress=False).mean(-1) for e in (eps, -eps))
    torch.testing.assert_close((plus - minus) / (2 * eps), est, atol=1e-4, rtol=2e-3)
    assert est.abs().max() > 1e-3
