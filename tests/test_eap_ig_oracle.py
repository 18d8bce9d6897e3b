"""EAP-IG integrates over its steps (issue 25): each head's score per position equals the
average, over the interpolated inputs, of plain attribution scores computed here another way.

The oracle shares nothing with :mod:`circuitgen.eap` but the batch encoding: the interpolation
is done on ``blocks.0.hook_resid_pre`` (for these models it differs from the embedding by a
positional term that is the same in the clean and the ABC prompt), a zero leaf tensor is added to
each head's ``z`` and differentiated with ``torch.autograd.grad`` (no backward hooks), the metric
is read by indexing the logits at each prompt's END, and the average over α = k / steps
(k = 1..steps) is taken explicitly.
"""

from __future__ import annotations

import pytest
import torch

from circuitgen import batch as B
from circuitgen import eap, ioi

TINY = ["tiny_gpt2", "tiny_llama"]
STEPS = 3


def _ids(model, names) -> torch.Tensor:
    return torch.tensor([model.tokenizer(" " + n.strip(), add_special_tokens=False)["input_ids"][0]
                         for n in names])


def _metric(model, logits: torch.Tensor, df) -> torch.Tensor:
    """logit(IO) - logit(S) at each prompt's last real token (from the table, not the batch)."""
    rows = torch.arange(len(df))
    end = logits[rows, torch.tensor(df["pos_end"].to_numpy())]
    return end[rows, _ids(model, df["io"])] - end[rows, _ids(model, df["s"])]


def _z_cache(model, tokens, mask) -> dict[int, torch.Tensor]:
    names = {f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=lambda n: n in names)
    return {l: cache[f"blocks.{l}.attn.hook_z"].detach() for l in range(model.cfg.n_layers)}


def _resid0(model, tokens, mask) -> torch.Tensor:
    name = "blocks.0.hook_resid_pre"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=lambda n: n == name)
    return cache[name].detach()


def plain_scores_at(model, df, clean, corr, alpha: float) -> torch.Tensor:
    """Attribution scores (z_clean - z_corr) · ∂m/∂z at the input corr + α (clean - corr),
    ``[batch, pos, layer, head]``."""
    n_layers = model.cfg.n_layers
    z_clean = _z_cache(model, clean.tokens, clean.mask)
    z_corr = _z_cache(model, corr.tokens, clean.mask)
    r_clean, r_corr = _resid0(model, clean.tokens, clean.mask), _resid0(model, corr.tokens, clean.mask)
    mixed = r_corr + alpha * (r_clean - r_corr)
    leaves: dict[int, torch.Tensor] = {}

    def take_z(z, hook):
        # z + 0 with the zero a leaf: ∂m/∂leaf is the total derivative ∂m/∂z, paths through
        # later heads included (a detached copy of z would cut them)
        leaf = torch.zeros_like(z, requires_grad=True)
        leaves[int(hook.name.split(".")[1])] = leaf
        return z + leaf

    hooks = [("blocks.0.hook_resid_pre", lambda x, hook: mixed.to(x.dtype))]
    hooks += [(f"blocks.{l}.attn.hook_z", take_z) for l in range(n_layers)]
    with torch.enable_grad():
        logits = model.run_with_hooks(clean.tokens, attention_mask=clean.mask, fwd_hooks=hooks)
        m = _metric(model, logits, df).sum()
        grads = torch.autograd.grad(m, [leaves[l] for l in range(n_layers)])
    per_layer = [((z_clean[l] - z_corr[l]) * g).sum(-1) for l, g in enumerate(grads)]
    return torch.stack(per_layer, dim=2) * clean.mask[:, :, None, None].float()


@pytest.mark.parametrize("fixture", TINY)
def test_eap_ig_is_the_average_of_attribution_scores_along_the_path(fixture, request):
    model = request.getfixturevalue(fixture)
    df = ioi.generate_prompts(model, 5, seed=3).df
    clean, corr = B.encode(model, df), B.encode(model, df, prompt_col="abc_prompt")
    assert not clean.mask.all(), "prompts of different lengths: padding must be handled too"
    at = [plain_scores_at(model, df, clean, corr, k / STEPS) for k in range(1, STEPS + 1)]
    want = torch.stack(at).mean(0)
    got = eap.attributions(model, clean, corr, steps=STEPS).heads
    scale = float(want.abs().max())
    assert scale > 0
    torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-4)
    # The test can tell integration from its shortcuts: the last step alone (plain EAP), the
    # first step alone, or the sum instead of the mean differ from the average by far more
    # than the tolerance.
    for wrong in (at[-1], at[0], want * STEPS):
        assert float((wrong - want).abs().max()) > 1e-2 * scale
