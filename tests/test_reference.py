"""The mean-ablation reference: groups fix the order, every group holds the minimum, name
substitutions are clean, and the baselines (F(∅), normalised faithfulness, random circuits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import circuits, evaluation, ioi, reference, scorer

HAND = pd.DataFrame({
    "prompt": ["When Mary and John went to the store, John gave a drink to",
               "Anna and Tom argued. Tom apologised to"],
    "io": ["Mary", "Anna"], "s": ["John", "Tom"],
})


@pytest.fixture(scope="module")
def canonical(tiny_gpt2):
    return ioi.generate_prompts(tiny_gpt2, n=24, seed=3).df


def test_groups_never_mix_orders(tiny_gpt2, canonical):
    ref, cols = reference.build_reference(tiny_gpt2, canonical)
    assert cols == ("template", "order")
    io_first = (ref.batch.pos["IO"] < ref.batch.pos["S1"]).numpy()
    for key in set(ref.keys):
        rows = np.array([k == key for k in ref.keys])
        order = key.split("order=")[1]
        # ABBA: IO is the first name; BABA: the second. A group holds one kind only.
        assert io_first[rows].all() if order == "ABBA" else (~io_first[rows]).all(), key


def test_variation_prompts_group_by_condition_and_order():
    df = pd.DataFrame({"prompt": ["a"], "condition": ["filler"], "template": ["ioi:2"], "order": ["ABBA"]})
    assert reference.resolve_group_by(df, None) == ("condition", "order")
    assert reference.resolve_group_by(df[["prompt"]], None) == ("prompt",)
    with pytest.raises(ValueError, match="lack"):
        reference.resolve_group_by(df[["prompt"]], ("template", "order"))


# Written here, not read from the library: the fixed reference set of canonical prompts is
# ioi.generate_prompts of 20 prompts per (template, order) cell, seed 20261126 (LAB_NOTEBOOK,
# 2026-11-26).
GENERATED_SEED, PER_CELL = 20261126, 20
POS_COLUMNS = {"IO": "pos_io", "S1": "pos_s1", "S1+1": "pos_s1p1", "S2": "pos_s2", "END": "pos_end"}


def _abc_mean_z(model, rows: pd.DataFrame) -> dict[tuple[str, int], torch.Tensor]:
    """Mean ``z`` over the ABC prompts of ``rows`` at each role's position (from the table's
    position columns), ``{(role, layer): [head, d_head]}``: plain TransformerLens calls."""
    toks = [model.to_tokens(p)[0] for p in rows["abc_prompt"]]
    assert all(len(t) == n for t, n in zip(toks, rows["n_tokens"])), "ABC prompts align"
    width = max(len(t) for t in toks)
    tokens = torch.zeros(len(toks), width, dtype=torch.long)
    mask = torch.zeros(len(toks), width, dtype=torch.long)
    for i, t in enumerate(toks):
        tokens[i, : len(t)], mask[i, : len(t)] = t, 1
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, attention_mask=mask)
    out = {}
    for role, col in POS_COLUMNS.items():
        pos = torch.tensor(rows[col].to_numpy())
        for layer in range(model.cfg.n_layers):
            out[(role, layer)] = cache[f"blocks.{layer}.attn.hook_z"][torch.arange(len(rows)), pos].mean(0)
    return out


def test_group_mean_is_the_mean_over_the_generated_reference_prompts(tiny_llama):
    """A canonical prompt's group mean is taken over the fixed generated set's ABC prompts of
    its (template, order) cell, named here by generator, seed and size: not over the scored
    prompts' own counterparts, nor another draw."""
    df = ioi.generate_prompts(tiny_llama, n=8, seed=1).df
    means = scorer.mean_reference(tiny_llama, df, scorer.Ablation(min_per_group=20))
    n_cells = len(ioi.TEMPLATES) * len(ioi.ORDERS)
    source = ioi.generate_prompts(tiny_llama, n=PER_CELL * n_cells, seed=GENERATED_SEED).df
    checked = 0
    for template, order in list(zip(df.template, df.order))[:2]:
        rows = source[(source.template == template) & (source.order == order)]
        assert len(rows) >= PER_CELL, "a full cell: no name substitution pads this group"
        want = _abc_mean_z(tiny_llama, rows)
        g = means.groups.index(f"template={template}|order={order}")
        for (role, layer), z in want.items():
            torch.testing.assert_close(means.means[g, A.ROLE_INDEX[role], layer], z, atol=1e-5, rtol=0)
            checked += 1
    # power: the scored prompts' own counterparts give other means
    own = _abc_mean_z(tiny_llama, df[(df.template == df.template.iloc[0]) & (df.order == df.order.iloc[0])])
    g = means.groups.index(f"template={df.template.iloc[0]}|order={df.order.iloc[0]}")
    assert float((means.means[g, A.ROLE_INDEX["END"], 1] - own[("END", 1)]).abs().max()) > 1e-3
    assert checked == 2 * len(POS_COLUMNS) * tiny_llama.cfg.n_layers


