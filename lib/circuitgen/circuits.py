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
        positions: [END]                       # END, S2, S1, S1+1, IO, other or ALL
        signature: {from: END, to: IO}         # where its attention is expected to go
      mixed:
        heads: ["5.5", {head: "6.9", positions: [S2, END]}]   # a head with its own positions
        positions: [S2]                        # the others'; optional if every head has its own
    mlps:                                      # optional; see below
      - {layer: 0, positions: [ALL]}
      - {layer: 5, positions: [END, S2]}

Positions are roles (:data:`circuitgen.nodes.NODE_ROLES`): ``other`` is every position that holds
no name and is not END or BOS; ``ALL`` is every position, BOS included (the engine keeps a head or
MLP listed at ALL at BOS too; listed at roles, its BOS slot is ablated like any unlisted one).

``mlps`` absent: every MLP runs everywhere (the circuit is a set of heads; older specs). Present
(``[]`` included): the listed MLP nodes run and every other (MLP layer, position) is ablated as
heads are. :meth:`CircuitSpec.nodes` lists the circuit as :class:`circuitgen.nodes.Node` s and
:func:`spec_from_nodes` builds a spec from such a list (round-tripping).

``provenance`` is a free mapping; for a *discovered* circuit record at least
:data:`RECOMMENDED_PROVENANCE` (``method``, ``threshold``, ``discovery_set``, ``date``,
``n_prompts``). When present, these keys are type-checked.

:func:`load_circuit` validates all of it and raises :class:`CircuitSpecError` naming the file,
the field and the fix. :func:`validate_for_model` checks heads and MLP layers against a model.
"""

from __future__ import annotations

import datetime
import difflib
import pathlib
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from circuitgen.nodes import Node, parse_node
from circuitgen.paths import CIRCUITS_DIR, result_path
from circuitgen.task import DEFAULT_TASK, UnknownTaskError, get_task

# The default task's (IOI's) vocabulary; a spec of another task uses that task's named positions
# (task_vocabulary), so the names below are what an IOI spec may say.
POSITIONS = ("END", "S2", "S1", "S1+1", "IO", "other", "ALL")
ROLES = ("IO", "S1", "S1+1", "S2", "END", "other")  # = circuitgen.nodes.NODE_ROLES (ALL expands to these)
SIGNATURE_POSITIONS = ("END", "S2", "S1", "S1+1", "IO")


@dataclass(frozen=True)
class Vocabulary:
    """What a spec of one task may name: positions (with other and ALL), node roles, and the
    positions an attention signature may join."""

    positions: tuple[str, ...]
    roles: tuple[str, ...]
    signature: tuple[str, ...]


def task_vocabulary(task: str) -> Vocabulary:
    """The position names of the task a spec is for (a registered task, :mod:`circuitgen.task`)."""
    if task == DEFAULT_TASK:
        return Vocabulary(POSITIONS, ROLES, SIGNATURE_POSITIONS)
    try:
        t = get_task(task)
    except UnknownTaskError as err:
        raise CircuitSpecError(f"task: {err}") from None
    return Vocabulary((*reversed(t.positions), "other", "ALL"), t.node_roles, tuple(reversed(t.positions)))
ABLATION_METHODS = ("mean", "zero", "resample")
ABLATION_REFERENCES = ("abc", "clean")
TOP_FIELDS = ("model", "task", "description", "provenance", "ablation", "classes", "mlps")
REQUIRED_TOP = ("model", "task", "classes")
CLASS_FIELDS = ("description", "heads", "positions", "signature")
REQUIRED_CLASS = ("heads",)
HEAD_FIELDS = ("head", "positions")
MLP_FIELDS = ("layer", "positions")
# Provenance keys a discovered circuit should record, with the types they must have when present.
RECOMMENDED_PROVENANCE = {
    "method": (str,), "threshold": (int, float), "discovery_set": (str,),
    "date": (str, datetime.date), "n_prompts": (int,),
}
ABLATION_FIELDS = ("method", "reference", "group_by", "min_per_group", "seed")
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
    """A class of heads. ``positions``: where its heads act (empty when every head has its own);
    ``head_positions``: ``((head, positions), ...)`` for heads written ``{head:, positions:}``."""

    name: str
    heads: tuple[tuple[int, int], ...]
    positions: tuple[str, ...]
    signature: Signature | None = None
    description: str = ""
    head_positions: tuple[tuple[tuple[int, int], tuple[str, ...]], ...] = ()

    def positions_of(self, head: tuple[int, int]) -> tuple[str, ...]:
        """The positions this head is kept at: its own if it has them, else the class's."""
        for h, pos in self.head_positions:
            if h == tuple(head):
                return pos
        return self.positions

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        own = dict(self.head_positions)
        out["heads"] = [{"head": format_head(h), "positions": list(own[h])} if h in own
                        else format_head(h) for h in self.heads]
        if self.positions:
            out["positions"] = list(self.positions)
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        return out


