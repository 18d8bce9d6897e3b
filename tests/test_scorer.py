"""The circuit scorer: batch invariance, ablation checked against a naive implementation, and every
input rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import circuits, ioi, reference, scorer

SPEC = """
model: tiny
task: ioi
classes:
  movers: {heads: ["1.0", "1.3"], positions: [END], signature: {from: END, to: IO}}
  inhibit: {heads: ["0.2"], positions: [S2, END], signature: {from: END, to: S2}}
  early: {heads: ["0.0"], positions: [ALL]}
"""
HAND = pd.DataFrame({
    "prompt": ["When Mary and John went to the store, John gave a drink to",
               "After the long meeting, Sarah thanked David, and then David passed the notes to",
               "Anna and Tom argued. Tom apologised to"],
    "io": ["Mary", "Sarah", "Anna"], "s": ["John", "David", "Tom"], "family": ["a", "b", "c"],
})


@pytest.fixture(scope="module")
def spec():
    return circuits.parse_circuit(SPEC, source="<test spec>")


@pytest.fixture(scope="module")
def prompts(tiny_gpt2):
    return ioi.generate_prompts(tiny_gpt2, n=24, seed=3).df


# ---- an oracle that shares nothing with the library -----------------------------------------
#
# Role positions come from decoding the model's own tokens (``model.to_tokens``) and finding the
# names in them; the per-(group, role) means are plain averages of ``hook_z`` over the reference's
# ABC prompts; the ablated run is TransformerLens's ``run_with_hooks`` on one unpadded prompt.
# Neither ``ablation.role_map``, ``compute_means``, ``batch.encode`` nor the prompts' pos_*
# columns are used. Every role holds a kept class, so a role map that mislabels any of IO, S1,
# S1+1, S2 or END keeps a head at the wrong position and moves the circuit's logit difference.

ROLE_SPEC = """
model: tiny
task: ioi
classes:
  at_io: {heads: ["0.0"], positions: [IO]}
  at_s1: {heads: ["0.1"], positions: [S1]}
  at_s1p1: {heads: ["0.2"], positions: [S1+1]}
  at_s2: {heads: ["0.3"], positions: [S2]}
  at_end: {heads: ["1.0", "1.3"], positions: [END], signature: {from: END, to: IO}}
