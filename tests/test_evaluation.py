"""Faithfulness, completeness and minimality agree with the scorer and with their definitions."""

from __future__ import annotations

import pytest

from circuitgen import circuits, discovery, evaluation, ioi, scorer

SPEC = """
model: tiny
task: ioi
classes:
  movers: {heads: ["1.0", "1.3"], positions: [END], signature: {from: END, to: IO}}
  early: {heads: ["0.1", "0.2"], positions: [S2, END]}
"""


@pytest.fixture(scope="module")
def setup(tiny_llama):
    spec = circuits.parse_circuit(SPEC, "<test>")
    df = ioi.generate_prompts(tiny_llama, n=10, seed=4).df
    means = scorer.mean_reference(tiny_llama, df)
    scores = scorer.score_circuit(tiny_llama, spec, df, means=means, progress=False)
    return spec, df, means, scores


def test_empty_knockout_reproduces_scorer(tiny_llama, setup):
    spec, df, means, scores = setup
    comp = evaluation.completeness(tiny_llama, spec, df, means, n_random=3, seed=0)
    none = comp[comp.K == "(none)"].iloc[0]
    assert none["F(C\\K)"] == pytest.approx(scores.circuit_logit_diff.mean(), abs=1e-5)
    assert none["F(M\\K)"] == pytest.approx(scores.logit_diff.mean(), abs=1e-5)
    movers = comp[comp.K == "class movers"].iloc[0]
    assert movers["F(M\\K)"] == pytest.approx((scores.logit_diff + scores.ko_movers).mean(), abs=1e-5)
    assert len(comp) == 1 + 2 + 3


def test_minimality_is_the_drop_from_removing_each_head(tiny_llama, setup):
    spec, df, means, scores = setup
    mini = evaluation.minimality(tiny_llama, spec, df, means)
    assert list(mini["head"]) == ["0.1", "0.2", "1.0", "1.3"]
    one = circuits.parse_circuit(SPEC.replace('"1.0", ', ""), "<minus 1.0>")
    without = scorer.score_circuit(tiny_llama, one, df, means=means, progress=False, knockouts=False)
    drop = scores.circuit_logit_diff.mean() - without.circuit_logit_diff.mean()
    assert mini.set_index("head").loc["1.0", "F(C)-F(C\\v)"] == pytest.approx(drop, abs=1e-5)


def test_random_subsets_are_seeded():
    heads = [(0, i) for i in range(10)]
    assert evaluation.random_subsets(heads, 4, 1) == evaluation.random_subsets(heads, 4, 1)
    assert evaluation.random_subsets(heads, 4, 1) != evaluation.random_subsets(heads, 4, 2)


def test_discovery_runs_and_writes_a_valid_spec(tiny_gpt2, tmp_path):
    df = ioi.generate_prompts(tiny_gpt2, n=6, seed=0).df
    spec, steps, sig = discovery.discover(tiny_gpt2, df, threshold=0.0, max_per_step=2, progress=False)
    assert steps[0].effect.shape == (tiny_gpt2.cfg.n_layers * tiny_gpt2.cfg.n_heads,)
    assert set(sig.columns) == set(discovery.SIGNATURES)
    # Each signature is the mean attention between the roles' tokens, here found by decoding each
    # prompt's tokens and run one prompt at a time (no padding, no library positions).
    want = {}
    for r in df.itertuples():
        toks = tiny_gpt2.to_tokens(r.prompt)
        words = [tiny_gpt2.tokenizer.decode([t]).strip() for t in toks[0].tolist()]
        s1 = words.index(r.s)
        at = {"IO": words.index(r.io), "S1": s1, "S1+1": s1 + 1,
              "S2": len(words) - 1 - words[::-1].index(r.s), "END": len(words) - 1}
        _, cache = tiny_gpt2.run_with_cache(toks)
        for layer in range(tiny_gpt2.cfg.n_layers):
            pat = cache[f"blocks.{layer}.attn.hook_pattern"][0]
            for head in range(tiny_gpt2.cfg.n_heads):
                for name, (q, k) in discovery.SIGNATURES.items():
                    want.setdefault((f"{layer}.{head}", name), []).append(float(pat[head, at[q], at[k]]))
    assert len(sig) == tiny_gpt2.cfg.n_layers * tiny_gpt2.cfg.n_heads
    for (head, name), vals in want.items():
        assert sig.loc[head, name] == pytest.approx(sum(vals) / len(vals), abs=1e-6), (head, name)
    path = tmp_path / "found.yaml"
    spec.to_yaml(path)
    again = circuits.load_circuit(path)
    assert again.heads() == spec.heads()
    circuits.validate_for_model(again, tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads)


def test_s2_check_first_column_is_the_scorer(tiny_llama, setup):
    spec, df, means, scores = setup
    check = evaluation.s2_check(tiny_llama, spec, df, means)
    assert check.circuit_logit_diff.values == pytest.approx(scores.circuit_logit_diff.values, abs=1e-5)
    assert not check.circuit_logit_diff.equals(check.circuit_logit_diff_s2_intact)


def test_random_subsets_keep_each_head_with_probability_p():
    """Subsets of the given heads, each head kept independently with probability p (fails when
    random_subsets returns constants; issue 13)."""
    heads = [(0, 0), (0, 1), (1, 2), (1, 3)]
    for p in (0.2, 0.7):
        subsets = evaluation.random_subsets(heads, 2000, seed=3, p=p)
        assert len(subsets) == 2000
        assert all(s == [h for h in heads if h in s] for s in subsets)  # in order, no repeats
        for h in heads:  # binomial sd ~0.01
            assert sum(h in s for s in subsets) / 2000 == pytest.approx(p, abs=0.04)