@dataclass(frozen=True)
class MLPEntry:
    """An MLP layer of the circuit and the positions it runs at."""

    layer: int
    positions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "positions": list(self.positions)}


MIN_PER_GROUP = 20  # = circuitgen.reference.MIN_PER_GROUP (kept here so specs load without torch)
REFERENCE_SEED = 20261126  # = circuitgen.reference.REFERENCE_SEED


@dataclass(frozen=True)
class Ablation:
    """Which ablation, over what reference: the one type for a spec's ``ablation:`` block, the
    scorer (``scorer.Ablation`` is this class) and the command line.

    ``method``: mean, resample or zero. ``reference``: the distribution, ``abc`` (ABC prompts,
    Wang et al.) or ``clean`` (named by specs; the scorer implements ``abc``); None for zero.
    For ``mean``: ABC prompts grouped by ``group_by`` (None: the rule of
    :mod:`circuitgen.reference`; ``()``: each prompt its own group), at least ``min_per_group``
    per group, made from ``reference_prompts`` (a prompt table) when given, else from the fixed
    generated set (canonical prompts) or the scored prompts' counterparts. ``legacy``: see
    :meth:`legacy_template_only`. A spec's YAML holds method, reference, group_by and, when not
    the defaults, min_per_group and seed; ``reference_prompts`` and ``legacy`` are for code only
    (and ``reference_prompts`` is left out of ``==``).

    For compatibility, ``reference=<DataFrame>`` is read as ``reference_prompts``.
    """

    method: str = "mean"
    reference: Any = "abc"
    group_by: tuple[str, ...] | None = None
    min_per_group: int = MIN_PER_GROUP
    seed: int = REFERENCE_SEED
    legacy: bool = False
    reference_prompts: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.reference is not None and not isinstance(self.reference, str):
            if self.reference_prompts is not None:
                raise ValueError("give the reference prompt table once: reference_prompts=...")
            object.__setattr__(self, "reference_prompts", self.reference)
            object.__setattr__(self, "reference", "abc")
        if self.method == "zero":
            object.__setattr__(self, "reference", None)
        if isinstance(self.group_by, list):
            object.__setattr__(self, "group_by", tuple(self.group_by))

    @classmethod
    def legacy_template_only(cls) -> Ablation:
        """The scorer's behaviour before 2026-11-26, kept to show the difference: each scored
        prompt's own single ABC counterpart, grouped by template only (ABBA and BABA pooled)."""
        return cls("mean", group_by=("template",), min_per_group=1, legacy=True)

    def label(self) -> str:
        if self.method != "mean":
            return self.method
        return "mean (legacy: template only, own counterparts)" if self.legacy else "mean"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.group_by:
            out["group_by"] = list(self.group_by)
        if self.min_per_group != MIN_PER_GROUP:
            out["min_per_group"] = self.min_per_group
        if self.seed != REFERENCE_SEED:
            out["seed"] = self.seed
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
    mlps: tuple[MLPEntry, ...] | None = None  # None: every MLP runs everywhere (no ``mlps:`` key)

    def heads(self) -> list[tuple[int, int]]:
        """Every (layer, head) in the circuit, sorted."""
        return sorted(h for c in self.classes.values() for h in c.heads)

    def class_of(self, layer: int, head: int) -> str | None:
        for c in self.classes.values():
            if (layer, head) in c.heads:
                return c.name
        return None

    def nodes(self) -> list:
        """The circuit as :class:`circuitgen.nodes.Node` s, sorted by :func:`node_key`: each head
        at each of its positions, each listed MLP at each of its positions; ALL expands to every
        role of :data:`ROLES` (BOS is not a node)."""

        roles = task_vocabulary(self.task).roles
        out = set()
        for cls in self.classes.values():
            for head in cls.heads:
                for role in _expand(cls.positions_of(head), roles):
                    out.add(Node(head[0], head[1], role))
        for m in self.mlps or ():
            for role in _expand(m.positions, roles):
                out.add(Node(m.layer, None, role))
        return sorted(out, key=lambda n: node_key(n, roles))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "task": self.task}
        if self.description:
            out["description"] = self.description
        if self.provenance:
            out["provenance"] = self.provenance
        out["ablation"] = self.ablation.to_dict()
        out["classes"] = {name: c.to_dict() for name, c in self.classes.items()}
        if self.mlps is not None:
            out["mlps"] = [m.to_dict() for m in self.mlps]
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
    flow = set(data) in ({"from", "to"}, set(HEAD_FIELDS), set(MLP_FIELDS))
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