"""
ORACLE_SCALE = 6.0  # the tiny model's attention is near uniform; sharper, positions matter more


@pytest.fixture(scope="module")
def sharp_gpt2():
    """tiny-gpt2 with its attention's query, key and value weights scaled up: attention that is not
    uniform and heads that write more, so which position a head is kept at changes the output
    clearly."""
    import copy

    from transformer_lens.model_bridge import TransformerBridge

    from circuitgen.models import LoadChoices, hf_model_and_tokenizer

    hf, tok = hf_model_and_tokenizer("tiny-gpt2", seed=0)
    with torch.no_grad():
        for block in hf.transformer.h:
            block.attn.c_attn.weight *= ORACLE_SCALE  # queries, keys and values
    bridge = TransformerBridge.boot_transformers("tiny-gpt2", hf_model=copy.deepcopy(hf).eval(),
                                                 tokenizer=tok, device="cpu")
    bridge.enable_compatibility_mode(disable_warnings=True)
    bridge.eval()
    bridge.circuitgen = LoadChoices(model="tiny-gpt2", compatibility_mode=True, prepend_bos=True,
                                    dtype="float32", device="cpu")
    return bridge


def decoded_roles(model, prompt: str, io: str, s1: str, s2: str) -> list[str]:
    """The role of every token of ``model.to_tokens(prompt)`` (BOS first), found by decoding."""
    words = [model.tokenizer.decode([t]).strip() for t in model.to_tokens(prompt)[0].tolist()]
    roles = ["BOS"] + ["other"] * (len(words) - 1)
    at_io, at_s1 = words.index(io), words.index(s1)
    at_s2 = len(words) - 1 - words[::-1].index(s2)
    assert words.count(io) == 1 and at_s1 < at_s2 and 0 < at_io < at_s2, (prompt, words)
    roles[at_io], roles[at_s1], roles[at_s1 + 1], roles[at_s2], roles[-1] = "IO", "S1", "S1+1", "S2", "END"
    return roles


def hand_means(model, ref: pd.DataFrame) -> dict:
    """``(template, order, role) -> z [layer, head, d_head]``: mean over the ABC prompts."""
    acc: dict[tuple, list] = {}
    ref = ref.assign(width=[model.to_tokens(p).shape[1] for p in ref.abc_prompt])
    for _, part in ref.groupby("width"):  # equal lengths: one unpadded batch each
        with torch.no_grad():
            _, cache = model.run_with_cache(model.to_tokens(list(part.abc_prompt)),
                                            names_filter=lambda n: n.endswith("hook_z"))
        z = torch.stack([cache[f"blocks.{layer}.attn.hook_z"] for layer in range(model.cfg.n_layers)], 2)
        for i, r in enumerate(part.itertuples()):
            for p, role in enumerate(decoded_roles(model, r.abc_prompt, r.abc_io, r.abc_s1, r.abc_s2)):
                acc.setdefault((r.template, r.order, role), []).append(z[i, p])
    return {k: torch.stack(v).mean(0) for k, v in acc.items()}


def hand_logit_diff(model, row, means: dict, kept: dict) -> float:
    """One prompt with every (position, head) not in ``kept`` (head -> roles) set to its mean."""
    roles = decoded_roles(model, row.prompt, row.io, row.s, row.s)
    order = "ABBA" if roles.index("IO") < roles.index("S1") else "BABA"
    assert order == row.order

    def hook(z, hook):
        layer = int(hook.name.split(".")[1])
        z = z.clone()
        for p, role in enumerate(roles):
            for h in range(model.cfg.n_heads):
                if role not in kept.get((layer, h), ()):
                    z[0, p, h] = means[(row.template, order, role)][layer, h]
        return z

    with torch.no_grad():
        logits = model.run_with_hooks(model.to_tokens(row.prompt),
                                      fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)
                                                 for layer in range(model.cfg.n_layers)])
    ids = [model.tokenizer(" " + name, add_special_tokens=False)["input_ids"] for name in (row.io, row.s)]
    assert all(len(i) == 1 for i in ids)
    ids = [i[0] for i in ids]
    return float(logits[0, -1, ids[0]] - logits[0, -1, ids[1]])


@pytest.fixture(scope="module")
def oracle_case(sharp_gpt2):
    model = sharp_gpt2
    ref = ioi.generate_prompts(model, n=80, seed=5, templates=[0, 1]).df  # 20 per template+order
    df = ioi.generate_prompts(model, n=8, seed=9, templates=[0, 1]).df
    assert set(zip(df.template, df.order)) == set(zip(ref.template, ref.order))
    spec = circuits.parse_circuit(ROLE_SPEC, source="<every role>")
    out = scorer.score_circuit(model, spec, df, ablation=scorer.Ablation(reference_prompts=ref),
                               progress=False, batch_size=8)
    return model, spec, df, out, hand_means(model, ref)


def _kept(spec) -> dict:
    return {head: set(cls.positions_of(head)) for cls in spec.classes.values() for head in cls.heads}


def test_circuit_logit_diff_equals_the_independent_oracle(oracle_case):
    model, spec, df, out, means = oracle_case
    assert out.n_tokens.nunique() == 2, "two lengths: the batch is padded"
    kept = _kept(spec)
    want = np.array([hand_logit_diff(model, r, means, kept) for r in df.itertuples()])
    np.testing.assert_allclose(out.circuit_logit_diff, want, atol=1e-5, rtol=0)
    # The oracle is sensitive to each role: keeping a class one role off moves it far past 1e-5.
    for a, b in (("IO", "S1"), ("S1", "S2"), ("S1+1", "S2"), ("S2", "END")):
        swap = {h: {({a: b, b: a}).get(p, p) for p in ps} for h, ps in kept.items()}
        moved = np.array([hand_logit_diff(model, r, means, swap) for r in df.itertuples()])
        assert np.abs(moved - want).max() > 1e-3, (a, b)


def test_model_empty_and_knockout_columns_equal_the_oracle(oracle_case):
    model, spec, df, out, means = oracle_case
    every = {(layer, h): {"BOS", "other", "IO", "S1", "S1+1", "S2", "END"}
             for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)}
    rows = list(df.itertuples())
    model_ld = np.array([hand_logit_diff(model, r, means, every) for r in rows])
    np.testing.assert_allclose(out.logit_diff, model_ld, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.empty_logit_diff,
                               [hand_logit_diff(model, r, means, {}) for r in rows], atol=1e-5, rtol=0)
    for name in ("at_io", "at_end"):
        ko = {h: ps for h, ps in every.items() if h not in spec.classes[name].heads}
        want = np.array([hand_logit_diff(model, r, means, ko) for r in rows]) - model_ld
        np.testing.assert_allclose(out[f"ko_{name}"], want, atol=1e-5, rtol=0)
        assert np.abs(want).max() > 1e-3


def test_faithfulness_is_circuit_over_model_row_by_row(oracle_case):
    _, _, _, out, _ = oracle_case
    np.testing.assert_allclose(out.faithfulness, out.circuit_logit_diff / out.logit_diff, rtol=1e-6)
    assert (np.abs(out.circuit_logit_diff / out.logit_diff - 1) > 0.01).any(), "not trivially 1"
    meta = out.attrs["circuitgen"]
    assert meta["faithfulness_ratio_of_means"] == pytest.approx(
        out.circuit_logit_diff.mean() / out.logit_diff.mean(), rel=1e-6)
    f_0 = out.empty_logit_diff.mean()
    assert meta["normalised_faithfulness"] == pytest.approx(
        (out.circuit_logit_diff.mean() - f_0) / (out.logit_diff.mean() - f_0), rel=1e-6)


def test_signature_equals_the_attention_at_decoded_positions(oracle_case):
    model, _, df, out, _ = oracle_case
    for i, r in enumerate(df.itertuples()):
        roles = decoded_roles(model, r.prompt, r.io, r.s, r.s)
        _, cache = model.run_with_cache(model.to_tokens(r.prompt))
        pattern = cache["blocks.1.attn.hook_pattern"][0]  # [head, query, key]
        want = pattern[[0, 3], roles.index("END"), roles.index("IO")].mean()
        assert out.sig_at_end.iloc[i] == pytest.approx(float(want), abs=1e-6)


# ---- ABC counterparts of hand-written prompts ---------------------------------------------

def test_abc_of_hand_written_prompts_change_only_the_names(tiny_gpt2):
    """No name of the prompt survives, three distinct new names sit at IO, S1, S2, and every other
    token is the clean prompt's; the same for every row of the reference built from them."""
    tok = tiny_gpt2.tokenizer
    abc = ioi.make_abc(HAND, tok, seed=0)
    for r in abc.itertuples():
        clean, new = tiny_gpt2.to_tokens(r.prompt)[0], tiny_gpt2.to_tokens(r.abc_prompt)[0]
        assert clean.shape == new.shape
        roles = decoded_roles(tiny_gpt2, r.prompt, r.io, r.s, r.s)
        slots = [roles.index(x) for x in ("IO", "S1", "S2")]
        differ = (clean != new).nonzero().flatten().tolist()
        assert differ == sorted(slots), (r.prompt, r.abc_prompt)
        names = [tok.decode([int(new[p])]).strip() for p in slots]
        assert len(set(names)) == 3 and not {r.io, r.s} & set(names), (r.prompt, r.abc_prompt)
        words = set(r.abc_prompt.replace(",", " ").replace(".", " ").split())
        assert not {r.io, r.s} & words, r.abc_prompt
    ref, _ = reference.build_reference(tiny_gpt2, HAND)
    for key in set(ref.keys):
        prompt = key.removeprefix("prompt=")
        r = HAND[HAND.prompt == prompt].iloc[0]
        own = {tok(" " + n, add_special_tokens=False)["input_ids"][0] for n in (r.io, r.s)}
        clean = tiny_gpt2.to_tokens(prompt)[0]
        roles = decoded_roles(tiny_gpt2, prompt, r.io, r.s, r.s)
        slots = sorted(roles.index(x) for x in ("IO", "S1", "S2"))
        rows = [i for i, k in enumerate(ref.keys) if k == key]
        assert len(rows) >= 20
        for i in rows:
            seq = ref.batch.tokens[i, : len(clean)]
            assert int(ref.batch.mask[i].sum()) == len(clean)
            assert (seq != clean).nonzero().flatten().tolist() == slots, key
            assert not own & set(seq.tolist()), f"{key}: a name of the prompt is in its reference"


