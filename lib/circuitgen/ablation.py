"""Ablating attention heads, position by position, for circuits and knock-outs.

Every head intervention edits ``blocks.L.attn.hook_z`` (``[batch, pos, head, d_head]``, one slot
per query head, so grouped-query models need nothing special). A *keep* mask
``[variant, batch, pos, layer, head]`` says which (position, head) pairs run as in the model; every
other pair is replaced by a reference value:

- ``mean``: the mean ``z`` over a reference distribution of ABC prompts (three unrelated names),
  taken separately for each *role* position (BOS, IO, S1, S1+1, S2, END, and all other positions
  pooled) and per group (template and order, or condition and order: see
  :mod:`circuitgen.reference`). This is Wang et al.'s "mean over the ABC distribution per template
  and position" made to work on prompts of any length: positions are matched by role, not index.
- ``resample``: the ``z`` of each prompt's own ABC counterpart (position for position).
- ``zero``: zeros.

MLPs are ablated the same way at ``blocks.L.hook_mlp_out`` (``[batch, pos, d_model]``) when an MLP
keep mask ``[variant, batch, pos, layer]`` is given (:func:`circuit_mlp_keep` for a spec with
``mlps:``); the mean reference holds each MLP's mean output per (group, role) beside the heads'.
Without an MLP keep mask every MLP runs, exactly as before.

Several variants (the circuit, each class knocked out, ...) run in one forward pass of a tiled
batch, and only the END positions are unembedded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from circuitgen.batch import TaskBatch, chunks, logit_diff
from circuitgen.task import BOS_ROLE, OTHER_ROLE, group_keys

# The default task's (IOI's) roles; any batch's own are role_names(batch): BOS, other, then its
# task's named positions in the task's order.
ROLE_NAMES = ("BOS", "other", "IO", "S1", "S1+1", "S2", "END")
ROLE_INDEX = {name: i for i, name in enumerate(ROLE_NAMES)}
METHODS = ("mean", "resample", "zero")


def z_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def mlp_name(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def role_names(batch: TaskBatch) -> tuple[str, ...]:
    """The roles of a batch's role map: BOS, other, then its task's named positions."""
    return (BOS_ROLE, OTHER_ROLE, *batch.positions)


def role_index(batch: TaskBatch, name: str) -> int:
    """The index of role ``name`` in :func:`role_map` of ``batch``."""
    names = role_names(batch)
    if name not in names:
        raise ValueError(f"{name!r} is not a position of this task; its positions are "
                         f"{list(names[1:])}.")
    return names.index(name)


def role_map(batch: TaskBatch) -> torch.Tensor:
    """Role index of every position, ``[batch, pos]`` (padding counts as 'other')."""
    names = role_names(batch)
    roles = torch.full(batch.tokens.shape, names.index(OTHER_ROLE), dtype=torch.long)
    roles[:, 0] = names.index(BOS_ROLE)
    rows = torch.arange(len(batch))
    for i, name in enumerate(names[2:], start=2):
        roles[rows, batch.pos[name]] = i
    return roles


@dataclass
class MeanReference:
    """Mean ``z`` of every head per (group, role), ``[group, role, layer, head, d_head]``, and
    (``mlp_means``) mean ``hook_mlp_out`` of every MLP, ``[group, role, layer, d_model]``.

    ``group_cols`` are the prompt columns that define a group (``("prompt",)``: each prompt its own
    group); :meth:`group_index` refuses a prompt whose group the reference lacks rather than
    falling back to another group's mean. ``details`` records how the reference was built.
    """

    means: torch.Tensor
    groups: list[str]
    group_cols: tuple[str, ...]
    n_prompts: int
    source: str
    details: dict = field(default_factory=dict)
    mlp_means: torch.Tensor | None = None
    roles: tuple[str, ...] = ROLE_NAMES  # the role order of means' second axis

    def keys(self, df: pd.DataFrame) -> list[str]:
        """The group key of every row of a prompt table."""
        missing = [c for c in self.group_cols if c not in df.columns]
        if missing:
            raise ValueError(f"the mean reference is grouped by {list(self.group_cols)} but these "
                             f"prompts lack {missing}; build the reference from prompts like these.")
        return group_keys(df, self.group_cols)

    def group_index(self, keys: Sequence[str]) -> torch.Tensor:
        lookup = {g: i for i, g in enumerate(self.groups)}
        missing = sorted({str(k) for k in keys if str(k) not in lookup})
        if missing:
            raise ValueError(f"the mean reference has no group {missing[:3]} (it has "
                             f"{len(self.groups)} groups by {list(self.group_cols)}); build it from "
                             "these prompts (scorer.mean_reference(model, prompts)).")
        return torch.tensor([lookup[str(k)] for k in keys], dtype=torch.long)

    def describe(self) -> dict:
        return {"method": "mean", "reference": self.source, "n_reference_prompts": self.n_prompts,
                "group_by": list(self.group_cols), "n_groups": len(self.groups),
                "positions": "by role: " + ", ".join(self.roles)} | self.details


@dataclass
class ReferenceBatch:
    """The reference prompts' token sequences (counterfactuals, aligned with the clean prompts'
    positions), the group of each row, and where each group's prompts came from."""

    batch: TaskBatch
    keys: list[str]
    sources: dict[str, str]  # group -> where its prompts came from

    def sizes(self) -> pd.Series:
        return pd.Series(self.keys).value_counts().sort_index()

    def digest(self) -> str:
        h = hashlib.sha256()
        for key, row, n in zip(self.keys, self.batch.tokens, self.batch.mask.sum(1)):
            h.update(key.encode())
            h.update(row[: int(n)].numpy().tobytes())
        return h.hexdigest()[:16]


