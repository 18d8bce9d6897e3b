"""Path patching's causal order (issue 25): a sender reaches only receivers in *later* layers.

The other path-patching tests put every sender in layer 0 and every receiver in layer 1, where
the rule is never exercised. Here a 3-layer random GPT-2 (attention sharpened, as in
``test_path_patching``) has senders in the receivers' own layer, below them and above them,
with receivers spread over two layers. Oracles: TransformerLens's own direct path patching
(``get_act_patch_direct_path``, one sender into one receiver) and, for several receivers at
once, plain split-input hooks written here.
"""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching

from circuitgen import batch as B
from circuitgen import ioi
from circuitgen import path_patching as PP
from circuitgen.models import LoadChoices, gpt2_tokenizer

TOL = 1e-5
N_HEADS = 4


@pytest.fixture(scope="module")
def deep_gpt2():
    """A random 3-layer GPT-2 (4 heads, d_model 64) with its attention weights 8x larger and
    its heads' writes 4x, so that the paths tested move the logit difference far above the
    tolerance."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=3, n_head=N_HEADS, n_embd=64, n_positions=256))
    with torch.no_grad():
        for block in hf.transformer.h:
            block.attn.c_attn.weight.mul_(8.0)
            block.attn.c_proj.weight.mul_(4.0)
    bridge = TransformerBridge.boot_transformers("tiny-gpt2", hf_model=hf.eval(),
                                                 tokenizer=gpt2_tokenizer(), device="cpu")
    bridge.enable_compatibility_mode(disable_warnings=True)
    bridge.eval()
    bridge.circuitgen = LoadChoices(model="tiny-gpt2", compatibility_mode=True, prepend_bos=True,
                                    dtype="float32", device="cpu")
    return bridge


@pytest.fixture(scope="module")
def runs(deep_gpt2):
    model = deep_gpt2
    df = ioi.generate_prompts(model, n=6, seed=0, templates=[0]).df
    clean, corr = B.encode(model, df), B.encode(model, df, prompt_col="abc_prompt")
    assert clean.mask.all(), "one template: no padding, so the unmasked oracles are exact"
    _, cc = model.run_with_cache(clean.tokens)
    _, kc = model.run_with_cache(corr.tokens)
    io = torch.tensor([model.tokenizer(" " + n, add_special_tokens=False)["input_ids"][0] for n in df.io])
    s = torch.tensor([model.tokenizer(" " + n, add_special_tokens=False)["input_ids"][0] for n in df.s])
    rows = torch.arange(len(df))

    def metric(logits):  # mean logit(IO) - logit(S) at the last token (no padding)
        return (logits[rows, -1, io] - logits[rows, -1, s]).mean()

    with torch.no_grad():
        base = metric(model(corr.tokens)).item()
    return {"df": df, "clean": clean, "corr": corr, "cc": cc, "kc": kc, "metric": metric,
            "base": base, "deltas": PP.sender_deltas(model, corr, clean)}


def _tl(model, runs, sender, component):
    """TransformerLens: the metric with the path sender -> (l, h) patched, ``[layer, head]``."""
    return patching.get_act_patch_direct_path(model, runs["corr"].tokens, runs["cc"], runs["kc"],
                                              runs["metric"], *sender, component=component,
                                              verbose=False)


def _hooked(model, runs, sender, receivers, component, scale=1.0):
    """Plain split-input hooks: the sender's clean-minus-ABC write (from the caches, by hand)
    added to the ``component`` input of each receiver in a later layer than the sender."""
    layer, head = sender
    name = f"blocks.{layer}.attn.hook_z"
    w_o = model.blocks[layer].attn.W_O[head]
    delta = scale * (runs["cc"][name][:, :, head] @ w_o - runs["kc"][name][:, :, head] @ w_o)
    by_layer: dict[int, list[int]] = {}
    for rl, rh in receivers:
        if rl > layer:
            by_layer.setdefault(rl, []).append(rh)

    def add(x, hook, heads):
        x = x.clone()
        x[:, :, heads] += delta[:, :, None]
        return x

    hooks = [(f"blocks.{rl}.attn.hook_{component}_input",
              lambda x, hook, heads=heads: add(x, hook, heads)) for rl, heads in by_layer.items()]
    saved = model.cfg.use_split_qkv_input
    model.set_use_split_qkv_input(True)
    try:
        with torch.no_grad():
            return runs["metric"](model.run_with_hooks(runs["corr"].tokens, fwd_hooks=hooks)).item()
    finally:
        model.set_use_split_qkv_input(saved)


def _ours(model, runs, sender, receivers, component):
    return PP.to_receivers(model, runs["corr"], runs["deltas"], receivers, component, None,
                           senders=[sender], progress=False)[0].mean().item()


# Receivers whose paths matter (|effect| > 20 x TOL, measured on this model).
LATER = (2, 3)  # from sender (1, 2)
FROM_0 = {"q": (2, 2), "k": (2, 0), "v": (2, 3)}  # from sender (0, 1)


@pytest.mark.parametrize("component", ["q", "k", "v"])
def test_a_sender_reaches_only_later_receivers(deep_gpt2, runs, component):
    model, base = deep_gpt2, runs["base"]
    # A sender in layer 1, receivers in layers 1 and 2: only the layer-2 receiver is reached,
    # so the result is TransformerLens's path (1, 2) -> (2, 3) alone.
    tl = _tl(model, runs, (1, 2), component)
    want = tl[LATER].item()
    assert abs(want - base) > 20 * TOL, "the later path must matter"
    assert _ours(model, runs, (1, 2), [(1, 0), (1, 2), LATER], component) == pytest.approx(want, abs=TOL)
    # ... and same-layer receivers alone get nothing: the unpatched metric.
    assert _ours(model, runs, (1, 2), [(1, 0), (1, 2)], component) == pytest.approx(base, abs=TOL)
    # A sender above every receiver reaches none of them.
    assert _ours(model, runs, (2, 0), [(1, 1), (2, 3)], component) == pytest.approx(base, abs=TOL)
    # A layer-0 sender reaches a receiver two layers up (TransformerLens), and receivers in
    # layers 1 and 2 together (plain hooks; no single-receiver path gives that number).
    tl0 = _tl(model, runs, (0, 1), component)
    far = FROM_0[component]
    assert abs(tl0[far].item() - base) > 20 * TOL
    assert _ours(model, runs, (0, 1), [far], component) == pytest.approx(tl0[far].item(), abs=TOL)
    assert _hooked(model, runs, (0, 1), [far], component) == pytest.approx(tl0[far].item(), abs=TOL)
    both = _hooked(model, runs, (0, 1), [(1, 0), far], component)
    assert abs(both - tl0[far].item()) > 20 * TOL and abs(both - tl0[1, 0].item()) > 20 * TOL
    assert _ours(model, runs, (0, 1), [(1, 0), far], component) == pytest.approx(both, abs=TOL)


def test_default_senders_are_every_head_below_the_deepest_receiver(deep_gpt2, runs):
    model = deep_gpt2
    out = PP.to_receivers(model, runs["corr"], runs["deltas"], [(2, 1)], "v", None, progress=False)
    assert out.shape == (2 * N_HEADS, len(runs["df"]))
    for i in range(2 * N_HEADS):  # row i is sender (i // 4, i % 4), in layer order
        tl = _tl(model, runs, (i // N_HEADS, i % N_HEADS), "v")
        assert out[i].mean().item() == pytest.approx(tl[2, 1].item(), abs=TOL), i


def _slope(model, runs, sender, receivers, component, scale, eps=1e-3) -> float:
    """d/dε at 0 of the hooked oracle with the sender's delta times ``scale * ε``."""
    return (_hooked(model, runs, sender, receivers, component, scale * eps)
            - _hooked(model, runs, sender, receivers, component, -scale * eps)) / (2 * eps)