COLS = ["logit_diff", "circuit_logit_diff", "empty_logit_diff", "sig_movers", "sig_inhibit",
        "ko_movers", "ko_inhibit", "ko_early"]


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_batched_equals_one_prompt_at_a_time(fixture, request, spec):
    model = request.getfixturevalue(fixture)
    df = pd.concat([ioi.generate_prompts(model, n=12, seed=1).df, HAND], ignore_index=True)
    means = scorer.mean_reference(model, df)
    a = scorer.score_circuit(model, spec, df, means=means, batch_size=8, progress=False)
    b = scorer.score_circuit(model, spec, df, means=means, batch_size=1, progress=False)
    assert a.n_tokens.nunique() > 3, "the batch must mix lengths"
    pd.testing.assert_frame_equal(a[COLS], b[COLS], atol=1e-5, rtol=0)
    # faithfulness is a ratio: a 1e-5 wobble of a small logit difference is a larger one in it.
    np.testing.assert_allclose(a.faithfulness, b.faithfulness, rtol=1e-4)


def naive_circuit_logit_diff(model, spec, row: pd.Series, means: A.MeanReference) -> float:
    """One prompt, one head and one position at a time, from the definitions; roles by decoding
    the tokens (not the library's role map). The means are the library's: they are checked
    against hand-computed ones in test_circuit_logit_diff_equals_the_independent_oracle."""
    b = B.encode(model, row.to_frame().T.reset_index(drop=True))
    names = decoded_roles(model, row.prompt, row.io, row.s, row.s)
    assert len(names) == b.tokens.shape[1]
    roles = [A.ROLE_INDEX[name] for name in names]
    g = means.groups.index(means.keys(row.to_frame().T)[0])
    kept = {}
    for cls in spec.classes.values():
        for head in cls.heads:
            kept[head] = cls.positions_of(head)

    def hook(z, hook):
        layer = int(hook.name.split(".")[1])
        z = z.clone()
        for head in range(model.cfg.n_heads):
            for p in range(z.shape[1]):
                role = A.ROLE_NAMES[roles[p]]
                where = kept.get((layer, head), ())
                pos_ok = (layer, head) in kept and ("ALL" in where or role in where)
                if not pos_ok:
                    z[0, p, head] = means.means[g, roles[p], layer, head]
        return z

    hooks = [(A.z_name(layer), hook) for layer in range(model.cfg.n_layers)]
    logits = B.forward(model, b, hooks)
    return B.logit_diff(logits, b).item()


