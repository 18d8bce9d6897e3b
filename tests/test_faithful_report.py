"""Week 13's report (circuitgen.faithful_report): the entry points the chapter and
scripts/week13.py share, on the tiny Llama model, and its tables on hand-made scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from circuitgen import circuits as CS
from circuitgen import faithful, splits
from circuitgen import faithful_report as R
from circuitgen import nodes as N

SMALL = faithful.MethodConfig(eap_steps=2, prune_threshold=0.05, prune_prompts=6,
                              pp_threshold=0.05, pp_exact_prompts=6, pp_candidates=4)


@pytest.fixture(scope="module")
def sets(tiny_llama):
    return splits.make_splits(tiny_llama, 8, 36)


def test_discover_all_runs_the_sets_the_plan_names(tiny_llama, sets, tmp_path):
    runs = R.discover_all(tiny_llama, sets, {"eap-ig": [2]}, config=SMALL, out_dir=tmp_path, log=None)
    assert list(runs) == [("eap-ig", "set2")]
    logs: list[str] = []
    # the same run made directly on discovery set 2's prompts is the one discover_all cached
    direct = faithful.discover(tiny_llama, sets.discovery[1].df, "eap-ig", "set2", config=SMALL,
                               out_dir=tmp_path, log=logs.append)
    assert logs and logs[0].startswith("reusing")
    pd.testing.assert_frame_equal(direct.df, runs[("eap-ig", "set2")].df)


def test_write_specs_records_the_threshold_each_method_has(tiny_llama, tmp_path):
    name = tiny_llama.circuitgen.model
    chosen = {"eap-ig": [N.Node(1, 0, "END"), N.Node(0, 1, "S2")], "pruning": [N.Node(1, 1, "END")]}
    found = pd.DataFrame({"method": ["eap-ig", "pruning", "path-patching"],
                          "k": pd.array([2, 1, None], dtype="Int64")})
    score_of = {"eap-ig": {"1.0@END": 0.9, "0.1@S2": -0.4}, "pruning": {"1.1@END": 0.3}}
    written = R.write_specs(name, chosen, found, score_of, config=SMALL, n_discovery=8, output_dir=tmp_path)
    assert written == [f"{name}-ioi-eap-ig.yaml", f"{name}-ioi-pruning.yaml"]  # no path-patching circuit
    eap = CS.load_circuit(tmp_path / written[0])
    assert sorted(n.label for n in eap.nodes()) == ["0.1@S2", "1.0@END"]
    # EAP-IG has no threshold of its own: the |score| of its k-th node; 8 discovery prompts
    assert eap.provenance["threshold"] == pytest.approx(0.4)
    assert (eap.provenance["k"], eap.provenance["n_prompts"], eap.provenance["method"]) == (2, 8, "eap-ig")
    pruned = CS.load_circuit(tmp_path / written[1])
    # pruning has: its relative tau, and it saw only its own number of prompts
    assert pruned.provenance["threshold"] == pytest.approx(SMALL.prune_threshold)
    assert pruned.provenance["n_prompts"] == SMALL.prune_prompts


def test_held_out_table_by_hand():
    rng = np.random.default_rng(0)
    rows = []
    for held, ratio in ((False, 1.0), (True, 0.5)):
        for t in range(4):
            for _ in range(3):
                ld, empty = rng.uniform(2, 4), rng.uniform(-0.3, 0.3)
                rows.append({"ablation": "mean", "circuit": "c", "n_nodes": 2, "held_out_template": held,
                             "template": 10 * held + t, "logit_diff": ld, "empty_logit_diff": empty,
                             "circuit_logit_diff": empty + ratio * (ld - empty) + rng.normal(0, 0.01)})
    scored = pd.DataFrame(rows)
    got = R.held_out_table(scored).set_index("templates")
    for label, held in (("seen", False), ("held out", True)):
        g = scored[scored.held_out_template == held]
        want = ((g.circuit_logit_diff - g.empty_logit_diff).mean()
                / (g.logit_diff - g.empty_logit_diff).mean())
        assert got.loc[label, "normalised"] == pytest.approx(want)
        assert got.loc[label, "n"] == 12 and got.loc[label, "lo"] <= want <= got.loc[label, "hi"]
    assert got.loc["held out", "normalised"] == pytest.approx(0.5, abs=0.02)


def test_heads_on_every_set_by_hand():
    freq = pd.DataFrame({"method": ["a", "a", "a", "a", "b"],
                         "node": ["10.2@END", "9.1@S2", "10.2@S2", "3.0@END", "1.1@END"],
                         "n_sets": [3, 3, 3, 2, 2]})
    got = R.heads_on_every_set(freq, {"a": 3, "b": 2})
    # a: three nodes on all 3 sets, two of them of head 10.2; heads by layer then head, not as text
    assert got["a"] == (["10.2@END", "9.1@S2", "10.2@S2"], ["9.1", "10.2"])
    assert got["b"] == (["1.1@END"], ["1.1"])