def test_every_group_holds_the_minimum(tiny_gpt2, canonical):
    for df in (HAND, canonical.head(5)):
        ref, _ = reference.build_reference(tiny_gpt2, df, min_per_group=20)
        assert ref.sizes().min() >= 20
    with pytest.raises(ValueError, match="at least 1"):
        reference.build_reference(tiny_gpt2, HAND, min_per_group=0)
    with pytest.warns(UserWarning, match="below 20"):
        reference.build_reference(tiny_gpt2, HAND, min_per_group=5)


def test_name_substitutions_change_only_the_names(tiny_gpt2):
    df = ioi.make_abc(HAND, tiny_gpt2.tokenizer)
    clean, abc = B.encode(tiny_gpt2, df), B.encode(tiny_gpt2, df, prompt_col="abc_prompt")
    pool = reference._name_pool(tiny_gpt2.tokenizer)
    new = reference.substitute_names(clean, abc, 4, pool, seed=0)
    assert len(new) == 8
    for j in range(len(new)):
        i = j // 4
        n = int(clean.mask[i].sum())
        c, x = clean.tokens[i, :n], new.tokens[j, :n]
        slots = torch.tensor(sorted(int(clean.pos[r][i]) for r in ("IO", "S1", "S2")))
        assert torch.equal(c[~torch.isin(torch.arange(n), slots)], x[~torch.isin(torch.arange(n), slots)])
        names = x[slots].tolist()
        assert len(set(names)) == len(names), "each mention gets its own name"
        assert not set(names) & set(c[slots].tolist()), "never the prompt's own names"
        text = tiny_gpt2.tokenizer.decode(x[1:])
        assert ioi.tokenize(tiny_gpt2.tokenizer, text) == x.tolist()


def test_a_canonical_score_does_not_depend_on_the_other_prompts(tiny_gpt2, canonical, tiny_spec):
    whole = scorer.score_circuit(tiny_gpt2, tiny_spec, canonical, progress=False, knockouts=False)
    alone = scorer.score_circuit(tiny_gpt2, tiny_spec, canonical.head(1), progress=False, knockouts=False)
    assert alone.circuit_logit_diff.iloc[0] == pytest.approx(whole.circuit_logit_diff.iloc[0], abs=1e-5)
    meta = whole.attrs["circuitgen"]["ablation"]
    assert meta["sources"] == [f"generated (seed {reference.REFERENCE_SEED})"]
    assert meta["group_size_min"] >= 20 and len(meta["sha256_16"]) == 16


def test_legacy_option_pools_orders_over_own_counterparts(tiny_gpt2, canonical):
    """The legacy reference's mean for a template is over the scored prompts' own ABC
    counterparts of that template, ABBA and BABA pooled (computed here by hand)."""
    means = scorer.mean_reference(tiny_gpt2, canonical, scorer.Ablation.legacy_template_only())
    assert means.describe()["legacy"] is True
    template = canonical.template.iloc[0]
    rows = canonical[canonical.template == template]
    assert set(rows.order) == {"ABBA", "BABA"}, "the group must pool both orders"
    want = _abc_mean_z(tiny_gpt2, rows)
    g = means.groups.index(f"template={template}")
    for (role, layer), z in want.items():
        torch.testing.assert_close(means.means[g, A.ROLE_INDEX[role], layer], z, atol=1e-5, rtol=0)
    # power: one order alone gives another mean at the roles whose token kind the order swaps
    abba = _abc_mean_z(tiny_gpt2, rows[rows.order == "ABBA"])
    assert float((abba[("S1+1", 1)] - want[("S1+1", 1)]).abs().max()) > 1e-3


def test_a_reference_table_without_a_scored_group_is_refused(tiny_gpt2, canonical):
    ref = canonical[canonical.order == "ABBA"]
    with pytest.raises(ValueError, match="no prompts for group"):
        scorer.mean_reference(tiny_gpt2, canonical, scorer.Ablation(reference=ref))


# ---- baselines ------------------------------------------------------------------------------

