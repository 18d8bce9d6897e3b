"""rediscovery.canonical_subsets, which no fast test exercised (found by
``scripts/constant_subjects.py``): it fails when the function returns a constant of the right
shape (issue 13)."""

from __future__ import annotations

import pytest

from circuitgen import ioi, rediscovery, splits


def test_canonical_subsets_are_the_heads_of_the_three_discovery_sets(tiny_gpt2):
    got = rediscovery.canonical_subsets(tiny_gpt2, n=5)
    assert list(got) == ["canonical-set1", "canonical-set2", "canonical-set3"]
    full = splits.make_splits(tiny_gpt2).discovery
    for sub, whole in zip(got.values(), full):
        assert len(sub) == 5 and list(sub.index) == list(range(5))
        assert sub["prompt"].tolist() == whole.df["prompt"].head(5).tolist()
        # Positions decoded from the tokens in the test, not read from the table.
        for _, row in sub.iterrows():
            toks = ioi.tokenize(tiny_gpt2.tokenizer, row["prompt"])
            word = lambda pos, toks=toks: tiny_gpt2.tokenizer.decode([toks[pos]]).strip()  # noqa: E731
            assert (word(row["pos_io"]), word(row["pos_s1"]), word(row["pos_s2"])) == (
                row["io"], row["s"], row["s"])
            assert row["pos_end"] == len(toks) - 1 == row["n_tokens"] - 1
    prompts = [set(d["prompt"]) for d in got.values()]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])


def test_null_minima_by_hand_away_from_one_half():
    from circuitgen import nodes as N

    def ranks(*labels):
        return [N.parse_node(x) for x in labels]

    # Top 4. Nodes: a-b share 1.0@END of 7 (1/7), a-c 3 of 5, b-c 1 of 7 -> 1/7.
    # Heads: a-b {1.0, 1.1, 0.2} of 5 (3/5), a-c 3/5, b-c all 4 (1) -> 3/5.
    null = rediscovery.null_minima({
        "a": ranks("1.0@END", "1.1@END", "0.2@S2", "0.3@S2", "0.1@IO"),
        "b": ranks("1.0@END", "1.1@IO", "0.2@IO", "0.0@END"),
        "c": ranks("1.0@END", "1.1@END", "0.2@S2", "0.0@S2")}, k=4)
    assert null["node_jaccard"] == pytest.approx(1 / 7)
    assert null["head_jaccard"] == pytest.approx(3 / 5)
