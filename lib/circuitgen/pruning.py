"""Exact pruning of (head, role position) nodes, ACDC-style (Conmy et al. 2023).

:func:`prune` starts from the full model (every head node kept; MLPs always run; BOS is never a
node, see :mod:`circuitgen.nodes`) and visits the candidate head nodes once each, in *reverse
topological order*. A node is removed when removing it, on top of the removals decided so far,
changes the metric by at most ``τ``::

    |m(current − node) − m(current)| <= τ,   τ = threshold × |m(full model)|

**The rule.** This is ACDC's greedy rule with its absolute-value variant (an effect that *raises*
the metric counts as much as one that lowers it), applied to nodes instead of edges. Two
conventions are ours and are stated here: ``τ`` is *relative* to the full model's mean logit
difference (``threshold=0.05`` allows a step of 5 % of it), so that a threshold means the same on
prompt sets whose logit differences differ; and the comparison is ``<=`` (ACDC writes ``<``), so
that ``threshold=0`` removes exactly the nodes whose removal changes nothing at all.

**The metric** is the mean IO − S logit difference at END over the prompts: the task metric the
whole project scores circuits with (faithfulness is a ratio of it). ACDC's IOI runs mostly used
the KL divergence to the full model's output, which also constrains the logits of other tokens;
here the circuit is meant to do the IOI task as the scorer measures it, so the pruning metric is
the scorer's metric. (A caveat ACDC also notes: logit difference can be kept while the rest of the
distribution drifts; the circuits found are only claimed to keep the logit difference.)

**Visit order.** Layers last to first; within a layer the nodes of one layer do not depend on each
other (they all read the residual before the layer), and the fixed order is *the exact reverse of*
:func:`circuitgen.nodes.head_nodes`: heads from the highest index down, and for each head the roles
in the order ``other, END, S2, S1+1, S1, IO``. The score table records each node's ``order``.

**Ablation** of removed nodes: ``"mean"`` replaces their ``z`` by the project's mean-ablation
reference (:func:`circuitgen.scorer.mean_reference`, per group and role: the scorer's own);
``"resample"`` by the ``z`` of each prompt's own ABC counterpart (:func:`circuitgen.ioi.make_abc`).

**Speed, exactly.** Removals happen top-down, so when a node of layer ``L`` is tested every change
so far is at layers ``>= L``, and the residual before layer ``L`` is the full model's. It is
computed once (:func:`circuitgen.resume.resid_pre`) and each test runs only blocks ``L..end``
(:func:`circuitgen.resume.logit_diff_from`). ``m(current)`` is recomputed on the same path when
the visit enters a new layer (one extra partial forward per layer), so that every difference
``m(current − node) − m(current)`` is taken between two forwards of one code path. Where the
resume module is absent (or ``resume=False``) every test is a full forward of the ablation engine
(:func:`circuitgen.ablation.run_variants`); both paths make the same decisions (tested).

**Two-stage search** (``stage="heads-then-roles"``, *not* exact node-level ACDC): the greedy rule
first runs over whole heads (all candidate roles of a head removed together; a head's score is
the effect of removing all of them), then, from that circuit, over the roles of the heads that
survived, in the same visit order. It is a coarser search: a head whose roles each matter little
but together matter is kept whole in stage one and then pruned role by role; a head that matters
at one role only by a little less than τ in total is removed whole and its roles are never tried.
It needs about ``n_heads_total + 6 × surviving heads`` tests instead of ``6 × n_heads_total``.

**The score table** (:attr:`PruneResult.table`) has one row per head node of the model (the
:func:`circuitgen.nodes.score_frame` columns ``node, kind, layer, head, role, score``) plus
``removed``, ``order`` (the visit index; ``<NA>`` for nodes that were not candidates, which are
always kept), ``effect`` (the signed ``m(current − node) − m(current)``), and ``stage``
(``"nodes"``, or ``"heads"``/``"roles"`` in the two-stage search). ``score = |effect|`` *at the time
the node was tested*, in the circuit as it then stood. What a ranking by score means: the nodes
this run kept are exactly those with ``score > τ``; ranking all nodes by score and taking the top
``k`` (:func:`circuitgen.nodes.top_nodes`) orders them by how much the metric moved when each was
tried, which is the order in which they would survive a *higher* threshold only approximately,
because a different τ changes the circuit in which later nodes are tried (the greedy search is
path-dependent). For a size curve the top-``k`` circuits are a one-run stand-in for a τ sweep;
the exact ACDC circuit at another τ needs another :func:`prune`. In the two-stage search the rows
of a head removed whole carry the head's score (every role the same), so ranking puts its roles
together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from tqdm.auto import tqdm

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import nodes as N
from circuitgen import resume, scorer
from circuitgen.ioi import make_abc

STAGES = ("nodes", "heads-then-roles")
ABLATIONS = ("mean", "resample")
# ROLE_NAMES index (BOS, other, IO, S1, S1+1, S2, END) -> NODE_ROLES index; BOS has none.
_ROLE_TO_NODE = [-1] + [N.NODE_ROLES.index(r) for r in A.ROLE_NAMES[1:]]


@dataclass
class PruneResult:
    """What :func:`prune` found; see the module docstring for the table's columns."""

    kept: list[N.Node]
    table: pd.DataFrame
    threshold: float
    tau: float
    full_metric: float
    final_metric: float
    n_tests: int
    n_forwards: int
    seconds: float
    ablation: str
    stage: str
    resumed: bool
    details: dict = field(default_factory=dict)

    @property
    def removed(self) -> list[N.Node]:
        return [N.parse_node(x) for x in self.table.loc[self.table["removed"], "node"]]

    def describe(self) -> dict:
        return {"method": "pruning (ACDC-style, greedy, reverse topological)", "stage": self.stage,
                "threshold": self.threshold, "threshold_is": "relative to |full mean logit diff|",
                "tau": self.tau, "metric": "mean logit difference (IO - S at END)",
                "ablation": self.ablation, "full_metric": self.full_metric,
                "final_metric": self.final_metric, "n_kept": len(self.kept),
                "n_tests": self.n_tests, "n_forwards": self.n_forwards,
                "seconds": self.seconds, "resumed": self.resumed} | self.details


