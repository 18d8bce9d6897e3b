"""EAP / EAP-IG node scores: plain EAP equals the project's attribution patching, IG is complete at
the input, padding changes nothing, a planted head comes first, and on SmolLM2 the scores rank the
top head nodes as exact single-node activation patching does."""

from __future__ import annotations

import pytest
import torch

from circuitgen import batch as B
from circuitgen import eap, ioi
from circuitgen import nodes as N
from circuitgen import patching as P

TINY = ["tiny_gpt2", "tiny_llama"]
SPEARMAN_BOUND = 0.5  # fixed before the first SmolLM2 run


def _data(model, n: int = 6, seed: int = 0):
    df = ioi.generate_prompts(model, n, seed).df
    return df, B.encode(model, df), B.encode(model, df, prompt_col="abc_prompt")


def test_alphas_end_at_the_clean_input():
    assert eap.alphas(1) == [1.0]
    assert eap.alphas(4) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        eap.alphas(0)


@pytest.mark.parametrize("fixture", TINY)
def test_eap_equals_attribution_patching(fixture, request):
    """steps=1 is attribution patching with the clean run's gradient. ``attribute_heads`` takes
    the gradient on its second argument, so with the runs swapped it gives
    Σ (z_corr - z_clean) · grad_clean, minus our score; TransformerLens's attribution_patch, one
    prompt at a time, swapped the same way, must agree too."""
    model = request.getfixturevalue(fixture)
    df, clean, corr = _data(model)
    assert clean.mask.sum(1).unique().numel() > 1, "the test needs prompts of different lengths"
    a = eap.attributions(model, clean, corr, steps=1)
    ours = a.heads.sum((0, 1))
    ref = -P.attribute_heads(model, corr.tokens, clean.tokens, lambda lg: B.logit_diff(lg, clean).sum())
    assert torch.allclose(ours, ref, atol=1e-6, rtol=1e-4), (ours - ref).abs().max()
    # TransformerLens, runs swapped; its metric m / (n * gap) with gap = 0 - 1 = -1 undoes the
    # swap's sign, and * n the normalisation
    tl = P.attribute_heads_tl(model, corr, clean, 0.0, 1.0) * len(clean)
    assert torch.allclose(tl, ours, atol=1e-5, rtol=1e-3), (ours - tl).abs().max()
    # the table is the same numbers summed over roles and averaged over prompts
    table = eap.eap_nodes(model, df, progress=False)
    assert set(table["method"]) == {"eap"} and set(table["kind"]) == {"head", "mlp"}
    heads = table[table["kind"] == "head"].groupby(["layer", "head"])["score"].sum()
    got = torch.tensor(heads.to_numpy()).view_as(ours).float()
    assert torch.allclose(got, ours / len(clean), atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("fixture", TINY)
def test_integrated_gradients_are_complete_at_the_input(fixture, request):
    """Σ_positions (e_clean - e_corr) · mean grad -> m(clean) - m(corr) as steps grow."""
    model = request.getfixturevalue(fixture)
    _, clean, corr = _data(model)
    a = eap.attributions(model, clean, corr, steps=50)
    gap = a.m_clean - a.m_corr
    err = (a.embed.sum(1) - gap).norm() / gap.norm()
    assert err < 0.02, f"relative completeness error {float(err):.4f}"


@pytest.mark.parametrize("fixture", TINY)
def test_padding_changes_nothing(fixture, request):
    """One batch of prompts of different lengths scores as each prompt alone."""
    model = request.getfixturevalue(fixture)
    df, _, _ = _data(model)
    together = eap.eap_ig_nodes(model, df, steps=2, batch_size=len(df), progress=False)
    alone = eap.eap_ig_nodes(model, df, steps=2, batch_size=1, progress=False)
    assert torch.allclose(torch.tensor(together["score"].to_numpy()),
                          torch.tensor(alone["score"].to_numpy()), atol=1e-7, rtol=1e-4)
    a = eap.attributions(model, B.encode(model, df), B.encode(model, df, "abc_prompt"), steps=2)
    pad = B.encode(model, df).mask == 0
    assert pad.any() and float(a.heads[pad].abs().sum() + a.mlps[pad].abs().sum()) == 0.0


def test_table_format(tiny_llama):
    df, _, _ = _data(tiny_llama, 3)
    t = eap.eap_ig_nodes(tiny_llama, df, steps=2, progress=False)
    cfg = tiny_llama.cfg
    n_roles = len(N.NODE_ROLES)
    assert len(t) == cfg.n_layers * (cfg.n_heads + 1) * n_roles
    assert set(t["role"]) == set(N.NODE_ROLES) and set(t["method"]) == {"eap-ig"}
    assert all(str(N.parse_node(x)) == x for x in t["node"])


def test_planted_head_comes_first(tiny_llama):
    """Every head's W_O but 1.2's zeroed: 1.2 is the only head that writes, and in the last layer
    only its END position reaches the logits; EAP-IG must rank 1.2@END first among head nodes,
    give the others (nearly) nothing, and agree in sign with the exact patching effect."""
    model = tiny_llama
    df, _, _ = _data(model, 8)
    dh = model.cfg.d_head
    weights = [dict(b.attn.named_parameters())["_original_component.o_proj._original_component.weight"]
               for b in model.blocks]
    saved = [w.detach().clone() for w in weights]
    try:
        with torch.no_grad():
            for layer, w in enumerate(weights):
                for h in range(model.cfg.n_heads):
                    if (layer, h) != (1, 2):
                        w[:, h * dh:(h + 1) * dh] = 0
        table = eap.eap_ig_nodes(model, df, steps=5, progress=False)
        exact = eap.exact_node_effects(model, df, ["1.2@END"])
    finally:
        with torch.no_grad():
            for w, s in zip(weights, saved):
                w.copy_(s)
    top = N.top_nodes(table, 2)
    assert top[0].label == "1.2@END"
    heads = table[table["kind"] == "head"].set_index("node")["score"]
    assert heads.drop("1.2@END").abs().max() < 1e-3 * abs(heads["1.2@END"])
    assert heads["1.2@END"] * exact["1.2@END"] > 0


@pytest.mark.slow
def test_smollm2_scores_rank_like_exact_patching(smollm2):
    """Top 20 head nodes by |EAP-IG|: Spearman with their exact single-node patching effects."""
    from scipy.stats import spearmanr

    df = ioi.generate_prompts(smollm2, 16, 0).df
    table = eap.eap_ig_nodes(smollm2, df, steps=5, progress=False)
    top = N.top_nodes(table, 20)
    scores = table.set_index("node").loc[[n.label for n in top], "score"]
    exact = eap.exact_node_effects(smollm2, df, top)
    rho = spearmanr(scores.to_numpy(), exact.to_numpy()).statistic
    print(f"SmolLM2, 16 prompts, 20 head nodes: Spearman(EAP-IG, exact) = {rho:.3f}")
    assert rho > SPEARMAN_BOUND, rho