PER_HEAD = """
model: tiny
task: ioi
classes:
  movers:
    heads: ["1.0", {head: "1.3", positions: [S2, other]}]
    positions: [END]
  inhibit: {heads: [{head: "0.2", positions: [ALL]}, {head: "0.3", positions: [IO, S1+1]}]}
"""


@pytest.mark.parametrize("text", [SPEC, PER_HEAD], ids=["class positions", "per-head positions"])
def test_circuit_ablation_matches_naive_loop(tiny_gpt2, prompts, text):
    spec = circuits.parse_circuit(text, source="<test spec>")
    means = scorer.mean_reference(tiny_gpt2, prompts)
    out = scorer.score_circuit(tiny_gpt2, spec, prompts.head(4), means=means, progress=False)
    for i in range(4):
        naive = naive_circuit_logit_diff(tiny_gpt2, spec, prompts.iloc[i], means)
        assert out.circuit_logit_diff.iloc[i] == pytest.approx(naive, abs=1e-5)


def test_per_head_positions_are_honoured(tiny_gpt2, prompts):
    """A head's own positions, not its class's: moving 1.3 from [END] to [S2, other] changes F(C)."""
    per_head = circuits.parse_circuit(PER_HEAD, "<per head>")
    as_class = circuits.parse_circuit(PER_HEAD.replace('{head: "1.3", positions: [S2, other]}', '"1.3"'),
                                      "<class>")
    df = prompts.head(6)
    means = scorer.mean_reference(tiny_gpt2, df)
    a = scorer.score_circuit(tiny_gpt2, per_head, df, means=means, progress=False, knockouts=False)
    b = scorer.score_circuit(tiny_gpt2, as_class, df, means=means, progress=False, knockouts=False)
    assert not np.allclose(a.circuit_logit_diff, b.circuit_logit_diff, atol=1e-4)
    batch = B.encode(tiny_gpt2, df)
    keep = A.circuit_keep(per_head, tiny_gpt2, batch)
    roles = A.role_map(batch)
    want = (roles == A.ROLE_INDEX["S2"]) | (roles == A.ROLE_INDEX["other"])
    assert torch.equal(keep[:, :, 1, 3], want)
    assert torch.equal(keep[:, :, 1, 0], roles == A.ROLE_INDEX["END"])
    assert keep[:, :, 0, 2].all(), "ALL keeps every position, BOS included"


