"""Path patching (Wang et al. 2022): how much of a sender head's effect flows through given
receivers.

A sender's *write* is its ``z @ W_O``. Path patching sender -> receivers replaces, in the receivers'
own copy of their input (TransformerLens's split Q/K/V input forks), the sender's clean write by
its corrupted (ABC) write, while every other reader, and everything the sender writes elsewhere,
stays clean. Only the direct edge is patched (paths through MLPs are not), as in TransformerLens's
``get_act_patch_direct_path``, which a test matches this against. Many senders run in one tiled
forward pass; only END is unembedded.

A receiver is always one *query* head. On a grouped-query model (SmolLM2: 9 query heads share 3
key/value heads) the split K/V input forks exist once per KV head, so patching them would change
the keys or values of every query head in the group, and the effect would partly flow through
heads that are not receivers. K and V receivers are therefore patched in an MHA-equivalent twin
of the model (:func:`mha_twin`): each query head gets its own copy of its KV head's K/V weights.
The twin computes exactly the model's function (checked when it is built: the same logits, and
patching every query head of a KV group in the twin equals patching that KV head in the model),
but its K/V input forks are one per query head, so the receiver's keys or values can be patched
for that query head alone. Q inputs are per query head already; non-GQA models use the model
itself, exactly as before. The forks are switched on only in the receivers' layers where the
bridge allows it (:func:`forks_at`), which more than pays for the wider K/V forks.
"""

from __future__ import annotations

import copy
import itertools
import weakref
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from circuitgen import ablation as A
from circuitgen.batch import TaskBatch, chunks

COMPONENTS = ("q", "k", "v")
TWIN_TOLERANCE = 1e-5  # relative |logit| difference allowed between a model and its MHA twin
_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def head_writes(model, cache, batch_size: int | None = None) -> torch.Tensor:
    """Every head's write to the residual stream, ``[batch, pos, layer, head, d_model]``."""
    writes = [torch.einsum("bphd,hdm->bphm", cache[A.z_name(layer)], model.blocks[layer].attn.W_O)
              for layer in range(model.cfg.n_layers)]
    return torch.stack(writes, dim=2)


@torch.no_grad()
def sender_deltas(model, base: TaskBatch, other: TaskBatch) -> torch.Tensor:
    """``write(other) - write(base)`` for every head: what patching a sender changes."""
    _, c_base = model.run_with_cache(base.tokens, attention_mask=base.mask,
                                     names_filter=lambda n: n.endswith("attn.hook_z"))
    _, c_other = model.run_with_cache(other.tokens, attention_mask=other.mask,
                                      names_filter=lambda n: n.endswith("attn.hook_z"))
    return head_writes(model, c_other) - head_writes(model, c_base)


@torch.no_grad()
def to_logits(model, base: TaskBatch, deltas: torch.Tensor) -> torch.Tensor:
    """Logit difference with each sender's write patched on its direct path to the logits only,
    ``[layer, head, batch]``: the final residual at END gets the sender's delta, then the final
    norm and unembedding are recomputed."""
    resid = A.final_resid(model, base.tokens, base.mask)
    rows = torch.arange(len(base))
    end_resid = resid[rows, base.end]  # [b, d]
    end_delta = deltas[rows, base.end]  # [b, l, h, d]
    patched = end_resid[:, None, None] + end_delta
    logits = model.unembed(model.ln_final(patched.flatten(1, 2)))  # [b, l*h, vocab]
    diff = logits[rows, :, base.answer_id] - logits[rows, :, base.wrong_id]
    return diff.T.reshape(model.cfg.n_layers, model.cfg.n_heads, len(base))


@contextmanager
def split_qkv(model):
    saved = bool(getattr(model.cfg, "use_split_qkv_input", False))
    model.set_use_split_qkv_input(True)
    try:
        yield
    finally:
        model.set_use_split_qkv_input(saved)


def _own_attention_configs(model) -> bool:
    """Whether every block's attention has a config of its own (Llama-family bridges, and the
    MHA twin), so that split forks can be switched on per layer."""
    configs = [block.attn.config for block in model.blocks]
    distinct = len({id(c) for c in configs}) == len(configs)
    return distinct and all(c is not model.cfg for c in configs)


