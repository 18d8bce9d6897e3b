"""The week-13 circuits on a variation family (circuitgen.generalise), on tiny-gpt2."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from circuitgen import circuits as CS
from circuitgen import generalise as G
from circuitgen import nodes as N
from circuitgen import scorer
from circuitgen import tables as T

PROV = {"method": "eap-ig", "threshold": 0.1, "discovery_set": "set1", "date": "2026-11-26", "n_prompts": 8}


@pytest.fixture(scope="module")
def circuits_():
    return {"upper": [N.Node(1, 0, "END"), N.Node(1, 3, "S2")],
            "mixed": [N.Node(0, 2, "S2"), N.Node(0, 2, "END"), N.Node(1, 1, "END")]}


def test_scores_carry_conditions_and_are_cached(tiny_gpt2, circuits_, tmp_path):
    logs: list[str] = []
    t = G.score_family(tiny_gpt2, "domain", 0, circuits_, n_per_condition=2, out_dir=tmp_path,
                       log=logs.append).df
    prompts = G.family_prompts(tiny_gpt2, "domain", 0, n_per_condition=2)
    assert len(t) == 2 * len(circuits_) * len(prompts)  # two ablations
    assert set(t.condition) == set(prompts.condition) and set(t.family) == {"domain"}
    again = G.score_family(tiny_gpt2, "domain", 0, circuits_, n_per_condition=2, out_dir=tmp_path,
                           log=logs.append).df
    assert any("reusing" in line for line in logs)
    assert again.circuit_logit_diff.tolist() == pytest.approx(t.circuit_logit_diff.tolist(), abs=1e-6)


def test_mean_scores_equal_the_scorer_with_the_sweeps_reference(tiny_gpt2, circuits_, tmp_path):
    """The node circuit under the default (condition, order) reference scores as the week-7
    scorer scores the same nodes written as a spec (another route to the keep masks)."""
    t = G.score_family(tiny_gpt2, "domain", 0, circuits_, n_per_condition=2, out_dir=tmp_path,
                       ablations=("mean",), log=lambda *_: None).df
    prompts = G.family_prompts(tiny_gpt2, "domain", 0, n_per_condition=2)
    for label, nodes in circuits_.items():
        spec = CS.spec_from_nodes(nodes, tiny_gpt2, provenance=PROV)
        want = scorer.score_circuit(tiny_gpt2, spec, prompts, knockouts=False, progress=False)
        got = t[t.circuit == label].set_index("prompt_id").loc[want.prompt_id]
        torch.testing.assert_close(torch.tensor(got.circuit_logit_diff.values),
                                   torch.tensor(want.circuit_logit_diff.values), atol=1e-4, rtol=0)
        torch.testing.assert_close(torch.tensor(got.empty_logit_diff.values),
                                   torch.tensor(want.empty_logit_diff.values), atol=1e-4, rtol=0)


def test_circuits_under_test_reads_what_weeks_6_and_13_wrote(tiny_gpt2, tmp_path):
    name = tiny_gpt2.circuitgen.model
    nodes = [N.Node(1, 0, "END"), N.Node(0, 1, "S2")]
    (tmp_path / "discovery").mkdir()
    every = N.head_nodes(tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads)
    for m in ("eap-ig",):
        spec = CS.spec_from_nodes(nodes, tiny_gpt2, provenance={**PROV, "method": m})
        spec.to_yaml(tmp_path / f"{name}-ioi-{m}.yaml")
        ranked = N.score_frame(torch.arange(len(every), dtype=torch.float).reshape(
            tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads, len(N.NODE_ROLES)))
        T.ResultTable(ranked.assign(rank=ranked["score"].rank(ascending=False))).save(
            tmp_path / "discovery" / f"{name}-{m}-set1.csv")
    with pytest.raises(Exception, match="week 6|w06|Week 6"):
        G.circuits_under_test(tiny_gpt2, tmp_path, methods=("eap-ig",))
    CS.spec_from_nodes(nodes, tiny_gpt2, provenance=PROV).to_yaml(tmp_path / f"{name}-ioi.yaml")
    got = G.circuits_under_test(tiny_gpt2, tmp_path, methods=("eap-ig",))
    assert got["eap-ig"] == sorted(nodes) and got["week 6"] == sorted(nodes)
    # The plan's top-k size is 5% of all head nodes as MIB counts them: tiny-gpt2 has
    # 2 layers x 4 heads x 6 roles = 48 head nodes, int(0.05 * 48) = 2 (worked out by hand).
    assert list(got) == ["eap-ig", "eap-ig top 2", "week 6"]
    # the two highest scores of the ranking written above: head 1.3's last two roles
    assert [n.label for n in got["eap-ig top 2"]] == ["1.3@other", "1.3@END"]
    with pytest.raises(FileNotFoundError, match="w13-faithful-circuits"):
        G.circuits_under_test(tiny_gpt2, tmp_path, methods=("pruning",))


def test_answer_table_pools_a_family_and_counts_its_verdicts():
    t = _family_table(1, {"everyday": 1.0, "law": 0.2, "science": 1.0})
    verdicts = G.family_verdicts({"domain": t})
    a = G.answer_table({"domain": t}, verdicts).iloc[0]
    want = (t.circuit_logit_diff - t.empty_logit_diff).mean() / (t.logit_diff - t.empty_logit_diff).mean()
    assert a.estimate == pytest.approx(want) and a.lo < want < a.hi
    assert (a.n, a.n_templates, a.n_conditions) == (72, 18, 3)
    assert (a.holds, a.degrades, a.exceeds, a.unclear) == (2, 1, 0, 0)


def _verdict_rows(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["family", "condition", "circuit", "ablation", "estimate", "lo",
                                       "hi", "verdict"])


def test_verdict_counts_and_the_stricter_reading():
    v = _verdict_rows([
        ("f", "a", "c", "mean", 1.0, 0.9, 1.1, "holds"),      # whole interval in the band
        ("f", "b", "c", "mean", 1.0, 0.5, 1.5, "holds"),      # estimate in, interval not
        ("f", "c", "c", "mean", 0.3, 0.2, 0.4, "degrades"),
        ("f", "a", "c", "resample", 2.0, 1.6, 2.4, "exceeds"),
        ("f", "b", "c", "resample", 0.6, 0.1, 1.2, "unclear")])
    counts = G.verdict_counts(v)
    assert counts.loc[("c", "mean")].to_dict() == {"holds": 2, "degrades": 1, "exceeds": 0, "unclear": 0,
                                                    "n": 3, "within": 1}
    assert counts.loc[("c", "resample")].to_dict() == {"holds": 0, "degrades": 0, "exceeds": 1,
                                                        "unclear": 1, "n": 2, "within": 0}
    assert list(counts.index) == [("c", "mean"), ("c", "resample")]  # order of appearance


def test_replication_only_judges_clear_verdicts():
    first = _verdict_rows([("f", "a", "c", "mean", 0.3, 0.2, 0.4, "degrades"),
                           ("f", "b", "c", "mean", 2.0, 1.5, 2.5, "exceeds"),
                           ("f", "d", "c", "mean", 1.0, 0.9, 1.1, "holds")])
    second = _verdict_rows([("f", "a", "c", "mean", 0.4, 0.3, 0.5, "degrades"),
                            ("f", "b", "c", "mean", 1.0, 0.9, 1.1, "holds"),
                            ("f", "d", "c", "mean", 0.2, 0.1, 0.3, "degrades")])
    r = G.replication(first, second).set_index("condition")
    assert r.loc["a", "replicates"] and not r.loc["b", "replicates"]
    # a hold is not a finding to replicate
    assert r.loc["d", "replicates"] is pytest.importorskip("pandas").NA
    assert r.loc["b", "verdict_rep"] == "holds" and r.loc["a", "estimate_rep"] == pytest.approx(0.4)


# Hand-made cases for the functions the constant-subject sweep found untested (issue 13).


def test_verdict_counts_by_hand():
    # Band (0.85, 1.15): "within" counts whole intervals inside it, whatever the verdict.
    v = pd.DataFrame({
        "circuit": ["a", "a", "a", "b", "b"],
        "ablation": ["mean"] * 5,
        "verdict": ["holds", "degrades", "holds", "exceeds", "degrades"],
        "lo": [0.90, 0.20, 0.80, 1.20, 0.10],
        "hi": [1.10, 0.60, 1.10, 1.40, 0.30],
    })
    got = G.verdict_counts(v)
    assert list(got.index) == [("a", "mean"), ("b", "mean")]
    assert got.loc[("a", "mean"), "holds"] == 2 and got.loc[("a", "mean"), "degrades"] == 1
    assert got.loc[("b", "mean"), "exceeds"] == 1 and got.loc[("b", "mean"), "holds"] == 0
    assert got["n"].tolist() == [3, 2]
    assert got["within"].tolist() == [1, 0]


def test_replication_by_hand():
    keys = dict(family=["f"] * 3, condition=["c1", "c2", "c3"], circuit=["a"] * 3, ablation=["mean"] * 3)
    first = pd.DataFrame(keys | {"estimate": [0.5, 0.9, 1.3], "verdict": ["degrades", "holds", "exceeds"]})
    second = pd.DataFrame(keys | {"estimate": [0.6, 0.7, 1.0], "verdict": ["degrades", "degrades", "holds"]})
    got = G.replication(first, second)
    assert got["estimate_rep"].tolist() == [0.6, 0.7, 1.0]
    assert got["verdict_rep"].tolist() == ["degrades", "degrades", "holds"]
    # Only where the first draw found a difference: c1 replicates, c3 does not, c2 is NA.
    assert got.loc[0, "replicates"] == True  # noqa: E712 (pandas' nullable boolean)
    assert got.loc[2, "replicates"] == False  # noqa: E712
    assert pd.isna(got.loc[1, "replicates"])


def _family_table(seed: int, ratios: dict[str, float]):
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for cond, ratio in ratios.items():
        for i in range(24):
            ld, empty = rng.uniform(2, 4), rng.uniform(-0.5, 0.5)
            rows.append({"circuit": "c", "n_nodes": 2, "ablation": "mean", "condition": cond,
                         "template": f"{cond}:{i % 6}", "prompt_id": len(rows), "logit_diff": ld,
                         "empty_logit_diff": empty,
                         "circuit_logit_diff": empty + ratio * (ld - empty) + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_family_verdicts_estimates_each_condition_of_each_family():
    tables = {"domain": _family_table(1, {"everyday": 1.0, "law": 0.2}),
              "adversarial": _family_table(2, {"base": 1.0, "distractor": 0.5})}
    got = G.family_verdicts(tables)
    assert set(zip(got.family, got.condition)) >= {("domain", "law"), ("adversarial", "distractor")}
    for (fam, cond), row in got.set_index(["family", "condition"]).iterrows():
        t = tables[fam][tables[fam].condition == cond]
        want = (t.circuit_logit_diff - t.empty_logit_diff).mean() / (t.logit_diff - t.empty_logit_diff).mean()
        assert row["estimate"] == pytest.approx(want), (fam, cond)


def _week13_outputs(model, folder, methods, found):
    """What week 13 (and week 6) write: each method's set-1 ranking, the smallest-in-band table
    (``k`` missing for a method not in ``found``) and a spec for each method in ``found``."""
    name = model.circuitgen.model
    (folder / "discovery").mkdir(exist_ok=True)
    nodes = [N.Node(1, 0, "END"), N.Node(0, 1, "S2")]
    every = N.head_nodes(model.cfg.n_layers, model.cfg.n_heads)
    ranked = N.score_frame(torch.arange(len(every), dtype=torch.float).reshape(
        model.cfg.n_layers, model.cfg.n_heads, len(N.NODE_ROLES)))
    for m in methods:
        T.ResultTable(ranked.assign(rank=ranked["score"].rank(ascending=False))).save(
            folder / "discovery" / f"{name}-{m}-set1.csv")
        if m in found:
            CS.spec_from_nodes(nodes, model, provenance={**PROV, "method": m}).to_yaml(
                folder / f"{name}-ioi-{m}.yaml")
    T.ResultTable(pd.DataFrame({"method": list(methods),
                                "k": pd.array([2 if m in found else None for m in methods], dtype="Int64"),
                                "bisection": ""})).save(folder / "discovery" / f"{name}-smallest.csv")
    CS.spec_from_nodes(nodes, model, provenance=PROV).to_yaml(folder / f"{name}-ioi.yaml")
    return nodes, 2  # the top-k size: int(0.05 * 48 head nodes) on the 2 x 4 tiny models


def test_a_method_with_no_in_band_circuit_is_skipped_and_said(tiny_gpt2, tmp_path):
    nodes, k = _week13_outputs(tiny_gpt2, tmp_path, ("eap-ig", "pruning"), found={"eap-ig"})
    logs: list[str] = []
    got = G.circuits_under_test(tiny_gpt2, tmp_path, methods=("eap-ig", "pruning"), log=logs.append)
    assert list(got) == ["eap-ig", f"eap-ig top {k}", f"pruning top {k}", "week 6"]
    assert got["eap-ig"] == sorted(nodes) and len(got[f"pruning top {k}"]) == k
    assert list(got.skipped) == ["pruning"] and "no pruning circuit" in got.skipped["pruning"]
    assert "band" in got.skipped["pruning"]
    assert logs == [got.note()] and "pruning" in logs[0]
    # nothing skipped: nothing said, and the result is the plain mapping it was
    logs.clear()
    alone = G.circuits_under_test(tiny_gpt2, tmp_path, methods=("eap-ig",), log=logs.append)
    assert alone.skipped == {} and logs == [] and alone.note() == ""


def test_a_missing_spec_is_still_an_error_when_week_13_found_a_circuit(tiny_gpt2, tmp_path):
    """Only week 13's own record (k missing) makes a missing spec a skip; a method it found a
    circuit for (k given), or no record at all, means week 13 has not run: an error."""
    name = tiny_gpt2.circuitgen.model
    _week13_outputs(tiny_gpt2, tmp_path, ("eap-ig", "pruning"), found={"eap-ig", "pruning"})
    (tmp_path / f"{name}-ioi-pruning.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="ioi-pruning.yaml.*w13-faithful-circuits"):
        G.circuits_under_test(tiny_gpt2, tmp_path, methods=("eap-ig", "pruning"))
    (tmp_path / "discovery" / f"{name}-smallest.csv").unlink()
    with pytest.raises(FileNotFoundError, match="ioi-pruning.yaml"):
        G.circuits_under_test(tiny_gpt2, tmp_path, methods=("eap-ig", "pruning"))
    (tmp_path / "discovery" / f"{name}-pruning-set1.csv").unlink()
    with pytest.raises(FileNotFoundError, match="pruning-set1.csv"):
        G.circuits_under_test(tiny_gpt2, tmp_path, methods=("pruning",))
