"""rediscovery.canonical_subsets, which no fast test exercised (found by
``scripts/constant_subjects.py``): it fails when the function returns a constant of the right
shape (issue 13)."""

from __future__ import annotations

from circuitgen import ioi, rediscovery, splits


def test_canonical_subsets_are_the_heads_of_the_three_discovery_sets(tiny_gpt2):
    got = rediscovery.canonical_subsets(tiny_gpt2, n=5)
    assert list(got) == ["canonical-set1", "canonical-set2", "canonical-set3"]
    full = splits.make_splits(tiny_gpt2).discovery
    for (label, sub), whole in zip(got.items(), full):
        assert len(sub) == 5 and list(sub.index) == list(range(5))
        assert sub["prompt"].tolist() == whole.df["prompt"].head(5).tolist()
        # Positions decoded from the tokens in the test, not read from the table.
        for _, row in sub.iterrows():
            toks = ioi.tokenize(tiny_gpt2.tokenizer, row["prompt"])
            word = lambda pos: tiny_gpt2.tokenizer.decode([toks[pos]]).strip()  # noqa: E731
            assert (word(row["pos_io"]), word(row["pos_s1"]), word(row["pos_s2"])) == (
                row["io"], row["s"], row["s"])
            assert row["pos_end"] == len(toks) - 1 == row["n_tokens"] - 1
    prompts = [set(d["prompt"]) for d in got.values()]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
