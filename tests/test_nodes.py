"""Node labels, keep masks and score tables (circuitgen.nodes)."""

from __future__ import annotations

import pytest
import torch

from circuitgen import batch as B
from circuitgen import ioi
from circuitgen import nodes as N


def test_labels_round_trip():
    for n in [N.Node(9, 9, "END"), N.Node(5, None, "S2"), N.Node(0, 3, "S1+1"), N.Node(2, 1, "other")]:
        assert N.parse_node(n.label) == n
    with pytest.raises(ValueError, match="LAYER.HEAD@ROLE"):
        N.parse_node("9.9@BOS")
    with pytest.raises(ValueError):
        N.parse_node("9.9")


def test_head_keep_marks_exactly_the_role_positions(tiny_gpt2):
    ps = ioi.generate_prompts(tiny_gpt2, n=6, seed=1)
    batch = B.encode(tiny_gpt2, ps.df)
    keep = N.head_keep(["1.2@S2", "0.1@END", "mlp0@IO"], tiny_gpt2, batch)
    assert keep.shape == (6, batch.tokens.shape[1], 2, tiny_gpt2.cfg.n_heads)
    for i, row in ps.df.reset_index(drop=True).iterrows():
        expect = torch.zeros_like(keep[i])
        expect[0] = True                       # BOS always kept
        expect[int(row["pos_s2"]), 1, 2] = True
        expect[int(row["pos_end"]), 0, 1] = True
        assert torch.equal(keep[i], expect)
    mk = N.mlp_keep(["mlp0@IO"], tiny_gpt2, batch)
    assert mk[torch.arange(6), torch.tensor(ps.df["pos_io"].to_numpy()), 0].all()
    assert mk[:, 1:].sum() == 6
    with pytest.raises(ValueError, match="outside"):
        N.head_keep(["7.0@END"], tiny_gpt2, batch)


def test_score_frame_and_top_nodes():
    s = torch.zeros(2, 3, len(N.NODE_ROLES))
    s[1, 2, N.NODE_ROLES.index("END")] = -5.0
    s[0, 1, N.NODE_ROLES.index("S2")] = 2.0
    t = N.score_frame(s, method="x")
    assert len(t) == 2 * 3 * 6 and set(t["method"]) == {"x"}
    assert [n.label for n in N.top_nodes(t, 2)] == ["1.2@END", "0.1@S2"]
    assert [n.label for n in N.top_nodes(t, 1, absolute=False)] == ["0.1@S2"]
    m = N.score_frame(torch.ones(2, 6), kind="mlp")
    assert set(m["kind"]) == {"mlp"} and m["head"].isna().all()
    assert N.jaccard(N.top_nodes(t, 2), N.top_nodes(t, 1)) == 0.5
