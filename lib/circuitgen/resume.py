"""Forward passes that resume from a cached residual stream at layer L.

Exact pruning, size curves and activation patching run many forward passes whose changes all lie
at layers >= L. Everything below L is then the same in every pass, so it is run once
(:func:`resid_pre`) and each pass runs only blocks ``L .. n_layers-1`` on the cached residual
(:func:`run_from`), with the caller's TransformerLens hooks firing inside those blocks exactly as
in ``model.run_with_hooks``. TransformerBridge's own ``start_at_layer`` cannot do this: it still
runs the lower blocks and discards their output.

How: the bridge's blocks (``model.blocks[i]``, wrapping the Hugging Face layers, hook points
included) are called directly, with the very arguments the Hugging Face model hands them in a full
forward (the causal + padding mask, rotary ``position_embeddings``, ``position_ids``). Those are
captured by a cheap probe, a forward stopped before block 0 (embedding only), so the mask and
positions are Hugging Face's own, for any architecture whose blocks all receive the same
arguments (GPT-2, Llama and its grouped-query variants; not sliding-window models, refused). The
key/value cache is dropped (it only stores keys and values; attention reads the same ones).

Batches are :class:`circuitgen.batch.TaskBatch` (right padding, BOS at 0); logits are read at each
prompt's END. ``tile`` runs ``tile`` replicas of the batch in one pass, row-major like
``tokens.repeat(tile, 1)``, as :func:`circuitgen.ablation.run_variants` does.

- :func:`resid_pre`: ``{layer: blocks.layer.hook_resid_pre}`` from one forward.
- :func:`run_from`: the final residual (before the final norm) at END.
- :func:`logit_diff_from`: the task metric at END (IOI: IO - S), unembedding only the answer and
  wrong columns when the metric is a logit difference.
- :func:`end_logits_from`: full logits at END.
- :func:`run_variants_resumed`: :func:`circuitgen.ablation.run_variants`, with variants whose
  keep masks agree below a layer sharing one pass up to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from circuitgen.batch import TaskBatch
from circuitgen.task import metric

Hooks = Sequence[tuple[str | Callable, Callable]]


class _Stop(Exception):
    pass


def resid_pre(model, batch: TaskBatch, fwd_hooks: Hooks = ()) -> dict[int, torch.Tensor]:
    """The residual stream entering every block, ``{layer: [batch, pos, d_model]}``, from one
    forward with ``fwd_hooks`` (the last block, the final norm and the unembedding are skipped:
    nothing after ``blocks.{n-1}.hook_resid_pre`` is needed)."""
    n_layers = model.cfg.n_layers
    store: dict[int, torch.Tensor] = {}

    def grab(layer: int):
        def hook(x, hook):
            store[layer] = x.clone()
            if layer == n_layers - 1:
                raise _Stop
        return hook

    hooks = [*fwd_hooks, *((f"blocks.{i}.hook_resid_pre", grab(i)) for i in range(n_layers))]
    try:
        model.run_with_hooks(batch.tokens, attention_mask=batch.mask, fwd_hooks=hooks)
    except _Stop:
        pass
    return store


def _is_cache(x) -> bool:
    from transformers.cache_utils import Cache

    return isinstance(x, Cache)


def block_inputs(model, tokens: torch.Tensor, mask: torch.Tensor | None) -> tuple[tuple, dict]:
    """The arguments (after the hidden states) that the Hugging Face model passes to every block
    for these tokens: captured from a forward stopped before block 0, the KV cache removed."""
    config = getattr(model.original_model, "config", None)
    kinds = set(getattr(config, "layer_types", None) or ())
    if len(kinds) > 1 or getattr(config, "sliding_window", None):
        raise NotImplementedError(f"resuming needs every block to get the same mask; this model's "
                                  f"blocks differ ({sorted(kinds) or 'sliding window'}).")
    seen: dict[str, object] = {}

    def capture(module, args, kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise _Stop

    handle = model.blocks[0].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        model(tokens, attention_mask=mask, stop_at_layer=0, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "args" not in seen:
        raise RuntimeError("the probe forward never reached block 0; cannot resume this model.")
    args = tuple(None if _is_cache(a) else a for a in seen["args"][1:])
    kwargs = {k: (None if _is_cache(v) else v) for k, v in seen["kwargs"].items()}
    if "use_cache" in kwargs:
        kwargs["use_cache"] = False
    return args, kwargs


def _inputs(model, batch: TaskBatch, tile: int) -> tuple[tuple, dict]:
    """:func:`block_inputs` of the batch tiled ``tile`` times, memoised on the batch object (the
    probe is a bridge forward, ~10 ms, and exact pruning resumes thousands of times per batch);
    the key holds the token and mask storage, so a batch whose tensors are replaced is re-probed."""
    memo = batch.__dict__.setdefault("_resume_inputs", {})
    key = (id(model), tile, batch.tokens.data_ptr(), batch.mask.data_ptr(), batch.tokens.shape)
    if key not in memo:
        memo[key] = block_inputs(model, batch.tokens.repeat(tile, 1), batch.mask.repeat(tile, 1))
    return memo[key]


def _block(model, i: int, x: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
    out = model.blocks[i](x, *args, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def _check_hooks(fwd_hooks: Hooks, layer: int) -> None:
    """Refuse hooks that act below ``layer``: the cached residual already fixed those layers,
    so they would silently do nothing here while changing a full run."""
    for name, _ in fwd_hooks:
        if not isinstance(name, str):
            continue
        if name.startswith("blocks."):
            if int(name.split(".")[1]) < layer:
                raise ValueError(f"hook {name!r} acts below layer {layer}, where the forward "
                                 "resumes; put it in the pass that computed the residual.")
        elif not name.startswith(("ln_final", "unembed")):
            raise ValueError(f"hook {name!r} acts before the blocks; it cannot fire when "
                             "resuming from a cached residual.")


def run_from(model, batch: TaskBatch, layer: int, resid: torch.Tensor, fwd_hooks: Hooks = (),
             tile: int = 1) -> torch.Tensor:
    """The final residual (before the final norm) at each prompt's END, ``[tile * batch,
    d_model]``, running only blocks ``layer .. n_layers-1`` on ``resid`` (``[batch, pos,
    d_model]``, the residual entering ``layer``; tiled ``tile`` times), with ``fwd_hooks``
    firing in those blocks as in ``model.run_with_hooks`` (``blocks.layer.hook_resid_pre``
    included)."""
    n_layers = model.cfg.n_layers
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer {layer} out of range for a {n_layers}-layer model.")
    _check_hooks(fwd_hooks, layer)
    x = resid.repeat(tile, 1, 1)  # always a copy: hooks may edit the residual in place
    if x.shape[:2] != (tile * len(batch), batch.tokens.shape[1]):
        raise ValueError(f"resid has shape {tuple(resid.shape)}; expected [batch={len(batch)}, "
                         f"pos={batch.tokens.shape[1]}, d_model].")
    if layer < n_layers:
        args, kwargs = _inputs(model, batch, tile)
        with model.hooks(fwd_hooks=list(fwd_hooks)):
            for i in range(layer, n_layers):
                x = _block(model, i, x, args, kwargs)
    return x[torch.arange(x.shape[0]), batch.end.repeat(tile)]


def _final_norm(model, x: torch.Tensor, fwd_hooks: Hooks) -> torch.Tensor:
    """The final norm of ``[rows, d_model]`` (hooks on ``ln_final`` fire)."""
    hooks = [h for h in fwd_hooks if isinstance(h[0], str) and h[0].startswith("ln_final")]
    with model.hooks(fwd_hooks=hooks):
        return model.ln_final(x[:, None])[:, 0]


def end_logits_from(model, batch: TaskBatch, layer: int, resid: torch.Tensor,
                    fwd_hooks: Hooks = (), tile: int = 1) -> torch.Tensor:
    """Logits at END, ``[tile * batch, vocab]``, resuming at ``layer`` (see :func:`run_from`)."""
    x = _final_norm(model, run_from(model, batch, layer, resid, fwd_hooks, tile), fwd_hooks)
    with model.hooks(fwd_hooks=[h for h in fwd_hooks
                                if isinstance(h[0], str) and h[0].startswith("unembed")]):
        return model.unembed(x[:, None])[:, 0]


def logit_diff_from(model, batch: TaskBatch, layer: int, resid: torch.Tensor,
                    fwd_hooks: Hooks = (), tile: int = 1) -> torch.Tensor:
    """logit(IO) - logit(S) at END, ``[tile, batch]``, resuming at ``layer``: the final norm,
    then only the unembedding columns of the batch's IO and S tokens (``W_U[:, io]``,
    ``W_U[:, s]``, biases included) instead of the whole vocabulary."""
    x = _final_norm(model, run_from(model, batch, layer, resid, fwd_hooks, tile), fwd_hooks)
    return _diff(model, x, batch, tile)


def _diff(model, x: torch.Tensor, batch: TaskBatch, tile: int) -> torch.Tensor:
    """The task metric (IOI: IO - S) from final-normed END rows ``[tile * batch, d_model]``:
    ``[tile, batch]``.

    A logit difference needs only the answer and wrong columns: they go through one matmul
    ``x @ W_U[:, cols]``, which rounds like the full unembedding (measured: bitwise equal on
    SmolLM2), where a dot with ``W_U[:, io] - W_U[:, s]`` differs by up to 1e-5. A probability
    difference needs the whole vocabulary (the softmax)."""
    if batch.metric != "logit_diff":
        return batch.metric_of(model.unembed(x[:, None])[:, 0], tile)
    ids = torch.cat([batch.answer_ids.flatten(), batch.wrong_ids.flatten()])
    valid = ids >= 0
    cols, inv = torch.unique(ids[valid], return_inverse=True)
    logits = x @ model.W_U[:, cols].to(x.dtype)
    if model.b_U is not None:
        logits = logits + model.b_U[cols].to(x.dtype)
    local = torch.full_like(ids, -1)
    local[valid] = inv
    k = batch.answer_ids.numel()
    answers = local[:k].view_as(batch.answer_ids).repeat(tile, 1)
    wrongs = local[k:].view_as(batch.wrong_ids).repeat(tile, 1)
    return metric(logits, answers, wrongs, batch.metric).view(tile, len(batch))


def _first_seen(labels: torch.Tensor) -> torch.Tensor:
    """Relabel so classes are numbered in order of their first member (variant 0 in class 0)."""
    order: dict[int, int] = {}
    return torch.tensor([order.setdefault(int(x), len(order)) for x in labels])


def run_variants_resumed(model, batch: TaskBatch, keep: torch.Tensor,
                         replace: Callable[[int], torch.Tensor],
                         mlp_keep: torch.Tensor | None = None,
                         mlp_replace: Callable[[int], torch.Tensor] | None = None,
                         fwd_hooks: Hooks = ()) -> torch.Tensor:
    """:func:`circuitgen.ablation.run_variants` (same arguments, same ``[variant, batch]`` logit
    differences), with each block run once per *distinct prefix* instead of once per variant.

    Variants whose keep masks (``[variant, batch, pos, layer, head]``, and ``mlp_keep``
    ``[variant, batch, pos, layer]`` if given) agree on layers ``0 .. l`` have the same residual
    after block ``l``, so block ``l`` runs on one replica per class of that partition, tiled. The
    scorer's variants (model, circuit, empty, one knock-out per class) share the unablated model
    up to each knock-out's first head, so the knock-outs cost only the layers above it.

    ``fwd_hooks`` are extra hooks (e.g. the scorer's attention-signature readers) that see every
    block's tiled activations; their first ``len(batch)`` rows are always variant 0's.
    """
    n_var, n, n_pos, n_layers, n_heads = keep.shape
    if mlp_keep is not None and mlp_keep.shape != keep.shape[:4]:
        raise ValueError(f"the MLP keep mask {tuple(mlp_keep.shape)} must be [variant, batch, pos, "
                         f"layer] = {tuple(keep.shape[:4])}, like the head keep mask.")
    flat = keep.reshape(n_var, n * n_pos, n_layers, n_heads)
    labels = torch.zeros(n_var, dtype=torch.long)  # class of each variant after the blocks so far
    parents, reps = [], []
    for layer in range(n_layers):
        key = [labels[:, None], flat[:, :, layer].reshape(n_var, -1).long()]
        if mlp_keep is not None:
            key.append(mlp_keep[..., layer].reshape(n_var, -1).long())
        new = _first_seen(torch.unique(torch.cat(key, 1), dim=0, return_inverse=True)[1])
        rep = torch.tensor([int((new == c).nonzero()[0]) for c in range(int(new.max()) + 1)])
        parents.append(labels[rep])
        reps.append(rep)
        labels = new
    hooks = list(fwd_hooks)
    for layer, rep in enumerate(reps):
        t = len(rep)
        keep_l = keep[rep, :, :, layer].reshape(t * n, n_pos, n_heads)
        if not keep_l.all():
            def hook(z, hook, keep_l=keep_l, layer=layer, t=t):
                repl = replace(layer).repeat(t, 1, 1, 1).to(z.dtype)
                return torch.where(keep_l[..., None], z, repl)
            hooks.append((f"blocks.{layer}.attn.hook_z", hook))
        if mlp_keep is not None:
            mkeep_l = mlp_keep[rep, :, :, layer].reshape(t * n, n_pos)
            if not mkeep_l.all():
                if mlp_replace is None:
                    raise ValueError("an MLP keep mask that ablates something needs mlp_replace.")

                def mlp_hook(out, hook, keep_l=mkeep_l, layer=layer, t=t):
                    repl = mlp_replace(layer).repeat(t, 1, 1).to(out.dtype)
                    return torch.where(keep_l[..., None], out, repl)
                hooks.append((f"blocks.{layer}.hook_mlp_out", mlp_hook))
    args, kwargs = _inputs(model, batch, 1)
    x = _embed(model, batch)[None]  # [class, batch, pos, d_model]
    with model.hooks(fwd_hooks=hooks):
        for layer in range(n_layers):
            t = len(reps[layer])
            args, kwargs = _inputs(model, batch, t)
            x_in = x[parents[layer]].reshape(t * n, n_pos, -1)
            x = _block(model, layer, x_in, args, kwargs).view(t, n, n_pos, -1)
    end = x[labels][:, torch.arange(n), batch.end]  # [variant, batch, d_model]
    return _diff(model, _final_norm(model, end.reshape(n_var * n, -1), fwd_hooks), batch, n_var)


def _embed(model, batch: TaskBatch) -> torch.Tensor:
    """The residual entering block 0 (``blocks.0.hook_resid_pre``, no hooks)."""
    return model.run_with_hooks(batch.tokens, attention_mask=batch.mask, stop_at_layer=0)


__all__ = ["resid_pre", "run_from", "logit_diff_from", "end_logits_from", "block_inputs",
           "run_variants_resumed"]
