"""Finding an IOI circuit by path patching, step by step from the logits backwards (Wang et al.).

Each step patches every candidate sender (its ABC write in place of its clean write) on its path
to a set of receivers, and keeps the senders whose effect on the logit difference passes a
threshold stated in advance, as a fraction of the clean logit difference (effects are
``(mean patched - mean clean) / mean clean``; negative = the head's clean output helps IO):

1. senders -> logits (direct, exact for every head): **name movers** (effect <= -t) and
   **negative name movers** (effect >= +t).
2. senders -> logits again, with the name movers mean-ablated (at every position, ABC means per
   role position): **backup name movers**, the heads whose direct effect *grows* towards IO by at
   least t (``effect_ablated - effect_clean <= -t``; heads already kept are not candidates).
3. senders -> the name movers' queries at END: **S-inhibition** heads (effect <= -t).
4. senders -> the S-inhibition heads' keys and values at S2: **induction** heads (attending
   S2 -> S1+1 at least as much as S2 -> S1) and **duplicate-token** heads (S2 -> S1 more).
5. senders -> the induction heads' keys at S1+1: **previous-token** heads.

At most ``max_per_step`` heads per step (strongest first); a head is kept by one step only.

**Cost, and what is exact.** Steps 1-2 are exact for every head on every prompt (one forward
pass each plus cheap algebra). Steps 3-5 cost one forward pass per sender, so they *screen* every
sender with attribution patching (one forward and backward pass, on every prompt) and path-patch
exactly the ``n_candidates`` with the largest estimated |effect|; selection uses exact effects
only. ``n_exact_prompts`` (default None: all) path-patches those candidates exactly on a seeded
random subset of that many prompts instead of all of them; the screen, steps 1-2 and the
signatures still use every prompt. This is the budget rule for large discovery sets: on
SmolLM2, 2 CPU cores, exact path patching of 24 candidates costs about one forward pass of
24 x n prompts per step, half of the whole cost (see :func:`discover`'s docstring for the
measured timings and the rule chosen for 200-prompt discovery sets).

Sender writes are never materialised for every head and position at once (that is
``batch x pos x layers x heads x d_model`` floats, ~3 GB for 200 SmolLM2 prompts): :class:`LazyDeltas`
keeps both runs' ``z`` and multiplies by ``W_O`` on demand.

:func:`discover` returns a :class:`Discovery`: the spec, the steps, the signatures, the node score
table (:func:`node_table`) and the heads' functional roles (:mod:`circuitgen.head_roles`); it
unpacks as ``spec, steps, signatures`` as before. :func:`discover_sweep` runs several thresholds,
computing each step's effects once per receiver set and reusing them across thresholds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import head_roles as HR
from circuitgen import path_patching as PP
from circuitgen import reference as R
from circuitgen.circuits import Ablation as SpecAblation
from circuitgen.circuits import CircuitSpec, HeadClass, Signature
from circuitgen.nodes import NODE_ROLES, Node, parse_node, score_frame

SIGNATURES = HR.SIGNATURES
attention_signatures = HR.attention_signatures
DEFAULT_THRESHOLDS = (0.02, 0.05, 0.10)

# class: (step number, positions it acts at, signature, description). Step numbers give the
# ranking order of the node table (see node_table).
CLASSES = {
    "name_mover": (1, ("END",), ("END", "IO"), "direct effect for IO (path patching to logits)"),
    "negative_name_mover": (1, ("END",), ("END", "IO"), "direct effect against IO"),
    "backup_name_mover": (2, ("END",), ("END", "IO"),
                          "direct effect for IO grows when the name movers are mean-ablated"),
    "s_inhibition": (3, ("END",), ("END", "S2"), "steer name movers' queries at END"),
    "induction": (4, ("S2",), ("S2", "S1+1"),
                  "feed S-inhibition keys/values at S2; attend S2->S1+1"),
    "duplicate_token": (4, ("S2",), ("S2", "S1"),
                        "feed S-inhibition keys/values at S2; attend S2->S1"),
    "previous_token": (5, ("S1+1",), ("S1+1", "S1"), "feed induction heads' keys at S1+1"),
}


@dataclass
class Step:
    """One path-patching sweep and what it selected."""

    name: str
    receivers: list[tuple[int, int]]
    component: tuple[str, ...]
    senders: list[tuple[int, int]]
    effect: torch.Tensor  # [n_senders], relative change of the mean logit difference
    selected: list[tuple[int, int]] = field(default_factory=list)
    screened: pd.DataFrame | None = None  # every sender's attribution estimate (and exact if run)
    reference: torch.Tensor | None = None  # backup step: each sender's direct effect, unablated
    position: str | None = None
    n_prompts: int = 0  # prompts the exact effects were measured on

    @property
    def criterion(self) -> torch.Tensor:
        """What selection thresholds: the effect, or for the backup step its growth."""
        return self.effect if self.reference is None else self.effect - self.reference

    def table(self) -> pd.DataFrame:
        out = pd.DataFrame({"head": [f"{l}.{h}" for l, h in self.senders],
                            "layer": [l for l, _ in self.senders],
                            "effect": self.effect.numpy()})
        if self.reference is not None:
            out["effect_unablated"] = self.reference.numpy()
            out["growth"] = self.criterion.numpy()
            return out.sort_values("growth")
        return out.sort_values("effect")


@dataclass
class Discovery:
    """What :func:`discover` found at one threshold. Unpacks as ``spec, steps, signatures``."""

    spec: CircuitSpec
    steps: list[Step]
    signatures: pd.DataFrame
    nodes: pd.DataFrame  # node score table, nodes.score_frame format (see node_table)
    roles: pd.DataFrame  # head_roles of every kept head, with its path-patching class
    threshold: float
    timings: dict = field(default_factory=dict)  # seconds per stage (shared stages: first run)

    def __iter__(self):
        return iter((self.spec, self.steps, self.signatures))


def relative_effect(patched: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """(mean patched - mean clean) / mean clean logit difference, per sender."""
    return (patched.mean(-1) - base.mean()) / base.mean()


class LazyDeltas:
    """``write(other) - write(base)`` of every head, as :func:`path_patching.sender_deltas`
    returns it, but computed on demand from the two runs' ``z``. Supports the two ways
    :mod:`circuitgen.path_patching` reads deltas: ``d[:, :, layer, head]`` (``[batch, pos,
    d_model]``) and ``d[rows, positions]`` (``[batch, layer, head, d_model]``)."""

    def __init__(self, model, z_base: Sequence[torch.Tensor], z_other: Sequence[torch.Tensor]):
        self.W_O = [model.blocks[l].attn.W_O.detach() for l in range(model.cfg.n_layers)]
        self.dz = [o - b for b, o in zip(z_base, z_other)]  # per layer [batch, pos, head, d_head]

    def __getitem__(self, key):
        if (isinstance(key, tuple) and len(key) == 4 and key[0] == slice(None)
                and key[1] == slice(None)):
            layer, head = int(key[2]), int(key[3])
            return self.dz[layer][:, :, head] @ self.W_O[layer][head]
        if isinstance(key, tuple) and len(key) == 2 and all(torch.is_tensor(k) for k in key):
            rows, pos = key
            return torch.stack([torch.einsum("bhd,hdm->bhm", dz[rows, pos], w)
                                for dz, w in zip(self.dz, self.W_O)], dim=1)
        raise TypeError(f"LazyDeltas supports d[:, :, layer, head] and d[rows, pos], not {key!r}")

    def subset(self, idx: torch.Tensor, width: int) -> LazyDeltas:
        out = object.__new__(LazyDeltas)
        out.W_O = self.W_O
        out.dz = [dz[idx, :width] for dz in self.dz]
        return out


@torch.no_grad()
def _z_per_layer(model, batch: B.TaskBatch, fwd_hooks=()) -> list[torch.Tensor]:
    """Every layer's ``z`` (after any ablation hooks on it), stopping after the last layer's."""
    store: dict[int, torch.Tensor] = {}
    last = model.cfg.n_layers - 1

    class _Stop(Exception):
        pass

    def grab(layer):
        def hook(z, hook):
            store[layer] = z.detach()
            if layer == last:
                raise _Stop
        return hook

    hooks = [*fwd_hooks, *[(A.z_name(l), grab(l)) for l in range(model.cfg.n_layers)]]
    try:
        model.run_with_hooks(batch.tokens, attention_mask=batch.mask, fwd_hooks=hooks)
    except _Stop:
        pass
    return [store[l] for l in range(model.cfg.n_layers)]


@torch.no_grad()
def direct_effects(model, base: B.TaskBatch, deltas, fwd_hooks=()) -> torch.Tensor:
    """Logit difference with each sender's delta added on its direct path to the logits only,
    ``[layer, head, batch]``, in the model run with ``fwd_hooks`` (e.g. an ablation): as
    :func:`path_patching.to_logits`, which it equals without hooks."""
    resid = A.final_resid(model, base.tokens, base.mask, fwd_hooks)
    rows = torch.arange(len(base))
    patched = resid[rows, base.end][:, None, None] + deltas[rows, base.end]
    # Only the IO and S columns of the unembedding: the same numbers as unembedding the whole
    # vocabulary (n_heads x batch x vocab x d_model multiply-adds, ~0.8 TFLOP for 50 SmolLM2
    # prompts) at a vocab-th of the cost.
    normed = model.ln_final(patched.flatten(1, 2))  # [b, l*h, d]
    direction = model.W_U[:, base.answer_id] - model.W_U[:, base.wrong_id]  # [d, b]
    diff = torch.einsum("bsd,db->bs", normed, direction)
    b_u = getattr(model, "b_U", None)
    if b_u is not None:
        diff = diff + (b_u[base.answer_id] - b_u[base.wrong_id])[:, None]
    return diff.T.reshape(model.cfg.n_layers, model.cfg.n_heads, len(base))


def _select(effect: torch.Tensor, senders, threshold: float, sign: int, taken=(),
            limit: int | None = None) -> list[tuple[int, int]]:
    """Senders with ``sign * effect >= threshold``, not in ``taken``, strongest first."""
    hits = [(float(effect[i]) * sign, senders[i]) for i in range(len(senders))
            if float(effect[i]) * sign >= threshold and senders[i] not in taken]
    out = [s for _, s in sorted(hits, key=lambda x: (-x[0], x[1]))]
    return out[:limit] if limit is not None else out


class _Effects:
    """The expensive parts of discovery on one prompt set, each computed once and cached by what
    it depends on (the direct effects: nothing; the backup step: the name movers; a path step:
    its receivers, components and position), so that thresholds can be swept for free where
    only the selection changes."""

    def __init__(self, model, df: pd.DataFrame, *, n_candidates: int, tile: int,
                 n_exact_prompts: int | None, seed: int, means: A.MeanReference | None,
                 progress: bool):
        t0 = time.perf_counter()
        self.model, self.df = model, df
        self.n_candidates, self.tile, self.progress = n_candidates, tile, progress
        self.timings: dict[str, float] = {}
        self.clean = B.encode(model, df)
        self.corr = B.encode(model, df, prompt_col="abc_prompt")
        self.z_clean = _z_per_layer(model, self.clean)
        self.deltas = LazyDeltas(model, self.z_clean, _z_per_layer(model, self.corr))
        self.base = A.end_logit_diff(A.end_logits(model, self.clean), self.clean)[0]
        n = len(df)
        if n_exact_prompts is None or n_exact_prompts >= n:
            self.exact_idx = torch.arange(n)
        else:
            gen = torch.Generator().manual_seed(seed)
            self.exact_idx = torch.randperm(n, generator=gen)[:n_exact_prompts].sort().values
        self.exact_clean = self.clean.subset(self.exact_idx)
        self.exact_deltas = self.deltas.subset(self.exact_idx, self.exact_clean.tokens.shape[1])
        self.exact_base = self.base[self.exact_idx]
        self.means = means
        self.everyone = [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
        self._direct: torch.Tensor | None = None
        self._backup: dict[frozenset, torch.Tensor] = {}
        self._paths: dict[tuple, tuple] = {}
        self._signatures: pd.DataFrame | None = None
        self._roles: dict[tuple[int, int], pd.Series] = {}
        self.timings["setup"] = time.perf_counter() - t0

    def _time(self, key: str, t0: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - t0

    def direct(self) -> torch.Tensor:
        if self._direct is None:
            t0 = time.perf_counter()
            self._direct = relative_effect(
                direct_effects(self.model, self.clean, self.deltas).flatten(0, 1), self.base)
            self._time("direct", t0)
        return self._direct

    def mean_reference(self) -> A.MeanReference:
        if self.means is None:  # the discovery set's own ABC prompts, per (template, order)
            cols = R.resolve_group_by(self.df, None)
            if cols == R.PER_PROMPT:
                cols = ()
            keys = R.group_keys(self.df, cols) if cols else ["all"] * len(self.df)
            self.means = A.compute_means(self.model, self.corr, keys, cols,
                                         source="ABC prompts of the discovery set")
        return self.means

    def ablation_hooks(self, heads: Sequence[tuple[int, int]]) -> list:
        means = self.mean_reference()
        keep = A.knockout_keep(heads, self.model, self.clean)[None]
        groups = means.keys(self.df) if means.group_cols else ["all"] * len(self.df)
        replace = A.replacement_fn("mean", self.clean, means=means, groups=groups)
        return A.ablation_hooks(keep, replace)

    def backup(self, movers: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Direct effect of every head with ``movers`` mean-ablated, relative to the *clean*
        (unablated) logit difference, so that it compares with :meth:`direct`."""
        key = frozenset(movers)
        if key not in self._backup:
            t0 = time.perf_counter()
            hooks = self.ablation_hooks(sorted(key))
            deltas = LazyDeltas(self.model, _z_per_layer(self.model, self.clean, hooks),
                                _z_per_layer(self.model, self.corr, hooks))
            patched = direct_effects(self.model, self.clean, deltas, hooks).flatten(0, 1)
            base = A.end_logit_diff(A.end_logits(self.model, self.clean, hooks), self.clean)[0]
            self._backup[key] = (patched.mean(-1) - base.mean()) / self.base.mean()
            self._time("backup", t0)
        return self._backup[key]

    def path(self, receivers: Sequence[tuple[int, int]], component: tuple[str, ...],
             position: str | None):
        """(candidates, exact effects, screen table) for senders -> receivers."""
        receivers = sorted(receivers)
        key = (tuple(receivers), component, position)
        if key in self._paths:
            return self._paths[key]
        t0 = time.perf_counter()
        n_h = self.model.cfg.n_heads
        every = [(l, h) for l in range(max(r[0] for r in receivers)) for h in range(n_h)
                 if (l, h) not in receivers]
        if not every:  # receivers in layer 0 have no senders
            self._paths[key] = ([], torch.zeros(0), None)
            return self._paths[key]
        estimate = PP.attribution_to_receivers(self.model, self.clean, self.deltas, receivers,
                                               component, position, senders=every) / self.base.mean()
        self._time("screen", t0)
        t0 = time.perf_counter()
        order = estimate.abs().argsort(descending=True)[: self.n_candidates].tolist()
        senders = [every[i] for i in sorted(order)]
        patched = PP.to_receivers(self.model, self.exact_clean, self.exact_deltas, receivers,
                                  component, position, senders=senders, tile=self.tile,
                                  progress=self.progress)
        effect = relative_effect(patched, self.exact_base)
        screened = pd.DataFrame({"head": [f"{l}.{h}" for l, h in every],
                                 "estimate": estimate.numpy()})
        screened["exact"] = screened["head"].map(
            dict(zip([f"{l}.{h}" for l, h in senders], effect.numpy())))
        self._paths[key] = (senders, effect, screened)
        self._time("exact", t0)
        return self._paths[key]

    def signatures(self) -> pd.DataFrame:
        if self._signatures is None:
            t0 = time.perf_counter()
            self._signatures = HR.attention_signatures(self.model, self.clean)
            self._time("signatures", t0)
        return self._signatures

    def roles(self, heads: Sequence[tuple[int, int]]) -> pd.DataFrame:
        todo = [h for h in heads if h not in self._roles]
        if todo:
            t0 = time.perf_counter()
            table = HR.head_roles(self.model, self.clean, todo, signatures=self.signatures())
            for h, (_, row) in zip(todo, table.iterrows()):
                self._roles[h] = row
            self._time("roles", t0)
        if not heads:
            return HR.head_roles(self.model, self.clean, [])
        return pd.DataFrame([self._roles[h] for h in heads],
                            index=pd.Index([f"{l}.{h}" for l, h in heads], name="head"))


