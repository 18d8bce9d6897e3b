"""IOI behaviour: batched scores, direct logit attribution and the logit lens, each checked
against an independent computation (unpadded single prompts, hand-written head DLA, TL's lens)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens.tools.analysis import logit_lens

from circuitgen import behaviour as bh
from circuitgen import ioi, load_model

TINY = ["tiny_gpt2", "tiny_llama"]
# float32 on CPU: tiny models' logits are ~0.1, the reference model's ~10-30.
ATOL = {"tiny_gpt2": 1e-5, "tiny_llama": 1e-5, "smollm2": 2e-3}


def mixed_prompts(model, n: int = 8, seed: int = 1) -> pd.DataFrame:
    """Generated prompts from several templates, both orders, of different token lengths."""
    df = ioi.generate_prompts(model, n=n, seed=seed).df
    assert df["template"].nunique() > 1 and df["order"].nunique() == 2
    assert df["n_tokens"].nunique() > 1, "the prompts must differ in length to test padding"
    return df


def unpadded_end_logits(model, prompt: str) -> torch.Tensor:
    """Logits at the last token of one prompt run alone (no batch, no padding, no mask)."""
    with torch.no_grad():
        return model(model.to_tokens(prompt))[0, -1]


def check_scores_match_single(model, atol: float, n: int = 8):
    df = mixed_prompts(model, n=n)
    batched = bh.score_prompts(model, df, batch_size=len(df), progress=False)
    assert list(batched.columns) == list(df.columns) + list(bh.SCORE_COLUMNS)
    pd.testing.assert_frame_equal(batched[df.columns], df)  # input columns pass through
    one_by_one = pd.concat([bh.score_prompts(model, df.iloc[[i]], progress=False)
                            for i in range(len(df))])
    np.testing.assert_allclose(batched["logit_diff"], one_by_one["logit_diff"], atol=atol, rtol=0)
    np.testing.assert_allclose(batched["p_io"], one_by_one["p_io"], atol=atol, rtol=1e-4)
    tok = model.tokenizer
    for i, row in enumerate(df.itertuples()):
        end = unpadded_end_logits(model, row.prompt)
        io, s = (tok.encode(" " + name, add_special_tokens=False)[0] for name in (row.io, row.s))
        assert batched["logit_diff"].iloc[i] == pytest.approx((end[io] - end[s]).item(), abs=atol)
        assert batched["correct"].iloc[i] == bool(end[io] > end[s])
        assert batched["top1_io"].iloc[i] == bool(end.argmax() == io)
        assert batched["p_io"].iloc[i] == pytest.approx(torch.softmax(end, -1)[io].item(), abs=1e-5)


@torch.no_grad()
def manual_head_dla(model, prompt: str, io: str, s: str, layer: int, head: int) -> float:
    """One head's DLA by hand: z @ W_O, divided by the final norm's scale, dotted with the
    IO - S unembedding direction (compatibility mode: the final norm's weights are in W_U)."""
    _, cache = model.run_with_cache(model.to_tokens(prompt))
    out = cache[f"blocks.{layer}.attn.hook_z"][0, -1, head] @ model.W_O[layer, head]
    if model.cfg.normalization_type in ("LN", "LNPre"):
        out = out - out.mean()
    out = out / cache["ln_final.hook_scale"][0, -1]
    tok = model.tokenizer
    direction = (model.W_U[:, tok.encode(" " + io, add_special_tokens=False)[0]]
                 - model.W_U[:, tok.encode(" " + s, add_special_tokens=False)[0]])
    return float(out @ direction)


def check_dla(model, atol: float, n: int = 8):
    df = mixed_prompts(model, n=n)
    heads = bh.dla_terms(model, df, unit="head", batch_size=len(df), progress=False)
    comps = bh.dla_terms(model, df, unit="component", batch_size=len(df), progress=False)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    assert heads.values.shape == (len(df), L, H)
    assert comps.values.shape == (len(df), L, 2)
    scores = bh.score_prompts(model, df, batch_size=len(df), progress=False)
    for terms in (heads, comps):
        # The model's own logit difference, read separately, is what the DLA rebuilds.
        np.testing.assert_allclose(terms.logit_diff.numpy(), scores["logit_diff"], atol=atol, rtol=0)
        # heads (or attention + MLP) + what they leave out + b_U[IO] - b_U[S] = logit difference.
        err = terms.reconstruction_error().abs().max().item()
        assert err < atol, f"{terms.unit} DLA misses the logit difference by {err:.2e}"
    # Heads of a layer add up to that layer's attention output, less the attention bias b_O.
    b_o = (model.b_O if getattr(model, "b_O", None) is not None else torch.zeros(L, model.cfg.d_model))
    b_o_norm = b_o.norm(dim=-1)
    layer_sum = heads.values.sum(2)
    for layer in range(L):
        if b_o_norm[layer] == 0:
            torch.testing.assert_close(layer_sum[:, layer], comps.values[:, layer, 0], atol=atol, rtol=0)
    # Head DLA is TL's; check two heads against the hand computation on the unpadded prompt.
    for i, (layer, head) in enumerate([(L - 1, 0), (0, H - 1)]):
        row = df.iloc[i]
        want = manual_head_dla(model, row.prompt, row.io, row.s, layer, head)
        assert heads.values[i, layer, head].item() == pytest.approx(want, abs=atol)
    # Padding: batched DLA equals DLA one prompt at a time.
    single = torch.cat([bh.dla(model, df.iloc[[i]], progress=False) for i in range(len(df))])
    torch.testing.assert_close(heads.values, single, atol=atol, rtol=0)
    return heads, comps


def check_lens(model, atol: float, n: int = 6):
    df = mixed_prompts(model, n=n)
    lens = bh.logit_lens_diff(model, df, batch_size=4, progress=False)
    assert lens.shape == (len(df), model.cfg.n_layers + 1)
    assert lens.columns[0] == "0_pre" and lens.columns[-1] == "final_post"
    scores = bh.score_prompts(model, df, progress=False)
    np.testing.assert_allclose(lens.iloc[:, -1], scores["logit_diff"], atol=atol, rtol=0)
    # Every entry against TransformerLens's own logit_lens on the prompt alone.
    tok = model.tokenizer
    for i in (0, len(df) - 1):
        row = df.iloc[i]
        ids = [tok.encode(" " + name, add_special_tokens=False)[0] for name in (row.io, row.s)]
        ref = logit_lens(model, model.to_tokens(row.prompt), vocab=ids, return_type="logits")
        ref_diff = (ref.values[:, 0, 0] - ref.values[:, 0, 1]).numpy()
        np.testing.assert_allclose(lens.iloc[i].to_numpy(), ref_diff, atol=atol, rtol=0)


@pytest.mark.parametrize("fixture", TINY)
def test_batched_scores_equal_single_prompt_scores(fixture, request):
    check_scores_match_single(request.getfixturevalue(fixture), ATOL[fixture])


@pytest.mark.parametrize("fixture", TINY)
def test_dla_reconstructs_logit_diff_tiny(fixture, request):
    check_dla(request.getfixturevalue(fixture), ATOL[fixture])


@pytest.mark.parametrize("fixture", TINY)
def test_logit_lens_last_entry_is_logit_diff_tiny(fixture, request):
    check_lens(request.getfixturevalue(fixture), ATOL[fixture])


@pytest.mark.slow
def test_reference_model_behaviour(smollm2):
    check_scores_match_single(smollm2, ATOL["smollm2"], n=6)
    heads, _ = check_dla(smollm2, ATOL["smollm2"], n=6)
    # A real model does IOI: the logit difference is positive on most of these prompts, and the
    # heads then carry a large part of it (not a test of numbers, a test that DLA is not empty).
    assert (heads.logit_diff > 0).float().mean() > 0.5
    assert heads.values.abs().sum((1, 2)).min() > 0.1
    check_lens(smollm2, ATOL["smollm2"], n=4)


def test_analyse_is_the_separate_functions_in_one_pass(tiny_llama):
    df = mixed_prompts(tiny_llama)
    a = bh.analyse(tiny_llama, df, batch_size=3, progress=False)
    pd.testing.assert_frame_equal(a.scores, bh.score_prompts(tiny_llama, df, progress=False),
                                  atol=1e-6, rtol=0)
    torch.testing.assert_close(a.heads.values, bh.dla(tiny_llama, df, progress=False))
    torch.testing.assert_close(a.components.values, bh.dla(tiny_llama, df, unit="component",
                                                           progress=False))
    pd.testing.assert_frame_equal(a.lens, bh.logit_lens_diff(tiny_llama, df, progress=False),
                                  atol=1e-6, rtol=0)


def test_reading_at_last_column_instead_of_end_is_caught(tiny_gpt2):
    """The checks above can fail: DLA gathered at the padded last column is not the prompt's."""
    df = mixed_prompts(tiny_gpt2)
    terms = bh.dla_terms(tiny_gpt2, df, batch_size=len(df), progress=False)
    from circuitgen import batch as B
    b = B.encode(tiny_gpt2, df)
    short = (b.end < b.tokens.shape[1] - 1).nonzero().flatten()
    assert len(short) > 0
    b.pos["END"] = torch.full_like(b.end, b.tokens.shape[1] - 1)
    _, cache = tiny_gpt2.run_with_cache(b.tokens, attention_mask=b.mask)
    wrong, _ = bh._dla_batch(tiny_gpt2, cache, b, "head")
    assert (wrong[short] - terms.values[short]).abs().max() > 1e-4


def test_dla_needs_compatibility_mode():
    raw = load_model("tiny-gpt2", compatibility_mode=False)
    df = pd.DataFrame({"prompt": ["When Mary and John went to the store, John gave a drink to"],
                       "io": ["Mary"], "s": ["John"]})
    with pytest.raises(ValueError, match="compatibility mode"):
        bh.dla(raw, df, progress=False)
    # Scores need no cache and work either way.
    assert len(bh.score_prompts(raw, df, progress=False)) == 1


def test_top_heads_orders_by_mean():
    values = torch.zeros(3, 2, 3)
    values[:, 1, 2] = torch.tensor([1.0, 2.0, 3.0])
    values[:, 0, 1] = -5.0
    top = bh.top_heads(values, k=2)
    assert top["head"].tolist()[0] == "1.2" and top["mean_dla"].iloc[0] == pytest.approx(2.0)
    assert bh.top_heads(values, k=1, largest=False)["head"].tolist() == ["0.1"]


def test_bootstrap_ci():
    x = np.random.default_rng(0).normal(1.0, 1.0, size=200)
    mean, lo, hi = bh.bootstrap_ci(x, seed=3)
    assert lo < mean < hi and mean == pytest.approx(x.mean())
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(len(x)), rel=0.25)
    assert bh.bootstrap_ci(x, seed=3) == (mean, lo, hi)  # seeded: reruns agree
    assert bh.bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    summary = bh.summarise(pd.DataFrame({"correct": [True, False] * 5, "top1_io": [True] * 10,
                                         "logit_diff": np.arange(10.0), "order": ["A", "B"] * 5}),
                           by="order")
    assert summary.loc["A", "accuracy"] == 1.0 and summary.loc["B", "accuracy"] == 0.0
    assert summary.loc["A", "logit_diff"] == pytest.approx(4.0)