def _positions(raw: Any, where: str, allowed: tuple[str, ...] = POSITIONS) -> tuple[str, ...]:
    """A validated list of positions (a bare string is a list of one)."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise CircuitSpecError(f"{where}: give a non-empty list like [END] or [S2, END].")
    positions = tuple(_position(p, where, allowed) for p in raw)
    if len(set(positions)) != len(positions):
        raise CircuitSpecError(f"{where}: {list(positions)} repeats a position; list each once.")
    if "ALL" in positions and len(positions) > 1:
        raise CircuitSpecError(f"{where}: ALL already covers every position; use [ALL] alone.")
    return positions


def _expand(positions: Iterable[str], roles: tuple[str, ...] = ROLES) -> tuple[str, ...]:
    """Positions as node roles: ALL is every role of the task (:data:`ROLES` for IOI)."""
    return roles if "ALL" in positions else tuple(positions)


def node_key(node, roles: tuple[str, ...] = ROLES) -> tuple:
    """Sort key of nodes: layer, then the layer's heads (by index), then its MLP; roles in the
    task's order (:data:`ROLES` for IOI)."""
    return (node.layer, node.head is None, node.head or 0, roles.index(node.role))


def _head_entry(raw: Any, where: str, allowed: tuple[str, ...] = POSITIONS
                ) -> tuple[tuple[int, int], tuple[str, ...] | None]:
    """``"9.9"`` -> (head, None); ``{head: "9.9", positions: [...]}`` -> (head, positions)."""
    if isinstance(raw, dict):
        _check_fields(raw, HEAD_FIELDS, HEAD_FIELDS, f"{where} entry {raw!r}")
        head = parse_head(raw["head"], where)
        return head, _positions(raw["positions"], f"{where}: {format_head(head)}.positions", allowed)
    return parse_head(raw, where), None


def _mlps(raw: Any, where: str, allowed: tuple[str, ...] = POSITIONS) -> tuple[MLPEntry, ...]:
    if not isinstance(raw, list):
        raise CircuitSpecError(
            f"{where}: give a list of {{layer: 5, positions: [END]}} entries ([] ablates every MLP; "
            f"omit the field to keep every MLP running), not {raw!r}.")
    out, seen = [], set()
    for i, entry in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise CircuitSpecError(f"{here}: an MLP entry must be a mapping like "
                                   f"{{layer: 5, positions: [END, S2]}}, not {entry!r}.")
        _check_fields(entry, MLP_FIELDS, MLP_FIELDS, here)
        layer = entry["layer"]
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise CircuitSpecError(f"{here}.layer: {layer!r} is not a layer index; give a whole "
                                   "number >= 0, unquoted (layer: 5).")
        if layer in seen:
            raise CircuitSpecError(f"{here}.layer: MLP layer {layer} is listed twice; merge the "
                                   "entries into one with all its positions.")
        seen.add(layer)
        out.append(MLPEntry(layer, _positions(entry["positions"], f"{here}.positions", allowed)))
    return tuple(out)