def _all_ablated_by_hand(model, df: pd.DataFrame, means: A.MeanReference) -> np.ndarray:
    """Every head's z replaced by its group-and-role mean, without the library's keep masks or
    role map (roles by decoding the prompt's tokens)."""
    out = []
    for i in range(len(df)):
        row = df.iloc[[i]]
        b = B.encode(model, row)
        r = row.iloc[0]
        words = [model.tokenizer.decode([t]).strip() for t in model.to_tokens(r.prompt)[0].tolist()]
        names = ["BOS"] + ["other"] * (len(words) - 1)
        s1, s2 = words.index(r.s), len(words) - 1 - words[::-1].index(r.s)
        for i, role in ((words.index(r.io), "IO"), (s1, "S1"), (s1 + 1, "S1+1"), (s2, "S2"), (-1, "END")):
            names[i] = role
        roles = torch.tensor([A.ROLE_INDEX[n] for n in names])
        assert len(roles) == b.tokens.shape[1]
        g = means.groups.index(means.keys(row)[0])

        def hook(z, hook, g=g, roles=roles):
            layer = int(hook.name.split(".")[1])
            return means.means[g, roles, layer][None].to(z.dtype)

        hooks = [(f"blocks.{layer}.attn.hook_z", hook) for layer in range(model.cfg.n_layers)]
        out.append(B.logit_diff(B.forward(model, b, hooks), b).item())
    return np.array(out)


def test_empty_circuit_and_normalised_faithfulness(tiny_llama):
    df = ioi.generate_prompts(tiny_llama, n=6, seed=4).df
    n_l, n_h = tiny_llama.cfg.n_layers, tiny_llama.cfg.n_heads
    heads = ", ".join(f'"{l}.{h}"' for l in range(n_l) for h in range(n_h))
    everything = circuits.parse_circuit(
        f"model: tiny\ntask: ioi\nclasses:\n  all: {{heads: [{heads}], positions: [ALL]}}\n", "<all>")
    means = scorer.mean_reference(tiny_llama, df)
    out = scorer.score_circuit(tiny_llama, everything, df, means=means, progress=False, knockouts=False)
    np.testing.assert_allclose(out.empty_logit_diff, _all_ablated_by_hand(tiny_llama, df, means), atol=1e-5)
    meta = out.attrs["circuitgen"]
    assert meta["normalised_faithfulness"] == pytest.approx(1.0, abs=1e-6)
    table = evaluation.faithfulness_table(out)
    norm = "(F(C)-F(∅))/(F(M)-F(∅))"
    assert table.loc[norm, ["estimate", "lo", "hi"]].tolist() == pytest.approx([1, 1, 1], abs=1e-6)
    # A planted half-way circuit: C = (M + ∅) / 2 per prompt gives normalised faithfulness 1/2.
    half = out.assign(circuit_logit_diff=(out.logit_diff + out.empty_logit_diff) / 2)
    assert evaluation.faithfulness_table(half).loc[norm, "estimate"] == pytest.approx(0.5)


def test_random_circuits_keep_the_shape(tiny_spec):
    spec = circuits.parse_circuit(
        "model: m\ntask: ioi\nclasses:\n  a: {heads: ['0.1', '12.3', '29.8'], positions: [END]}\n"
        "  b: {heads: ['14.0'], positions: [S2]}\n", "<s>")
    draws = evaluation.random_circuits(spec, 30, 9, n_draws=20, seed=1)
    bands = evaluation.layer_bands(30)
    band = lambda layer: next(i for i, b in enumerate(bands) if layer in b)  # noqa: E731
    for d in draws:
        assert [c.positions for c in d.classes.values()] == [c.positions for c in spec.classes.values()]
        for name, cls in spec.classes.items():
            assert sorted(band(l) for l, _ in d.classes[name].heads) == sorted(band(l) for l, _ in cls.heads)
        assert len(set(d.heads())) == len(d.heads())
    assert len({tuple(d.heads()) for d in draws}) > 15, "draws must differ"
    again = evaluation.random_circuits(spec, 30, 9, n_draws=20, seed=1)
    assert [d.heads() for d in again] == [d.heads() for d in draws]


def test_random_null_row_of_the_spec_is_the_scorers_mean(tiny_gpt2, canonical, tiny_spec):
    means = scorer.mean_reference(tiny_gpt2, canonical)
    null = evaluation.random_circuit_null(tiny_gpt2, tiny_spec, canonical.head(8), means, n_draws=3)
    scored = scorer.score_circuit(tiny_gpt2, tiny_spec, canonical.head(8), means=means,
                                  progress=False, knockouts=False)
    assert null.F.iloc[0] == pytest.approx(scored.circuit_logit_diff.mean(), abs=1e-5)
    assert null["F(M)"].iloc[0] == pytest.approx(scored.logit_diff.mean(), abs=1e-5)
    assert null["F(∅)"].iloc[0] == pytest.approx(scored.empty_logit_diff.mean(), abs=1e-5)
    assert len(null) == 4
