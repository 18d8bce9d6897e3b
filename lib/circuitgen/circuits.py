"""Circuit specs: which attention heads make up a circuit, in classes, stored as YAML.

A spec names the model it was found in, the task, where it came from, the default ablation, and
its head classes::

    model: gpt2
    task: ioi
    description: ...
    provenance: {citation: ..., method: ..., reported: {logit_diff: 3.56}}
    ablation: {method: mean, reference: abc}   # group_by: omitted = circuitgen.reference's rule
    classes:
      name_mover:
        description: copy the indirect object's name to the output
        heads: ["9.9", "9.6", "10.0"]          # "layer.head", quoted (9.10 unquoted is 9.1!)
        positions: [END]                       # END, S2, S1, S1+1, IO or ALL
        signature: {from: END, to: IO}         # where its attention is expected to go

:func:`load_circuit` validates all of it and raises :class:`CircuitSpecError` naming the file,
the field and the fix. :func:`validate_for_model` checks the heads against a model's shape.
"""

from __future__ import annotations

import difflib
import pathlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from circuitgen.paths import CIRCUITS_DIR

POSITIONS = ("END", "S2", "S1", "S1+1", "IO", "ALL")
SIGNATURE_POSITIONS = ("END", "S2", "S1", "S1+1", "IO")
ABLATION_METHODS = ("mean", "zero", "resample")
ABLATION_REFERENCES = ("abc", "clean")
TOP_FIELDS = ("model", "task", "description", "provenance", "ablation", "classes")
REQUIRED_TOP = ("model", "task", "classes")
CLASS_FIELDS = ("description", "heads", "positions", "signature")
REQUIRED_CLASS = ("heads", "positions")
ABLATION_FIELDS = ("method", "reference", "group_by")
DEFAULT_ABLATION = {"method": "mean", "reference": "abc"}


class CircuitSpecError(ValueError):
    """A circuit spec is malformed or does not fit a model; the message names file, field, fix."""


@dataclass(frozen=True)
class Signature:
    """Expected attention: queries at ``source`` attend to keys at ``target``."""

    source: str
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"from": self.source, "to": self.target}


@dataclass(frozen=True)
class HeadClass:
    name: str
    heads: tuple[tuple[int, int], ...]
    positions: tuple[str, ...]
    signature: Signature | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["heads"] = [format_head(h) for h in self.heads]
        out["positions"] = list(self.positions)
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        return out


@dataclass(frozen=True)
class Ablation:
    method: str = "mean"
    reference: str | None = "abc"
    group_by: tuple[str, ...] = ()  # empty: circuitgen.reference's default rule

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.group_by:
            out["group_by"] = list(self.group_by)
        return out


@dataclass(frozen=True)
class CircuitSpec:
    model: str
    task: str
    classes: dict[str, HeadClass]
    description: str = ""
    provenance: dict = field(default_factory=dict)
    ablation: Ablation = field(default_factory=Ablation)
    source: str = field(default="<memory>", compare=False)

    def heads(self) -> list[tuple[int, int]]:
        """Every (layer, head) in the circuit, sorted."""
        return sorted(h for c in self.classes.values() for h in c.heads)

    def class_of(self, layer: int, head: int) -> str | None:
        for c in self.classes.values():
            if (layer, head) in c.heads:
                return c.name
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "task": self.task}
        if self.description:
            out["description"] = self.description
        if self.provenance:
            out["provenance"] = self.provenance
        out["ablation"] = self.ablation.to_dict()
        out["classes"] = {name: c.to_dict() for name, c in self.classes.items()}
        return out

    def to_yaml(self, path: str | pathlib.Path | None = None) -> str:
        """The spec as YAML (heads quoted, short lists inline); written to ``path`` when given."""
        text = yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        if path is not None:
            path = pathlib.Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return text