def test_whole_model_as_circuit_is_perfectly_faithful(tiny_llama):
    n_l, n_h = tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads
    heads = ", ".join(f'"{l}.{h}"' for l in range(n_l) for h in range(n_h))
    everything = circuits.parse_circuit(
        f"model: tiny\ntask: ioi\nclasses:\n  all: {{heads: [{heads}], positions: [ALL]}}\n", "<all>")
    df = ioi.generate_prompts(tiny_llama, n=6, seed=0).df
    out = scorer.score_circuit(tiny_llama, everything, df, progress=False)
    torch.testing.assert_close(torch.tensor(out.circuit_logit_diff.values),
                               torch.tensor(out.logit_diff.values), atol=1e-5, rtol=0)
    # ... and that is the model's own logit difference, prompt by prompt (plain forward, last token)
    tok = tiny_llama.tokenizer
    with torch.no_grad():
        for r, got in zip(df.itertuples(), out.logit_diff):
            last = tiny_llama(tiny_llama.to_tokens(r.prompt))[0, -1]
            io, s = (tok(" " + n, add_special_tokens=False)["input_ids"][0] for n in (r.io, r.s))
            assert got == pytest.approx(float(last[io] - last[s]), abs=1e-5)
    assert out.logit_diff.std() > 1e-3
    assert (out.ko_all.abs() > 0).any(), "knocking out every head must change something"


def test_signature_is_the_cached_attention(tiny_gpt2, spec, prompts):
    out = scorer.score_circuit(tiny_gpt2, spec, prompts.head(5), progress=False, knockouts=False)
    b = B.encode(tiny_gpt2, prompts.head(5))
    _, cache = tiny_gpt2.run_with_cache(b.tokens, attention_mask=b.mask)
    rows = torch.arange(5)
    pattern = cache["blocks.1.attn.hook_pattern"]
    want = torch.stack([pattern[rows, h, b.end, b.pos["IO"]] for h in (0, 3)]).mean(0)
    torch.testing.assert_close(torch.tensor(out.sig_movers.values), want, atol=1e-6, rtol=0)
    assert "ko_movers" not in out.columns


