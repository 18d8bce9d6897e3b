"""One layer's attention rebuilt by hand from the model's weights, and checked against the cache.

The point is to show that the hooks we read in later weeks (``hook_pattern``, ``hook_z``,
``hook_attn_out``) are exactly the textbook computation on the weights the bridge exposes, for
both architectures the series uses:

- Llama-style (SmolLM2, ``tiny-llama``): RMSNorm, rotary position embeddings on q and k,
  grouped-query attention (fewer key/value heads than query heads), no biases.
- GPT-2 (``gpt2``, ``tiny-gpt2``): LayerNorm, learned absolute positions (already added into the
  residual stream before block 0, so attention itself sees no position), biases on q, k, v, out.

With compatibility mode on (the default in :func:`circuitgen.load_model`), TransformerLens folds
the norm's weight (and bias) into ``W_Q``/``W_K``/``W_V`` and sets the norm's own weight to 1 (bias
0). We still apply the norm's weight and bias as the bridge holds them, so the same code is right
with compatibility mode off too.

Shapes follow TransformerLens: ``W_Q`` is [n_heads, d_model, d_head], ``W_K``/``W_V`` are
[n_kv_heads, d_model, d_head], ``W_O`` is [n_heads, d_head, d_model]; activations are
[batch, pos, head, d_head] and patterns are [batch, head, query_pos, key_pos].
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

# How close a rebuilt tensor must be to the cached one, as max |rebuilt - cached|. float32 einsums
# sum in a different order than the model's matmuls, so differences of a few 1e-6 are expected;
# quantities with a large scale (scores, outputs of real models) get a tolerance relative to it.
ATOL = 1e-5
RTOL = 1e-5


def _attn(model, layer: int):
    return model.blocks[layer].attn


def _hf_config(model):
    return model.original_model.config


def is_rotary(model) -> bool:
    """Whether the model puts positions into q and k by rotation (Llama) or not (GPT-2)."""
    return model.cfg.positional_embedding_type == "rotary"


def n_kv_heads(model) -> int:
    """Number of key/value heads; equals n_heads for plain multi-head attention (GPT-2)."""
    return getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads


# --------------------------------------------------------------------------------------------
# 1. normalisation
# --------------------------------------------------------------------------------------------


def norm_weight_bias(model, layer: int) -> tuple[Tensor | None, Tensor | None]:
    """The attention-input norm's own weight and bias (all ones / zeros once folded)."""
    ln = model.blocks[layer].ln1
    inner = getattr(ln, "_original_component", ln)
    return getattr(inner, "weight", None), getattr(inner, "bias", None)