def _run(fx: _Effects, threshold: float, max_per_step: int, found_by: str) -> Discovery:
    """The five steps at one threshold, from cached effects."""
    model = fx.model
    steps: list[Step] = []
    direct = fx.direct()
    step1 = Step("direct to logits", [], (), fx.everyone, direct, position="END",
                 n_prompts=len(fx.clean))
    movers = _select(direct, fx.everyone, threshold, -1, limit=max_per_step)
    negative = _select(direct, fx.everyone, threshold, +1, limit=max_per_step)
    step1.selected = movers + negative
    steps.append(step1)
    taken: set[tuple[int, int]] = set(movers + negative)

    backup: list[tuple[int, int]] = []
    if movers:
        ablated = fx.backup(movers)
        step2 = Step("direct to logits, name movers mean-ablated", list(movers), (), fx.everyone,
                     ablated, reference=direct, position="END", n_prompts=len(fx.clean))
        backup = _select(step2.criterion, fx.everyone, threshold, -1, taken, max_per_step)
        step2.selected = backup
        taken.update(backup)
        steps.append(step2)

    def sweep(name, receivers, component, position):
        senders, effect, screened = fx.path(receivers, component, position)
        if not senders:
            return []
        step = Step(name, sorted(receivers), component, senders, effect, screened=screened,
                    position=position, n_prompts=len(fx.exact_clean))
        step.selected = _select(effect, senders, threshold, -1, taken, max_per_step)
        taken.update(step.selected)
        steps.append(step)
        return step.selected

    s_inhibition = sweep("-> name movers' queries (END)", movers, ("q",), "END") if movers else []
    early = (sweep("-> S-inhibition keys/values (S2)", s_inhibition, ("k", "v"), "S2")
             if s_inhibition else [])
    sig = fx.signatures()
    label = lambda h: f"{h[0]}.{h[1]}"  # noqa: E731
    induction = [h for h in early if sig.loc[label(h), "S2->S1+1"] >= sig.loc[label(h), "S2->S1"]]
    duplicate = [h for h in early if h not in induction]
    previous = (sweep("-> induction heads' keys (S1+1)", induction, ("k",), "S1+1")
                if induction else [])

    found = {"name_mover": movers, "negative_name_mover": negative, "backup_name_mover": backup,
             "s_inhibition": s_inhibition, "induction": induction, "duplicate_token": duplicate,
             "previous_token": previous}
    classes = {}
    for name, heads in found.items():
        if heads:
            _, positions, (q, k), why = CLASSES[name]
            classes[name] = HeadClass(name, tuple(sorted(heads)), positions, Signature(q, k), why)
    exact_note = ("all prompts" if len(fx.exact_clean) == len(fx.clean)
                  else f"a seeded random subset of {len(fx.exact_clean)} prompts")
    spec = CircuitSpec(
        model=model.circuitgen.model, task="ioi", classes=classes,
        description="IOI circuit found by path patching (circuitgen.discovery.discover)",
        provenance={"method": "path patching from the logits backwards, ABC corruption, "
                              f"threshold {threshold} of the clean logit difference, at most "
                              f"{max_per_step} heads per step; backup name movers: direct "
                              "effect grows by the threshold with the name movers mean-ablated; "
                              "steps 3-5 screen senders by attribution patching on all prompts "
                              f"and path-patch the top {fx.n_candidates} exactly on {exact_note}",
                    "n_prompts": len(fx.df), "n_exact_prompts": len(fx.exact_clean),
                    "threshold": threshold, "found_by": found_by},
        ablation=SpecAblation("mean", "abc"),
    )
    kept = [h for heads in found.values() for h in heads]
    roles = fx.roles(kept)
    if len(roles):
        roles.insert(0, "class", [name for name, heads in found.items() for _ in heads])
        roles["agrees"] = [_agrees(c, r) for c, r in zip(roles["class"], roles["role"])]
    return Discovery(spec, steps, sig, node_table(model, steps, found, threshold), roles,
                     threshold, dict(fx.timings))


