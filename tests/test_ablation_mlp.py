"""MLP nodes in the ablation engine: the mean ``hook_mlp_out`` per (group, role), MLP mean /
resample / zero ablation checked against hand-written hooks built from plain ``run_with_cache``,
and specs with and without ``mlps:``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import circuits, evaluation, ioi, reference, scorer

HAND = pd.DataFrame({
    "prompt": ["When Mary and John went to the store, John gave a drink to",
               "After the long meeting, Sarah thanked David, and then David passed the notes to",
               "Anna and Tom argued. Tom apologised to"],
    "io": ["Mary", "Sarah", "Anna"], "s": ["John", "David", "Tom"],
})
NAMED = ("IO", "S1", "S1+1", "S2", "END")


def all_heads(model) -> str:
    return ", ".join(f'"{l}.{h}"' for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads))


def spec_with(model, mlps: str | None, heads: str | None = None) -> circuits.CircuitSpec:
    """Every head kept everywhere (so only MLPs are ablated), unless ``heads`` says otherwise."""
    text = (f"model: tiny\ntask: ioi\nclasses:\n  all: {{heads: [{heads or all_heads(model)}], "
            "positions: [ALL]}\n")
    if mlps is not None:
        text += f"mlps: {mlps}\n"
    return circuits.parse_circuit(text, "<mlp spec>")


def roles_by_hand(b: B.TaskBatch, i: int) -> list[str]:
    """The role name of every real position of row ``i``, from the batch's positions."""
    n = int(b.mask[i].sum())
    out = ["other"] * n
    out[0] = "BOS"
    for role in NAMED:
        out[int(b.pos[role][i])] = role
    return out


def manual_mlp_means(model, ref: reference.ReferenceBatch) -> dict[tuple[str, str], torch.Tensor]:
    """(group, role) -> mean hook_mlp_out ``[layer, d_model]`` over the ABC reference prompts."""
    _, cache = model.run_with_cache(ref.batch.tokens, attention_mask=ref.batch.mask,
                                    names_filter=lambda n: n.endswith("hook_mlp_out"))
    acts = torch.stack([cache[f"blocks.{l}.hook_mlp_out"] for l in range(model.cfg.n_layers)], 2)
    bins: dict[tuple[str, str], list[torch.Tensor]] = {}
    for i, key in enumerate(ref.keys):
        for p, role in enumerate(roles_by_hand(ref.batch, i)):
            bins.setdefault((key, role), []).append(acts[i, p])
    return {k: torch.stack(v).mean(0) for k, v in bins.items()}


def kept_by_hand(spec, layer: int, role: str) -> bool:
    for m in spec.mlps:
        if m.layer == layer and ("ALL" in m.positions or role in m.positions):
            return True
    return False


