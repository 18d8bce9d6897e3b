"""Path patching (Wang et al. 2022): how much of a sender head's effect flows through given
receivers.

A sender's *write* is its ``z @ W_O``. Path patching sender -> receivers replaces, in the receivers'
own copy of their input (TransformerLens's split Q/K/V input forks), the sender's clean write by
its corrupted (ABC) write, while every other reader, and everything the sender writes elsewhere,
stays clean. Only the direct edge is patched (paths through MLPs are not), as in TransformerLens's
``get_act_patch_direct_path``, which a test matches this against. Many senders run in one tiled
forward pass; only END is unembedded.

On a grouped-query model, keys and values are computed per KV head, so a K or V receiver is a KV
group: patching the K input of head (l, h) patches it for every query head sharing h's KV head.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from circuitgen import ablation as A
from circuitgen.batch import IOIBatch, chunks


def head_writes(model, cache, batch_size: int | None = None) -> torch.Tensor:
    """Every head's write to the residual stream, ``[batch, pos, layer, head, d_model]``."""
    writes = [torch.einsum("bphd,hdm->bphm", cache[A.z_name(layer)], model.blocks[layer].attn.W_O)
              for layer in range(model.cfg.n_layers)]
    return torch.stack(writes, dim=2)


@torch.no_grad()
def sender_deltas(model, base: IOIBatch, other: IOIBatch) -> torch.Tensor:
    """``write(other) - write(base)`` for every head: what patching a sender changes."""
    _, c_base = model.run_with_cache(base.tokens, attention_mask=base.mask,
                                     names_filter=lambda n: n.endswith("attn.hook_z"))
    _, c_other = model.run_with_cache(other.tokens, attention_mask=other.mask,
                                      names_filter=lambda n: n.endswith("attn.hook_z"))
    return head_writes(model, c_other) - head_writes(model, c_base)


@torch.no_grad()
def to_logits(model, base: IOIBatch, deltas: torch.Tensor) -> torch.Tensor:
    """Logit difference with each sender's write patched on its direct path to the logits only,
    ``[layer, head, batch]``: the final residual at END gets the sender's delta, then the final
    norm and unembedding are recomputed."""
    resid = A.final_resid(model, base.tokens, base.mask)
    rows = torch.arange(len(base))
    end_resid = resid[rows, base.end]  # [b, d]
    end_delta = deltas[rows, base.end]  # [b, l, h, d]
    patched = end_resid[:, None, None] + end_delta
    logits = model.unembed(model.ln_final(patched.flatten(1, 2)))  # [b, l*h, vocab]
    diff = logits[rows, :, base.io_id] - logits[rows, :, base.s_id]
    return diff.T.reshape(model.cfg.n_layers, model.cfg.n_heads, len(base))


@contextmanager
def split_qkv(model):
    saved = bool(getattr(model.cfg, "use_split_qkv_input", False))
    model.set_use_split_qkv_input(True)
    try:
        yield
    finally:
        model.set_use_split_qkv_input(saved)


def _kv_index(model, head: int, component: str) -> int:
    if component == "q":
        return head
    n_kv = getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads
    return head // (model.cfg.n_heads // n_kv)