def _agrees(cls: str, role: str) -> bool:
    """Whether a head's functional role (head_roles) matches its path-patching class."""
    same = {"backup_name_mover": "name_mover"}
    return same.get(cls, cls) == role


def node_table(model, steps: Sequence[Step], found: dict[str, list[tuple[int, int]]],
               threshold: float) -> pd.DataFrame:
    """Node score table (:func:`circuitgen.nodes.score_frame` format, head nodes only).

    A kept head's node at each position its class acts at (CLASSES) scores the exact
    path-patching effect that selected it (relative to the clean logit difference; negative =
    helps IO; for backup name movers, the direct effect with the name movers mean-ablated); every
    other node scores 0. Columns added: ``method="path-patching"``, ``threshold``, ``step``
    (1 direct, 2 backup, 3 S-inhibition, 4 induction / duplicate-token, 5 previous-token; <NA>
    for unscored nodes), ``class`` ("" for unscored) and ``rank``.

    **Ranking rule**: by step order (a head found earlier, nearer the logits, ranks first), then
    by |score| within a step, ties by node label; ``rank`` is 1.. for scored nodes, <NA>
    otherwise. A circuit of k heads is the heads of the first k ranks (:func:`ranked_nodes`); a
    sweep's tables at several thresholds give circuits of several sizes the same way.
    """
    n_l, n_h = model.cfg.n_layers, model.cfg.n_heads
    scores = torch.zeros(n_l, n_h, len(NODE_ROLES))
    effect_of = {}
    for step in steps:
        for h in step.selected:
            effect_of[h] = float(step.effect[step.senders.index(h)])
    info = {}
    for cls, heads in found.items():
        number, positions, _, _ = CLASSES[cls]
        for h in heads:
            for p in positions:
                scores[h[0], h[1], NODE_ROLES.index(p)] = effect_of[h]
                info[Node(h[0], h[1], p).label] = (number, cls)
    table = score_frame(scores, method="path-patching", threshold=threshold)
    table["step"] = pd.array([info.get(n, (None,))[0] for n in table["node"]], dtype="Int64")
    table["class"] = [info.get(n, (None, ""))[1] for n in table["node"]]
    scored = table[table["node"].isin(list(info))]
    order = pd.DataFrame({"step": scored["step"].astype(int), "abs": -scored["score"].abs(),
                          "node": scored["node"]}).sort_values(["step", "abs", "node"],
                                                               kind="mergesort")
    table["rank"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table.loc[order.index, "rank"] = np.arange(1, len(order) + 1)
    return table


def ranked_nodes(table: pd.DataFrame, k: int | None = None) -> list[Node]:
    """The scored nodes of a :func:`node_table` in rank order (the first ``k`` if given)."""
    scored = table.dropna(subset=["rank"]).sort_values("rank")
    return [parse_node(n) for n in scored["node"].head(k if k is not None else len(scored))]


@torch.no_grad()
def discover_sweep(model, df: pd.DataFrame, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                   max_per_step: int = 8, n_candidates: int = 24, tile: int = 12,
                   n_exact_prompts: int | None = None, seed: int = 0,
                   means: A.MeanReference | None = None, progress: bool = True,
                   found_by: str = "circuitgen.discovery") -> dict[float, Discovery]:
    """:func:`discover` at each of ``thresholds`` (stated in advance), ``{threshold: Discovery}``.

    The expensive effects are computed once per thing they depend on and shared: the direct
    effects once; the backup step once per distinct set of name movers; each path-patching step
    once per distinct (receivers, components, position). A threshold whose selections match
    another's up to some step costs nothing up to that step."""
    fx = _Effects(model, df, n_candidates=n_candidates, tile=tile,
                  n_exact_prompts=n_exact_prompts, seed=seed, means=means, progress=progress)
    return {t: _run(fx, t, max_per_step, found_by) for t in thresholds}


@torch.no_grad()
def discover(model, df: pd.DataFrame, threshold: float = 0.05, max_per_step: int = 8,
             n_candidates: int = 24, tile: int = 12, progress: bool = True,
             n_exact_prompts: int | None = None, seed: int = 0,
             means: A.MeanReference | None = None,
             found_by: str = "notebooks/w06-ioi-circuit") -> Discovery:
    """Run the five steps on ``df`` (with ABC prompts) at ``threshold``; see the module docstring.

    Returns a :class:`Discovery` (``spec, steps, signatures = discover(...)`` still works; the
    node score table is ``.nodes``, functional roles ``.roles``, stage timings ``.timings``).

    ``n_candidates``: senders path-patched exactly in steps 3-5, the top by attribution estimate.
    ``n_exact_prompts``: path-patch those candidates exactly on a seeded (``seed``) random subset
    of this many prompts (None: all). Steps 1-2, the screen and the signatures use every prompt.
    ``means``: the mean reference for ablating the name movers in step 2 (default: the
    discovery set's own ABC prompts, per template and order when the table has them).

    Budget, measured on SmolLM2, 50 prompts, threshold 0.05, defaults, on the shared 2-core
    machine under a load average of ~13 (so wall times are inflated): 1372 s wall, ~9.5 min of
    process CPU time (about 4.5-5 min on two free cores). Shares: exact path patching of steps
    3-5 53%, attribution screen 16%, backup step 13%, setup 6%, direct 6% (since cut by
    unembedding only the IO and S columns), signatures 3%, copy scores 1%. Everything is linear
    in prompts, so 200 prompts with every stage on all prompts would be ~4x (~20 min on two free
    cores): over budget. The rule chosen: screen, steps 1-2 and signatures on all prompts, exact
    path patching on ``n_exact_prompts=50`` (a seeded random subset), which projects to ~2x the
    50-prompt cost; ``n_candidates`` can be lowered (cost linear in it) when the screen's
    ranking agrees with the exact effects (see ``Step.screened``).
    """
    return discover_sweep(model, df, (threshold,), max_per_step=max_per_step,
                          n_candidates=n_candidates, tile=tile, n_exact_prompts=n_exact_prompts,
                          seed=seed, means=means, progress=progress, found_by=found_by)[threshold]


__all__ = ["SIGNATURES", "CLASSES", "DEFAULT_THRESHOLDS", "Step", "Discovery", "LazyDeltas",
           "relative_effect", "attention_signatures", "direct_effects", "discover",
           "discover_sweep", "node_table", "ranked_nodes"]