def visit_order(nodes: Iterable[N.Node]) -> list[N.Node]:
    """Candidate nodes in the order :func:`prune` tests them (see the module docstring)."""
    rank = {r: i for i, r in enumerate(N.NODE_ROLES)}
    return sorted(nodes, key=lambda n: (n.layer, n.head, rank[n.role]), reverse=True)


def _resume_module():
    """The resumed-forward module, which :func:`prune` uses unless told not to."""
    return resume


class _Runner:
    """The prompts in chunks, each with its role map, replacement and (resumed path) residuals;
    evaluates the mean logit difference of a kept-node table ``[layer, head, role]``."""

    def __init__(self, model, good: pd.DataFrame, ablation: str, means, batch_size: int,
                 resume_mod, seed: int):
        self.model, self.resume = model, resume_mod
        self.chunks = []
        self.n = len(good)
        self.n_forwards = 0
        if ablation == "resample":
            good = make_abc(good, model.tokenizer, seed=seed)
        for sl in B.chunks(len(good), batch_size):
            part = good.iloc[sl]
            batch = B.encode(model, part)
            if ablation == "mean":
                repl = A.replacement_fn("mean", batch, means=means, groups=means.keys(part))
            else:
                abc = B.encode(model, part, prompt_col="abc_prompt")
                repl = A.replacement_fn("resample", batch, model=model, abc=abc)
            roles = A.role_map(batch)
            node_role = torch.tensor(_ROLE_TO_NODE)[roles]  # [b, p], -1 at BOS
            self.chunks.append({"batch": batch, "replace": repl, "node_role": node_role,
                                "resid": None})

    def _keep(self, kept: torch.Tensor, chunk) -> torch.Tensor:
        """``[1, batch, pos, layer, head]`` from a ``[layer, head, role]`` table; BOS kept."""
        nr = chunk["node_role"]
        keep = kept[:, :, nr.clamp(min=0)].permute(2, 3, 0, 1)  # b p l h
        keep = keep | (nr < 0)[:, :, None, None]
        return keep[None]

    def set_base(self, kept: torch.Tensor) -> None:
        """Residuals before every block of the circuit ``kept`` (the resumed path's start)."""
        if self.resume is None:
            return
        for c in self.chunks:
            hooks = A.ablation_hooks(self._keep(kept, c), c["replace"])
            c["resid"] = self.resume.resid_pre(self.model, c["batch"], fwd_hooks=hooks)
            self.n_forwards += 1

    def metric(self, kept: torch.Tensor, layer: int | None = None) -> float:
        """Mean logit difference with the nodes not in ``kept`` ablated; with ``layer`` (resumed
        path) only blocks ``layer..end`` run, from the base residual."""
        total = 0.0
        for c in self.chunks:
            keep = self._keep(kept, c)
            if self.resume is not None and layer is not None:
                # Only blocks layer..end run; ablations below `layer` are those of the base
                # circuit, already in the cached residual.
                hooks = [(name, fn) for name, fn in A.ablation_hooks(keep, c["replace"])
                         if int(name.split(".")[1]) >= layer]
                d = self.resume.logit_diff_from(self.model, c["batch"], layer, c["resid"][layer],
                                                fwd_hooks=hooks, tile=1)
            else:
                d = A.run_variants(self.model, c["batch"], keep, c["replace"])
            self.n_forwards += 1
            total += float(d.double().sum())
        return total / self.n