@contextmanager
def forks_at(model, layers: set[int]):
    """Split Q/K/V input forks for the receivers' layers. A fork is a per-head copy of the
    residual with its own norm and projection, and costs time in every layer that forks
    (measured on SmolLM2, 128 prompts, CPU time on one thread: 5.9 s plain; 7.5 s with forks in
    every layer; in the MHA twin, whose K/V forks are 3x wider, 12.9 s, or 6.9 s with forks in
    one layer). So where each block's attention has a config of its own, only the receivers'
    layers fork; elsewhere (GPT-2) every layer forks, as before. Leaving the context restores
    every layer (:func:`split_qkv`)."""
    with split_qkv(model):
        if _own_attention_configs(model):
            for layer, block in enumerate(model.blocks):
                if layer not in layers:  # the bridge's own way to write a propagated flag
                    object.__setattr__(block.attn.config, "use_split_qkv_input", False)
        yield


def _require_fired(fired: set[str], names: set[str]) -> None:
    """A patch whose hook never ran would silently return clean numbers: refuse instead."""
    if fired != names:
        raise RuntimeError(f"path patching hooks did not run: {sorted(names - fired)}; the "
                           "bridge no longer forks Q/K/V inputs where path_patching expects")


def n_kv_heads(model) -> int:
    """Key/value heads per layer (= query heads on a model without grouped-query attention)."""
    return int(getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads)


def _expand_kv_linear(linear: torch.nn.Module, n_kv: int, group: int) -> None:
    """Repeat each KV head's rows of a K or V projection ``group`` times, in place (query head
    h reads KV head h // group, as TransformerLens's and HF's ``repeat_kv`` do)."""
    weight = linear.weight.detach()
    linear.weight = torch.nn.Parameter(
        weight.view(n_kv, -1, weight.shape[-1]).repeat_interleave(group, 0).flatten(0, 1),
        requires_grad=linear.weight.requires_grad)
    if getattr(linear, "bias", None) is not None:
        bias = linear.bias.detach()
        linear.bias = torch.nn.Parameter(bias.view(n_kv, -1).repeat_interleave(group, 0).flatten(),
                                         requires_grad=linear.bias.requires_grad)
    linear.out_features = linear.weight.shape[0]