def test_resample_and_zero_ablation_run_and_differ(tiny_gpt2, spec, prompts):
    df = prompts.head(6)
    runs = {m: scorer.score_circuit(tiny_gpt2, spec, df, ablation=scorer.Ablation(method=m),
                                    progress=False) for m in ("mean", "resample", "zero")}
    assert runs["resample"].attrs["circuitgen"]["ablation"]["method"] == "resample"
    assert not runs["mean"].circuit_logit_diff.equals(runs["zero"].circuit_logit_diff)
    pd.testing.assert_series_equal(runs["mean"].logit_diff, runs["zero"].logit_diff)


def test_a_scored_table_can_be_scored_again(tiny_gpt2, spec, prompts):
    df = prompts.head(6)
    mean = scorer.score_circuit(tiny_gpt2, spec, df, progress=False, knockouts=False)
    again = scorer.score_circuit(tiny_gpt2, spec, mean, ablation=scorer.Ablation("resample"),
                                 progress=False, knockouts=False)
    direct = scorer.score_circuit(tiny_gpt2, spec, df, ablation=scorer.Ablation("resample"),
                                  progress=False, knockouts=False)
    # The old scores are replaced, not joined beside the new ones.
    assert list(again.columns).count("circuit_logit_diff") == 1
    np.testing.assert_array_equal(again.circuit_logit_diff, direct.circuit_logit_diff)


def test_hand_written_prompts_get_abc_counterparts(tiny_gpt2, spec):
    out = scorer.score_circuit(tiny_gpt2, spec, HAND, progress=False)
    assert list(out.family) == ["a", "b", "c"] and (out.status == "ok").all()
    meta = out.attrs["circuitgen"]
    assert meta["n_scored"] == 3 and meta["ablation"]["group_by"] == ["prompt"]
    assert meta["ablation"]["n_groups"] == 3 and meta["ablation"]["group_size_min"] >= 20


# ---- input rules ---------------------------------------------------------------------------

def bad_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "prompt": ["When Mary and John went to the store, John gave a drink to",
                   "When Mary and John went to the store, Bob gave a drink to",
                   "",
                   "When Xiaoling and John went to the store, John gave a drink to",
                   "When Mary and John went to the store" + ", and then" * 200 + ", John gave a drink to"],
        "io": ["Mary", "Mary", "Mary", "Xiaoling", "Mary"],
        "s": ["John", "John", "John", "John", "John"],
    })


def test_invalid_rows_raise_naming_each_row(tiny_gpt2, spec):
    with pytest.raises(ioi.PromptError) as err:
        scorer.score_circuit(tiny_gpt2, spec, bad_rows(), progress=False)
    msg = str(err.value)
    assert "4 of 5 prompts" in msg
    for row in ("row 1", "row 2", "row 3", "row 4"):
        assert row in msg
    assert "skip_invalid" in msg


def test_skip_invalid_keeps_every_row_with_its_reason(tiny_gpt2, spec):
    out = scorer.score_circuit(tiny_gpt2, spec, bad_rows(), skip_invalid=True, progress=False)
    assert len(out) == 5, "nothing is dropped"
    assert list(out.status == "ok") == [True, False, False, False, False]
    assert "appears 1 time" in out.status[1] and "empty" in out.status[2]
    assert "tokens with a leading space" in out.status[3] and "context" in out.status[4]
    assert out.logit_diff[1:].isna().all() and out.logit_diff[:1].notna().all()
    assert out.attrs["circuitgen"]["n_flagged"] == 4


def test_missing_column_is_named(tiny_gpt2, spec):
    with pytest.raises(ioi.PromptError, match=r"\['s'\]"):
        scorer.score_circuit(tiny_gpt2, spec, HAND.drop(columns="s"), progress=False)


def test_spec_that_does_not_fit_the_model(tiny_gpt2):
    big = circuits.load_circuit("gpt2-ioi")
    with pytest.raises(circuits.CircuitSpecError, match="does not exist"):
        scorer.score_circuit(tiny_gpt2, big, HAND, progress=False)