def _candidates(nodes, cfg) -> list[N.Node]:
    if nodes is None:
        return N.head_nodes(cfg.n_layers, cfg.n_heads)
    out = N._check(nodes, cfg.n_layers, cfg.n_heads)
    mlps = [n.label for n in out if n.head is None]
    if mlps:
        raise ValueError(f"pruning is over head nodes (MLPs always run); got MLP nodes {mlps[:3]}.")
    return sorted(set(out))


def _greedy(runner: _Runner, kept: torch.Tensor, groups: list[list[N.Node]], tau: float,
            m_cur: float, resumed: bool, bar, log: list[dict], stage: str) -> float:
    """ACDC's greedy pass over ``groups`` (each group removed together), in the given order;
    edits ``kept`` in place, appends one record per group to ``log``; returns m(current)."""
    layer_now = None
    for group in groups:
        layer = group[0].layer
        if resumed and layer != layer_now:
            m_cur = runner.metric(kept, layer)  # m(current) on the same path as the tests
        layer_now = layer
        trial = kept.clone()
        for n in group:
            trial[n.layer, n.head, N.NODE_ROLES.index(n.role)] = False
        m_new = runner.metric(trial, layer if resumed else None)
        effect = m_new - m_cur
        remove = abs(effect) <= tau
        if remove:
            kept.copy_(trial)
            m_cur = m_new
        log.append({"group": group, "effect": effect, "removed": remove, "stage": stage})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(layer=layer, kept=int(kept.sum()), refresh=False)
    return m_cur