def check_provenance(provenance: Mapping, where: str) -> None:
    """Type-check the :data:`RECOMMENDED_PROVENANCE` keys that are present (others are free)."""
    for key, types in RECOMMENDED_PROVENANCE.items():
        value = provenance.get(key)
        if key in provenance and (isinstance(value, bool) or not isinstance(value, types)):
            kinds = {(str,): "a string", (int, float): "a number", (int,): "a whole number",
                     (str, datetime.date): "a date (2026-12-01) or a string"}[types]
            raise CircuitSpecError(f"{where}.{key}: must be {kinds}, not {value!r}; fix the value "
                                   f"(recommended keys: {', '.join(RECOMMENDED_PROVENANCE)}).")


def missing_provenance(provenance: Mapping) -> list[str]:
    """The :data:`RECOMMENDED_PROVENANCE` keys a discovered circuit's provenance lacks."""
    return [k for k in RECOMMENDED_PROVENANCE if provenance.get(k) is None]


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
    check_provenance(provenance, f"{source}: provenance")
    ablation = _ablation(data.get("ablation"), f"{source}: ablation")
    vocab = task_vocabulary(data["task"])
    mlps = _mlps(data["mlps"], f"{source}: mlps", vocab.positions) if "mlps" in data else None

    classes_raw = data["classes"]
    if not isinstance(classes_raw, dict) or (not classes_raw and not mlps):
        raise CircuitSpecError(
            f"{source}: field 'classes' must be a non-empty mapping from class name to "
            "{heads: [...], positions: [...], signature: {from: ..., to: ...}} (it may be {} only "
            "when mlps lists MLP nodes)."
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
            raise CircuitSpecError(f"{where}.heads: give a non-empty list like [\"9.9\", \"9.6\"] "
                                   "(an entry may be {head: \"9.9\", positions: [END]}).")
        positions = ()
        if body.get("positions") is not None:
            positions = _positions(body["positions"], f"{where}.positions", vocab.positions)
        heads, own = [], []
        for h in heads_raw:
            head, pos = _head_entry(h, f"{where}.heads", vocab.positions)
            if head in owner:
                other = owner[head]
                raise CircuitSpecError(
                    f"{where}.heads: head {format_head(head)} is "
                    + ("listed twice in this class" if other == cname else f"already in class {other!r}")
                    + "; a head belongs to one class. Remove one of the entries."
                )
            owner[head] = cname
            heads.append(head)
            if pos is not None:
                own.append((head, pos))
            elif not positions:
                raise CircuitSpecError(
                    f"{where}: missing field 'positions' (head {format_head(head)} has no positions "
                    "of its own); add positions: [...] to the class, or write the head as "
                    f"{{head: \"{format_head(head)}\", positions: [END]}}.")
        sig = body.get("signature")
        signature = None
        if sig is not None:
            if not isinstance(sig, dict) or set(sig) != {"from", "to"}:
                raise CircuitSpecError(
                    f"{where}.signature: must be a mapping with exactly 'from' and 'to', like "
                    f"{{from: END, to: IO}}; got {sig!r}."
                )
            signature = Signature(
                _position(sig["from"], f"{where}.signature.from", vocab.signature),
                _position(sig["to"], f"{where}.signature.to", vocab.signature),
            )
        cdesc = body.get("description") or ""
        classes[str(cname)] = HeadClass(str(cname), tuple(heads), positions, signature, str(cdesc),
                                        tuple(own))
    return CircuitSpec(
        model=data["model"], task=data["task"], classes=classes, description=description,
        provenance=provenance, ablation=ablation, source=source, mlps=mlps,
    )


def spec_from_nodes(nodes: Iterable, model, task: str = DEFAULT_TASK, *,
                    classes: Mapping[str, Iterable] | None = None, provenance: Mapping | None = None,
                    ablation: Ablation | Mapping | None = None, description: str = "",
                    mlps: bool | None = None, source: str = "<nodes>") -> CircuitSpec:
    """A spec whose :meth:`~CircuitSpec.nodes` are exactly ``nodes`` (:class:`circuitgen.nodes.Node`
    or labels like ``"9.9@END"``, ``"mlp5@S2"``).

    ``model``: a loaded model (nodes are checked against its shape) or a model name. ``classes``:
    None puts every head in one class ``nodes``; a mapping class name -> heads (``(9, 9)`` or
    ``"9.9"``, e.g. from a classifier) assigns them, and heads it leaves out go to a class
    ``unclassified``. In a class, the most common position set becomes the class's ``positions``
    and the other heads get their own. ``mlps``: None writes an ``mlps:`` list when there are MLP
    nodes (and none, so every MLP runs, when there are not); True always writes one (``[]``
    ablating every MLP); False refuses MLP nodes. ``provenance`` should hold
    :data:`RECOMMENDED_PROVENANCE` (a warning names the missing keys).
    """

    roles = task_vocabulary(task).roles
    nodes = {parse_node(n) if isinstance(n, str) else n for n in nodes}
    for n in nodes:
        if n.role not in roles:
            raise CircuitSpecError(f"{source}: node {n.label}: role must be one of {roles}.")
    nodes = sorted(nodes, key=lambda n: node_key(n, roles))
    if isinstance(model, str):
        model_name = model
    else:
        model_name = model.circuitgen.model
        cfg = model.cfg
        for n in nodes:
            if not 0 <= n.layer < cfg.n_layers or (n.head is not None and not 0 <= n.head < cfg.n_heads):
                raise CircuitSpecError(f"{source}: node {n.label} does not exist in {model_name!r} "
                                       f"({cfg.n_layers} layers x {cfg.n_heads} heads).")
    by_head: dict[tuple[int, int], list[str]] = {}
    by_mlp: dict[int, list[str]] = {}
    for n in nodes:
        if n.head is None:
            by_mlp.setdefault(n.layer, []).append(n.role)
        else:
            by_head.setdefault((n.layer, n.head), []).append(n.role)
    if mlps is False and by_mlp:
        raise CircuitSpecError(f"{source}: mlps=False but the nodes include MLP nodes "
                               f"{[f'mlp{layer}' for layer in by_mlp]}; drop them or allow mlps.")

    if classes is None:
        groups = {"nodes": sorted(by_head)} if by_head else {}
    else:
        groups, seen = {}, {}
        for cname, members in classes.items():
            heads = []
            for h in members:
                head = parse_head(h, f"{source}: classes.{cname}") if isinstance(h, str) else tuple(h)
                if head not in by_head:
                    raise CircuitSpecError(f"{source}: classes.{cname}: head {format_head(head)} has "
                                           "no node among the given nodes; remove it from the class.")
                if head in seen:
                    raise CircuitSpecError(f"{source}: head {format_head(head)} is in classes "
                                           f"{seen[head]!r} and {cname!r}; give it one class.")
                seen[head] = cname
                heads.append(head)
            if heads:
                groups[str(cname)] = sorted(heads)
        rest = sorted(h for h in by_head if h not in seen)
        if rest:
            groups["unclassified"] = rest
    head_classes = {}
    for cname, heads in groups.items():
        sets = [tuple(by_head[h]) for h in heads]
        common = Counter(sets).most_common()
        top = max(c for _, c in common)
        positions = next(s for s in sets if Counter(sets)[s] == top)  # first of the most common
        own = tuple((h, p) for h, p in zip(heads, sets) if p != positions)
        head_classes[cname] = HeadClass(cname, tuple(heads), positions, None,
                                        "" if classes is not None else "discovered nodes", own)
    mlp_entries = None
    if by_mlp or mlps:
        mlp_entries = tuple(MLPEntry(layer, tuple(roles)) for layer, roles in sorted(by_mlp.items()))
    provenance = dict(provenance or {})
    missing = missing_provenance(provenance)
    if missing:
        warnings.warn(f"{source}: the provenance lacks {missing}; a discovered circuit should record "
                      f"{list(RECOMMENDED_PROVENANCE)}.", stacklevel=2)
    if isinstance(ablation, Mapping):
        ablation = _ablation(dict(ablation), f"{source}: ablation")
    spec = CircuitSpec(model=model_name, task=task, classes=head_classes, description=description,
                       provenance=provenance, ablation=ablation or Ablation(), source=source,
                       mlps=mlp_entries)
    return spec_from_dict(spec.to_dict(), source)  # every rule of a written spec holds


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
            raise CircuitSpecError(f"{where}.reference: zero ablation has no reference distribution; "
                                   "remove it.")
    elif reference not in ABLATION_REFERENCES:
        raise CircuitSpecError(
            f"{where}.reference: unknown reference {reference!r}; use one of "
            f"{', '.join(ABLATION_REFERENCES)} (abc: the ABC counterparts, as in Wang et al.)."
        )
    group_by = raw.get("group_by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise CircuitSpecError(f"{where}.group_by: give a list of prompt-set columns, like "
                               "[template, order] (or omit it for the default rule).")
    extra = {}
    for key, low in (("min_per_group", 1), ("seed", 0)):
        if key in raw:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise CircuitSpecError(f"{where}.{key}: give a whole number >= {low}, not {value!r} "
                                       "(or omit it for the default).")
            extra[key] = value
    return Ablation(method=method, reference=reference, group_by=tuple(group_by) or None, **extra)


def parse_circuit(text: str, source: str = "<string>") -> CircuitSpec:
    """A spec from YAML text; ``source`` names it in error messages."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise CircuitSpecError(f"{source}: not valid YAML: {err}. Fix the syntax at the line shown.") from err
    return spec_from_dict(data, source)


def circuit_path(name_or_path: str | pathlib.Path) -> pathlib.Path:
    """A path as given (relative to the working directory); a bare name (``gpt2-ioi``) that is no
    file there means ``<name>.yaml`` among the shipped specs (:data:`circuitgen.paths.CIRCUITS_DIR`:
    the checkout's ``data/circuits/``, or the package's copy when installed)."""
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


def spec_file(model_name: str, method: str | None = None,
              output_dir: str | pathlib.Path | None = None) -> pathlib.Path:
    """Where a found circuit lives: ``<model>-ioi.yaml`` (week 6's path-patched circuit) or
    ``<model>-ioi-<method>.yaml`` (week 13's chosen circuit of a discovery method), under
    ``data/circuits/`` for the reference run and ``output_dir`` for any other. One name for the
    writers and the readers."""
    folder = CIRCUITS_DIR if output_dir is None else pathlib.Path(output_dir)
    return result_path("circuits", model_name, "ioi", *([] if method is None else [method]),
                       folder=folder, suffix=".yaml")


def found_circuit(model_name: str, circuit: str | pathlib.Path | None = None,
                  output_dir: str | pathlib.Path | None = None) -> CircuitSpec:
    """The circuit a notebook scores: ``circuit`` if given, else the one week 6 wrote for
    ``model_name`` (``data/circuits/`` for the reference run, ``output_dir`` for any other run).
    Prints which spec was loaded; a missing week-6 spec says how to make it."""
    if circuit is None:
        path = spec_file(model_name, None, output_dir)
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


def validate_for_model(spec: CircuitSpec, n_layers: int, n_heads: int,
                       model_name: str | None = None) -> CircuitSpec:
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
    for m in spec.mlps or ():
        if not 0 <= m.layer < n_layers:
            target = f"model {model_name!r}" if model_name else "the model"
            raise CircuitSpecError(
                f"{spec.source}: mlps: MLP layer {m.layer} does not exist in {target}, which has "
                f"{n_layers} layers. This spec was found in {spec.model!r}: score it on that model, "
                "or write a spec for this one.")
    return spec


__all__ = [
    "POSITIONS", "ROLES", "SIGNATURE_POSITIONS", "RECOMMENDED_PROVENANCE", "CircuitSpecError",
    "Signature", "HeadClass", "MLPEntry", "Ablation", "CircuitSpec", "parse_head", "format_head",
    "spec_from_dict", "spec_from_nodes", "node_key", "check_provenance", "missing_provenance",
    "parse_circuit", "load_circuit", "circuit_path", "spec_file", "found_circuit", "validate_for_model",
]