def test_the_spec_ablation_is_the_default(tiny_gpt2, spec):
    """``score_circuit`` without ``ablation=`` uses the spec's own method, as the CLI does."""
    df = ioi.generate_prompts(tiny_gpt2, n=6, seed=8).df
    zero_spec = circuits.parse_circuit(SPEC + "ablation: {method: zero}\n", "<zero spec>")
    by_spec = scorer.score_circuit(tiny_gpt2, zero_spec, df, progress=False, knockouts=False)
    explicit = scorer.score_circuit(tiny_gpt2, spec, df, ablation=scorer.Ablation("zero"),
                                    progress=False, knockouts=False)
    mean = scorer.score_circuit(tiny_gpt2, spec, df, progress=False, knockouts=False)
    np.testing.assert_array_equal(by_spec.circuit_logit_diff, explicit.circuit_logit_diff)
    assert by_spec.attrs["circuitgen"]["ablation"]["method"] == "zero"
    assert not np.allclose(by_spec.circuit_logit_diff, mean.circuit_logit_diff)


def test_one_ablation_type_for_spec_scorer_and_cli(tiny_gpt2, spec):
    """``scorer.Ablation`` is ``circuits.Ablation``; a spec's min_per_group/seed reach the scorer."""
    assert scorer.Ablation is circuits.Ablation
    table = HAND.head(2)
    old_style = scorer.Ablation(reference=table)  # a prompt table as ``reference``, as before
    assert old_style.reference == "abc" and old_style.reference_prompts is table
    assert old_style == scorer.Ablation(reference_prompts=table)
    assert scorer.Ablation("zero").reference is None
    custom = circuits.parse_circuit(SPEC + "ablation: {method: mean, min_per_group: 25, seed: 7}\n", "<s>")
    assert custom.ablation == scorer.Ablation("mean", min_per_group=25, seed=7)
    assert circuits.parse_circuit(custom.to_yaml()) == custom
    assert scorer.spec_ablation(custom) is not None and scorer.spec_ablation(custom).min_per_group == 25
    out = scorer.score_circuit(tiny_gpt2, custom, HAND, progress=False, knockouts=False)
    meta = out.attrs["circuitgen"]["ablation"]
    assert meta["min_per_group"] == 25 and meta["seed"] == 7 and meta["group_size_min"] >= 25
    with pytest.raises(circuits.CircuitSpecError, match="min_per_group"):
        circuits.parse_circuit(SPEC + "ablation: {method: mean, min_per_group: 0}\n", "<s>")
    with pytest.raises(ValueError, match="not one the scorer implements"):
        scorer.mean_reference(tiny_gpt2, HAND, scorer.Ablation(reference="clean"))


def test_summary_is_mean_and_quartiles_of_the_scored_rows():
    # Hand-computed: rows not "ok" are left out; quartiles by linear interpolation.
    scores = pd.DataFrame({
        "status": ["ok", "ok", "ok", "ok", "multi-token"],
        "logit_diff": [1.0, 2.0, 3.0, 10.0, 99.0],
        "faithfulness": [0.0, 0.5, 1.0, 1.5, -7.0],
        "sig_movers": [0.1, 0.1, 0.4, 0.2, 0.9],
        "prompt": ["a", "b", "c", "d", "e"],
    })
    got = scorer.summary(scores)
    assert list(got.index) == ["logit_diff", "faithfulness", "sig_movers"]
    assert list(got.columns) == ["count", "mean", "25%", "50%", "75%"]
    assert got.loc["logit_diff"].tolist() == pytest.approx([4, 4.0, 1.75, 2.5, 4.75])
    assert got.loc["faithfulness"].tolist() == pytest.approx([4, 0.75, 0.375, 0.75, 1.125])
    assert got.loc["sig_movers"].tolist() == pytest.approx([4, 0.2, 0.1, 0.15, 0.25])