def normalize(model, resid_pre: Tensor) -> Tensor:
    """The norm in front of attention, before its weight: RMSNorm (Llama) or LayerNorm (GPT-2).

    RMSNorm only rescales each position to unit root-mean-square; LayerNorm first removes the
    mean. Both divide by sqrt(mean square + eps) with the model's own eps, which matters for
    positions whose residual is tiny. This is what ``ln1.hook_normalized`` holds.
    """
    cfg = model.cfg
    x = resid_pre.float()
    if cfg.normalization_type in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    elif cfg.normalization_type not in ("RMS", "RMSPre"):
        raise NotImplementedError(f"normalisation {cfg.normalization_type!r} is not rebuilt here")
    return x / (x.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt()


def apply_norm_weight(model, layer: int, normalized: Tensor) -> Tensor:
    """Scale (and shift) by the norm's own weight (and bias): ``ln1.hook_out``.

    In compatibility mode these are 1 (and 0) because they were folded into W_Q/W_K/W_V; applying
    them anyway keeps the rebuild right when compatibility mode is off.
    """
    x = normalized
    weight, bias = norm_weight_bias(model, layer)
    if weight is not None:
        x = x * weight
    if bias is not None:
        x = x + bias
    return x


# --------------------------------------------------------------------------------------------
# 2. queries, keys, values
# --------------------------------------------------------------------------------------------


def project_qkv(model, layer: int, x_norm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v per head: one einsum each; k and v have n_kv_heads heads under GQA."""
    attn = _attn(model, layer)
    out = []
    for W, b in ((attn.W_Q, attn.b_Q), (attn.W_K, attn.b_K), (attn.W_V, attn.b_V)):
        t = torch.einsum("bpd,hde->bphe", x_norm, W)
        out.append(t if b is None else t + b)
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------------------------
# 3. rotary position embeddings (Llama-style models only)
# --------------------------------------------------------------------------------------------


def rope_theta(model) -> float:
    """The rotary base the forward pass really uses, read from the Hugging Face config.

    The bridge's ``cfg.rotary_base`` is not it: for SmolLM2 it says 10000 while the model (and its
    config's ``rope_parameters['rope_theta']``) uses 100000. transformers 5 keeps the value in
    ``rope_parameters``; older versions had ``config.rope_theta``.
    """
    config = _hf_config(model)
    params = getattr(config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    if rope_type != "default":
        raise NotImplementedError(
            f"rope_type {rope_type!r} rescales the frequencies; only 'default' is rebuilt here"
        )
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise ValueError("the model's config has no rope theta (rope_parameters['rope_theta'])")
    return float(theta)


def rotary_dim(model) -> int:
    """How many of each head's dimensions are rotated (all of them unless partial rotary)."""
    factor = (getattr(_hf_config(model), "rope_parameters", None) or {}).get(
        "partial_rotary_factor", getattr(_hf_config(model), "partial_rotary_factor", 1.0)
    )
    return int(model.cfg.d_head * factor)


def rotary_cos_sin(n_pos: int, dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin tables [pos, dim]: pair i turns by angle pos * theta**(-2i/dim).

    Llama's layout ("rotate half") pairs dimension i with i + dim/2, so the table of dim/2
    frequencies is written twice side by side.
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = torch.outer(torch.arange(n_pos, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each (i, i + dim/2) pair of x [batch, pos, head, d_head] by its position's angle.

    After rotation, q·k depends on the positions only through their difference.
    """
    dim = cos.shape[-1]
    rot, rest = x[..., :dim], x[..., dim:]
    half = dim // 2
    rotated_half = torch.cat([-rot[..., half:], rot[..., :half]], dim=-1)
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([rot * c + rotated_half * s, rest], dim=-1)


# --------------------------------------------------------------------------------------------
# 4. grouped-query attention
# --------------------------------------------------------------------------------------------


def kv_head_index(n_heads: int, n_kv: int, *, grouping: str = "contiguous") -> Tensor:
    """Which key/value head each query head reads.

    ``contiguous`` is what Llama does (``repeat_kv``): query heads 0..g-1 share KV head 0, the next
    g share KV head 1, ... with g = n_heads / n_kv. ``strided`` (h -> h mod n_kv) is the classic
    bug; it is here so that tests and the notebook can show it gives a different pattern.
    """
    if n_heads % n_kv:
        raise ValueError(f"{n_heads} query heads cannot share {n_kv} KV heads evenly")
    heads = torch.arange(n_heads)
    if grouping == "contiguous":
        return heads // (n_heads // n_kv)
    if grouping == "strided":
        return heads % n_kv
    raise ValueError(f"grouping must be 'contiguous' or 'strided', not {grouping!r}")


def expand_kv(x: Tensor, n_heads: int, *, grouping: str = "contiguous") -> Tensor:
    """Copy each KV head to the query heads that share it: [b, p, n_kv, e] -> [b, p, n_heads, e]."""
    return x[:, :, kv_head_index(n_heads, x.shape[2], grouping=grouping)]


# --------------------------------------------------------------------------------------------
# 5. scores, mask, softmax, z, output
# --------------------------------------------------------------------------------------------


def attention_scale(model) -> float:
    """The divisor of q·k: sqrt(d_head) unless the model sets another one."""
    scale = getattr(model.cfg, "attn_scale", -1.0)
    return math.sqrt(model.cfg.d_head) if scale is None or scale <= 0 else float(scale)


def causal_mask(n_pos: int) -> Tensor:
    """True where query position i may look at key position j, i.e. j <= i."""
    return torch.ones(n_pos, n_pos, dtype=torch.bool).tril()


def attention_scores(q: Tensor, k: Tensor, scale: float) -> Tensor:
    """Scaled dot products [batch, head, query, key], with the future set to -inf."""
    scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / scale
    return scores.masked_fill(~causal_mask(q.shape[1]), float("-inf"))


def attention_pattern(scores: Tensor) -> Tensor:
    """Softmax over keys: each query's attention sums to 1 over the positions it may see."""
    return scores.softmax(dim=-1)


def attention_z(pattern: Tensor, v: Tensor) -> Tensor:
    """Each query's pattern-weighted mix of the values [batch, query, head, d_head]."""
    return torch.einsum("bhqk,bkhe->bqhe", pattern, v)


def head_outputs(model, layer: int, z: Tensor) -> Tensor:
    """What each head writes into the residual stream [batch, pos, head, d_model] (no bias)."""
    return torch.einsum("bphe,hed->bphd", z, _attn(model, layer).W_O)


def attention_out(model, layer: int, per_head: Tensor) -> Tensor:
    """The layer's attention output: the sum of the heads' outputs, plus b_O where it exists."""
    out = per_head.sum(dim=2)
    b_O = _attn(model, layer).b_O
    return out if b_O is None else out + b_O


# --------------------------------------------------------------------------------------------
# the whole layer, and the comparison with the cache
# --------------------------------------------------------------------------------------------


@dataclass
class RebuiltAttention:
    """Every intermediate of one layer's attention, rebuilt from ``hook_resid_pre``."""

    normalized: Tensor
    ln_out: Tensor
    q: Tensor
    k: Tensor
    v: Tensor
    rot_q: Tensor | None
    rot_k: Tensor | None
    scores: Tensor
    pattern: Tensor
    z: Tensor
    per_head: Tensor
    attn_out: Tensor
    theta: float | None
    grouping: str


@torch.no_grad()
def rebuild_attention(
    model,
    layer: int,
    resid_pre: Tensor,
    *,
    theta: float | None = None,
    grouping: str = "contiguous",
) -> RebuiltAttention:
    """Run norm -> q,k,v -> rotary -> GQA -> scores -> softmax -> z -> W_O by hand.

    ``theta`` overrides the rotary base (default: :func:`rope_theta`) and ``grouping`` the
    KV-head sharing; both exist to show that the wrong choice does not reproduce the model.
    """
    n_heads = model.cfg.n_heads
    normalized = normalize(model, resid_pre)
    x = apply_norm_weight(model, layer, normalized)
    q, k, v = project_qkv(model, layer, x)
    rot_q = rot_k = None
    if is_rotary(model):
        theta = rope_theta(model) if theta is None else float(theta)
        cos, sin = rotary_cos_sin(q.shape[1], rotary_dim(model), theta)
        rot_q, rot_k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q_used, k_used = rot_q, rot_k
    else:
        theta = None
        q_used, k_used = q, k
    scores = attention_scores(
        q_used, expand_kv(k_used, n_heads, grouping=grouping), attention_scale(model)
    )
    pattern = attention_pattern(scores)
    z = attention_z(pattern, expand_kv(v, n_heads, grouping=grouping))
    per_head = head_outputs(model, layer, z)
    return RebuiltAttention(
        normalized=normalized, ln_out=x, q=q, k=k, v=v, rot_q=rot_q, rot_k=rot_k, scores=scores,
        pattern=pattern,
        z=z, per_head=per_head, attn_out=attention_out(model, layer, per_head), theta=theta,
        grouping=grouping,
    )


# (step, field of RebuiltAttention, hook relative to ``blocks.L.``)
STEPS: list[tuple[str, str, str]] = [
    ("norm", "normalized", "ln1.hook_normalized"),
    ("norm weight", "ln_out", "ln1.hook_out"),
    ("queries", "q", "attn.hook_q"),
    ("keys", "k", "attn.hook_k"),
    ("values", "v", "attn.hook_v"),
    ("rotary queries", "rot_q", "attn.hook_rot_q"),
    ("rotary keys", "rot_k", "attn.hook_rot_k"),
    ("scores (unmasked)", "scores", "attn.hook_attn_scores"),
    ("pattern", "pattern", "attn.hook_pattern"),
    ("z", "z", "attn.hook_z"),
    ("attention output", "attn_out", "hook_attn_out"),
]


def run_with_layer_cache(model, tokens: Tensor, layer: int):
    """Forward pass caching the hooks of one layer only (keeps memory small on long prompts)."""
    prefix = f"blocks.{layer}."
    with warnings.catch_warnings():
        # The bridge warns that some hooks matching the filter are switched off (hook_result,
        # hook_q_input...): we do not use those, so the warning is noise here.
        warnings.filterwarnings("ignore", message="run_with_cache: skipped")
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.startswith(prefix))
    return cache


def compare_with_cache(
    model, layer: int, cache, rebuilt: RebuiltAttention, *, atol: float = ATOL, rtol: float = RTOL
) -> pd.DataFrame:
    """One row per step: the hook compared, its shape, max |rebuilt - cached|, and whether it
    is within ``atol + rtol * max |cached|``.

    Scores are compared on the causal (lower-triangular) entries only: the bridge stores the
    masked future as -inf (compatibility mode) or as float32's most negative number (not), and both
    mean "weight 0" after softmax.
    """
    rows = []
    for step, field_name, hook in STEPS:
        mine = getattr(rebuilt, field_name)
        name = f"blocks.{layer}.{hook}"
        if mine is None or name not in cache:
            continue
        cached = cache[name].float()
        if mine.shape != cached.shape:
            raise ValueError(f"{step}: rebuilt shape {tuple(mine.shape)} != cached {tuple(cached.shape)}")
        if field_name == "scores":
            keep = causal_mask(mine.shape[-1])
            mine, cached = mine[..., keep], cached[..., keep]
        diff = float((mine - cached).abs().max())
        scale = float(cached.abs().max())
        tol = atol + rtol * scale
        rows.append({
            "step": step, "hook": name, "shape": tuple(cache[name].shape), "max_abs_cached": scale,
            "max_abs_diff": diff, "tolerance": tol, "matches": diff <= tol,
        })
    return pd.DataFrame(rows)


@dataclass
class AttentionCheck:
    """A prompt, its tokens, the cache of one layer, the rebuild and the comparison table."""

    model_name: str
    layer: int
    tokens: Tensor
    token_strs: list[str]
    cache: object
    rebuilt: RebuiltAttention
    table: pd.DataFrame

    @property
    def all_match(self) -> bool:
        return bool(self.table["matches"].all())


def check_layer(
    model, prompt: str, layer: int, *, theta: float | None = None, grouping: str = "contiguous",
    atol: float = ATOL, rtol: float = RTOL,
) -> AttentionCheck:
    """Run the model on ``prompt`` (BOS prepended), rebuild ``layer``'s attention from its
    cached ``hook_resid_pre`` and compare every step with the cache."""
    # No autograd graph is needed (and the tests run with grad enabled).
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} is out of range: the model has {model.cfg.n_layers} layers")
    with torch.no_grad():
        tokens = model.to_tokens(prompt)
        cache = run_with_layer_cache(model, tokens, layer)
        rebuilt = rebuild_attention(
            model, layer, cache[f"blocks.{layer}.hook_resid_pre"], theta=theta, grouping=grouping
        )
        table = compare_with_cache(model, layer, cache, rebuilt, atol=atol, rtol=rtol)
    return AttentionCheck(
        model_name=getattr(getattr(model, "circuitgen", None), "model", model.cfg.model_name),
        layer=layer, tokens=tokens, token_strs=model.to_str_tokens(tokens[0]), cache=cache,
        rebuilt=rebuilt, table=table,
    )


def max_diff(check: AttentionCheck, step: str) -> float:
    """The max |rebuilt - cached| of one step of a check (by its ``step`` name)."""
    row = check.table.loc[check.table["step"] == step]
    if row.empty:
        raise KeyError(f"no step {step!r}; steps: {list(check.table['step'])}")
    return float(row["max_abs_diff"].iloc[0])

