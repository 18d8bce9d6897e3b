"""Activation and attribution patching of IOI prompts (week 5).

Activation patching runs the model on a *corrupted* prompt (here the ABC counterpart of each IOI
prompt: the same sentence with three other names), replaces one activation with its value on the
*clean* prompt, and measures how far the output moves back to the clean answer. The metric is the
normalised logit difference

    (LD_patched - LD_corrupted) / (LD_clean - LD_corrupted)

with LD the IO - S logit difference at END **averaged over the prompts** before normalising (a
ratio of means; 0 = no recovery, 1 = the clean behaviour). The IO and S tokens are the clean
prompt's in every run.

What is here:

- :data:`KINDS` names each sweep: the residual stream, attention and MLP outputs by layer and
  position (``resid_pre``, ``attn_out``, ``mlp_out``), attention and MLP outputs by layer at all
  positions (``attn_layer``, ``mlp_layer``), and per-head sweeps at all positions: output
  (``head_out``, on ``attn.hook_z``), queries, keys, values and attention patterns
  (``head_q``, ``head_k``, ``head_v``, ``head_pattern``). Keys and values are swept per K/V head,
  which under grouped-query attention is shared by several query heads.
- :func:`tl_patch`: a thin wrapper over TransformerLens's ``transformer_lens.patching`` sweeps
  (one forward pass per patched index, TransformerLens's own loop).
- :func:`fast_patch`: the same sweeps, with identical results, in far fewer forward passes: the
  corrupted batch is tiled ``k`` times in one forward and each replica patches a different index
  (hooks at several layers, each patching only its replicas). It reuses TransformerLens's patch
  setters, so the patch itself is TransformerLens's. Indices whose clean and corrupted
  activations are bitwise equal (for example every position before the first name, where the
  clean and corrupted prompts agree) cannot change the output; given the corrupted cache they
  are filled with the unpatched metric without a forward pass. When the metric reads only END
  (:class:`EndMetric`, as the IOI metric does), the forward stops after the last block and only
  the END positions are unembedded. :func:`patch_all_heads` is ``fast_patch(kind="head_out")``.
- :func:`attribute_heads`: attribution patching of every head's output, batched: one clean
  forward, one corrupted forward and one backward, with gradients read by *backward hooks* on
  ``attn.hook_z`` (``retain_grad`` inside a forward hook does nothing there in TransformerLens 4).
  :func:`attribute_heads_tl` gets the same numbers from TransformerLens's
  ``tools.analysis.attribution_patch`` (node scores summed over positions), one prompt at a time.
- :func:`aligned_prompts` and :func:`setup`: prompts of one template, order and length (so each
  position holds the same role in every prompt, as layer x position sweeps need), the clean and
  corrupted batches, their caches and the metric.

TransformerLens's sweeps call ``model.run_with_hooks(corrupted_tokens)`` with no attention mask,
and so does :func:`fast_patch`. That is exact at each prompt's END position, where the metric
reads, because batches are right-padded (:mod:`circuitgen.batch`) and attention is causal; read
logits only through :func:`circuitgen.batch.logit_diff`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformer_lens import patching as tlp
from transformer_lens.utilities import get_act_name

from circuitgen import batch as B
from circuitgen import ioi, ioi_templates, resume
from circuitgen.ablation import final_resid

Metric = Callable[[torch.Tensor], torch.Tensor]


class EndMetric:
    """A metric of the logits at each prompt's END only.

    Called on full logits ``[batch, pos, vocab]`` like any metric (TransformerLens's sweeps do
    that); :func:`fast_patch` instead calls :meth:`from_end` on ``[batch, vocab]`` END logits, so
    it need not unembed the other positions.
    """

    def __init__(self, batch: B.TaskBatch, from_end: Callable[[torch.Tensor], torch.Tensor]):
        self.batch = batch
        self.from_end = from_end

    @property
    def end(self) -> torch.Tensor:
        return self.batch.end

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return self.from_end(B.at_end(logits, self.batch))


def _end_logits(model, tokens: torch.Tensor, end: torch.Tensor, fwd_hooks) -> torch.Tensor:
    """Logits at ``end`` (one position per row): ``[batch, vocab]``, other positions not unembedded."""
    resid = final_resid(model, tokens, None, fwd_hooks)
    at_end = resid[torch.arange(resid.shape[0]), end][:, None]
    return model.unembed(model.ln_final(at_end))[:, 0]


def layer_all_pos_patch_setter(corrupted_activation, index, clean_activation):
    """Patch a whole activation (every position) of one layer; ``index = [layer]``."""
    assert len(index) == 1
    corrupted_activation[...] = clean_activation
    return corrupted_activation


@dataclass(frozen=True)
class Kind:
    """One kind of sweep: the hooked activation, the axes swept, the patch setter, TL's function."""

    activation: str
    axes: tuple[str, ...]
    setter: Callable
    tl_function: Callable | None
    description: str