def final_resid(model, tokens, mask, fwd_hooks=()) -> torch.Tensor:
    """The residual stream after the last block, without paying for the full unembedding."""
    store: dict[str, torch.Tensor] = {}

    class _Stop(Exception):
        pass

    def grab(x, hook):
        store["x"] = x
        raise _Stop

    name = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    try:
        model.run_with_hooks(tokens, attention_mask=mask, fwd_hooks=[*fwd_hooks, (name, grab)])
    except _Stop:
        pass
    return store["x"]


def end_logits(model, batch: TaskBatch, fwd_hooks=(), tile: int = 1) -> torch.Tensor:
    """Logits at END only, ``[tile * batch, vocab]``: exact, and skips unembedding other positions."""
    tokens, mask = batch.tokens.repeat(tile, 1), batch.mask.repeat(tile, 1)
    resid = final_resid(model, tokens, mask, fwd_hooks)
    rows = torch.arange(resid.shape[0])
    at_end = resid[rows, batch.end.repeat(tile)][:, None]
    return model.unembed(model.ln_final(at_end))[:, 0]


def end_logit_diff(logits_at_end: torch.Tensor, batch: TaskBatch, tile: int = 1) -> torch.Tensor:
    """The task metric (IOI: IO - S) from END logits of a tiled batch: ``[tile, batch]``."""
    return batch.metric_of(logits_at_end, tile)