# --------------------------------------------------------------------------------------------
# YAML in and out


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a spec must not."""


def _mapping_no_dupes(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in the same mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_dupes)


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper, data):
    flow = all(isinstance(x, (str, int, float)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper, data):
    flow = set(data) == {"from", "to"}
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def format_head(head: tuple[int, int]) -> str:
    return f"{head[0]}.{head[1]}"


def _suggest(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value).upper(), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_head(value: Any, where: str) -> tuple[int, int]:
    """``"9.10"`` -> ``(9, 10)``; anything else raises with the fix."""
    if isinstance(value, float):
        raise CircuitSpecError(
            f"{where}: head {value!r} was read by YAML as a number, which loses the head index "
            f"(9.10 would become 9.1). Quote it: \"{value}\"."
        )
    if isinstance(value, str):
        parts = value.strip().split(".")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    raise CircuitSpecError(
        f"{where}: head {value!r} is not of the form \"layer.head\" with two whole numbers, like "
        "\"9.9\" or \"10.10\". Fix the entry (and quote it)."
    )


def _position(value: Any, where: str, allowed=POSITIONS) -> str:
    if value not in allowed:
        raise CircuitSpecError(
            f"{where}: unknown position {value!r}{_suggest(value, allowed)}; use one of "
            f"{', '.join(allowed)}."
        )
    return value


def _check_fields(d: dict, known, required, where: str) -> None:
    unknown = [k for k in d if k not in known]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise CircuitSpecError(
            f"{where}: unknown field {k!r}{hint}; the known fields are {', '.join(known)}."
        )
    for k in required:
        if k not in d or d[k] is None:
            raise CircuitSpecError(f"{where}: missing field {k!r}; add it (required: {', '.join(required)}).")


def spec_from_dict(data: Any, source: str = "<memory>") -> CircuitSpec:
    """Validate a parsed YAML document and build the spec; ``source`` is named in errors."""
    if not isinstance(data, dict):
        raise CircuitSpecError(
            f"{source}: the top level must be a mapping with fields {', '.join(TOP_FIELDS)}, "
            f"not {type(data).__name__}."
        )
    _check_fields(data, TOP_FIELDS, REQUIRED_TOP, source)
    for k in ("model", "task"):
        if not isinstance(data[k], str) or not data[k].strip():
            raise CircuitSpecError(f"{source}: field {k!r} must be a non-empty string, not {data[k]!r}.")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise CircuitSpecError(f"{source}: field 'description' must be a string.")
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise CircuitSpecError(
            f"{source}: field 'provenance' must be a mapping (citation:, method:, reported: ...), "
            f"not {type(provenance).__name__}."
        )
    ablation = _ablation(data.get("ablation"), f"{source}: ablation")

    classes_raw = data["classes"]
    if not isinstance(classes_raw, dict) or not classes_raw:
        raise CircuitSpecError(
            f"{source}: field 'classes' must be a non-empty mapping from class name to "
            "{heads: [...], positions: [...], signature: {from: ..., to: ...}}."
        )
    classes: dict[str, HeadClass] = {}
    owner: dict[tuple[int, int], str] = {}
    for cname, body in classes_raw.items():
        where = f"{source}: classes.{cname}"
        if not isinstance(body, dict):
            raise CircuitSpecError(f"{where}: a class must be a mapping with heads and positions.")
        _check_fields(body, CLASS_FIELDS, REQUIRED_CLASS, where)
        heads_raw = body["heads"]
        if not isinstance(heads_raw, list) or not heads_raw:
            raise CircuitSpecError(f"{where}.heads: give a non-empty list like [\"9.9\", \"9.6\"].")
        heads = []
        for h in heads_raw:
            head = parse_head(h, f"{where}.heads")
            if head in owner:
                other = owner[head]
                raise CircuitSpecError(
                    f"{where}.heads: head {format_head(head)} is "
                    + ("listed twice in this class" if other == cname else f"already in class {other!r}")
                    + "; a head belongs to one class. Remove one of the entries."
                )
            owner[head] = cname
            heads.append(head)
        pos_raw = body["positions"]
        if isinstance(pos_raw, str):
            pos_raw = [pos_raw]
        if not isinstance(pos_raw, list) or not pos_raw:
            raise CircuitSpecError(f"{where}.positions: give a non-empty list like [END].")
        positions = tuple(_position(p, f"{where}.positions") for p in pos_raw)
        if len(set(positions)) != len(positions):
            raise CircuitSpecError(f"{where}.positions: {list(positions)} repeats a position; list each once.")
        if "ALL" in positions and len(positions) > 1:
            raise CircuitSpecError(f"{where}.positions: ALL already covers every position; use [ALL] alone.")
        sig = body.get("signature")
        signature = None
        if sig is not None:
            if not isinstance(sig, dict) or set(sig) != {"from", "to"}:
                raise CircuitSpecError(
                    f"{where}.signature: must be a mapping with exactly 'from' and 'to', like "
                    f"{{from: END, to: IO}}; got {sig!r}."
                )
            signature = Signature(
                _position(sig["from"], f"{where}.signature.from", SIGNATURE_POSITIONS),
                _position(sig["to"], f"{where}.signature.to", SIGNATURE_POSITIONS),
            )
        cdesc = body.get("description") or ""
        classes[str(cname)] = HeadClass(str(cname), tuple(heads), positions, signature, str(cdesc))
    return CircuitSpec(
        model=data["model"], task=data["task"], classes=classes, description=description,
        provenance=provenance, ablation=ablation, source=source,
    )


def _ablation(raw: Any, where: str) -> Ablation:
    if raw is None:
        return Ablation()
    if not isinstance(raw, dict):
        raise CircuitSpecError(
            f"{where}: must be a mapping like {{method: mean, reference: abc, group_by: [template]}}."
        )
    _check_fields(raw, ABLATION_FIELDS, ("method",), where)
    method = raw["method"]
    if method not in ABLATION_METHODS:
        raise CircuitSpecError(
            f"{where}.method: unknown method {method!r}; use one of {', '.join(ABLATION_METHODS)}."
        )
    reference = raw.get("reference", None if method == "zero" else "abc")
    if method == "zero":
        if reference is not None:
            raise CircuitSpecError(f"{where}.reference: zero ablation has no reference distribution; remove it.")
    elif reference not in ABLATION_REFERENCES:
        raise CircuitSpecError(
            f"{where}.reference: unknown reference {reference!r}; use one of "
            f"{', '.join(ABLATION_REFERENCES)} (abc: the ABC counterparts, as in Wang et al.)."
        )
    group_by = raw.get("group_by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise CircuitSpecError(f"{where}.group_by: give a list of prompt-set columns, like [template, order] (or omit it for the default rule).")
    return Ablation(method=method, reference=reference, group_by=tuple(group_by))


def parse_circuit(text: str, source: str = "<string>") -> CircuitSpec:
    """A spec from YAML text; ``source`` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise CircuitSpecError(f"{source}: not valid YAML: {err}. Fix the syntax at the line shown.") from err
    return spec_from_dict(data, source)