@pytest.mark.parametrize("component", ["q", "v"])
def test_attribution_follows_the_same_order(deep_gpt2, runs, component):
    """The first-order screen, receivers in one layer: a sender below them gets the derivative
    of the hooked oracle; senders in their layer or above get exactly 0."""
    model = deep_gpt2
    receivers = [(1, 0), (1, 3)]
    senders = [(0, 3), (1, 0), (1, 2), (2, 1)]
    # Scaled up (a random model's deltas are small), as in test_path_patching.
    est = PP.attribution_to_receivers(model, runs["corr"], runs["deltas"] * 50, receivers,
                                      component, None, senders=senders)
    slope = _slope(model, runs, (0, 3), receivers, component, 50)
    assert abs(slope) > 1e-2
    assert est[0].item() == pytest.approx(slope, abs=1e-4, rel=2e-3)
    assert est[1:].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.xfail(strict=True, reason="lib bug (issue 25 report): attribution_to_receivers "
                   "detaches every receiver input fork, so with receivers in two layers the "
                   "gradient at the earlier receiver misses its paths through the later layer's "
                   "forks; exact path patching (to_receivers) is right")
def test_attribution_with_receivers_in_two_layers(deep_gpt2, runs):
    model = deep_gpt2
    receivers = [(1, 0), (2, 1)]
    est = PP.attribution_to_receivers(model, runs["corr"], runs["deltas"] * 50, receivers, "v",
                                      None, senders=[(0, 3)])
    assert est[0].item() == pytest.approx(_slope(model, runs, (0, 3), receivers, "v", 50), rel=2e-3)
