# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Week 2: attention by hand
#
# **Question.** Is an attention pattern, as the hooks report it (`hook_pattern`, `hook_z`,
# `hook_attn_out`), exactly the textbook computation on the weights the model exposes? If we
# rebuild one layer's attention from the residual stream with nothing but `einsum`, which details
# (normalisation, rotary positions and their base, grouped-query attention, the causal mask) do we
# have to get right to reproduce it to float precision?
#
# Every later week reads these hooks (induction heads, name movers, patching), so we want to know
# precisely what they hold. The code is in `circuitgen.attention`; this notebook walks through it
# step by step and compares each step with the cache.

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None  # reference run writes nothing; other runs pass a folder
LAYER = None  # None: the middle layer (n_layers // 2)
HEAD = None  # None: the head of LAYER that attends least to BOS (the most readable pattern)
PROMPT = "When Mary and John went to the store, John gave a drink to"

# %%
import matplotlib.pyplot as plt
import torch

from circuitgen import attention as A
from circuitgen import runtime

model = runtime.start(MODEL, SEED, DEVICE)
cfg = model.cfg
layer = cfg.n_layers // 2 if LAYER is None else LAYER
n_heads, n_kv, d_head = cfg.n_heads, A.n_kv_heads(model), cfg.d_head

# %% [markdown]
# ## One forward pass, cached
# We cache one layer's hooks only. BOS is prepended (the project's policy), so position 0 is the
# BOS token. Our rebuild starts from `blocks.L.hook_resid_pre`, the residual stream entering the
# layer, and uses nothing else from the cache.

# %%
tokens = model.to_tokens(PROMPT)
str_tokens = model.to_str_tokens(tokens[0])
labels = [repr(t)[1:-1] for t in str_tokens]
cache = A.run_with_layer_cache(model, tokens, layer)
resid_pre = cache[f"blocks.{layer}.hook_resid_pre"]

# %%
# NBVAL_CHECK_OUTPUT
print(f"layer {layer}: {n_heads} query heads, {n_kv} key/value heads, d_head {d_head}")
print("positional information:",
      "rotary (in q and k)" if A.is_rotary(model) else "learned, added to the residual before block 0")
print("tokens:", len(str_tokens), str_tokens)
print("resid_pre shape [batch, pos, d_model]:", tuple(resid_pre.shape))

# %% [markdown]
# ## Step 1: the normalisation
# Attention does not read the residual stream directly but a normalised copy. Llama-style models
# use **RMSNorm**, $x / \sqrt{\mathrm{mean}(x^2) + \varepsilon}$; GPT-2 uses **LayerNorm**, which
# subtracts the mean first. Each is followed by a learned per-dimension weight (and, for
# LayerNorm, a bias). With TransformerLens's compatibility mode on (our default), that weight and
# bias have been *folded* into $W_Q, W_K, W_V$ and are 1 and 0 on the norm itself; we apply them
# anyway so that the same code holds with compatibility mode off.

# %%
normalized = A.normalize(model, resid_pre)
x = A.apply_norm_weight(model, layer, normalized)
weight, bias = A.norm_weight_bias(model, layer)

# %%
# NBVAL_CHECK_OUTPUT
print("normalisation:", cfg.normalization_type)
print("norm weight is all ones (folded into W_Q/W_K/W_V):", bool((weight == 1).all()))
centred = resid_pre - resid_pre.mean(-1, keepdim=True) if cfg.normalization_type == "LN" else resid_pre
mean_sq = centred.pow(2).mean(-1)
print("mean square after normalising is ms / (ms + eps), i.e. 1 but for eps:",
      bool(torch.allclose(normalized.pow(2).mean(-1), mean_sq / (mean_sq + cfg.eps), atol=1e-5)))

# %% [markdown]
# ## Step 2: queries, keys and values
# One `einsum` per projection: $q_{p,h} = x_p W_Q^{h} + b_Q^{h}$ and likewise for $k$ and $v$.
# Under **grouped-query attention** (GQA) there are fewer key/value heads than query heads, so
# `W_K` and `W_V` have `n_kv_heads` heads. SmolLM2 has no biases (`b_Q` is `None`); GPT-2 has them.

# %%
attn = model.blocks[layer].attn
q = torch.einsum("bpd,hde->bphe", x, attn.W_Q)  # one einsum per projection
k = torch.einsum("bpd,hde->bphe", x, attn.W_K)
v = torch.einsum("bpd,hde->bphe", x, attn.W_V)
if attn.b_Q is not None:
    q, k, v = q + attn.b_Q, k + attn.b_K, v + attn.b_V
assert all(torch.equal(a, b) for a, b in zip((q, k, v), A.project_qkv(model, layer, x)))

