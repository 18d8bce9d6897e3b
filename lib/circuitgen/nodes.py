"""Circuit nodes at the granularity discovery works at: (head, role position) and (MLP, role position).

A head node ``9.9@END`` is head 9 of layer 9 at the END position; an MLP node ``mlp5@S2`` is layer
5's MLP at S2. Roles are those of :data:`circuitgen.ablation.ROLE_NAMES` except BOS: in a causal
model every prompt's BOS position sees only BOS, so its activations are the same on every prompt
and ablating them (by a mean or an ABC counterpart) changes nothing. ``other`` pools every position
that holds no name and is not END.

Every discovery method (path patching, EAP-IG, exact pruning) returns a *node score table* in one
format (:func:`score_frame`): one row per node with ``node, kind, layer, head, role, score``, so
that size curves, overlaps and specs are built the same way whatever found the nodes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from circuitgen.ablation import role_index, role_map
from circuitgen.batch import TaskBatch

# The default task's (IOI's) node roles; another task's are its named positions and "other"
# (circuitgen.task.Task.node_roles, or node_roles(batch)).
NODE_ROLES = ("IO", "S1", "S1+1", "S2", "END", "other")
KINDS = ("head", "mlp")
_LABEL = re.compile(r"^(?:(?P<l>\d+)\.(?P<h>\d+)|mlp(?P<ml>\d+))@(?P<role>[A-Za-z][A-Za-z0-9_+\-]*)$")


def node_roles(batch: TaskBatch) -> tuple[str, ...]:
    """Where a node can sit in this batch's task: its named positions, then ``other``."""
    return (*batch.positions, "other")


@dataclass(frozen=True, order=True)
class Node:
    """One node; ``head is None`` for an MLP node."""

    layer: int
    head: int | None
    role: str

    @property
    def kind(self) -> str:
        return "mlp" if self.head is None else "head"

    @property
    def label(self) -> str:
        where = f"mlp{self.layer}" if self.head is None else f"{self.layer}.{self.head}"
        return f"{where}@{self.role}"

    def __str__(self) -> str:
        return self.label


def parse_node(label: str) -> Node:
    """``"9.9@END"`` or ``"mlp5@S2"`` -> :class:`Node`; a clear error for anything else."""
    m = _LABEL.match(str(label).strip())
    if m is None or m["role"] == "BOS":  # BOS is never a node (see above), in any task
        raise ValueError(f"bad node label {label!r}: write 'LAYER.HEAD@ROLE' (e.g. '9.9@END') or "
                         f"'mlpLAYER@ROLE' (e.g. 'mlp5@S2'), ROLE a position of the task or "
                         f"'other', never BOS (IOI: {', '.join(NODE_ROLES)}).")
    if m["ml"] is not None:
        return Node(int(m["ml"]), None, m["role"])
    return Node(int(m["l"]), int(m["h"]), m["role"])


def head_nodes(n_layers: int, n_heads: int, roles: Sequence[str] = NODE_ROLES) -> list[Node]:
    """Every (head, role) node of a model, layer-major."""
    return [Node(l, h, r) for l in range(n_layers) for h in range(n_heads) for r in roles]


def mlp_nodes(n_layers: int, roles: Sequence[str] = NODE_ROLES) -> list[Node]:
    return [Node(l, None, r) for l in range(n_layers) for r in roles]


def _check(nodes: Iterable[Node], n_layers: int, n_heads: int,
           roles: Sequence[str] = NODE_ROLES) -> list[Node]:
    out = []
    for n in nodes:
        n = parse_node(n) if isinstance(n, str) else n
        if not 0 <= n.layer < n_layers or (n.head is not None and not 0 <= n.head < n_heads):
            raise ValueError(f"node {n.label} is outside a model with {n_layers} layers x {n_heads} heads.")
        if n.role not in roles:
            raise ValueError(f"node {n.label}: role must be one of {tuple(roles)}.")
        out.append(n)
    return out


