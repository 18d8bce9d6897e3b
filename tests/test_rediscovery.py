"""Re-discovery per condition (circuitgen.rediscovery): overlap measures by hand, the
classification rule, and a planted change on tiny-gpt2 (a condition whose model does not use the
canonical circuit's heads)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from circuitgen import faithful
from circuitgen import generalise as G
from circuitgen import nodes as N
from circuitgen import rediscovery as R


def _nodes(*labels: str) -> list[N.Node]:
    return [N.parse_node(x) for x in labels]


# ------------------------------------------------------------------ overlap measures by hand


def test_weighted_jaccard_by_hand():
    a = pd.Series({"x": 1.0, "y": 1.0, "z": 0.0})
    b = pd.Series({"x": 0.0, "y": 3.0, "z": 3.0})
    # normalised: a = (.5, .5, 0), b = (0, .5, .5); min sums to .5, max to 1.5
    assert R.weighted_jaccard(a, b) == pytest.approx(1 / 3)
    assert R.weighted_jaccard(a, a * 7) == pytest.approx(1.0)  # scale does not matter
    assert R.weighted_jaccard(pd.Series({"x": 2.0}), pd.Series({"y": 5.0})) == 0.0  # disjoint
    # a node missing on one side counts as 0 there
    assert R.weighted_jaccard(pd.Series({"x": 1.0, "y": 1.0}), pd.Series({"x": 1.0})) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"\|score\|"):
        R.weighted_jaccard(pd.Series({"x": -1.0}), a)
    with pytest.raises(ValueError, match="sums to zero"):
        R.weighted_jaccard(pd.Series({"x": 0.0}), a)


def test_overlap_counts_nodes_and_heads_by_hand():
    a = _nodes("1.0@END", "1.1@S2", "0.2@END", "0.3@IO")
    b = _nodes("1.0@S2", "1.1@S2", "0.2@END", "0.0@END")
    o = R.overlap(a, b, 3)
    assert o["node_jaccard"] == pytest.approx(2 / 4)  # {1.1@S2, 0.2@END} of 4 distinct
    assert o["head_jaccard"] == pytest.approx(1.0)    # heads {1.0, 1.1, 0.2} on both sides
    assert R.overlap(a, b, 4)["head_jaccard"] == pytest.approx(3 / 5)
    entered, left = R.entered_left(a, b, 3)
    assert entered == _nodes("1.0@S2") and left == _nodes("1.0@END")


def test_null_minima_and_classification_rule():
    base = _nodes("1.0@END", "1.1@END", "0.2@S2", "0.3@S2")
    ranks = {"s1": base, "s2": _nodes("1.0@END", "1.1@END", "0.2@S2", "0.0@IO"),
             "s3": _nodes("1.0@END", "1.1@END", "0.3@S2", "0.2@S2")}
    null = R.null_minima(ranks, k=3)
    assert null == {"node_jaccard": pytest.approx(2 / 4), "head_jaccard": pytest.approx(2 / 4)}
    assert R.classify(0.5, 0.0, null) == "same circuit"           # at the minimum counts
    assert R.classify(0.49, 0.5, null) == "same heads, other roles"
    assert R.classify(0.49, 0.49, null) == "different circuit"
    with pytest.raises(ValueError, match="at least two"):
        R.null_minima({"s1": base})


def _table(scores: dict[str, float], label: str) -> pd.DataFrame:
    rows = [{"node": k, "kind": "head", "score": v, "set": label,
             "rank": None} for k, v in scores.items()]
    return pd.DataFrame(rows)


def test_overlap_table_classifies_hand_made_rankings():
    every = [f"{layer}.{h}@{r}" for layer in range(2) for h in range(2) for r in ("S2", "END")]
    canon = {x: 0.0 for x in every} | {"1.0@END": 5, "1.1@END": 4, "0.0@S2": 3}
    canonical = pd.concat([_table(canon, "canonical-set1"), _table(canon, "canonical-set2"),
                           _table(canon | {"0.0@S2": 0, "0.1@S2": 3}, "canonical-set3")])
    same = canon | {"1.0@END": 4.5}
    roles = {x: 0.0 for x in every} | {"1.0@S2": 5, "1.1@S2": 4, "0.0@END": 3}
    other = {x: 0.0 for x in every} | {"0.1@END": 5, "0.1@S2": 4, "1.1@S2": 3}
    conditions = pd.concat([_table(same, "same"), _table(roles, "roles"), _table(other, "other")])
    t = R.overlap_table(canonical, conditions, sizes=(3,), rule_size=3).set_index("condition")
    assert t.loc["same", "node_jaccard_3"] == 1.0 and t.loc["same", "weighted_jaccard"] < 1.0
    assert t["class"].to_dict() == {"same": "same circuit", "roles": "same heads, other roles",
                                    "other": "different circuit"}
    assert t.null_node_jaccard.iloc[0] == pytest.approx(2 / 4)


# ------------------------------------------------------------------ planted change, tiny-gpt2


def test_rediscovery_finds_a_planted_change(tiny_gpt2, tmp_path):
    """A condition in which the model does not use the canonical circuit's top heads (their
    outputs zeroed while that condition is discovered) is found to have a different circuit;
    a condition run on the unchanged model keeps the canonical one."""
    model = tiny_gpt2
    sets = R.condition_sets(model, "domain", seed=2, n=6)
    canon_sets = {f"canonical-set{i}": sets["everyday"] for i in (1, 2)}
    canonical = R.discover_sets(model, canon_sets, "canon", steps=2, out_dir=tmp_path, log=None).df
    top = faithful.ranking(canonical[canonical.set == "canonical-set1"])
    k = 6
    knocked = sorted({(n.layer, n.head) for n in top[:k]})
    assert len(knocked) < model.cfg.n_layers * model.cfg.n_heads  # some heads stay

    def zero_heads(z, hook):
        layer = int(hook.name.split(".")[1])
        z = z.clone()
        for lay, h in knocked:
            if lay == layer:
                z[:, :, h] = 0
        return z

    same = R.discover_sets(model, {"unchanged": sets["everyday"]}, "same", steps=2, out_dir=tmp_path,
                           log=None).df
    hooks = [(f"blocks.{layer}.attn.hook_z", zero_heads) for layer in {lay for lay, _ in knocked}]
    with model.hooks(fwd_hooks=hooks):
        planted = R.discover_sets(model, {"planted": sets["everyday"]}, "planted", steps=2,
                                  out_dir=tmp_path, log=None).df
    # the knocked-out heads carry no attribution in the planted run (the hook was live)
    ph = planted[planted.kind == "head"]
    dead = ph[[(lay, h) in knocked for lay, h in zip(ph["layer"], ph["head"])]]
    assert np.allclose(dead.score, 0.0) and not np.allclose(ph.score, 0.0)
    t = R.overlap_table(canonical, pd.concat([same, planted]), sizes=(k,), rule_size=k).set_index("condition")
    assert t.loc["unchanged", "class"] == "same circuit"
    assert t.loc["planted", "class"] == "different circuit"
    assert t.loc["planted", "head_jaccard_6"] < t.loc["planted", "null_head_jaccard"]
    entered, _ = R.entered_left(top, faithful.ranking(planted), k)
    live = set(ph.loc[ph.score.abs() > 0, "node"])
    assert all((n.layer, n.head) not in knocked for n in entered if n.label in live)
    assert t.loc["planted", "weighted_jaccard"] < t.loc["unchanged", "weighted_jaccard"]


def test_discovery_is_cached_and_recomputed_when_prompts_change(tiny_gpt2, tmp_path):
    sets = R.condition_sets(tiny_gpt2, "domain", seed=2, n=2)
    two = {c: sets[c] for c in list(sets)[:2]}
    logs: list[str] = []
    a = R.discover_sets(tiny_gpt2, two, "x", steps=1, out_dir=tmp_path, log=logs.append).df
    assert set(a["set"]) == set(two)
    R.discover_sets(tiny_gpt2, two, "x", steps=1, out_dir=tmp_path, log=logs.append)
    assert any("reusing" in line for line in logs)
    changed = {k: v.iloc[::-1].reset_index(drop=True) for k, v in two.items()}
    R.discover_sets(tiny_gpt2, changed, "x", steps=1, out_dir=tmp_path, log=logs.append)
    assert any("stale" in line for line in logs)


def test_own_circuit_scores_match_the_family_scoring(tiny_gpt2, tmp_path):
    """A condition scored on its own (as re-discovery does) gets the same scores as inside the
    whole family (as the verdict table does): the mean reference is the generated one."""
    model = tiny_gpt2
    sets = R.condition_sets(model, "domain", seed=2, n=3)
    cond = R.discover_sets(model, sets, "c", steps=1, out_dir=tmp_path, log=None).df
    reference = faithful.ranking(cond[cond.set == "everyday"])
    own = R.own_circuit_scores(model, "domain", cond, reference, sizes=(3,), n_per_condition=3,
                               out_dir=tmp_path, log=None).df
    fam = G.score_family(model, "domain", 0, {"canonical top 3": reference[:3]}, n_per_condition=3,
                         out_dir=tmp_path, log=lambda *_: None).df
    a = own[own.circuit == "canonical top 3"].set_index(["ablation", "prompt_id"]).sort_index()
    b = fam.set_index(["ablation", "prompt_id"]).sort_index()
    assert len(a) == len(b) > 0
    torch.testing.assert_close(torch.tensor(a.circuit_logit_diff.values),
                               torch.tensor(b.circuit_logit_diff.values), atol=1e-4, rtol=0)
    # each condition's own circuit is its own ranking's top 3: "law"'s own top 3, taken here
    # from its EAP-IG table by |score|, scores on law's prompts as inside the whole family
    law = cond[(cond.set == "law") & (cond.kind == "head")]
    top3 = [N.parse_node(x) for x in law.assign(a=law.score.abs()).sort_values(
        ["a", "node"], ascending=[False, True]).node[:3]]
    assert top3 != list(reference[:3]), "the test needs law's own circuit to differ"
    fam_law = G.score_family(model, "domain", 0, {"law top 3": top3}, n_per_condition=3,
                             out_dir=tmp_path, log=lambda *_: None).df
    fam_law = fam_law[fam_law.condition == "law"].set_index(["ablation", "prompt_id"]).sort_index()
    mine = own[(own.circuit == "own top 3") & (own.condition == "law")]
    mine = mine.set_index(["ablation", "prompt_id"]).sort_index()
    assert list(mine.index) == list(fam_law.index) and len(mine) == 2 * 3
    torch.testing.assert_close(torch.tensor(mine.circuit_logit_diff.values),
                               torch.tensor(fam_law.circuit_logit_diff.values), atol=1e-4, rtol=0)


# ------------------------------------------------------------------ the verdict rule


def _long(cond: str, ratio: float, n_templates: int, noise: float, rng) -> pd.DataFrame:
    n = 4 * n_templates
    ld = rng.uniform(2, 4, n)
    empty = rng.uniform(-0.5, 0.5, n)
    circ = empty + ratio * (ld - empty) + rng.normal(0, noise, n)
    return pd.DataFrame({"circuit": "c", "n_nodes": 2, "ablation": "mean", "condition": cond,
                         "template": [f"{cond}:{i % n_templates}" for i in range(n)],
                         "logit_diff": ld, "empty_logit_diff": empty, "circuit_logit_diff": circ})


def test_verdict_table_against_hand_computed_ratios():
    rng = np.random.default_rng(0)
    # "split": below the band on average, but one template keeps 1.6 of the effect and the other
    # none, so two templates cannot show a clear difference from the reference
    split = pd.concat([_long("split", 1.6, 1, 0.05, rng), _long("split", 0.0, 1, 0.05, rng)
                       .assign(template="split:1")])
    df = pd.concat([_long("base", 1.0, 8, 0.05, rng), _long("bad", 0.3, 8, 0.05, rng),
                    _long("fine", 0.95, 8, 0.05, rng), _long("high", 1.6, 8, 0.05, rng), split],
                   ignore_index=True)
    t = G.verdict_table(df, "base").set_index("condition")
    for c, g in df.groupby("condition"):
        want = ((g.circuit_logit_diff - g.empty_logit_diff).mean()
                / (g.logit_diff - g.empty_logit_diff).mean())
        assert t.loc[c, "estimate"] == pytest.approx(want)
        assert t.loc[c, "lo"] < t.loc[c, "estimate"] < t.loc[c, "hi"]
    assert t.verdict.to_dict() == {"base": "holds", "bad": "degrades", "fine": "holds",
                                   "high": "exceeds", "split": "unclear"}
    assert t.loc["base", "reference"] and pd.isna(t.loc["base", "q"])
    assert t.loc["bad", "n_templates"] == 8 and t.loc["bad", "n"] == 32


def test_faithfulness_verdict_edges():
    assert G.faithfulness_verdict(0.85, -0.5, 0.001) == "holds"
    assert G.faithfulness_verdict(0.84, -0.5, 0.001) == "degrades"
    assert G.faithfulness_verdict(0.84, -0.5, 0.2) == "unclear"
    assert G.faithfulness_verdict(0.84, 0.1, 0.001) == "unclear"  # below the band, above the ref
    assert G.faithfulness_verdict(1.3, 0.2, 0.01) == "exceeds"
    assert G.faithfulness_verdict(1.3, 0.2, float("nan")) == "unclear"
    assert G.faithfulness_verdict(float("nan"), 0.0, 0.0) == "unclear"