KINDS: dict[str, Kind] = {
    "resid_pre": Kind("resid_pre", ("layer", "pos"), tlp.layer_pos_patch_setter,
                      tlp.get_act_patch_resid_pre, "residual stream entering each layer, by position"),
    "attn_out": Kind("attn_out", ("layer", "pos"), tlp.layer_pos_patch_setter,
                     tlp.get_act_patch_attn_out, "attention layer output, by position"),
    "mlp_out": Kind("mlp_out", ("layer", "pos"), tlp.layer_pos_patch_setter,
                    tlp.get_act_patch_mlp_out, "MLP output, by position"),
    "attn_layer": Kind("attn_out", ("layer",), layer_all_pos_patch_setter, None,
                       "attention layer output at all positions"),
    "mlp_layer": Kind("mlp_out", ("layer",), layer_all_pos_patch_setter, None,
                      "MLP output at all positions"),
    "head_out": Kind("z", ("layer", "head"), tlp.layer_head_vector_patch_setter,
                     tlp.get_act_patch_attn_head_out_all_pos, "each head's output (z), all positions"),
    "head_q": Kind("q", ("layer", "head"), tlp.layer_head_vector_patch_setter,
                   tlp.get_act_patch_attn_head_q_all_pos, "each head's queries, all positions"),
    "head_k": Kind("k", ("layer", "head"), tlp.layer_head_vector_patch_setter,
                   tlp.get_act_patch_attn_head_k_all_pos, "each K/V head's keys, all positions"),
    "head_v": Kind("v", ("layer", "head"), tlp.layer_head_vector_patch_setter,
                   tlp.get_act_patch_attn_head_v_all_pos, "each K/V head's values, all positions"),
    "head_pattern": Kind("pattern", ("layer", "head_index"), tlp.layer_head_pattern_patch_setter,
                         tlp.get_act_patch_attn_head_pattern_all_pos,
                         "each head's attention pattern, all positions"),
}


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown patching kind {kind!r}; choose one of {sorted(KINDS)}.")
    return KINDS[kind]


def n_heads_for(model, kind: str) -> int:
    """Heads swept by a per-head kind: K/V heads for keys and values (as TransformerLens does)."""
    spec = _kind(kind)
    kv = getattr(model.cfg, "n_key_value_heads", None)
    if spec.activation in ("k", "v") and kv is not None:
        return int(kv)
    return int(model.cfg.n_heads)


def result_shape(model, kind: str, seq_len: int) -> tuple[int, ...]:
    """The shape of a sweep's result: ``[n_layers]``, ``[n_layers, pos]`` or ``[n_layers, heads]``."""
    ranges = {"layer": model.cfg.n_layers, "pos": seq_len, "head": n_heads_for(model, kind),
              "head_index": n_heads_for(model, kind)}
    return tuple(int(ranges[a]) for a in _kind(kind).axes)