# %%
# NBVAL_CHECK_OUTPUT
print("W_Q [heads, d_model, d_head]:", tuple(attn.W_Q.shape), "  W_K:", tuple(attn.W_K.shape),
      "  W_V:", tuple(attn.W_V.shape), "  W_O:", tuple(attn.W_O.shape))
print("biases:", "none" if attn.b_Q is None else "b_Q, b_K, b_V, b_O")
print("q:", tuple(q.shape), " k:", tuple(k.shape), " v:", tuple(v.shape))

# %% [markdown]
# ## Step 3: rotary position embeddings (Llama-style models)
# GPT-2 learns one vector per position and adds it to the token embedding, so position is already
# in `resid_pre` and attention needs nothing more. Llama-style models instead **rotate** $q$ and
# $k$: dimension $i$ is paired with $i + d/2$ and the pair is turned by the angle
# $p\,\theta^{-2i/d}$ at position $p$. Then $q_i \cdot k_j$ depends on the positions only through
# $i - j$.
#
# The base $\theta$ matters, and it is easy to read from the wrong place: the bridge's
# `cfg.rotary_base` is not what the forward pass uses. We read it from the Hugging Face config
# (`rope_parameters['rope_theta']`) and check it against the cos/sin tables the model itself
# computed (`hook_cos`, `hook_sin`).

# %%
if A.is_rotary(model):
    theta = A.rope_theta(model)
    cos, sin = A.rotary_cos_sin(q.shape[1], A.rotary_dim(model), theta)
    rot_q, rot_k = A.apply_rotary(q, cos, sin), A.apply_rotary(k, cos, sin)
    bridge_cos, _ = A.rotary_cos_sin(q.shape[1], A.rotary_dim(model), float(cfg.rotary_base))
    cached_cos = cache[f"blocks.{layer}.attn.hook_cos"][0]
else:
    rot_q, rot_k = q, k  # GPT-2: no rotation

# %%
# NBVAL_CHECK_OUTPUT
if A.is_rotary(model):
    print("theta from the HF config:", theta, "  bridge cfg.rotary_base:", cfg.rotary_base)
    print("cached cos table matches the HF-config theta:", bool((cached_cos - cos).abs().max() < 1e-5))
    print("cached cos table matches cfg.rotary_base:", bool((cached_cos - bridge_cos).abs().max() < 1e-5))
else:
    print("no rotary embedding: positions come from the learned position embedding")

# %% [markdown]
# ## Step 4: grouped-query attention
# Each key/value head is shared by `n_heads / n_kv_heads` consecutive query heads (Llama's
# `repeat_kv`): with 9 query heads and 3 KV heads, heads 0-2 read KV head 0, heads 3-5 KV head 1,
# heads 6-8 KV head 2. We expand $k$ and $v$ to one copy per query head. Sharing them the other
# way round (head $h$ reads KV head $h \bmod 3$) is a common bug; we test it below.

# %%
kv_index = A.kv_head_index(n_heads, n_kv)
k_full = A.expand_kv(rot_k, n_heads)
v_full = A.expand_kv(v, n_heads)

# %%
# NBVAL_CHECK_OUTPUT
print("KV head read by each query head:", kv_index.tolist())
print("expanded k:", tuple(k_full.shape), " expanded v:", tuple(v_full.shape))

# %% [markdown]
# ## Steps 5-7: scores, causal mask, softmax
# The arithmetic is on the page: one `einsum` for the dot products, a mask, a softmax.
# The score of query position $i$ for key position $j$ is $q_i \cdot k_j / \sqrt{d_\text{head}}$.
# A token may only look at itself and earlier tokens, so scores with $j > i$ are set to $-\infty$;
# the softmax over $j$ then gives them weight exactly 0, and each row of the pattern sums to 1.

# %%
n_pos = rot_q.shape[1]
scale = A.attention_scale(model)  # sqrt(d_head) unless the model sets its own
scores = torch.einsum("bqhe,bkhe->bhqk", rot_q, k_full) / scale
future = torch.ones(n_pos, n_pos, dtype=torch.bool).triu(diagonal=1)  # key j after query i
scores = scores.masked_fill(future, float("-inf"))
pattern = scores.softmax(dim=-1)
# the library's functions (used by every later chapter) compute exactly this
assert torch.equal(pattern, A.attention_pattern(A.attention_scores(rot_q, k_full, scale)))

# %%
# NBVAL_CHECK_OUTPUT
print("scores / pattern [batch, head, query, key]:", tuple(pattern.shape))
print("scale = sqrt(d_head):", A.attention_scale(model) == d_head ** 0.5)
print("future weight is exactly 0:", bool(pattern.triu(diagonal=1).eq(0).all()))
print("rows sum to 1:", bool(torch.allclose(pattern.sum(-1), torch.ones(1), atol=1e-5)))

