"""Week 14's report (circuitgen.generalise_report) on hand-made tables: the comparisons it adds to
circuitgen.generalise and circuitgen.rediscovery, and every value the chapter's prose glues."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from circuitgen import generalise as G
from circuitgen import generalise_report as R
from circuitgen import nodes as N
from circuitgen import rediscovery

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_own_against_canonical_by_hand():
    keys = [("f", "a"), ("f", "b"), ("f", "c"), ("g", "d")]
    own = {"a": 1.2, "b": 0.5, "c": 0.9, "d": 0.7}
    canon = {"a": 1.0, "b": 0.6, "c": 0.8, "d": 0.7}
    rows = [{"family": f, "condition": c, "circuit": circuit, "ablation": abl, "estimate": v[c] + shift}
            for f, c in keys for circuit, v in (("own top 5", own), ("canonical top 5", canon))
            for abl, shift in (("mean", 0.0), ("resample", 9.0))]  # resample must be ignored
    # c's own circuit is the canonical one (Jaccard 1): "the same", though it scores higher
    overlap = pd.DataFrame({"family": [f for f, _ in keys], "condition": [c for _, c in keys],
                            "node_jaccard_5": [0.4, 0.6, 1.0, 0.8]})
    got = R.own_against_canonical(pd.DataFrame(rows), overlap, 5)
    assert got == {"above": 1, "same": 1, "below": 2, "n": 4}  # a above; b lower; d a tie


def _verdicts(rows):
    return pd.DataFrame(rows, columns=["family", "condition", "circuit", "ablation", "verdict"])


def test_agreement_counts_a_two_by_two_and_tests_it():
    conds = [("f", f"c{i}") for i in range(8)]
    verdict = ["degrades", "degrades", "degrades", "exceeds", "holds", "unclear", "holds", "holds"]
    cls = ["different circuit", "different circuit", "same circuit", "different circuit",
           "different circuit", "same heads, other roles", "same circuit", "same circuit"]
    v = _verdicts([(f, c, "top", "mean", x) for (f, c), x in zip(conds, verdict)]
                  + [(f, c, "top", "resample", "degrades") for f, c in conds]  # another ablation
                  + [(f, c, "other", "mean", "degrades") for f, c in conds])  # another circuit
    overlap = pd.DataFrame({"family": [f for f, _ in conds], "condition": [c for _, c in conds],
                            "class": cls})
    g = R.agreement(v, overlap, "top")
    assert g.table.loc["degrades"].tolist() == [2, 1]
    assert g.table.loc["other verdict"].tolist() == [2, 3]
    assert g.both == 2
    assert g.p == pytest.approx(sps.fisher_exact([[2, 1], [2, 3]]).pvalue)
    # degrades or exceeds: c0-c3, of them c0, c1, c3 different; the other four: c4 different
    assert (g.n_fail, g.n_fail_different, g.n_other, g.n_other_different) == (4, 3, 4, 1)


def test_agreement_without_a_degrading_condition_has_no_test():
    v = _verdicts([("f", "a", "top", "mean", "holds"), ("f", "b", "top", "mean", "unclear")])
    overlap = pd.DataFrame({"family": ["f", "f"], "condition": ["a", "b"],
                            "class": ["different circuit", "same circuit"]})
    g = R.agreement(v, overlap, "top")
    assert g.both == 0 and np.isnan(g.p)


def test_replication_counts_by_hand():
    both = pd.DataFrame({
        "circuit": ["x", "x", "x", "y", "y", "z"], "ablation": ["mean"] * 3 + ["resample"] * 2 + ["mean"],
        "replicates": pd.array([True, False, pd.NA, True, True, pd.NA], dtype="boolean")})
    got = R.replication_counts(both, [("z", "mean"), ("y", "resample"), ("x", "mean")])
    assert list(got.index) == [("y", "resample"), ("x", "mean")]  # z found nothing: no row
    assert got.to_dict("index") == {("y", "resample"): {"found": 2, "replicated": 2},
                                    ("x", "mean"): {"found": 2, "replicated": 1}}


# ------------------------------------------------------------------ a whole report, no model

CONDITIONS = {"lexical": {"objects_base": 1.0, "names_rare": 1.0},
              "syntactic": {"order_abba": 1.0, "s_first": 0.95},
              "domain": {"everyday": 1.0, "law": 0.2},
              "adversarial": {"base": 1.0, "double_io": 2.0, "triple_io": 1.5}}


def _family(seed: int, ratios: dict[str, float], circuits: dict[str, float]) -> pd.DataFrame:
    """A long score table: every circuit keeps ``ratio * factor`` of the model's effect on a
    condition (mean and resample ablation alike), 6 templates of 4 prompts each."""
    rng = np.random.default_rng(seed)
    rows = []
    for circuit, factor in circuits.items():
        for ablation in ("mean", "resample"):
            for c, (cond, ratio) in enumerate(ratios.items()):
                for i in range(24):
                    ld, empty = 3.0 + rng.uniform(-0.5, 0.5), rng.uniform(-0.2, 0.2)
                    rows.append({"circuit": circuit, "n_nodes": 3, "ablation": ablation, "condition": cond,
                                 "template": f"{cond}:{i % 6}", "prompt_id": 100 * c + i,
                                 "logit_diff": ld, "empty_logit_diff": empty,
                                 "circuit_logit_diff": empty + ratio * factor * (ld - empty)
                                 + rng.normal(0, 0.02)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report():
    nodes = [N.Node(1, 0, "END"), N.Node(1, 1, "S2"), N.Node(0, 2, "END")]
    circuits = G.CircuitsUnderTest({"eap-ig top 3": nodes, "week 6": nodes[:2]},
                                   skipped={"eap-ig": "found no circuit in the band"})
    factors = {"eap-ig top 3": 1.0, "week 6": 0.5}
    tables = {s: {f: _family(10 * s + i, ratios, factors) for i, (f, ratios) in enumerate(CONDITIONS.items())}
              for s in (0, 1)}
    return R.GeneraliseReport("tiny", 0, 1, 20, 40, circuits, "circuit: w6.yaml\n", tables)


def test_a_report_without_rediscovery_says_so_everywhere(report):
    found = report.findings()
    assert report.mid == "eap-ig top 3" and report.k_mid == 3 and report.k_chosen is None
    assert found["w14_k_chosen"] == "(no chosen circuit)"
    for key in ("single_order", "class_same", "different_list", "agree_p", "n_canonical"):
        assert found[f"w14_{key}"] == R.NOT_RUN
    for text in (report.null_line(), report.overlap_text(), report.top5_text(),
                 report.entered_left_text(), report.own_text(), report.agreement_text()):
        assert text == R.NO_REDISCOVERY
    assert report.overlap_figure() is None and report.own_figure() is None
    # the chosen EAP-IG and path-patching circuits are absent: their counts say so
    assert found["w14_eap_mean_holds"] == "(none)" and found["w14_pp_resample_within"] == "(none)"


def test_the_report_counts_what_the_verdicts_say(report):
    found = report.findings()
    n_conditions = sum(len(c) for c in CONDITIONS.values())
    assert found["w14_n_conditions"] == n_conditions
    assert found["w14_n_prompts"] == 24 * n_conditions
    counts = G.verdict_counts(G.family_verdicts(report.tables[0]))
    for abl in ("mean", "resample"):
        for col in (*G.VERDICTS, "within"):
            assert found[f"w14_mid_{abl}_{col}"] == int(counts.loc[("eap-ig top 3", abl), col])
            assert found[f"w14_w6_{abl}_{col}"] == int(counts.loc[("week 6", abl), col])
    # law keeps 0.2 of the effect, against 1.0 on its reference: the headline circuit degrades
    # there; double_io (2.0) and triple_io (1.5) exceed; the rest hold
    assert found["w14_flagged_list"] == ("domain/law (degrades), adversarial/double_io (exceeds), "
                                         "adversarial/triple_io (exceeds)")
    assert found["w14_mid_mean_holds"] == n_conditions - 3
    # both draws are made alike, so every clear verdict replicates
    assert found["w14_rep_found"] == found["w14_rep_replicated"] > 0
    # F(C)/F(M) of the headline circuit on the Nainani conditions: ~1, ~2 and ~1.5 (ratio of means)
    ratios = dict(part.rsplit(" ", 1) for part in found["w14_nainani_mid"].split(", "))
    assert {k: float(v) for k, v in ratios.items()} == pytest.approx(
        {"base": 1.0, "double_io": 2.0, "triple_io": 1.5}, abs=0.03)
    assert found["w14_triple_vs_gpt2"] == "TripleIO is below DoubleIO (unlike GPT-2)"
    assert (found["w14_templates_median"], found["w14_templates_range"]) == ("6", "6")


def test_the_circuits_text_shows_what_loading_printed(report):
    lines = report.circuits_text().splitlines()
    assert lines[0] == "circuit: w6.yaml"
    assert lines[1].split() == ["circuit", "nodes", "heads"]
    assert lines[2].split() == ["eap-ig", "top", "3", "3", "3"]
    assert lines[3].split() == ["week", "6", "2", "2"]


def _prose_names(text: str, prefix: str) -> set[str]:
    return set(re.findall(rf"{{glue:text}}`(?:[\w./-]+::)?({prefix}_\w+?)(?::[^`]*)?`", text))


def test_every_name_the_prose_quotes_is_glued(report):
    """The chapter's markdown and the book's introduction quote only names :meth:`findings`
    glues (a renamed or dropped value would leave a hole in the rendered text)."""
    used = _prose_names((ROOT / "notebooks" / "w14-does-it-generalise.py").read_text(), "w14")
    used |= _prose_names((ROOT / "intro.md").read_text(), "w14")
    assert {"w14_class_same", "w14_k_mid", "w14_agree_any"} <= used  # the pattern finds them
    assert used - set(report.findings()) == set()


def test_rediscovery_sizes_follow_the_chosen_circuit():
    nodes = [N.Node(0, 0, "END")] * 4
    assert R.rediscovery_sizes({"eap-ig": nodes[:2], "eap-ig top 4": nodes}) == [2, rediscovery.RULE_SIZE]
    assert R.rediscovery_sizes({"eap-ig top 4": nodes}) == [rediscovery.RULE_SIZE]


def test_equivalence_section_counts_what_the_two_rules_say(report):
    """The rules' cross table has one entry per (family, condition, circuit, ablation), its rows
    are the first rule's counts and its columns the equivalence counts; the replication table
    compares each draw's verdicts unit by unit (counted here from the two tables directly)."""
    first, eq = report.verdicts, report.equivalence
    x = report.rules_crosstab()
    assert int(x.to_numpy().sum()) == len(first) == len(eq)
    assert x.sum(axis=1).to_dict() == {v: int((first.verdict == v).sum()) for v in x.index}
    assert x.sum(axis=0).to_dict() == {v: int((eq.verdict == v).sum()) for v in x.columns}
    keys = ["family", "condition", "circuit", "ablation"]
    both = eq.merge(report.equivalence_rep, on=keys, suffixes=("", "_rep"))
    rep = report.equivalence_replication()
    for v in ("holds", "degrades", "exceeds"):
        mine = both[both.verdict == v]
        assert rep.loc[v, "found"] == len(mine)
        assert rep.loc[v, "replicated"] == int((mine.verdict_rep == v).sum())
    found = report.findings()
    assert found["w14_eq_holds_total"] == int((eq.verdict == "holds").sum())
    assert found["w14_eq_first_holds"] == int((first.verdict == "holds").sum())
    assert found["w14_eq_eap_mean_holds"] == "(none)"  # no chosen EAP-IG circuit in this report