def circuit_path(name_or_path: str | pathlib.Path) -> pathlib.Path:
    """A bare name (``gpt2-ioi``) means ``data/circuits/<name>.yaml``."""
    p = pathlib.Path(name_or_path)
    if len(p.parts) == 1 and not p.exists():
        p = CIRCUITS_DIR / (p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml")
    return p


def load_circuit(name_or_path: str | pathlib.Path) -> CircuitSpec:
    """Load and validate a circuit spec from a path or a name in ``data/circuits/``."""
    path = circuit_path(name_or_path)
    if not path.exists():
        known = sorted(q.stem for q in CIRCUITS_DIR.glob("*.yaml"))
        raise CircuitSpecError(
            f"{path}: no such circuit spec. Give a path, or one of the names in {CIRCUITS_DIR}: {known}."
        )
    return parse_circuit(path.read_text(), source=str(path))


def found_circuit(model_name: str, circuit: str | pathlib.Path | None = None,
                  output_dir: str | pathlib.Path | None = None) -> CircuitSpec:
    """The circuit a notebook scores: ``circuit`` if given, else the one week 6 wrote for
    ``model_name`` (``data/circuits/`` for the reference run, ``output_dir`` for any other run).
    Prints which spec was loaded; a missing week-6 spec says how to make it."""
    if circuit is None:
        folder = CIRCUITS_DIR if output_dir is None else pathlib.Path(output_dir)
        path = folder / f"{model_name.replace('/', '--')}-ioi.yaml"
        if not path.exists():
            raise CircuitSpecError(
                f"{path}: no circuit for model {model_name!r} here. Week 6 writes it: run "
                f"notebooks/w06-ioi-circuit with MODEL={model_name!r} (and the same OUTPUT_DIR) "
                "first, or pass CIRCUIT=<a spec path or a name in data/circuits/>.")
        circuit = path
    spec = load_circuit(circuit)
    print(f"circuit: {pathlib.Path(spec.source).name}, {len(spec.heads())} heads in "
          f"{len(spec.classes)} classes: {', '.join(spec.classes)}")
    return spec


def validate_for_model(spec: CircuitSpec, n_layers: int, n_heads: int, model_name: str | None = None) -> CircuitSpec:
    """Check every head exists in a model with ``n_layers`` x ``n_heads``; returns the spec."""
    for c in spec.classes.values():
        for layer, head in c.heads:
            if not (0 <= layer < n_layers and 0 <= head < n_heads):
                what = f"layer {layer}" if layer >= n_layers else f"head index {head}"
                target = f"model {model_name!r}" if model_name else "the model"
                raise CircuitSpecError(
                    f"{spec.source}: classes.{c.name}.heads: head {layer}.{head} does not exist in "
                    f"{target}, which has {n_layers} layers x {n_heads} heads ({what} is out of "
                    f"range). This spec was found in {spec.model!r}: score it on that model, or "
                    "write a spec for this one."
                )
    return spec


__all__ = [
    "POSITIONS", "SIGNATURE_POSITIONS", "CircuitSpecError", "Signature", "HeadClass", "Ablation",
    "CircuitSpec", "parse_head", "format_head", "spec_from_dict", "parse_circuit", "load_circuit",
    "circuit_path", "found_circuit", "validate_for_model",
]
