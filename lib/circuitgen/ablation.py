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

Several variants (the circuit, each class knocked out, ...) run in one forward pass of a tiled
batch, and only the END positions are unembedded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

import torch

from circuitgen.batch import IOIBatch, chunks, logit_diff

ROLE_NAMES = ("BOS", "other", "IO", "S1", "S1+1", "S2", "END")
ROLE_INDEX = {name: i for i, name in enumerate(ROLE_NAMES)}
METHODS = ("mean", "resample", "zero")


def z_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def role_map(batch: IOIBatch) -> torch.Tensor:
    """Role index of every position, ``[batch, pos]`` (padding counts as 'other')."""
    roles = torch.full(batch.tokens.shape, ROLE_INDEX["other"], dtype=torch.long)
    roles[:, 0] = ROLE_INDEX["BOS"]
    rows = torch.arange(len(batch))
    for name in ROLE_NAMES[2:]:
        roles[rows, batch.pos[name]] = ROLE_INDEX[name]
    return roles


@dataclass
class MeanReference:
    """Mean ``z`` of every head per (group, role), ``[group, role, layer, head, d_head]``.

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

    def keys(self, df: pd.DataFrame) -> list[str]:
        """The group key of every row of a prompt table."""
        from circuitgen.reference import group_keys

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
                "positions": "by role: " + ", ".join(ROLE_NAMES)} | self.details


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


def end_logits(model, batch: IOIBatch, fwd_hooks=(), tile: int = 1) -> torch.Tensor:
    """Logits at END only, ``[tile * batch, vocab]``: exact, and skips unembedding other positions."""
    tokens, mask = batch.tokens.repeat(tile, 1), batch.mask.repeat(tile, 1)
    resid = final_resid(model, tokens, mask, fwd_hooks)
    rows = torch.arange(resid.shape[0])
    at_end = resid[rows, batch.end.repeat(tile)][:, None]
    return model.unembed(model.ln_final(at_end))[:, 0]


def end_logit_diff(logits_at_end: torch.Tensor, batch: IOIBatch, tile: int = 1) -> torch.Tensor:
    """IO - S from END logits of a tiled batch: ``[tile, batch]``."""
    rows = torch.arange(logits_at_end.shape[0])
    diff = logits_at_end[rows, batch.io_id.repeat(tile)] - logits_at_end[rows, batch.s_id.repeat(tile)]
    return diff.view(tile, len(batch))


def _z_at_real_positions(model, batch: IOIBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """``z`` of every head at every real position, ``[n_real, layer, head, d_head]``, and each
    position's role; the forward stops after the last attention layer (no MLP-out, no unembed)."""
    store: dict[int, torch.Tensor] = {}
    last = model.cfg.n_layers - 1

    class _Stop(Exception):
        pass

    def grab(layer: int):
        def hook(z, hook):
            store[layer] = z
            if layer == last:
                raise _Stop
        return hook

    hooks = [(z_name(layer), grab(layer)) for layer in range(model.cfg.n_layers)]
    try:
        model.run_with_hooks(batch.tokens, attention_mask=batch.mask, fwd_hooks=hooks)
    except _Stop:
        pass
    z = torch.stack([store[layer] for layer in range(model.cfg.n_layers)], dim=2)  # b p l h d
    real = batch.mask.bool()
    return z[real], role_map(batch)[real]


def compute_means(model, ref: IOIBatch, keys: Sequence[str], group_cols: Sequence[str] = (), *,
                  batch_size: int = 32, source: str = "abc", details: dict | None = None
                  ) -> MeanReference:
    """Mean ``z`` per (group, role) over the reference batch (the ABC prompts)."""
    cfg = model.cfg
    keys = [str(k) for k in keys]
    if len(keys) != len(ref):
        raise ValueError(f"{len(keys)} group keys for {len(ref)} reference prompts.")
    names = sorted(set(keys))
    n_g, n_r = len(names), len(ROLE_NAMES)
    sums = torch.zeros(n_g * n_r, cfg.n_layers, cfg.n_heads, cfg.d_head)
    counts = torch.zeros(n_g * n_r)
    gidx_all = torch.tensor([names.index(k) for k in keys])
    for sl in chunks(len(ref), batch_size):
        sub = ref.subset(sl)
        z, roles = _z_at_real_positions(model, sub)
        g = gidx_all[sl][:, None].expand_as(sub.mask)[sub.mask.bool()]
        idx = g * n_r + roles
        sums.index_add_(0, idx, z.float())
        counts.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float))
    means = (sums / counts.clamp(min=1)[:, None, None, None]).view(n_g, n_r, cfg.n_layers,
                                                                  cfg.n_heads, cfg.d_head)
    empty = (counts == 0).view(n_g, n_r)
    for role in ("BOS", "IO", "S1", "S1+1", "S2", "END"):
        if empty[:, ROLE_INDEX[role]].any():
            raise ValueError(f"reference groups {[names[i] for i in empty[:, ROLE_INDEX[role]].nonzero().flatten()][:3]} "
                             f"have no {role} position; every reference prompt needs all roles.")
    return MeanReference(means, names, tuple(group_cols), len(ref), source, details or {})