def index_frame(model, kind: str, seq_len: int, layers: Sequence[int] | None = None) -> pd.DataFrame:
    """Every index a sweep patches, in TransformerLens's order (last axis fastest)."""
    spec = _kind(kind)
    df = tlp.make_df_from_ranges(result_shape(model, kind, seq_len), list(spec.axes))
    if layers is not None:
        bad = [l for l in layers if not 0 <= l < model.cfg.n_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {model.cfg.n_layers}-layer model.")
        df = df[df["layer"].isin(list(layers))].reset_index(drop=True)
    return df


def _unflatten(flat: torch.Tensor, df: pd.DataFrame, shape: tuple[int, ...]) -> torch.Tensor:
    out = torch.full(shape, float("nan"), dtype=flat.dtype)
    out[tuple(torch.tensor(df[c].tolist()) for c in df.columns)] = flat.detach().cpu()
    return out


@contextlib.contextmanager
def _tl_progress(show: bool):
    """TransformerLens's sweeps always draw a tqdm bar; hide it unless asked for."""
    if show:
        yield
        return
    saved = tlp.tqdm
    tlp.tqdm = lambda it, *args, **kwargs: it
    try:
        yield
    finally:
        tlp.tqdm = saved


def tl_patch(model, corrupted_tokens: torch.Tensor, clean_cache, metric: Metric, kind: str, *,
             layers: Sequence[int] | None = None, progress: bool = False) -> torch.Tensor:
    """TransformerLens's own sweep of ``kind`` (one forward pass per patched index).

    Returns the metric per index, shaped like :func:`result_shape`; with ``layers`` only those
    layers are swept and the other rows are NaN. ``metric`` maps the corrupted batch's logits to
    a scalar.
    """
    spec = _kind(kind)
    shape = result_shape(model, kind, corrupted_tokens.shape[1])
    with _tl_progress(progress), torch.no_grad():
        if layers is None and spec.tl_function is not None:
            return spec.tl_function(model, corrupted_tokens, clean_cache, metric).cpu()
        df = index_frame(model, kind, corrupted_tokens.shape[1], layers)
        flat = tlp.generic_activation_patch(
            model, corrupted_tokens, clean_cache, metric, patch_setter=spec.setter,
            activation_name=spec.activation, index_df=df)
    return _unflatten(flat, df, shape)


def _tiled_hook(activation, hook, jobs, n, setter, clean):
    """Patch replica ``j`` (rows ``j*n .. (j+1)*n``) at its own index, for every job."""
    if activation.requires_grad:
        activation = activation.clone()
    for j, index in jobs:
        setter(activation[j * n:(j + 1) * n], list(index), clean)
    return activation


def fast_patch(model, corrupted_tokens: torch.Tensor, clean_cache, metric: Metric, kind: str, *,
               layers: Sequence[int] | None = None, per_forward: int | None = None,
               max_batch: int = 64, corrupted_cache=None, progress: bool = True) -> torch.Tensor:
    """The sweep :func:`tl_patch` does, in ``ceil(n_indices / per_forward)`` forward passes.

    Each forward pass runs the corrupted batch tiled ``per_forward`` times (by default as many
    times as fit in ``max_batch`` prompts); replica ``j`` is patched at its own index, whichever
    layer it is in. With ``corrupted_cache`` (the unpatched corrupted run's cache), indices whose
    clean and corrupted activations are bitwise equal get the unpatched metric without a forward
    pass. With an :class:`EndMetric` only the END positions are unembedded. Results equal
    TransformerLens's loop up to float rounding (tests: 1e-4).
    """
    spec = _kind(kind)
    n, seq_len = corrupted_tokens.shape
    shape = result_shape(model, kind, seq_len)
    df = index_frame(model, kind, seq_len, layers)
    out = torch.full(shape, float("nan"))
    indices = [tuple(int(v) for v in row) for row in df.itertuples(index=False)]
    if corrupted_cache is not None:
        todo = []
        with torch.no_grad():
            for index in indices:
                name = get_act_name(spec.activation, index[0])
                corrupted = corrupted_cache[name]
                patched = spec.setter(corrupted.clone(), list(index), clean_cache[name])
                if not torch.equal(patched, corrupted):
                    todo.append(index)
        if len(todo) < len(indices):
            with torch.no_grad():
                baseline = float(_run_metric(model, corrupted_tokens, metric, [], 1)[0])
            for index in set(indices) - set(todo):
                out[index] = baseline
    else:
        todo = indices
    k = per_forward or max(1, max_batch // n)
    if isinstance(metric, EndMetric):
        return _fast_patch_resumed(model, corrupted_tokens, clean_cache, metric, spec, todo, k,
                                   out, progress, kind)
    groups = [todo[i:i + k] for i in range(0, len(todo), k)]
    for group in tqdm(groups, desc=f"patching {kind}", unit="forward", leave=False,
                      disable=not progress or len(groups) < 2):
        jobs: dict[str, list] = {}
        for j, index in enumerate(group):
            jobs.setdefault(get_act_name(spec.activation, index[0]), []).append((j, index))
        hooks = [(name, partial(_tiled_hook, jobs=js, n=n, setter=spec.setter, clean=clean_cache[name]))
                 for name, js in jobs.items()]
        with torch.no_grad():
            values = _run_metric(model, corrupted_tokens, metric, hooks, len(group))
        for index, value in zip(group, values):
            out[index] = value
    return out


def _fast_patch_resumed(model, tokens: torch.Tensor, clean_cache, metric: EndMetric, spec: Kind,
                        todo: list, k: int, out: torch.Tensor, progress: bool, kind: str
                        ) -> torch.Tensor:
    """:func:`fast_patch` for an END metric: every patch of a sweep acts inside one block, so
    the indices are grouped by layer and a patch at layer L resumes from the corrupted run's
    residual entering L (:mod:`circuitgen.resume`), running only blocks L and above.

    Each layer's indices are split into near-equal groups of at most ``k`` replicas. The run is
    unmasked like TransformerLens's loop (an all-ones mask; right padding keeps END exact)."""

    n = tokens.shape[0]
    batch = B.TaskBatch(tokens, torch.ones_like(tokens), metric.batch.answer_ids,
                        metric.batch.wrong_ids, {"END": metric.end}, metric.batch.metric)
    by_layer: dict[int, list] = {}
    for index in todo:
        by_layer.setdefault(index[0], []).append(index)
    groups = []
    for layer, idx in sorted(by_layer.items()):
        n_groups = -(-len(idx) // k)
        size = -(-len(idx) // n_groups)
        groups += [(layer, idx[i:i + size]) for i in range(0, len(idx), size)]
    with torch.no_grad():
        cache = resume.resid_pre(model, batch) if groups else {}
        for layer, group in tqdm(groups, desc=f"patching {kind}", unit="forward", leave=False,
                                 disable=not progress or len(groups) < 2):
            name = get_act_name(spec.activation, layer)
            jobs = list(enumerate(group))
            hook = partial(_tiled_hook, jobs=jobs, n=n, setter=spec.setter, clean=clean_cache[name])
            logits = resume.end_logits_from(model, batch, layer, cache[layer], [(name, hook)],
                                            tile=len(group))
            for j, index in jobs:
                out[index] = float(metric.from_end(logits[j * n:(j + 1) * n]))
    return out


def _run_metric(model, tokens: torch.Tensor, metric: Metric, hooks, tile: int) -> list[float]:
    """The metric of each of ``tile`` replicas of ``tokens`` run in one forward with ``hooks``."""
    n = tokens.shape[0]
    tiled = tokens.repeat(tile, 1)
    if isinstance(metric, EndMetric):
        logits = _end_logits(model, tiled, metric.end.repeat(tile), hooks)
        return [float(metric.from_end(logits[j * n:(j + 1) * n])) for j in range(tile)]
    logits = model.run_with_hooks(tiled, fwd_hooks=hooks)
    return [float(metric(logits[j * n:(j + 1) * n])) for j in range(tile)]


def patch_all_heads(model, corrupted_tokens: torch.Tensor, clean_cache, metric: Metric,
                    **kwargs) -> torch.Tensor:
    """Exact patching of every head's output (``hook_z``, all positions): ``[n_layers, n_heads]``.

    :func:`fast_patch` with ``kind="head_out"``; equals TransformerLens's
    ``get_act_patch_attn_head_out_all_pos``.
    """
    return fast_patch(model, corrupted_tokens, clean_cache, metric, "head_out", **kwargs)


# --------------------------------------------------------------------------------------------
# Attribution patching


def _z_names(model) -> list[str]:
    return [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]


def attribute_heads(model, clean_tokens: torch.Tensor, corrupted_tokens: torch.Tensor,
                    metric: Metric) -> torch.Tensor:
    """Attribution patching of every head's output: ``[n_layers, n_heads]``.

    The first-order estimate of :func:`patch_all_heads`: for each head,
    ``sum over prompts, positions and d_head of (z_clean - z_corrupted) * d metric / d z`` with the
    gradient taken on the corrupted run (TransformerLens's denoising convention). Since the
    normalised metric is 0 on the corrupted run, the estimate is directly comparable with the
    exact patched metric. One clean forward, one corrupted forward and one backward, batched.
    The gradient comes from backward hooks on ``attn.hook_z``; the backward is driven with
    ``torch.autograd.grad`` to a leaf made at ``hook_embed``, so no parameter's ``.grad`` is touched.
    """
    names = _z_names(model)
    clean: dict[str, torch.Tensor] = {}
    corrupted: dict[str, torch.Tensor] = {}
    grads: dict[str, torch.Tensor] = {}

    def keep(store, act, hook):
        store[hook.name] = act.detach().clone()

    def keep_grad(grad, hook):
        grads[hook.name] = grad.detach().clone()

    leaf: dict[str, torch.Tensor] = {}

    def make_leaf(act, hook):
        leaf["embed"] = act.detach().requires_grad_(True)
        return leaf["embed"]

    with torch.no_grad():
        model.run_with_hooks(clean_tokens, fwd_hooks=[(n, partial(keep, clean)) for n in names])
    with torch.enable_grad():
        with model.hooks(fwd_hooks=[("hook_embed", make_leaf)]
                         + [(n, partial(keep, corrupted)) for n in names],
                         bwd_hooks=[(n, keep_grad) for n in names]):
            value = metric(model(corrupted_tokens))
            if value.dim() != 0:
                raise ValueError(f"the metric must return a scalar, not shape {tuple(value.shape)}")
            torch.autograd.grad(value, [leaf["embed"]])
    missing = [n for n in names if n not in grads]
    if missing:
        raise RuntimeError(f"no gradient reached {missing}: the backward hooks did not fire.")
    return torch.stack([((clean[n] - corrupted[n]) * grads[n]).sum(dim=(0, 1, 3)) for n in names])


def attribute_heads_tl(model, clean: B.TaskBatch, corrupted: B.TaskBatch, clean_ld: float,
                       corrupted_ld: float) -> torch.Tensor:
    """The same estimates from TransformerLens's ``attribution_patch`` (node granularity).

    One call per prompt (its metric reads its own END, IO and S), each on the prompt's own
    unpadded tokens; the ``attn_head_out`` node scores are summed over positions and the metric
    is scaled so the sum over prompts is the normalised metric's estimate.
    """
    from transformer_lens.tools.analysis import attribution_patch

    n = len(clean)
    gap = float(clean_ld) - float(corrupted_ld)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    with torch.enable_grad():
        for i in range(n):
            end, io, s = int(clean.end[i]), int(clean.answer_id[i]), int(clean.wrong_id[i])

            def metric(logits, end=end, io=io, s=s):
                return (logits[0, end, io] - logits[0, end, s]) / (n * gap)

            result = attribution_patch(model, clean.tokens[i:i + 1, :end + 1],
                                       corrupted.tokens[i:i + 1, :end + 1], metric)
            for node, score in result.node_scores.items():
                if node.kind == "attn_head_out":
                    out[node.layer, node.head] += score
    return out


# --------------------------------------------------------------------------------------------
# IOI set-up


def _single_token_words(tokenizer, words: Sequence[str]) -> list[str]:
    return [w for w in words if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]


def aligned_prompts(model, n: int, seed: int = 0, *, template: int = 0,
                    orders: Sequence[str] = ("ABBA",)) -> ioi.PromptSet:
    """``n`` IOI prompts of one template and order, all of one length, roles at fixed positions.

    Places and objects are limited to those that are one token (with a leading space) in the
    model's tokenizer, so every prompt, and its ABC counterpart, has the same tokens at the same
    positions except the names, place and object. Layer x position sweeps need this.
    """
    tok = model.tokenizer
    places = _single_token_words(tok, ioi_templates.PLACES)
    objects = _single_token_words(tok, ioi_templates.OBJECTS)
    if not places or not objects:
        raise ioi.PromptError("no single-token places or objects in this tokenizer; pass a model "
                              "whose tokenizer has some, or write prompts by hand.")
    ps = ioi.generate_prompts(model, n, seed, templates=[template], orders=orders, places=places,
                              objects=objects)
    pos_cols = list(ioi.POSITION_COLUMNS.values()) + ["n_tokens"]
    varying = [c for c in pos_cols if ps.df[c].nunique() != 1]
    if varying:
        raise ioi.PromptError(f"the prompts are not aligned: {varying} vary across prompts; use "
                              "one order and single-token names, places and objects.")
    ps.meta.update({"aligned": True, "places": places, "objects": objects})
    return ps


CACHE_HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "attn.hook_z", "attn.hook_q",
               "attn.hook_k", "attn.hook_v", "attn.hook_pattern")


def _cache_filter(name: str) -> bool:
    return name.startswith("blocks.") and name.endswith(CACHE_HOOKS)


@dataclass
class PatchSetup:
    """Clean and corrupted (ABC) batches, their caches and logit differences, and the metric."""

    clean: B.TaskBatch
    corrupted: B.TaskBatch
    clean_cache: Any
    corrupted_cache: Any
    clean_ld: torch.Tensor  # [batch], IO - S at END on the clean prompts
    corrupted_ld: torch.Tensor  # [batch], the same tokens' difference on the ABC prompts
    labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clean)

    @property
    def clean_mean(self) -> float:
        return float(self.clean_ld.mean())

    @property
    def corrupted_mean(self) -> float:
        return float(self.corrupted_ld.mean())

    @property
    def metric(self) -> EndMetric:
        """Normalised logit difference of a corrupted-batch run (0 corrupted, 1 clean), at END."""
        return EndMetric(self.clean, self._normalised)

    def _normalised(self, end_logits: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(self.clean))
        ld = (end_logits[rows, self.clean.answer_id] - end_logits[rows, self.clean.wrong_id]).mean()
        return (ld - self.corrupted_mean) / (self.clean_mean - self.corrupted_mean)


def position_labels(model, batch: B.TaskBatch, df: pd.DataFrame | None = None) -> list[str]:
    """One label per position: the token where all prompts agree (with its role, if any), else
    the role (IO, S1, S2) or, given ``df``, ``[place]``/``[object]``."""
    roles = {int(pos[0]): role for role, pos in batch.pos.items() if len(set(pos.tolist())) == 1}
    words = {}
    if df is not None:
        words = {str(df.iloc[0][c]).strip(): f"[{c}]" for c in ("place", "object")
                 if c in df.columns and str(df.iloc[0][c]).strip()}
    labels = []
    for p in range(batch.tokens.shape[1]):
        first = repr(model.tokenizer.decode([int(batch.tokens[0, p])]))[1:-1]
        same = len(set(batch.tokens[batch.mask[:, p].bool(), p].tolist())) == 1
        if p in roles:
            labels.append(f"{first} ({roles[p]})" if same else roles[p])
        else:
            labels.append(first if same else words.get(first.strip(), "*"))
    return labels


def setup(model, df: pd.DataFrame) -> PatchSetup:
    """Encode ``df``'s prompts and their ABC counterparts; cache both runs and their metrics."""
    clean = B.encode(model, df)
    corrupted = B.encode(model, df, prompt_col="abc_prompt")
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean.tokens, names_filter=_cache_filter)
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted.tokens,
                                                                 names_filter=_cache_filter)
    clean_ld = B.logit_diff(clean_logits, clean)
    corrupted_ld = B.logit_diff(corrupted_logits, clean)
    if float(clean_ld.mean() - corrupted_ld.mean()) == 0.0:
        raise ValueError("the clean and corrupted mean logit differences are equal, so the "
                         "normalised metric is undefined; use prompts the model separates.")
    return PatchSetup(clean, corrupted, clean_cache, corrupted_cache, clean_ld, corrupted_ld,
                      position_labels(model, clean, df))


