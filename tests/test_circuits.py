"""Circuit specs: the GPT-2 IOI spec, every validation error, writing and reading back."""

from __future__ import annotations

import textwrap

import pytest

from circuitgen import circuits
from circuitgen.circuits import (
    POSITIONS,
    CircuitSpecError,
    found_circuit,
    load_circuit,
    parse_circuit,
    parse_head,
    validate_for_model,
)
from circuitgen.paths import CIRCUITS_DIR

# The head lists of Wang et al. 2022, typed here independently of data/circuits/gpt2-ioi.yaml.
PAPER = {
    "name_mover": {(9, 9), (9, 6), (10, 0)},
    "negative_name_mover": {(10, 7), (11, 10)},
    "backup_name_mover": {(10, 10), (10, 6), (10, 2), (10, 1), (11, 2), (9, 7), (9, 0), (11, 9)},
    "s_inhibition": {(7, 3), (7, 9), (8, 6), (8, 10)},
    "induction": {(5, 5), (5, 8), (5, 9), (6, 9)},
    "duplicate_token": {(0, 1), (0, 10), (3, 0)},
    "previous_token": {(2, 2), (4, 11)},
}

VALID = """\
model: gpt2
task: ioi
description: a small test circuit
provenance: {citation: test}
ablation: {method: mean, reference: abc, group_by: [template]}
classes:
  name_mover:
    heads: ["9.9", "9.6"]
    positions: [END]
    signature: {from: END, to: IO}
  induction:
    heads: ["5.5"]
    positions: [S2]
    signature: {from: S2, to: S1+1}
"""


def _write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_gpt2_ioi_spec_matches_the_paper():
    spec = load_circuit("gpt2-ioi")
    assert spec.model == "gpt2" and spec.task == "ioi"
    assert {name: set(c.heads) for name, c in spec.classes.items()} == PAPER
    assert len(spec.heads()) == 26 == len(set(spec.heads()))
    assert spec.heads() == sorted(spec.heads())
    prov = spec.provenance
    assert "2211.00593" in prov["citation"] and "Wang" in prov["citation"]
    assert prov["reported"]["model_logit_diff"] == 3.56
    assert prov["reported"]["faithfulness"] == 0.87
    assert spec.ablation.method == "mean" and spec.ablation.reference == "abc"
    sig = {name: (c.signature.source, c.signature.target) for name, c in spec.classes.items()}
    assert sig["name_mover"] == ("END", "IO") and sig["s_inhibition"] == ("END", "S2")
    assert sig["induction"] == ("S2", "S1+1") and sig["duplicate_token"] == ("S2", "S1")
    assert sig["previous_token"] == ("S1+1", "S1")
    assert spec.class_of(8, 10) == "s_inhibition" and spec.class_of(0, 0) is None


def test_gpt2_ioi_spec_fits_gpt2_shape_only(tiny_gpt2):
    spec = load_circuit(CIRCUITS_DIR / "gpt2-ioi.yaml")
    assert validate_for_model(spec, n_layers=12, n_heads=12) is spec
    cfg = tiny_gpt2.cfg
    assert cfg.n_layers == 2
    with pytest.raises(CircuitSpecError) as err:
        validate_for_model(spec, cfg.n_layers, cfg.n_heads, model_name="tiny-gpt2")
    msg = str(err.value)
    assert "gpt2-ioi.yaml" in msg and "2 layers" in msg and "out of range" in msg
    assert "found in 'gpt2'" in msg


def test_head_index_out_of_range(tmp_path):
    spec = load_circuit(_write(tmp_path, VALID))
    with pytest.raises(CircuitSpecError, match=r"head 9\.9 .*12 layers x 8 heads \(head index 9"):
        validate_for_model(spec, 12, 8)


def test_round_trip_through_yaml(tmp_path):
    spec = load_circuit("gpt2-ioi")
    path = tmp_path / "out" / "discovered.yaml"
    text = spec.to_yaml(path)
    assert path.read_text() == text
    assert "'10.10'" in text or '"10.10"' in text  # heads stay quoted strings
    back = load_circuit(path)
    assert back == spec and back.heads() == spec.heads()
    assert list(back.classes) == list(spec.classes)