def test_summarise_accuracy_intervals_are_exact():
    """5/5 correct: the exact interval [0.025^(1/5), 1], not a bootstrap's zero-width [1, 1]."""
    from scipy.stats import binomtest

    df = pd.DataFrame({"correct": [True] * 5 + [True, False, True, True, False],
                       "top1_io": [True, False] * 5, "logit_diff": np.linspace(-1, 3, 10),
                       "order": ["A"] * 5 + ["B"] * 5, "template": list("xxyyzxyzzx")})
    summary = bh.summarise(df, by="order")
    assert summary.loc["A", ["accuracy", "accuracy_lo", "accuracy_hi"]].tolist() == pytest.approx(
        [1.0, 0.025 ** (1 / 5), 1.0])
    for group, g in df.groupby("order"):
        for col, name in (("correct", "accuracy"), ("top1_io", "top1")):
            ci = binomtest(int(g[col].sum()), len(g)).proportion_ci(method="exact")
            assert (summary.loc[group, f"{name}_lo"], summary.loc[group, f"{name}_hi"]) == pytest.approx(
                (ci.low, ci.high)), (group, name)
    overall = bh.summarise(df).iloc[0]
    assert overall.logit_diff_lo < overall.logit_diff < overall.logit_diff_hi
    # Clustered by template: the template means are resampled, not the prompts.
    by_template = bh.summarise(df, cluster="template").iloc[0]
    assert by_template.logit_diff == pytest.approx(overall.logit_diff)
    from circuitgen import stats

    expected = stats.cluster_bootstrap_ci(df.logit_diff, df.template, seed=0)
    assert by_template[["logit_diff", "logit_diff_lo", "logit_diff_hi"]].tolist() == pytest.approx(expected)


def test_end_attention_batched_equals_single(tiny_llama):
    model = tiny_llama
    df = mixed_prompts(model)
    heads = ["1.0", (0, 3)]
    att = bh.end_attention(model, df, heads, batch_size=len(df), progress=False)
    assert len(att) == len(df) * 2 and set(att["head"]) == {"1.0", "0.3"}
    probs = att[list(bh.ATTENTION_TARGETS)]
    assert ((probs >= 0) & (probs <= 1)).all().all() and (probs.sum(1) <= 1 + 1e-5).all()
    for i in (0, len(df) - 1):
        row = df.iloc[i]
        with torch.no_grad():
            _, cache = model.run_with_cache(model.to_tokens(row.prompt))
        pattern = cache["blocks.1.attn.hook_pattern"][0, 0, -1]  # END row of head 1.0, alone
        got = att[(att["row"] == df.index[i]) & (att["head"] == "1.0")].iloc[0]
        for role, col in (("IO", "pos_io"), ("S1", "pos_s1"), ("S2", "pos_s2"), ("END", "pos_end")):
            assert got[role] == pytest.approx(pattern[row[col]].item(), abs=1e-6)
        assert got["BOS"] == pytest.approx(pattern[0].item(), abs=1e-6)