# %% [markdown]
# ## Steps 8-9: z and the output
# $z_{i,h} = \sum_j \text{pattern}_{h,i,j}\, v_{j,h}$ is what each head reads; $z_{i,h} W_O^h$ is
# what it writes into the residual stream. The layer's attention output is the sum over heads
# (plus `b_O` for GPT-2). Keeping the per-head outputs separate is what direct logit attribution
# and path patching will need in later weeks.

# %%
W_O = model.blocks[layer].attn.W_O  # [head, d_head, d_model]
z = torch.einsum("bhqk,bkhe->bqhe", pattern, v_full)
per_head = torch.einsum("bphe,hed->bphd", z, W_O)
b_O = model.blocks[layer].attn.b_O
attn_out = per_head.sum(dim=2) + (b_O if b_O is not None else 0)
assert torch.equal(z, A.attention_z(pattern, v_full))
assert torch.allclose(attn_out, A.attention_out(model, layer, A.head_outputs(model, layer, z)), atol=1e-6)

# %%
# NBVAL_CHECK_OUTPUT
print("z [batch, pos, head, d_head]:", tuple(z.shape))
print("per-head outputs [batch, pos, head, d_model]:", tuple(per_head.shape))
print("attention output [batch, pos, d_model]:", tuple(attn_out.shape))

# %% [markdown]
# ## Every step against the cache
# `rebuild_attention` chains the same functions; `compare_with_cache` puts each step next to the
# hook that holds the model's own value. A step matches when
# $\max|\text{rebuilt} - \text{cached}| \le 10^{-5} + 10^{-5}\max|\text{cached}|$ (float32 sums in
# a different order give differences of order $10^{-6}$). Scores are compared on the causal
# entries only, since the masked ones are $-\infty$ in both.

# %%
check = A.check_layer(model, PROMPT, layer)
assert torch.equal(check.rebuilt.pattern, pattern)  # the library gives what we built step by step
table = check.table
table.style.format({"max_abs_cached": "{:.3g}", "max_abs_diff": "{:.2e}", "tolerance": "{:.1e}"})

# %%
# NBVAL_CHECK_OUTPUT
for row in table.itertuples():
    print(f"{row.step:>18} ({row.hook}): matches {row.matches}")
print("pattern matches:", A.max_diff(check, "pattern") < 1e-5)
print("z matches:", A.max_diff(check, "z") < 1e-5)
print("every step matches:", check.all_match)

# %% [markdown]
# ## The pattern of one head, cached and rebuilt
# Unless `HEAD` is given, we show the head of this layer that puts the least attention on BOS
# (many heads park most of their attention on position 0, which makes a dull picture).

# %% tags=["hide-input"]
head = int(pattern[0, :, 1:, 0].mean(-1).argmin()) if HEAD is None else HEAD
cached_pattern = check.cache[f"blocks.{layer}.attn.hook_pattern"][0, head]
rebuilt_pattern = pattern[0, head]
fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
panels = [
    (cached_pattern, "cached hook_pattern", "Blues", (0, 1)),
    (rebuilt_pattern, "rebuilt by hand", "Blues", (0, 1)),
    ((rebuilt_pattern - cached_pattern).abs(), "|rebuilt - cached|", "Reds", None),
]
for ax, (data, name, cmap, lims) in zip(axes, panels):
    im = ax.imshow(data.numpy(), cmap=cmap, vmin=None if lims is None else lims[0],
                   vmax=None if lims is None else lims[1])
    ax.set_xticks(range(len(labels)), labels, rotation=70, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("key position (token)")
    ax.set_ylabel("query position (token)")
    ax.set_title(name)
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.7, label="attention weight" if lims else "absolute difference")
fig.suptitle(f"{MODEL}, layer {layer}, head {head} (KV head {int(kv_index[head])}): attention "
             f"pattern on 1 prompt")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## All heads of the layer
# The same rebuilt patterns for every head. Under GQA, heads that share a KV head (same colour in
# the titles) see the same keys but ask different questions with their own queries.

# %% tags=["hide-input"]
n_cols = min(n_heads, 3 if n_heads % 3 == 0 else 4)
n_rows = -(-n_heads // n_cols)
fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 3.4 * n_rows), squeeze=False)
for h, ax in enumerate(axes.flat):
    if h >= n_heads:
        ax.axis("off")
        continue
    ax.imshow(pattern[0, h].numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"head {h} (KV {int(kv_index[h])})", color=f"C{int(kv_index[h])}", fontsize=10)
    ax.set_xlabel("key position (token)", fontsize=8)
    ax.set_ylabel("query position (token)", fontsize=8)
    ax.set_xticks([0, len(labels) - 1], [labels[0], labels[-1]], fontsize=7)
    ax.set_yticks([0, len(labels) - 1], [labels[0], labels[-1]], fontsize=7)
    ax.grid(False)