def patch(model, s: PatchSetup, kind: str, *, fast: bool = True, **kwargs) -> torch.Tensor:
    """A sweep on an IOI :class:`PatchSetup`, normalised metric: :func:`fast_patch` or :func:`tl_patch`."""
    if fast:
        kwargs.setdefault("corrupted_cache", s.corrupted_cache)
        return fast_patch(model, s.corrupted.tokens, s.clean_cache, s.metric, kind, **kwargs)
    return tl_patch(model, s.corrupted.tokens, s.clean_cache, s.metric, kind, **kwargs)


def attribute(model, s: PatchSetup, *, tl: bool = False) -> torch.Tensor:
    """Attribution patching of every head on an IOI :class:`PatchSetup`: ``[n_layers, n_heads]``."""
    if tl:
        return attribute_heads_tl(model, s.clean, s.corrupted, s.clean_mean, s.corrupted_mean)
    return attribute_heads(model, s.clean.tokens, s.corrupted.tokens, s.metric)


# --------------------------------------------------------------------------------------------
# Small helpers for the notebook


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds it took)`` by the wall clock."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference where both are defined; raises if their NaN cells differ."""
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        raise ValueError("the two results cover different cells (shapes or NaN masks differ).")
    keep = ~a.isnan()
    return float((a[keep] - b[keep]).abs().max()) if keep.any() else 0.0