def _build_mha_twin(model):
    """A copy of the bridge whose attention has one K/V head per query head. Every tensor but the
    expanded K/V weights is shared with ``model`` (no second copy of the weights); configs are
    copied before they are changed, so ``model`` itself is untouched."""
    n_heads, n_kv = model.cfg.n_heads, n_kv_heads(model)
    shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    twin = copy.deepcopy(model, shared)
    twin.cfg = copy.copy(twin.cfg)
    twin.cfg.n_key_value_heads = n_heads
    for block in twin.blocks:
        # The copied blocks keep the model's capture hooks, whose closures write the pre-ln1
        # residual (the source of the split Q/K/V forks) into the *model's* attention: drop
        # them, and each twin block wires its own on its first forward pass.
        if hasattr(block, "_teardown_capture_hooks"):
            block._teardown_capture_hooks()
        attn = block.attn
        for name in ("k", "v"):
            _expand_kv_linear(getattr(attn, name).original_component, n_kv, n_heads // n_kv)
        attn.original_component.num_key_value_groups = 1  # the bridge's repeat_kv becomes a no-op
        attn.config = copy.copy(attn.config)
        attn.config.n_key_value_heads = n_heads
        reshape = getattr(attn, "_setup_qkv_hook_reshaping", None)
        if callable(reshape):  # so hook_k / hook_v show the twin's head count
            reshape()
    return twin


def _kv_perturbation_hooks(model, per_slot: torch.Tensor) -> list:
    """Add ``per_slot[slot]`` to every K and V input slot of every layer (split forks on)."""
    def add(x, hook):
        return x + per_slot[: x.shape[2]].to(x.dtype)
    return [(f"blocks.{layer}.attn.hook_{c}_input", add)
            for layer in range(model.cfg.n_layers) for c in ("k", "v")]


@torch.no_grad()
def _check_twin(model, twin) -> None:
    """The twin must compute the model's function, and patching all query-head slots of a KV
    group in the twin must equal patching that KV head's slot in the model (this is what the
    twin is for: it fails if the forks read the wrong residual or the heads are misordered).
    Refuse the twin, loudly, if the bridge's internals ever change so that either fails."""
    tokens = torch.arange(1, 17)[None] % model.cfg.d_vocab
    diff = float((model(tokens) - twin(tokens)).abs().max())
    gen = torch.Generator().manual_seed(0)
    per_kv = torch.randn(n_kv_heads(model), model.cfg.d_model, generator=gen)
    per_kv = per_kv * model.W_E.detach().norm(dim=-1).mean() / per_kv.norm(dim=-1, keepdim=True)
    per_query = per_kv.repeat_interleave(model.cfg.n_heads // n_kv_heads(model), 0)
    with split_qkv(model), split_qkv(twin):
        ref = model.run_with_hooks(tokens, fwd_hooks=_kv_perturbation_hooks(model, per_kv))
        got = twin.run_with_hooks(tokens, fwd_hooks=_kv_perturbation_hooks(twin, per_query))
        clean = model(tokens)
    diff = max(diff, float((ref - got).abs().max()))
    if not diff <= TWIN_TOLERANCE * (1 + float(ref.abs().max())) or torch.equal(ref, clean):
        raise RuntimeError(
            f"the MHA twin of this grouped-query model gives logits {diff:.2g} away from the "
            "model's: the bridge's attention no longer reads K/V heads as path_patching expects, "
            "so GQA-correct K/V path patching cannot run. Report this with the TransformerLens "
            "version.")


def _kv_signature(model) -> tuple:
    """Identity, version and device of every K/V weight: changes when they are edited or moved,
    which would make a twin's expanded copies stale."""
    weights = [getattr(block.attn, name).original_component.weight
               for block in model.blocks for name in ("k", "v")]
    return tuple((w.data_ptr(), w._version, str(w.device), w.dtype) for w in weights)


def mha_twin(model):
    """The MHA-equivalent twin of a grouped-query ``model`` (``model`` itself if it has no GQA),
    built once per model object and checked to compute the model's function.

    Its split K/V input hooks (``blocks.L.attn.hook_k_input``) have one slot per query head. It
    shares every weight of the model but K/V, whose expanded copies are rebuilt whenever the
    model's K/V weights have been edited or moved since."""
    if n_kv_heads(model) == model.cfg.n_heads:
        return model
    signature = _kv_signature(model)
    cached = _TWINS.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    twin = _build_mha_twin(model)
    _check_twin(model, twin)
    _TWINS[model] = (signature, twin)
    return twin


def _receiver_model(model, components: tuple[str, ...]):
    """The model whose split input forks address each receiver's query head alone."""
    return mha_twin(model) if set(components) & {"k", "v"} else model


def _components(component: str | Sequence[str]) -> tuple[str, ...]:
    components = (component,) if isinstance(component, str) else tuple(component)
    if not components or any(c not in COMPONENTS for c in components):
        raise ValueError(f"component must be q, k or v (or several), not {component!r}")
    return components


def _default_senders(model, receivers: Sequence[tuple[int, int]],
                     senders: Sequence[tuple[int, int]] | None) -> list[tuple[int, int]]:
    if senders is not None:
        return list(senders)
    max_layer = max(layer for layer, _ in receivers)
    return [(layer, head) for layer in range(max_layer) for head in range(model.cfg.n_heads)]


def _positions(base: TaskBatch, position: str | None) -> torch.Tensor:
    """``[batch, pos]`` mask of the positions whose receiver input is patched."""
    if position is None:
        return base.mask.bool()
    where = torch.zeros_like(base.mask, dtype=torch.bool)
    where[torch.arange(len(base)), base.pos[position]] = True
    return where


def _input_hook(layer: int, comp: str) -> str:
    """The split input fork of one component: ``[batch, pos, head, d_model]``."""
    return f"blocks.{layer}.attn.hook_{comp}_input"


def _slots(receivers: Sequence[tuple[int, int]], components: tuple[str, ...]
           ) -> dict[tuple[int, str], list[int]]:
    """``(layer, component) -> query heads`` to patch. In the model that :func:`_receiver_model`
    picks, slot h of ``hook_{q,k,v}_input`` is query head h's own copy of its input."""
    slots: dict[tuple[int, str], list[int]] = {}
    for comp in components:
        for layer, head in receivers:
            if head not in slots.setdefault((layer, comp), []):
                slots[(layer, comp)].append(head)
    return slots


@torch.no_grad()
def to_receivers(model, base: TaskBatch, deltas: torch.Tensor, receivers: Sequence[tuple[int, int]],
                 component: str | Sequence[str] = "q", position: str | None = "END",
                 senders: Sequence[tuple[int, int]] | None = None, tile: int = 16,
                 progress: bool = True) -> torch.Tensor:
    """Logit difference with each sender patched into the receivers' ``component`` input only,
    ``[n_senders, batch]``. ``component``: "q", "k", "v" or several (patched together).
    ``position``: a role (only that position of the input is patched) or None (every position).
    Senders default to every head below the deepest receiver; a sender reaches only receivers in
    later layers. Each receiver ``(layer, head)`` is one query head, also on GQA models."""
    components = _components(component)
    senders = _default_senders(model, receivers, senders)
    runner = _receiver_model(model, components)
    where = _positions(base, position)
    slots = _slots(receivers, components)
    out = torch.empty(len(senders), len(base))
    with forks_at(runner, {layer for layer, _ in slots}):
        bar = tqdm(total=len(senders), desc=f"path patching -> {'/'.join(components)}",
                   disable=not progress)
        for sl in chunks(len(senders), tile):
            group = senders[sl]
            delta = torch.stack([deltas[:, :, layer, head] for layer, head in group])  # [k,b,p,d]
            fired: set[str] = set()
            hooks = _patch_hooks(slots, delta * where[None, :, :, None],
                                 torch.tensor([layer for layer, _ in group]), fired)
            logits = A.end_logits(runner, base, hooks, tile=len(group))
            _require_fired(fired, {name for name, _ in hooks})
            out[sl] = A.end_logit_diff(logits, base, tile=len(group))
            bar.update(len(group))
        bar.close()
    return out


def _patch_hooks(slots: dict[tuple[int, str], list[int]], delta: torch.Tensor,
                 sender_layers: torch.Tensor, fired: set[str]) -> list:
    """Hooks adding sender k's ``delta[k]`` (``[k, b, p, d]``) to the receivers' input slots in
    the k-th copy of the tiled batch; a sender reaches only receivers in later layers."""
    k, n, n_pos = delta.shape[:3]
    hooks = []
    for (r_layer, comp), heads in slots.items():
        live = (sender_layers < r_layer).float()[:, None, None, None]
        add = (delta * live).reshape(k * n, n_pos, -1)
        name = _input_hook(r_layer, comp)

        def hook(x, hook, heads=heads, add=add, name=name):
            fired.add(name)
            x = x.clone()
            x[:, :, heads] += add[:, :, None]
            return x

        hooks.append((name, hook))
    return hooks


def attribution_to_receivers(model, base: TaskBatch, deltas: torch.Tensor,
                             receivers: Sequence[tuple[int, int]],
                             component: str | Sequence[str] = "q", position: str | None = "END",
                             senders: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """First-order estimate of :func:`to_receivers`' change in the mean logit difference, for
    every sender at once, ``[n_senders]``: the gradient of the mean logit difference with respect
    to the receivers' inputs (each receiver query head's own copy, also on GQA models), dotted
    with each sender's delta. One forward and one backward pass instead of one pass per sender;
    used to screen senders before exact path patching."""
    components = _components(component)
    senders = _default_senders(model, receivers, senders)
    if not senders:
        return torch.zeros(0)
    runner = _receiver_model(model, components)
    where = _positions(base, position)
    slots = _slots(receivers, components)
    leaves: dict[tuple[int, str], torch.Tensor] = {}

    def make_hook(key):
        def hook(x, hook):
            leaf = x.detach().requires_grad_(True)
            leaves[key] = leaf
            return leaf
        return hook

    hooks = [(_input_hook(layer, comp), make_hook((layer, comp))) for layer, comp in slots]
    with torch.enable_grad(), forks_at(runner, {layer for layer, _ in slots}):
        logits = A.end_logits(runner, base, hooks)
        metric = A.end_logit_diff(logits, base)[0].mean()
        _require_fired({_input_hook(*key) for key in leaves}, {_input_hook(*key) for key in slots})
        keys = list(leaves)
        grads = torch.autograd.grad(metric, [leaves[k] for k in keys])
    estimate = torch.zeros(len(senders))
    layer_of = torch.tensor([s[0] for s in senders])
    d = torch.stack([deltas[:, :, sl, sh] for sl, sh in senders]) * where[None, :, :, None]
    for key, grad in zip(keys, grads):
        r_layer, _ = key
        g = grad[:, :, slots[key]].sum(2)  # [b, p, d]: the same delta enters every receiver
        contrib = torch.einsum("sbpd,bpd->s", d, g)
        estimate += contrib * (layer_of < r_layer).float()
    return estimate.detach()