fig.suptitle(f"{MODEL}, layer {layer}: rebuilt attention patterns of all {n_heads} heads "
             f"(1 prompt, weight 0 to 1)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What if we get a detail wrong?
# The comparison is only worth something if it can fail. We rebuild the layer twice more, once
# with the rotary base the bridge's config reports instead of the one the model uses, and once
# with the KV heads shared the wrong way round. (For GPT-2 neither applies, and we say so.)

# %%
wrong_runs = {}
if A.is_rotary(model) and float(cfg.rotary_base) != A.rope_theta(model):
    wrong_runs[f"theta = cfg.rotary_base ({cfg.rotary_base})"] = A.check_layer(
        model, PROMPT, layer, theta=float(cfg.rotary_base))
if n_kv < n_heads:
    wrong_runs["KV heads shared h -> h mod n_kv"] = A.check_layer(model, PROMPT, layer, grouping="strided")
for name, wrong in wrong_runs.items():
    print(f"{name}: max |pattern diff| = {A.max_diff(wrong, 'pattern'):.3g}, "
          f"max |z diff| = {A.max_diff(wrong, 'z'):.3g}")

# %%
# NBVAL_CHECK_OUTPUT
if not wrong_runs:
    print("no rotary base or KV grouping to get wrong in this model")
for name, wrong in wrong_runs.items():
    print(f"{name}: pattern matches {A.max_diff(wrong, 'pattern') < 1e-5}, "
          f"pattern off by more than 0.01: {A.max_diff(wrong, 'pattern') > 0.01}, "
          f"every step matches {wrong.all_match}")

# %%
from myst_nb import glue

wrong_theta = next((w for n, w in wrong_runs.items() if n.startswith("theta")), None)
wrong_kv = next((w for n, w in wrong_runs.items() if n.startswith("KV")), None)
glue("w02_layer", layer, display=False)
glue("w02_n_steps", len(table), display=False)
glue("w02_n_match", int(table["matches"].sum()), display=False)
glue("w02_pattern_diff", A.max_diff(check, "pattern"), display=False)
glue("w02_theta_hf", f"{A.rope_theta(model):g}" if A.is_rotary(model) else "none", display=False)
glue("w02_theta_bridge", f"{float(cfg.rotary_base):g}" if A.is_rotary(model) else "none", display=False)
glue("w02_theta_wrong_diff", A.max_diff(wrong_theta, "pattern") if wrong_theta else float("nan"),
     display=False)
glue("w02_kv_wrong_diff", A.max_diff(wrong_kv, "pattern") if wrong_kv else float("nan"), display=False)
glue("w02_n_heads", n_heads, display=False)
glue("w02_n_kv", n_kv, display=False)

# %% [markdown]
# ## What we found
# - The rebuild of layer {glue:text}`w02_layer` from `hook_resid_pre` reproduces
#   {glue:text}`w02_n_match` of the {glue:text}`w02_n_steps` hooks it is compared with (`hook_q`,
#   `hook_k`, `hook_v`, the rotated q and k, `hook_attn_scores`, `hook_pattern`, `hook_z`,
#   `hook_attn_out`, and the norm's two hooks) within the stated float32 tolerance (the pattern
#   to within {glue:text}`w02_pattern_diff:.1e`): the hooks later weeks read hold exactly the
#   textbook computation on the weights the bridge exposes (`W_Q`, `W_K`, `W_V`, `W_O`), with the
#   norm's weight folded into them by compatibility mode.
# - **The rotary base is a trap.** For SmolLM2 the forward pass rotates with the Hugging Face
#   config's `rope_parameters['rope_theta']` ({glue:text}`w02_theta_hf`), while the bridge's
#   `cfg.rotary_base` reports {glue:text}`w02_theta_bridge`; rebuilding with the bridge's value
#   moves the pattern by up to {glue:text}`w02_theta_wrong_diff:.2f` in attention weight, far more
#   than the tolerance (see the last table). Code that needs $\theta$ should read it from the HF
#   config, as `circuitgen.attention.rope_theta` does, or from the model's own
#   `hook_cos`/`hook_sin`.
# - **GQA grouping is contiguous**: consecutive query heads share a KV head
#   ({glue:text}`w02_n_heads` query heads, {glue:text}`w02_n_kv` KV heads). Sharing them the other
#   way round changes the pattern by up to {glue:text}`w02_kv_wrong_diff:.2f`, so a head's "KV
#   group" is a fact we can use later (heads in one group attend with the same keys).
# - For GPT-2 (`MODEL="tiny-gpt2"` or `"gpt2"`) the same code takes the LayerNorm and
#   bias path, positions need no special treatment in attention, and the rebuild also matches
#   (the library's tests check it on a tiny GPT-2).