@torch.no_grad()
def to_receivers(model, base: IOIBatch, deltas: torch.Tensor, receivers: Sequence[tuple[int, int]],
                 component: str | Sequence[str] = "q", position: str | None = "END",
                 senders: Sequence[tuple[int, int]] | None = None, tile: int = 16,
                 progress: bool = True) -> torch.Tensor:
    """Logit difference with each sender patched into the receivers' ``component`` input only,
    ``[n_senders, batch]``. ``component``: "q", "k", "v" or several (patched together).
    ``position``: a role (only that position of the input is patched) or None (every position).
    Senders default to every head below the deepest receiver; a sender reaches only receivers in
    later layers."""
    components = (component,) if isinstance(component, str) else tuple(component)
    if not components or any(c not in ("q", "k", "v") for c in components):
        raise ValueError(f"component must be q, k or v (or several), not {component!r}")
    max_layer = max(layer for layer, _ in receivers)
    senders = list(senders) if senders is not None else [
        (layer, head) for layer in range(max_layer) for head in range(model.cfg.n_heads)]
    n, n_pos = len(base), base.tokens.shape[1]
    if position is None:
        where = base.mask.bool()
    else:
        where = torch.zeros_like(base.mask, dtype=torch.bool)
        where[torch.arange(n), base.pos[position]] = True
    by_layer: dict[tuple[int, str], list[int]] = {}
    for comp in components:
        for layer, head in receivers:
            idx = _kv_index(model, head, comp)
            if idx not in by_layer.setdefault((layer, comp), []):
                by_layer[(layer, comp)].append(idx)

    out = torch.empty(len(senders), n)
    with split_qkv(model):
        bar = tqdm(total=len(senders), desc=f"path patching -> {'/'.join(components)}",
                   disable=not progress)
        for sl in chunks(len(senders), tile):
            group = senders[sl]
            k = len(group)
            delta = torch.stack([deltas[:, :, sl_, sh] for sl_, sh in group])  # [k, b, p, d]
            delta = delta * where[None, :, :, None]
            layers = torch.tensor([s[0] for s in group])
            hooks = []
            for (r_layer, comp), idxs in by_layer.items():
                live = (layers < r_layer).float()[:, None, None, None]  # only earlier senders
                add = (delta * live).reshape(k * n, n_pos, -1)

                def hook(x, hook, idxs=idxs, add=add):
                    x = x.clone()
                    x[:, :, idxs] += add[:, :, None]
                    return x

                hooks.append((f"blocks.{r_layer}.attn.hook_{comp}_input", hook))
            logits = A.end_logits(model, base, hooks, tile=k)
            out[sl] = A.end_logit_diff(logits, base, tile=k)
            bar.update(k)
        bar.close()
    return out


def attribution_to_receivers(model, base: IOIBatch, deltas: torch.Tensor,
                             receivers: Sequence[tuple[int, int]],
                             component: str | Sequence[str] = "q", position: str | None = "END",
                             senders: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """First-order estimate of :func:`to_receivers`' change in the mean logit difference, for
    every sender at once, ``[n_senders]``: the gradient of the mean logit difference with respect
    to the receivers' inputs, dotted with each sender's delta. One forward and one backward pass
    instead of one pass per sender; used to screen senders before exact path patching."""
    components = (component,) if isinstance(component, str) else tuple(component)
    max_layer = max(layer for layer, _ in receivers)
    senders = list(senders) if senders is not None else [
        (layer, head) for layer in range(max_layer) for head in range(model.cfg.n_heads)]
    if not senders:
        return torch.zeros(0)
    n = len(base)
    if position is None:
        where = base.mask.bool()
    else:
        where = torch.zeros_like(base.mask, dtype=torch.bool)
        where[torch.arange(n), base.pos[position]] = True
    wanted: dict[tuple[int, str], list[int]] = {}
    for comp in components:
        for layer, head in receivers:
            idx = _kv_index(model, head, comp)
            if idx not in wanted.setdefault((layer, comp), []):
                wanted[(layer, comp)].append(idx)
    leaves: dict[tuple[int, str], torch.Tensor] = {}

    def make_hook(key):
        def hook(x, hook):
            leaf = x.detach().requires_grad_(True)
            leaves[key] = leaf
            return leaf
        return hook

    hooks = [(f"blocks.{layer}.attn.hook_{comp}_input", make_hook((layer, comp)))
             for layer, comp in wanted]
    with torch.enable_grad(), split_qkv(model):
        logits = A.end_logits(model, base, hooks)
        metric = A.end_logit_diff(logits, base)[0].mean()
        keys = list(leaves)
        grads = torch.autograd.grad(metric, [leaves[k] for k in keys])
    estimate = torch.zeros(len(senders))
    layer_of = torch.tensor([s[0] for s in senders])
    d = torch.stack([deltas[:, :, sl, sh] for sl, sh in senders]) * where[None, :, :, None]
    for key, grad in zip(keys, grads):
        r_layer, _ = key
        g = grad[:, :, wanted[key]].sum(2)  # [b, p, d]: the same delta enters every receiver
        contrib = torch.einsum("sbpd,bpd->s", d, g)
        estimate += contrib * (layer_of < r_layer).float()
    return estimate.detach()