@torch.no_grad()
def prune(model, df: pd.DataFrame, *, threshold: float, ablation: str = "mean",
          means: A.MeanReference | None = None, nodes: Sequence[N.Node | str] | None = None,
          batch_size: int = 64, stage: str = "nodes", resume: bool | None = None,
          seed: int = 0, progress: bool = True) -> PruneResult:
    """Greedy ACDC-style pruning of head nodes; see the module docstring.

    ``threshold``: τ relative to ``|mean logit diff of the full model|`` (>= 0).
    ``ablation``: ``"mean"`` (``means``: a :class:`~circuitgen.ablation.MeanReference`; built with
    :func:`circuitgen.scorer.mean_reference` from ``df`` when None) or ``"resample"`` (each
    prompt's ABC counterpart, made with ``seed`` when ``df`` has no ``abc_prompt``).
    ``nodes``: the candidate head nodes (default: all of them); others are always kept.
    ``batch_size``: prompts per forward (all of them in one forward when it is >= ``len(df)``).
    ``stage``: ``"nodes"`` (exact node-level ACDC) or ``"heads-then-roles"`` (coarser, faster).
    ``resume``: None uses the resumed forwards when :mod:`circuitgen.resume` exists; False always
    runs full forwards; True requires the resume module.
    """

    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, not {ablation!r}.")
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}.")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0 (relative to the full model's logit diff), "
                         f"not {threshold}.")
    resume_mod = _resume_module() if resume in (None, True) else None
    if resume and resume_mod is None:
        raise ImportError("resume=True needs circuitgen.resume, which is not installed here.")
    t0 = time.perf_counter()
    cfg = model.cfg
    _, good = scorer._valid_rows(model, df, skip_invalid=False)
    if not len(good):
        raise ValueError("no prompts to prune on.")
    if ablation == "mean" and means is None:
        means = scorer.mean_reference(model, good)
    cands = _candidates(nodes, cfg)
    runner = _Runner(model, good, ablation, means, batch_size, resume_mod, seed)
    resumed = resume_mod is not None

    kept = torch.ones(cfg.n_layers, cfg.n_heads, len(N.NODE_ROLES), dtype=torch.bool)
    full = runner.metric(kept)
    if full == 0:
        raise ValueError("the full model's mean logit difference is 0; a relative threshold is undefined.")
    tau = threshold * abs(full)
    runner.set_base(kept)
    order = visit_order(cands)
    log: list[dict] = []
    if stage == "nodes":
        bar = tqdm(total=len(order), desc="pruning nodes", unit="test", disable=not progress)
        m_cur = _greedy(runner, kept, [[n] for n in order], tau, full, resumed, bar, log, "nodes")
    else:
        by_head: dict[tuple[int, int], list[N.Node]] = {}
        for n in order:
            by_head.setdefault((n.layer, n.head), []).append(n)
        bar = tqdm(total=len(by_head), desc="pruning heads", unit="test", disable=not progress)
        m_cur = _greedy(runner, kept, list(by_head.values()), tau, full, resumed, bar, log, "heads")
        bar.close()
        left = [n for n in order if kept[n.layer, n.head].any()]
        bar = tqdm(total=len(left), desc="pruning roles", unit="test", disable=not progress)
        runner.set_base(kept)  # stage 2 starts from the heads-pruned circuit at every layer
        m_cur = _greedy(runner, kept, [[n] for n in left], tau, m_cur, resumed, bar, log, "roles")
    bar.close()
    final = runner.metric(kept)  # a full forward of the ablation engine, whatever the path

    table = _table(cfg, log)
    kept_nodes = [N.Node(l, h, N.NODE_ROLES[r]) for l, h, r in kept.nonzero().tolist()]
    return PruneResult(
        kept=sorted(kept_nodes), table=table, threshold=float(threshold), tau=float(tau),
        full_metric=full, final_metric=final, n_tests=len(log), n_forwards=runner.n_forwards,
        seconds=time.perf_counter() - t0, ablation=ablation, stage=stage, resumed=resumed,
        details={"n_prompts": len(good), "n_candidates": len(cands),
                 "drift": abs(final - m_cur),  # resumed-path m(current) vs the full forward
                 "reference": means.describe() if means is not None else {"method": ablation}})


def _table(cfg, log: list[dict]) -> pd.DataFrame:
    R = len(N.NODE_ROLES)
    score = torch.full((cfg.n_layers, cfg.n_heads, R), float("nan"))
    t = N.score_frame(score)
    t["removed"] = False
    t["order"] = pd.array([pd.NA] * len(t), dtype="Int64")
    t["effect"] = float("nan")
    t["stage"] = pd.array([pd.NA] * len(t), dtype="string")
    row = {lab: i for i, lab in enumerate(t["node"])}
    order = 0
    for rec in log:
        for n in rec["group"]:
            i = row[n.label]
            t.at[i, "order"] = order
            t.at[i, "score"] = abs(rec["effect"])
            t.at[i, "effect"] = rec["effect"]
            t.at[i, "removed"] = bool(rec["removed"])
            t.at[i, "stage"] = rec["stage"]
        order += 1
    return t


__all__ = ["PruneResult", "prune", "visit_order", "STAGES"]