def head_keep(nodes: Iterable[Node | str], model, batch: TaskBatch) -> torch.Tensor:
    """Keep mask ``[batch, pos, layer, head]`` for the ablation engine: the listed head nodes run
    as in the model, every other (head, position) is ablated; BOS is always kept (see above).
    MLP nodes in ``nodes`` are ignored here (:func:`mlp_keep`)."""
    cfg = model.cfg
    keep = torch.zeros(*batch.tokens.shape, cfg.n_layers, cfg.n_heads, dtype=torch.bool)
    roles = role_map(batch)
    keep[:, 0] = True
    for n in _check(nodes, cfg.n_layers, cfg.n_heads, node_roles(batch)):
        if n.head is not None:
            keep[:, :, n.layer, n.head] |= roles == role_index(batch, n.role)
    return keep


def mlp_keep(nodes: Iterable[Node | str], model, batch: TaskBatch) -> torch.Tensor:
    """Keep mask ``[batch, pos, layer]`` of MLP nodes (BOS always kept)."""
    cfg = model.cfg
    keep = torch.zeros(*batch.tokens.shape, cfg.n_layers, dtype=torch.bool)
    roles = role_map(batch)
    keep[:, 0] = True
    for n in _check(nodes, cfg.n_layers, cfg.n_heads, node_roles(batch)):
        if n.head is None:
            keep[:, :, n.layer] |= roles == role_index(batch, n.role)
    return keep


def score_frame(scores: torch.Tensor, *, kind: str = "head", roles: Sequence[str] = NODE_ROLES,
                **columns) -> pd.DataFrame:
    """Node score table from ``[layer, head, role]`` (heads) or ``[layer, role]`` (MLPs) scores.

    Extra keyword columns (``method=...``, ``discovery_set=...``) are broadcast to every row.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    s = scores.detach().float().cpu()
    if kind == "mlp":
        s = s[:, None, :]
    if s.ndim != 3 or s.shape[-1] != len(roles):
        raise ValueError(f"scores of shape {tuple(scores.shape)} do not match {len(roles)} roles "
                         f"({'[layer, role]' if kind == 'mlp' else '[layer, head, role]'}).")
    rows = []
    for l in range(s.shape[0]):
        for h in range(s.shape[1]):
            for r, role in enumerate(roles):
                n = Node(l, None if kind == "mlp" else h, role)
                rows.append((n.label, n.kind, l, n.head, role, float(s[l, h, r])))
    df = pd.DataFrame(rows, columns=["node", "kind", "layer", "head", "role", "score"])
    df["head"] = df["head"].astype("Int64")
    for k, v in columns.items():
        df[k] = v
    return df


def top_nodes(table: pd.DataFrame, k: int, *, kind: str = "head", by: str = "score",
              absolute: bool = True) -> list[Node]:
    """The ``k`` nodes of ``kind`` with the largest (absolute) score; ties broken by label, so the
    result does not depend on row order."""
    t = table[table["kind"] == kind]
    key = t[by].abs() if absolute else t[by]
    order = pd.DataFrame({"key": key.to_numpy(), "node": t["node"].to_numpy()})
    order = order.sort_values(["key", "node"], ascending=[False, True], kind="mergesort")
    return [parse_node(x) for x in order["node"].head(k)]


def jaccard(a: Iterable[Node], b: Iterable[Node]) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets)."""
    a, b = set(a), set(b)
    return 1.0 if not (a | b) else len(a & b) / len(a | b)


def heads_of(nodes: Iterable[Node]) -> list[tuple[int, int]]:
    """The distinct heads among head nodes."""
    return sorted({(n.layer, n.head) for n in nodes if n.head is not None})


__all__ = ["NODE_ROLES", "node_roles", "Node", "parse_node", "head_nodes", "mlp_nodes", "head_keep",
           "mlp_keep",
           "score_frame", "top_nodes", "jaccard", "heads_of"]