def replacement_fn(method: str, batch: IOIBatch, *, means: MeanReference | None = None,
                   groups: Sequence[str] | None = None, model=None, abc: IOIBatch | None = None
                   ) -> Callable[[int], torch.Tensor]:
    """``layer -> z`` to put in place of ablated (position, head) pairs of ``batch``; for mean
    ablation, ``groups`` are the rows' group keys (``means.keys(df)``)."""
    if method == "mean":
        if means is None:
            raise ValueError("mean ablation needs a MeanReference (scorer.mean_reference)")
        if groups is None or len(groups) != len(batch):
            raise ValueError("mean ablation needs one group key per prompt: means.keys(prompts)")
        roles = role_map(batch)
        gidx = means.group_index(groups)
        return lambda layer: means.means[gidx[:, None], roles, layer]
    if method == "resample":
        if abc is None or model is None:
            raise ValueError("resample ablation needs the batch's own ABC prompts (abc=...)")
        _, cache = model.run_with_cache(abc.tokens, attention_mask=abc.mask,
                                        names_filter=lambda n: n.endswith("attn.hook_z"))
        return lambda layer: cache[z_name(layer)]
    if method == "zero":
        shape = (*batch.tokens.shape, model.cfg.n_heads, model.cfg.d_head)
        return lambda layer: torch.zeros(shape)
    raise ValueError(f"unknown ablation method {method!r}; use one of {METHODS}")


def ablation_hooks(keep: torch.Tensor, replace: Callable[[int], torch.Tensor]) -> list:
    """Forward hooks on ``hook_z`` for a keep mask ``[variant, batch, pos, layer, head]``."""
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
    return hooks


def run_variants(model, batch: IOIBatch, keep: torch.Tensor, replace: Callable[[int], torch.Tensor]
                 ) -> torch.Tensor:
    """Logit difference of each ablation variant in one tiled forward pass: ``[variant, batch]``."""
    n_var = keep.shape[0]
    logits = end_logits(model, batch, ablation_hooks(keep, replace), tile=n_var)
    return end_logit_diff(logits, batch, tile=n_var)


def full_keep(model, batch: IOIBatch) -> torch.Tensor:
    """A keep mask that ablates nothing: ``[batch, pos, layer, head]``."""
    return torch.ones(*batch.tokens.shape, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)


def empty_keep(model, batch: IOIBatch) -> torch.Tensor:
    """A keep mask that ablates every head at every position: the empty circuit, F(∅)."""
    return torch.zeros(*batch.tokens.shape, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)


def circuit_keep(spec, model, batch: IOIBatch) -> torch.Tensor:
    """Keep circuit heads at the positions their class acts at; ablate everything else."""
    keep = torch.zeros(*batch.tokens.shape, model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    roles = role_map(batch)
    for cls in spec.classes.values():
        if "ALL" in cls.positions:
            where = torch.ones_like(roles, dtype=torch.bool)
        else:
            where = torch.isin(roles, torch.tensor([ROLE_INDEX[p] for p in cls.positions]))
        for layer, head in cls.heads:
            keep[:, :, layer, head] |= where
    return keep


def knockout_keep(heads: Sequence[tuple[int, int]], model, batch: IOIBatch) -> torch.Tensor:
    """Ablate these heads at every position, keep the rest of the model."""
    keep = full_keep(model, batch)
    for layer, head in heads:
        keep[:, :, layer, head] = False
    return keep


__all__ = [
    "ROLE_NAMES", "METHODS", "MeanReference", "role_map", "compute_means", "replacement_fn",
    "ablation_hooks", "run_variants", "end_logits", "end_logit_diff", "full_keep", "empty_keep", "circuit_keep",
    "knockout_keep", "logit_diff",
]