def _acts_at_real_positions(model, batch: TaskBatch
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z`` of every head, ``[n_real, layer, head, d_head]``, and ``hook_mlp_out`` of every MLP,
    ``[n_real, layer, d_model]``, at every real position, and each position's role; the forward
    stops after the last MLP (no unembedding)."""
    z_store: dict[int, torch.Tensor] = {}
    mlp_store: dict[int, torch.Tensor] = {}
    last = model.cfg.n_layers - 1

    class _Stop(Exception):
        pass

    def grab(store: dict, layer: int, stop: bool):
        def hook(x, hook):
            store[layer] = x
            if stop:
                raise _Stop
        return hook

    hooks = []
    for layer in range(model.cfg.n_layers):
        hooks += [(z_name(layer), grab(z_store, layer, False)),
                  (mlp_name(layer), grab(mlp_store, layer, layer == last))]
    try:
        model.run_with_hooks(batch.tokens, attention_mask=batch.mask, fwd_hooks=hooks)
    except _Stop:
        pass
    z = torch.stack([z_store[layer] for layer in range(model.cfg.n_layers)], dim=2)  # b p l h d
    mlp = torch.stack([mlp_store[layer] for layer in range(model.cfg.n_layers)], dim=2)  # b p l d
    real = batch.mask.bool()
    return z[real], mlp[real], role_map(batch)[real]


def compute_means(model, ref: TaskBatch, keys: Sequence[str], group_cols: Sequence[str] = (), *,
                  batch_size: int = 32, source: str = "abc", details: dict | None = None
                  ) -> MeanReference:
    """Mean ``z`` (and mean ``hook_mlp_out``) per (group, role) over the reference batch (the ABC
    prompts), in one pass."""
    cfg = model.cfg
    keys = [str(k) for k in keys]
    if len(keys) != len(ref):
        raise ValueError(f"{len(keys)} group keys for {len(ref)} reference prompts.")
    names = sorted(set(keys))
    roles_of = role_names(ref)
    n_g, n_r = len(names), len(roles_of)
    sums = torch.zeros(n_g * n_r, cfg.n_layers, cfg.n_heads, cfg.d_head)
    mlp_sums = torch.zeros(n_g * n_r, cfg.n_layers, cfg.d_model)
    counts = torch.zeros(n_g * n_r)
    gidx_all = torch.tensor([names.index(k) for k in keys])
    for sl in chunks(len(ref), batch_size):
        sub = ref.subset(sl)
        z, mlp, roles = _acts_at_real_positions(model, sub)
        g = gidx_all[sl][:, None].expand_as(sub.mask)[sub.mask.bool()]
        idx = g * n_r + roles
        sums.index_add_(0, idx, z.float())
        mlp_sums.index_add_(0, idx, mlp.float())
        counts.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float))
    means = (sums / counts.clamp(min=1)[:, None, None, None]).view(n_g, n_r, cfg.n_layers,
                                                                  cfg.n_heads, cfg.d_head)
    mlp_means = (mlp_sums / counts.clamp(min=1)[:, None, None]).view(n_g, n_r, cfg.n_layers, cfg.d_model)
    empty = (counts == 0).view(n_g, n_r)
    for i, role in enumerate(roles_of):
        if role != OTHER_ROLE and empty[:, i].any():
            missing = [names[g] for g in empty[:, i].nonzero().flatten()][:3]
            raise ValueError(f"reference groups {missing} "
                             f"have no {role} position; every reference prompt needs all roles.")
    return MeanReference(means, names, tuple(group_cols), len(ref), source, details or {},
                         mlp_means=mlp_means, roles=roles_of)


def replacement_fns(method: str, batch: TaskBatch, *, means: MeanReference | None = None,
                    groups: Sequence[str] | None = None, model=None, abc: TaskBatch | None = None
                    ) -> tuple[Callable[[int], torch.Tensor], Callable[[int], torch.Tensor]]:
    """Both replacements for ``batch``: ``layer -> z`` for heads (:func:`replacement_fn`) and
    ``layer -> hook_mlp_out`` for MLPs (:func:`mlp_replacement_fn`), the ABC run done once."""
    if method == "mean":
        if means is None:
            raise ValueError("mean ablation needs a MeanReference (scorer.mean_reference)")
        if groups is None or len(groups) != len(batch):
            raise ValueError("mean ablation needs one group key per prompt: means.keys(prompts)")
        if role_names(batch) != means.roles:
            raise ValueError(f"the mean reference holds roles {list(means.roles)} but the batch's "
                             f"task has {list(role_names(batch))}: build the reference for this task.")
        roles = role_map(batch)
        gidx = means.group_index(groups)

        def mlp_mean(layer):
            if means.mlp_means is None:
                raise ValueError("this MeanReference holds no MLP means (it was built without "
                                 "them); rebuild it with scorer.mean_reference or compute_means.")
            return means.mlp_means[gidx[:, None], roles, layer]

        return (lambda layer: means.means[gidx[:, None], roles, layer]), mlp_mean
    if method == "resample":
        if abc is None or model is None:
            raise ValueError("resample ablation needs the batch's own ABC prompts (abc=...)")
        _, cache = model.run_with_cache(abc.tokens, attention_mask=abc.mask,
                                        names_filter=lambda n: n.endswith(("attn.hook_z", "hook_mlp_out")))
        return (lambda layer: cache[z_name(layer)]), (lambda layer: cache[mlp_name(layer)])
    if method == "zero":
        shape = (*batch.tokens.shape, model.cfg.n_heads, model.cfg.d_head)
        mlp_shape = (*batch.tokens.shape, model.cfg.d_model)
        return (lambda layer: torch.zeros(shape)), (lambda layer: torch.zeros(mlp_shape))
    raise ValueError(f"unknown ablation method {method!r}; use one of {METHODS}")


def replacement_fn(method: str, batch: TaskBatch, *, means: MeanReference | None = None,
                   groups: Sequence[str] | None = None, model=None, abc: TaskBatch | None = None
                   ) -> Callable[[int], torch.Tensor]:
    """``layer -> z`` to put in place of ablated (position, head) pairs of ``batch``; for mean
    ablation, ``groups`` are the rows' group keys (``means.keys(df)``)."""
    if method == "resample" and abc is not None and model is not None:
        _, cache = model.run_with_cache(abc.tokens, attention_mask=abc.mask,
                                        names_filter=lambda n: n.endswith("attn.hook_z"))
        return lambda layer: cache[z_name(layer)]
    return replacement_fns(method, batch, means=means, groups=groups, model=model, abc=abc)[0]


def mlp_replacement_fn(method: str, batch: TaskBatch, *, means: MeanReference | None = None,
                       groups: Sequence[str] | None = None, model=None, abc: TaskBatch | None = None
                       ) -> Callable[[int], torch.Tensor]:
    """``layer -> hook_mlp_out`` (``[batch, pos, d_model]``) to put in place of ablated (position,
    MLP) pairs: the (group, role) mean over the ABC reference, the ABC counterpart's own output
    (resample), or zeros."""
    if method == "resample" and abc is not None and model is not None:
        _, cache = model.run_with_cache(abc.tokens, attention_mask=abc.mask,
                                        names_filter=lambda n: n.endswith("hook_mlp_out"))
        return lambda layer: cache[mlp_name(layer)]
    return replacement_fns(method, batch, means=means, groups=groups, model=model, abc=abc)[1]


def ablation_hooks(keep: torch.Tensor, replace: Callable[[int], torch.Tensor],
                   mlp_keep: torch.Tensor | None = None,
                   mlp_replace: Callable[[int], torch.Tensor] | None = None) -> list:
    """Forward hooks on ``hook_z`` for a keep mask ``[variant, batch, pos, layer, head]``, and,
    when ``mlp_keep`` ``[variant, batch, pos, layer]`` is given, on ``hook_mlp_out``."""
    n_var, n_batch, n_pos, n_layers, n_heads = keep.shape
    hooks = []
    for layer in range(n_layers):
        keep_l = keep[:, :, :, layer].reshape(n_var * n_batch, n_pos, n_heads)
        if keep_l.all():
            continue

        def hook(z, hook, keep_l=keep_l, layer=layer):
            repl = replace(layer).repeat(n_var, 1, 1, 1).to(z.dtype)
            return torch.where(keep_l[..., None], z, repl)

        hooks.append((z_name(layer), hook))
    if mlp_keep is None:
        return hooks
    if mlp_keep.shape != keep.shape[:4]:
        raise ValueError(f"the MLP keep mask {tuple(mlp_keep.shape)} must be [variant, batch, pos, "
                         f"layer] = {tuple(keep.shape[:4])}, like the head keep mask.")
    if mlp_replace is None and not mlp_keep.all():
        raise ValueError("an MLP keep mask that ablates something needs mlp_replace "
                         "(mlp_replacement_fn).")
    for layer in range(n_layers):
        keep_l = mlp_keep[:, :, :, layer].reshape(n_var * n_batch, n_pos)
        if keep_l.all():
            continue

        def mlp_hook(out, hook, keep_l=keep_l, layer=layer):
            repl = mlp_replace(layer).repeat(n_var, 1, 1).to(out.dtype)
            return torch.where(keep_l[..., None], out, repl)

        hooks.append((mlp_name(layer), mlp_hook))
    return hooks


def run_variants(model, batch: TaskBatch, keep: torch.Tensor, replace: Callable[[int], torch.Tensor],
                 mlp_keep: torch.Tensor | None = None,
                 mlp_replace: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """Logit difference of each ablation variant in one tiled forward pass: ``[variant, batch]``.
    ``mlp_keep`` (``[variant, batch, pos, layer]``) ablates MLPs too; None: every MLP runs."""
    n_var = keep.shape[0]
    logits = end_logits(model, batch, ablation_hooks(keep, replace, mlp_keep, mlp_replace), tile=n_var)
    return end_logit_diff(logits, batch, tile=n_var)


def full_keep(model, batch: TaskBatch) -> torch.Tensor:
    """A keep mask that ablates nothing: ``[batch, pos, layer, head]``."""
    return torch.ones(*batch.tokens.shape, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)


def empty_keep(model, batch: TaskBatch) -> torch.Tensor:
    """A keep mask that ablates every head at every position: the empty circuit, F(∅)."""
    return torch.zeros(*batch.tokens.shape, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)


def _where(positions, roles: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Positions (spec names) as a ``[batch, pos]`` mask; ALL covers every position, BOS too."""
    if "ALL" in positions:
        return torch.ones_like(roles, dtype=torch.bool)
    return torch.isin(roles, torch.tensor([role_index(batch, p) for p in positions], dtype=torch.long))


def circuit_keep(spec, model, batch: TaskBatch) -> torch.Tensor:
    """Keep circuit heads at their positions (a head's own, else its class's); ablate everything
    else."""
    keep = torch.zeros(*batch.tokens.shape, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    roles = role_map(batch)
    for cls in spec.classes.values():
        for layer, head in cls.heads:
            keep[:, :, layer, head] |= _where(cls.positions_of((layer, head)), roles, batch)
    return keep


def full_mlp_keep(model, batch: TaskBatch) -> torch.Tensor:
    """An MLP keep mask that ablates nothing: ``[batch, pos, layer]``."""
    return torch.ones(*batch.tokens.shape, model.cfg.n_layers, dtype=torch.bool)


def empty_mlp_keep(model, batch: TaskBatch) -> torch.Tensor:
    """An MLP keep mask that ablates every MLP at every position."""
    return torch.zeros(*batch.tokens.shape, model.cfg.n_layers, dtype=torch.bool)


def circuit_mlp_keep(spec, model, batch: TaskBatch) -> torch.Tensor | None:
    """MLP keep mask ``[batch, pos, layer]`` of a spec with ``mlps:`` (the listed MLPs at their
    positions, every other (position, MLP) ablated); None for a spec without (every MLP runs)."""
    if spec.mlps is None:
        return None
    keep = empty_mlp_keep(model, batch)
    roles = role_map(batch)
    for m in spec.mlps:
        keep[:, :, m.layer] |= _where(m.positions, roles, batch)
    return keep


def knockout_keep(heads: Sequence[tuple[int, int]], model, batch: TaskBatch) -> torch.Tensor:
    """Ablate these heads at every position, keep the rest of the model."""
    keep = full_keep(model, batch)
    for layer, head in heads:
        keep[:, :, layer, head] = False
    return keep


__all__ = [
    "ROLE_NAMES", "METHODS", "MeanReference", "ReferenceBatch", "role_map", "role_names", "role_index",
    "compute_means",
    "replacement_fn",
    "mlp_replacement_fn", "replacement_fns", "ablation_hooks", "run_variants", "end_logits",
    "end_logit_diff", "full_keep", "empty_keep", "circuit_keep", "full_mlp_keep", "empty_mlp_keep",
    "circuit_mlp_keep", "knockout_keep", "logit_diff", "z_name", "mlp_name",
]