def hand_mlp_ablated(model, spec, df: pd.DataFrame, value) -> np.ndarray:
    """Each prompt alone: every (position, MLP) outside ``spec.mlps`` gets ``value(i, p, role,
    layer)``; heads untouched."""
    out = []
    for i in range(len(df)):
        b = B.encode(model, df.iloc[[i]])
        roles = roles_by_hand(b, 0)

        def hook(x, hook, i=i, roles=roles):
            layer = int(hook.name.split(".")[1])
            x = x.clone()
            for p, role in enumerate(roles):
                if not kept_by_hand(spec, layer, role):
                    x[0, p] = value(i, p, role, layer)
            return x

        hooks = [(f"blocks.{l}.hook_mlp_out", hook) for l in range(model.cfg.n_layers)]
        out.append(B.logit_diff(B.forward(model, b, hooks), b).item())
    return np.array(out)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_mlp_means_are_the_mean_over_the_abc_reference(fixture, request):
    model = request.getfixturevalue(fixture)
    means = scorer.mean_reference(model, HAND)
    ref, _ = reference.build_reference(model, HAND)
    want = manual_mlp_means(model, ref)
    assert means.mlp_means.shape == (3, len(A.ROLE_NAMES), model.cfg.n_layers, model.cfg.d_model)
    for (key, role), mean in want.items():
        got = means.mlp_means[means.groups.index(key), A.ROLE_INDEX[role]]
        torch.testing.assert_close(got, mean, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_mlp_mean_ablation_matches_a_hand_written_hook(fixture, request):
    model = request.getfixturevalue(fixture)
    spec = spec_with(model, "[{layer: 1, positions: [END, S2]}]")  # MLP 0 ablated everywhere
    ref, _ = reference.build_reference(model, HAND)
    want = manual_mlp_means(model, ref)
    keys = [f"prompt={p}" for p in HAND.prompt]  # hand-written prompts: each its own group
    hand = hand_mlp_ablated(model, spec, HAND, lambda i, p, role, layer: want[(keys[i], role)][layer])
    out = scorer.score_circuit(model, spec, HAND, progress=False, knockouts=False)
    np.testing.assert_allclose(out.circuit_logit_diff, hand, atol=1e-4, rtol=0)
    assert not np.allclose(out.circuit_logit_diff, out.logit_diff, atol=1e-4), "nothing was ablated"
    meta = out.attrs["circuitgen"]["mlps"]
    assert meta["ablated"] is True and meta["kept"] == ["mlp1@S2", "mlp1@END"]


def test_mlp_resample_and_zero_ablation_match_hand_written_hooks(tiny_gpt2):
    model = tiny_gpt2
    spec = spec_with(model, "[{layer: 0, positions: [IO, other]}]")
    df = ioi.generate_prompts(model, n=4, seed=2).df
    zero = scorer.score_circuit(model, spec, df, ablation=scorer.Ablation("zero"), progress=False,
                                knockouts=False)
    hand = hand_mlp_ablated(model, spec, df, lambda i, p, role, layer: 0.0)
    np.testing.assert_allclose(zero.circuit_logit_diff, hand, atol=1e-4, rtol=0)

    res = scorer.score_circuit(model, spec, df, ablation=scorer.Ablation("resample"), progress=False,
                               knockouts=False)
    abc_df = ioi.make_abc(df, model.tokenizer, seed=0)  # the scorer's own counterparts (seed=0)
    caches = []
    for i in range(len(df)):
        abc = B.encode(model, abc_df.iloc[[i]], prompt_col="abc_prompt")
        caches.append(model.run_with_cache(abc.tokens, attention_mask=abc.mask)[1])
    hand = hand_mlp_ablated(model, spec, df, lambda i, p, role, layer:
                            caches[i][f"blocks.{layer}.hook_mlp_out"][0, p])
    np.testing.assert_allclose(res.circuit_logit_diff, hand, atol=1e-4, rtol=0)
    assert not np.allclose(res.circuit_logit_diff, zero.circuit_logit_diff, atol=1e-4)


def test_no_mlp_keep_changes_nothing(tiny_llama):
    """``mlp_keep=None`` and a keep-everything MLP mask give bitwise the old result; a spec whose
    ``mlps`` keeps every MLP everywhere scores its circuit exactly like one without ``mlps``."""
    model = tiny_llama
    df = HAND
    means = scorer.mean_reference(model, df)
    b = B.encode(model, df)
    replace, mlp_replace = A.replacement_fns("mean", b, means=means, groups=means.keys(df))
    keep = torch.stack([A.circuit_keep(spec_with(model, None, '"0.1", "1.2"'), model, b)])
    old = A.run_variants(model, b, keep, A.replacement_fn("mean", b, means=means, groups=means.keys(df)))
    assert torch.equal(A.run_variants(model, b, keep, replace), old)
    assert torch.equal(A.run_variants(model, b, keep, replace, A.full_mlp_keep(model, b)[None],
                                      mlp_replace), old)
    ablated = A.run_variants(model, b, keep, replace, A.empty_mlp_keep(model, b)[None], mlp_replace)
    assert not torch.allclose(ablated, old, atol=1e-4)

    every = ", ".join(f"{{layer: {l}, positions: [ALL]}}" for l in range(model.cfg.n_layers))
    heads = '"0.1", {head: "1.2", positions: [END]}'
    with_mlps = scorer.score_circuit(model, spec_with(model, f"[{every}]", heads), df, means=means,
                                     progress=False)
    without = scorer.score_circuit(model, spec_with(model, None, heads), df, means=means, progress=False)
    for col in ("logit_diff", "circuit_logit_diff", "ko_all"):
        np.testing.assert_array_equal(with_mlps[col], without[col])
    # F(∅) of a spec with MLP nodes ablates the MLPs too.
    assert not np.allclose(with_mlps.empty_logit_diff, without.empty_logit_diff, atol=1e-4)
    assert without.attrs["circuitgen"]["mlps"]["ablated"] is False


def test_empty_mlp_list_ablates_every_mlp(tiny_gpt2):
    df = ioi.generate_prompts(tiny_gpt2, n=6, seed=6).df
    heads = '"1.0", "1.3", "0.2"'
    none = scorer.score_circuit(tiny_gpt2, spec_with(tiny_gpt2, None, heads), df, progress=False,
                                knockouts=False)
    empty = scorer.score_circuit(tiny_gpt2, spec_with(tiny_gpt2, "[]", heads), df, progress=False,
                                 knockouts=False)
    assert not np.allclose(empty.circuit_logit_diff, none.circuit_logit_diff, atol=1e-4)
    np.testing.assert_array_equal(empty.logit_diff, none.logit_diff)
    assert empty.attrs["circuitgen"]["mlps"]["kept"] == []
    # F(∅): every head and every MLP ablated, as the empty keep masks run directly give it.
    means = scorer.mean_reference(tiny_gpt2, df)
    b = B.encode(tiny_gpt2, df)
    replace, mlp_replace = A.replacement_fns("mean", b, means=means, groups=means.keys(df))
    direct = A.run_variants(tiny_gpt2, b, A.empty_keep(tiny_gpt2, b)[None], replace,
                            A.empty_mlp_keep(tiny_gpt2, b)[None], mlp_replace)[0]
    np.testing.assert_allclose(empty.empty_logit_diff, direct.detach().numpy(), atol=1e-5)


def test_a_reference_without_mlp_means_is_refused(tiny_gpt2):
    df = ioi.generate_prompts(tiny_gpt2, n=4, seed=7).df
    means = dataclasses.replace(scorer.mean_reference(tiny_gpt2, df), mlp_means=None)
    with pytest.raises(ValueError, match="no MLP means"):
        scorer.score_circuit(tiny_gpt2, spec_with(tiny_gpt2, "[]"), df, means=means, progress=False)
    # ... and is fine for a spec without MLP nodes.
    scorer.score_circuit(tiny_gpt2, spec_with(tiny_gpt2, None), df, means=means, progress=False)


def test_generated_reference_cache_holds_mlp_means(tiny_gpt2):
    df = ioi.generate_prompts(tiny_gpt2, n=4, seed=9).df
    a = scorer.mean_reference(tiny_gpt2, df)
    b = scorer.mean_reference(tiny_gpt2, ioi.generate_prompts(tiny_gpt2, n=3, seed=10).df)
    assert a is b and a.mlp_means is not None


def test_random_null_of_a_spec_with_mlps_is_the_scorers(tiny_gpt2):
    spec = spec_with(tiny_gpt2, "[{layer: 1, positions: [END]}]", '"1.0", {head: "0.2", positions: [S2]}')
    df = ioi.generate_prompts(tiny_gpt2, n=6, seed=11).df
    means = scorer.mean_reference(tiny_gpt2, df)
    null = evaluation.random_circuit_null(tiny_gpt2, spec, df, means, n_draws=2)
    scored = scorer.score_circuit(tiny_gpt2, spec, df, means=means, progress=False, knockouts=False)
    assert null.F.iloc[0] == pytest.approx(scored.circuit_logit_diff.mean(), abs=1e-5)
    assert null["F(∅)"].iloc[0] == pytest.approx(scored.empty_logit_diff.mean(), abs=1e-5)
    draws = evaluation.random_circuits(spec, 2, 4, n_draws=3, seed=0)
    for d in draws:
        assert d.mlps == spec.mlps
        cls = d.classes["all"]
        assert sorted(cls.positions_of(h) for h in cls.heads) == [("ALL",), ("S2",)]