def test_parse_head():
    assert parse_head("10.10", "x") == (10, 10)
    assert parse_head(" 0.1 ", "x") == (0, 1)
    for bad in ("9.x", "9", "9.9.9", "-1.2", "a.b", 9, None):
        with pytest.raises(CircuitSpecError):
            parse_head(bad, "x")


def test_valid_spec_loads(tmp_path):
    spec = load_circuit(_write(tmp_path, VALID))
    assert spec.heads() == [(5, 5), (9, 6), (9, 9)]
    assert spec.classes["induction"].positions == ("S2",)
    assert set(POSITIONS) == {"END", "S2", "S1", "S1+1", "IO", "other", "ALL"}


def _replace(old, new):
    assert old in VALID
    return VALID.replace(old, new)


ERRORS = [
    ("unknown position", _replace("positions: [END]", "positions: [ENDD]"),
     ["classes.name_mover.positions", "unknown position 'ENDD'", "did you mean 'END'"]),
    ("lowercase position", _replace("positions: [S2]", "positions: [s2]"),
     ["classes.induction.positions", "did you mean 'S2'"]),
    ("bad signature position", _replace("to: S1+1", "to: S3"),
     ["classes.induction.signature.to", "unknown position 'S3'"]),
    ("ALL in a signature", _replace("to: IO", "to: ALL"), ["signature.to", "'ALL'"]),
    ("signature missing to", _replace("{from: END, to: IO}", "{from: END}"),
     ["classes.name_mover.signature", "exactly 'from' and 'to'"]),
    ("malformed head", _replace('"9.6"', '"9.x"'),
     ["classes.name_mover.heads", "'9.x'", "layer.head"]),
    ("unquoted head", _replace('"9.6"', "9.6"),
     ["classes.name_mover.heads", "read by YAML as a number", "Quote it"]),
    ("duplicate across classes", _replace('["5.5"]', '["5.5", "9.9"]'),
     ["classes.induction.heads", "head 9.9", "already in class 'name_mover'"]),
    ("duplicate within class", _replace('["9.9", "9.6"]', '["9.9", "9.9"]'),
     ["classes.name_mover.heads", "listed twice"]),
    ("missing model", _replace("model: gpt2\n", ""), ["missing field 'model'"]),
    ("missing classes", VALID.split("classes:")[0], ["missing field 'classes'"]),
    ("missing heads", _replace('    heads: ["5.5"]\n', ""),
     ["classes.induction", "missing field 'heads'"]),
    ("missing positions", _replace("    positions: [S2]\n", ""),
     ["classes.induction", "missing field 'positions'"]),
    ("unknown field", _replace("positions: [S2]", "postions: [S2]"),
     ["unknown field 'postions'", "did you mean 'positions'"]),
    ("unknown top field", "modle: gpt2\n" + VALID, ["unknown field 'modle'", "did you mean 'model'"]),
    ("empty heads", _replace('["5.5"]', "[]"), ["classes.induction.heads", "non-empty"]),
    ("empty classes", VALID.split("classes:")[0] + "classes: {}\n", ["'classes' must be a non-empty"]),
    ("duplicate yaml key", VALID + "  induction:\n    heads: ['1.1']\n    positions: [S2]\n",
     ["appears twice"]),
    ("bad ablation method", _replace("method: mean", "method: median"),
     ["ablation.method", "'median'", "mean, zero, resample"]),
    ("bad ablation reference", _replace("reference: abc", "reference: xyz"),
     ["ablation.reference", "'xyz'"]),
    ("zero ablation with reference", _replace("method: mean", "method: zero"),
     ["ablation.reference", "zero ablation has no reference"]),
    ("ALL with others", _replace("positions: [END]", "positions: [ALL, END]"), ["[ALL] alone"]),
    ("repeated position", _replace("positions: [END]", "positions: [END, END]"), ["repeats a position"]),
    ("model not a string", _replace("model: gpt2", "model: [gpt2]"), ["'model' must be a non-empty string"]),
    ("provenance not a mapping", _replace("provenance: {citation: test}", "provenance: just text"),
     ["'provenance' must be a mapping"]),
    ("top level a list", "- model: gpt2\n", ["top level must be a mapping"]),
    ("bad yaml", VALID + "  oops: [unclosed\n", ["not valid YAML"]),
]