def ranked_heads(values: torch.Tensor, k: int = 5) -> pd.DataFrame:
    """The ``k`` heads with the largest effect in magnitude, strongest first (signed values)."""
    v = torch.as_tensor(values).float()
    flat = v.flatten().nan_to_num(0.0)
    order = flat.abs().argsort(descending=True, stable=True)[:k]
    n_heads = v.shape[1]
    rows = [{"head": f"{int(i) // n_heads}.{int(i) % n_heads}", "layer": int(i) // n_heads,
             "index": int(i) % n_heads, "effect": float(flat[i])} for i in order]
    return pd.DataFrame(rows)


def correlation(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Pearson correlation (r, p-value) of two same-shaped results over their defined cells."""
    from scipy.stats import pearsonr

    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    keep = ~(np.isnan(x) | np.isnan(y))
    r = pearsonr(x[keep], y[keep])
    return float(r.statistic), float(r.pvalue)


__all__ = [
    "EndMetric", "KINDS", "Kind", "Metric", "PatchSetup", "aligned_prompts", "attribute", "attribute_heads",
    "attribute_heads_tl", "correlation", "fast_patch", "index_frame", "layer_all_pos_patch_setter",
    "max_abs_diff", "n_heads_for", "patch", "patch_all_heads", "position_labels", "ranked_heads",
    "result_shape", "setup", "timed", "tl_patch",
]