@pytest.mark.parametrize("case, text, expect", ERRORS, ids=[e[0] for e in ERRORS])
def test_spec_errors_name_file_field_and_fix(tmp_path, case, text, expect):
    path = _write(tmp_path, text, name=f"{case.replace(' ', '_')}.yaml")
    with pytest.raises(CircuitSpecError) as err:
        load_circuit(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    for part in expect:
        assert part in msg, (part, msg)


def test_missing_spec_file_lists_known_names(tmp_path):
    with pytest.raises(CircuitSpecError, match="gpt2-ioi"):
        load_circuit("no-such-circuit")
    with pytest.raises(CircuitSpecError, match="no such circuit spec"):
        load_circuit(tmp_path / "nope.yaml")


def test_parse_from_string_names_the_source():
    with pytest.raises(CircuitSpecError, match=r"^my-notebook: .*missing field 'task'"):
        parse_circuit(_replace("task: ioi\n", ""), source="my-notebook")


def test_found_circuit_resolves_the_week6_spec(tmp_path, capsys):
    ref = found_circuit("smollm2-135m")
    assert ref.source == str(CIRCUITS_DIR / "smollm2-135m-ioi.yaml")
    assert f"{len(ref.heads())} heads" in capsys.readouterr().out
    # Another run's week 6 wrote its spec into its own output folder, '/' in the name as '--'.
    _write(tmp_path, VALID, name="org--model-ioi.yaml")
    assert found_circuit("org/model", output_dir=tmp_path).heads() == [(5, 5), (9, 6), (9, 9)]
    assert found_circuit("anything", circuit="gpt2-ioi").model == "gpt2"
    with pytest.raises(CircuitSpecError, match="w06-ioi-circuit with MODEL='other'"):
        found_circuit("other", output_dir=tmp_path)


# ---- per-head positions, MLP nodes, specs from nodes ------------------------------------------

NODES_SPEC = """\
model: gpt2
task: ioi
provenance: {method: eap-ig, threshold: 0.02, discovery_set: ioi-canonical-seed1, date: 2026-12-01,
  n_prompts: 64}
classes:
  name_mover:
    heads: ["9.9", {head: "9.6", positions: [END, other]}]
    positions: [END]
    signature: {from: END, to: IO}
  early:
    heads: [{head: "0.1", positions: [ALL]}, {head: "3.0", positions: [S2, S1+1]}]
mlps:
  - {layer: 0, positions: [ALL]}
  - {layer: 5, positions: [END, S2]}
"""


def test_per_head_positions_and_mlps_round_trip(tmp_path):
    from circuitgen.nodes import NODE_ROLES, Node

    spec = load_circuit(_write(tmp_path, NODES_SPEC))
    nm, early = spec.classes["name_mover"], spec.classes["early"]
    assert nm.positions_of((9, 9)) == ("END",) and nm.positions_of((9, 6)) == ("END", "other")
    assert early.positions == () and early.positions_of((3, 0)) == ("S2", "S1+1")
    assert [(m.layer, m.positions) for m in spec.mlps] == [(0, ("ALL",)), (5, ("END", "S2"))]
    assert str(spec.provenance["date"]) == "2026-12-01"
    want = ([Node(0, 1, r) for r in NODE_ROLES] + [Node(0, None, r) for r in NODE_ROLES]
            + [Node(3, 0, "S1+1"), Node(3, 0, "S2"), Node(5, None, "S2"), Node(5, None, "END"),
               Node(9, 6, "END"), Node(9, 6, "other"), Node(9, 9, "END")])
    assert set(spec.nodes()) == set(want) and len(spec.nodes()) == len(want)
    assert spec.nodes() == sorted(want, key=circuits.node_key)
    back = parse_circuit(spec.to_yaml(), "<again>")
    assert back == spec and back.nodes() == spec.nodes()
    assert "{head: '9.6', positions: [END, other]}" in spec.to_yaml()
    # Old specs: no mlps key, and it stays absent on the way out.
    old = load_circuit("gpt2-ioi")
    assert old.mlps is None and "mlps" not in old.to_yaml()
    assert len(old.nodes()) == 26 and {n.kind for n in old.nodes()} == {"head"}


def test_spec_from_nodes_round_trips(tmp_path):
    from circuitgen.nodes import parse_node

    labels = ["9.9@END", "9.6@END", "9.6@other", "0.1@IO", "0.1@S1", "mlp5@S2", "mlp5@END",
              "mlp0@other", "3.0@END", "10.7@END"]
    nodes = [parse_node(x) for x in labels]
    prov = {"method": "eap-ig", "threshold": 0.02, "discovery_set": "d", "date": "2026-12-01",
            "n_prompts": 64}
    spec = circuits.spec_from_nodes(nodes, "gpt2", provenance=prov)
    assert spec.nodes() == sorted(nodes, key=circuits.node_key)
    assert list(spec.classes) == ["nodes"] and spec.classes["nodes"].positions == ("END",)
    path = tmp_path / "found.yaml"
    spec.to_yaml(path)
    assert load_circuit(path) == spec and load_circuit(path).nodes() == spec.nodes()
    # With a classifier's classes; heads it leaves out are 'unclassified'.
    classes = {"name_mover": ["9.9", (9, 6)], "negative": [(10, 7)]}
    by_class = circuits.spec_from_nodes(labels, "gpt2", classes=classes, provenance=prov)
    assert list(by_class.classes) == ["name_mover", "negative", "unclassified"]
    assert by_class.classes["unclassified"].heads == ((0, 1), (3, 0))
    assert by_class.nodes() == spec.nodes()
    assert parse_circuit(by_class.to_yaml()) == by_class
    # No MLP nodes: no mlps key (every MLP runs); mlps=True writes mlps: [] (every MLP ablated).
    heads_only = circuits.spec_from_nodes(labels[:5], "gpt2", provenance=prov)
    assert heads_only.mlps is None
    assert circuits.spec_from_nodes(labels[:5], "gpt2", provenance=prov, mlps=True).mlps == ()
    with pytest.raises(CircuitSpecError, match="mlps=False"):
        circuits.spec_from_nodes(labels, "gpt2", provenance=prov, mlps=False)
    with pytest.raises(CircuitSpecError, match="no node"):
        circuits.spec_from_nodes(labels, "gpt2", classes={"x": ["1.1"]}, provenance=prov)
    with pytest.warns(UserWarning, match="threshold"):
        circuits.spec_from_nodes(labels, "gpt2", provenance={"method": "m"})


def test_spec_from_nodes_checks_the_model(tiny_gpt2):
    spec = circuits.spec_from_nodes(["1.3@END", "mlp1@S2"], tiny_gpt2, provenance={
        "method": "m", "threshold": 1, "discovery_set": "d", "date": "x", "n_prompts": 1})
    assert spec.model == "tiny-gpt2" or spec.model == tiny_gpt2.circuitgen.model
    with pytest.raises(CircuitSpecError, match="does not exist"):
        circuits.spec_from_nodes(["5.0@END"], tiny_gpt2, provenance={})


def test_mlp_layer_out_of_range(tmp_path):
    text = "model: m\ntask: ioi\nclasses: {a: {heads: ['1.1'], positions: [END]}}\n"
    spec = parse_circuit(text + "mlps: [{layer: 5, positions: [END]}]\n", "<s>")
    with pytest.raises(CircuitSpecError, match=r"mlps: MLP layer 5 does not exist .* 4 layers"):
        validate_for_model(spec, 4, 12)
    assert validate_for_model(spec, 6, 12) is spec


def _nodes_replace(old, new):
    assert old in NODES_SPEC
    return NODES_SPEC.replace(old, new)


NODE_ERRORS = [
    ("per-head unknown position", _nodes_replace("[END, other]", "[END, others]"),
     ["classes.name_mover.heads: 9.6.positions", "unknown position 'others'"]),
    ("per-head unknown field", _nodes_replace('{head: "9.6", positions', '{head: "9.6", position'),
     ["classes.name_mover.heads", "unknown field 'position'", "did you mean 'positions'"]),
    ("per-head missing positions", _nodes_replace('{head: "9.6", positions: [END, other]}', '{head: "9.6"}'),
     ["classes.name_mover.heads", "missing field 'positions'"]),
    ("per-head unquoted", _nodes_replace('{head: "9.6"', "{head: 9.6"), ["read by YAML as a number"]),
    ("per-head ALL with others", _nodes_replace("[END, other]", "[ALL, other]"), ["[ALL] alone"]),
    ("class without positions", _nodes_replace('{head: "0.1", positions: [ALL]}', '"0.1"'),
     ["classes.early", "missing field 'positions'", "head 0.1 has no positions of its own"]),
    ("mlps null", _nodes_replace("mlps:\n  - {layer: 0, positions: [ALL]}\n"
                                 "  - {layer: 5, positions: [END, S2]}\n", "mlps:\n"),
     ["mlps: give a list", "[] ablates every MLP"]),
    ("mlp entry not a mapping", _nodes_replace("- {layer: 0, positions: [ALL]}", "- 0"),
     ["mlps[0]", "must be a mapping"]),
    ("mlp layer quoted", _nodes_replace("{layer: 5,", "{layer: '5',"), ["mlps[1].layer", "whole number"]),
    ("mlp layer negative", _nodes_replace("{layer: 5,", "{layer: -1,"), ["mlps[1].layer"]),
    ("mlp missing positions", _nodes_replace("{layer: 5, positions: [END, S2]}", "{layer: 5}"),
     ["mlps[1]", "missing field 'positions'"]),
    ("mlp unknown field", _nodes_replace("{layer: 5,", "{layr: 5,"), ["mlps[1]", "did you mean 'layer'"]),
    ("mlp bad position", _nodes_replace("[END, S2]}", "[END, S3]}"),
     ["mlps[1].positions", "unknown position 'S3'"]),
    ("mlp layer twice", _nodes_replace("{layer: 0, positions: [ALL]}", "{layer: 5, positions: [IO]}"),
     ["mlps[1].layer", "listed twice"]),
    ("provenance threshold not a number", _nodes_replace("threshold: 0.02", "threshold: high"),
     ["provenance.threshold", "must be a number"]),
    ("provenance n_prompts not whole", _nodes_replace("n_prompts: 64", "n_prompts: 6.5"),
     ["provenance.n_prompts", "whole number"]),
]


@pytest.mark.parametrize("case, text, expect", NODE_ERRORS, ids=[e[0] for e in NODE_ERRORS])
def test_node_spec_errors_name_file_field_and_fix(tmp_path, case, text, expect):
    path = _write(tmp_path, text, name=f"{case.replace(' ', '_')}.yaml")
    with pytest.raises(CircuitSpecError) as err:
        load_circuit(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    for part in expect:
        assert part in msg, (part, msg)


def test_empty_classes_allowed_only_with_mlp_nodes():
    text = "model: m\ntask: ioi\nclasses: {}\nmlps: [{layer: 1, positions: [END]}]\n"
    assert [str(n) for n in parse_circuit(text).nodes()] == ["mlp1@END"]
    with pytest.raises(CircuitSpecError, match="non-empty"):
        parse_circuit(text.replace("[{layer: 1, positions: [END]}]", "[]"))
