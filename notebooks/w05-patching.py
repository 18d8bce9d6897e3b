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
# # Week 5: activation and attribution patching
#
# **Question.** Which parts of the model *cause* it to answer " Mary" rather than " John": at
# which positions and layers does the residual stream carry the information, which attention and
# MLP layers and which heads carry it, through their values or their attention patterns, and how
# well does cheap, gradient-based attribution patching predict the exact answer?
#
# Week 4's direct logit attribution showed who *writes* the answer at the end. Patching is
# causal: run the model on a **corrupted** prompt, the ABC counterpart of each IOI prompt (same
# sentence, three other names: *"Then, Ming and Kevin went to the gym. Hassan gave a bottle
# to"*), put back one activation from the **clean** run, and see how much of the clean behaviour
# returns. The metric is the normalised logit difference
#
# $$\frac{\overline{LD}_\text{patched} - \overline{LD}_\text{corrupted}}{\overline{LD}_\text{clean} - \overline{LD}_\text{corrupted}}$$
#
# with $LD$ the logit of the clean IO minus that of the clean S at END, averaged over prompts
# before the ratio is taken: 0 means the patch restores nothing, 1 the whole clean behaviour.
#
# The sweeps are TransformerLens's (`transformer_lens.patching`); `circuitgen.patching` runs the
# same sweeps with many patches per forward pass (checked equal to TransformerLens's loop here and
# in the tests), which is what makes a few thousand patched runs affordable on a CPU.

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None  # reference run writes nothing; other runs save the sweeps (CSV) in this folder
N_PROMPTS = 8  # every sweep below costs about 1100 forward passes of this many prompts
TEMPLATE = 0  # one template and one order, so each position holds the same role in every prompt
ORDER = "ABBA"
TL_LAYERS = 3  # layers whose heads TransformerLens's own per-head loop re-patches, for comparison
PROGRESS = False  # progress bars (for interactive runs)

# %%
import pathlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm

from circuitgen import runtime
from circuitgen import patching as P

model = runtime.start(MODEL, SEED, DEVICE)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
timings: dict[str, float] = {}

# %% [markdown]
# ## Clean and corrupted prompts
# A layer x position sweep patches position $p$ in every prompt at once, so all prompts must have
# the same role at the same position: one template, one order (ABBA: the indirect object comes
# first), and places and objects that are a single token. The positions that differ between the
# clean and the corrupted prompts are only the three names.

# %%
prompts = P.aligned_prompts(model, N_PROMPTS, SEED, template=TEMPLATE, orders=(ORDER,))
df = prompts.df
s, timings["set-up (2 cached runs)"] = P.timed(P.setup, model, df)
print("clean:    ", df["prompt"][0])
print("corrupted:", df["abc_prompt"][0])

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(s)} prompts of {s.clean.tokens.shape[1]} tokens (BOS included), template {TEMPLATE}, "
      f"order {ORDER}")
print("positions:", " | ".join(s.labels))
print(f"mean logit difference IO - S at END: clean {s.clean_mean:.2f}, corrupted {s.corrupted_mean:.2f}")

# %%
title_tail = f"({MODEL}, {len(s)} prompts)"


def heatmap(ax, values, title, xlabel, ylabel, xticks=None):
    v = np.asarray(values, dtype=float)
    lim = max(float(np.nanmax(np.abs(v))), 1e-6)
    im = ax.imshow(v, aspect="auto", cmap="RdBu", norm=TwoSlopeNorm(0.0, -lim, lim),
                   interpolation="nearest")
    if xticks is not None:
        ax.set_xticks(range(len(xticks)), xticks, rotation=60, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(False)
    return im


# %% [markdown]
# ## The residual stream, layer by position
# Patch the clean residual stream entering layer $L$ at position $p$ into the corrupted run
# (`get_act_patch_resid_pre`). Before the first name the two prompts are identical, so those
# cells cannot change anything and are filled without a forward pass.

# %%
resid, timings["residual stream (layer x position)"] = P.timed(
    P.patch, model, s, "resid_pre", progress=PROGRESS)
fig, ax = plt.subplots(figsize=(10, 7))
im = heatmap(ax, resid, f"Patching the residual stream {title_tail}", "position (token or role)",
             "layer (residual stream entering it)", s.labels)
fig.colorbar(im, label="normalised logit difference (0 corrupted, 1 clean)")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
pos = {role: int(s.clean.pos[role][0]) for role in ("IO", "S1", "S2", "END")}
shown_layers = sorted(set(np.linspace(0, n_layers - 1, 5).round().astype(int).tolist()))
for role in ("IO", "S1", "S2", "END"):
    print(f"patching at {role:>3}, layers {shown_layers}:",
          " ".join(f"{resid[l, pos[role]]:+.2f}" for l in shown_layers))
end_col = resid[:, pos["END"]]
print("first layer from which patching END alone recovers more than half:",
      next((l for l in range(n_layers) if (end_col[l:] > 0.5).all()), None))
s2_col = resid[:, pos["S2"]]
print(f"largest recovery at S2: {s2_col.max():.2f}, entering layer {int(s2_col.argmax())}")

# %% [markdown]
# ## Attention layers vs MLP layers
# Patch each layer's whole attention output, or its whole MLP output, at every position at once.

# %%
attn_layer, timings["attention layers"] = P.timed(P.patch, model, s, "attn_layer", progress=PROGRESS)
mlp_layer, timings["MLP layers"] = P.timed(P.patch, model, s, "mlp_layer", progress=PROGRESS)
fig, ax = plt.subplots(figsize=(9, 4))
ax.plot(range(n_layers), attn_layer, marker="o", label="attention output")
ax.plot(range(n_layers), mlp_layer, marker="s", label="MLP output")
ax.axhline(0, color="grey", lw=1)
ax.set_xlabel("layer")
ax.set_ylabel("normalised logit difference")
ax.set_title(f"Patching whole attention and MLP layers (all positions) {title_tail}")
ax.legend()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, values in (("attention", attn_layer), ("MLP", mlp_layer)):
    top = values.abs().argsort(descending=True)[:3].tolist()
    print(f"{name} layers with the largest effect:", ", ".join(f"{l} ({values[l]:.2f})" for l in top))

# %% [markdown]
# ## Each head's output
# Patch one head's output (`hook_z`, every position) at a time: one patched run per head (270
# for SmolLM2), here tiled several to a forward pass (`circuitgen.patching.patch_all_heads`).

# %%
heads, timings["all heads, output (fast)"] = P.timed(P.patch, model, s, "head_out", progress=PROGRESS)
fig, ax = plt.subplots(figsize=(7, 8))
im = heatmap(ax, heads, f"Patching each head's output {title_tail}", "head", "layer")
ax.set_xticks(range(n_heads))
fig.colorbar(im, label="normalised logit difference")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
top_heads = P.ranked_heads(heads, 5)
print("top 5 heads by exact patching effect (magnitude):")
for r in top_heads.itertuples():
    print(f"  {r.head}: {r.effect:+.2f}")

# %% [markdown]
# **Checked against TransformerLens.** Its own loop, `get_act_patch_attn_head_out_all_pos`, runs
# one forward pass per head. It re-patches the heads of the `TL_LAYERS` layers holding the
# strongest heads above (all layers would take a few minutes more), and must agree to 1e-4.

# %%
check_layers = sorted(dict.fromkeys(top_heads["layer"].tolist()))[:TL_LAYERS]
tl_heads, t_tl = P.timed(P.patch, model, s, "head_out", fast=False, layers=check_layers)
fast_subset, t_fast_subset = P.timed(P.patch, model, s, "head_out", layers=check_layers,
                                     progress=PROGRESS)
diff = P.max_abs_diff(fast_subset, tl_heads)
n_checked = len(check_layers) * n_heads

# %%
# NBVAL_CHECK_OUTPUT
print(f"layers re-patched by TransformerLens's loop: {check_layers} ({n_checked} heads)")
print("fast tiled patching equals TransformerLens's per-head loop (max abs diff <= 1e-4):",
      diff <= 1e-4)
print("and equals the full sweep above on those layers:",
      P.max_abs_diff(fast_subset[check_layers], heads[check_layers]) <= 1e-4)

# %%
print(f"max abs difference: {diff:.1e}")
print(f"time per head: TransformerLens loop {t_tl / n_checked:.2f} s, tiled "
      f"{t_fast_subset / n_checked:.2f} s (x{t_tl / t_fast_subset:.1f} faster on this machine)")

# %% [markdown]
# ## Values and attention patterns
# A head's output is its attention pattern applied to its values. Patching only the values
# (`get_act_patch_attn_head_v_all_pos`) or only the pattern
# (`get_act_patch_attn_head_pattern_all_pos`) asks which of the two carries the difference.
# SmolLM2 uses grouped-query attention: its 9 query heads per layer share 3 key/value heads, so
# values are patched per K/V head (each shared by 3 query heads).

# %%
values, timings["K/V heads, values"] = P.timed(P.patch, model, s, "head_v", progress=PROGRESS)
patterns, timings["heads, attention patterns"] = P.timed(P.patch, model, s, "head_pattern",
                                                         progress=PROGRESS)
n_kv = values.shape[1]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 8), gridspec_kw={"width_ratios": [1, 2]})
im1 = heatmap(ax1, values, "values, per K/V head", "K/V head", "layer")
ax1.set_xticks(range(n_kv))
fig.colorbar(im1, ax=ax1, label="normalised logit difference")
im2 = heatmap(ax2, patterns, "attention patterns, per head", "head", "layer")
ax2.set_xticks(range(n_heads))
fig.colorbar(im2, ax=ax2, label="normalised logit difference")
fig.suptitle(f"Patching each head's values or attention pattern {title_tail}")
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name, result in (("values (layer.K/V head)", values), ("patterns (layer.head)", patterns)):
    top = P.ranked_heads(result, 3)
    print(f"top 3 {name}:", ", ".join(f"{r.head} {r.effect:+.2f}" for r in top.itertuples()))
group = n_heads // n_kv
for r in top_heads.head(3).itertuples():
    print(f"head {r.head}: output {r.effect:+.2f}, its K/V head's values "
          f"{values[r.layer, r.index // group]:+.2f}, its pattern {patterns[r.layer, r.index]:+.2f}")

# %% [markdown]
# ## Attribution patching
# Attribution patching replaces the 270 patched runs by one linear estimate: for each head,
# $(z_\text{clean} - z_\text{corrupted}) \cdot \partial\,\text{metric} / \partial z$ at the
# corrupted run, summed over prompts and positions: two forward passes and one backward pass.
# `circuitgen.patching.attribute_heads` does it batched, reading gradients with backward hooks;
# TransformerLens's `tools.analysis.attribution_patch` gives the same numbers one prompt at a time.

# %%
attr, timings["attribution, all heads (batched)"] = P.timed(P.attribute, model, s)
attr_tl, timings["attribution, all heads (TransformerLens, per prompt)"] = P.timed(
    P.attribute, model, s, tl=True)
r, _ = P.correlation(attr, heads)

# %%
fig, ax = plt.subplots(figsize=(6, 6))
ax.scatter(heads.flatten(), attr.flatten(), s=14, alpha=0.7)
lim = float(max(heads.abs().max(), attr.abs().max())) * 1.1
ax.plot([-lim, lim], [-lim, lim], color="grey", lw=1, ls="--", label="y = x")
for row in P.ranked_heads(heads, 5).itertuples():
    ax.annotate(row.head, (row.effect, float(attr[row.layer, row.index])), fontsize=8,
                xytext=(4, 4), textcoords="offset points")
ax.set_xlabel("exact activation patching (normalised logit difference)")
ax.set_ylabel("attribution patching estimate (normalised logit difference)")
ax.set_title(f"Attribution vs exact patching, every head {title_tail}\nPearson r = {r:.2f}")
ax.legend()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"Pearson correlation, attribution vs exact over {heads.numel()} heads: {r:.2f}")
print("batched attribution equals TransformerLens's attribution_patch (max abs diff <= 1e-4):",
      P.max_abs_diff(attr, attr_tl) <= 1e-4)
top_attr = P.ranked_heads(attr, 5)
print("top 5 heads by attribution:", ", ".join(f"{r.head} {r.effect:+.2f}" for r in top_attr.itertuples()))
print("overlap with the exact top 5:", len(set(top_attr["head"]) & set(top_heads["head"])))

# %% [markdown]
# ## What each took
# Wall-clock seconds on this run's machine (shared, so only the ratios mean much; not checked).

# %%
print(pd.Series(timings, name="seconds").round(1).to_string())
print(f"\nexact all-heads patching / attribution patching: "
      f"x{timings['all heads, output (fast)'] / timings['attribution, all heads (batched)']:.0f}")
print(f"TransformerLens's per-head loop, extrapolated to all {n_layers * n_heads} heads: "
      f"{t_tl / n_checked * n_layers * n_heads:.0f} s")

# %%
if OUTPUT_DIR is not None:
    out = pathlib.Path(OUTPUT_DIR) / "w05"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(resid.numpy(), columns=s.labels).to_csv(out / "resid_pre.csv", index_label="layer")
    pd.DataFrame({"attention": attn_layer.numpy(), "mlp": mlp_layer.numpy()}).to_csv(
        out / "layers.csv", index_label="layer")
    for name, result in (("head_out", heads), ("head_v", values), ("head_pattern", patterns),
                         ("attribution", attr)):
        pd.DataFrame(result.numpy()).to_csv(out / f"{name}.csv", index_label="layer")
    print("saved to", out)

# %% [markdown]
# ## What we found
# On 8 prompts of one template in ABBA order (reference run; numbers as printed above):
# - **Where the information sits.** Up to layer 23 the difference between the clean and the ABC
#   prompts lives at the name positions themselves: patching the clean IO name alone *overshoots*
#   (+1.8, since the corrupted prompt then holds the clean IO but not the clean S), patching S1
#   alone gives -2.0, and S2 early on -1.5. In the middle layers S2 carries a smaller positive
#   effect (at most 0.37, entering layer 21): "this name is repeated" sits at S2. From layer 24
#   on, END alone carries most of it (0.85 entering the last layer). The move from the names to
#   END happens in one or two layers, not gradually.
# - **Layer 23's attention moves it.** Patching layer 23's whole attention output recovers 1.09,
#   layer 24's -0.55 (it pushes the other way), layer 29's 0.22. The only large MLP effect is
#   MLP 0 (1.01), which rewrites the name tokens themselves (patching it at every position acts
#   like an extended embedding); no later MLP exceeds 0.14 in magnitude.
# - **A few heads carry it.** Head 23.3 alone recovers 1.14; then 23.0 (+0.47) and 29.1
#   (+0.35); 23.4 (-0.27) and 24.5 (-0.23) work against the answer. These are the heads week 4's
#   direct logit attribution ranked highest (23.3, 29.1, 23.0), now shown to be causal.
# - **Output, not values or pattern alone.** No head's attention pattern alone moves the metric by
#   more than 0.06, and head 23.3's values alone (its K/V head) by 0.04: its effect needs the clean
#   pattern *and* the clean values together (the head must look at the right name and read that
#   name). Clean values alone in layer 23's other K/V heads even hurt (-0.50, -0.32): with the
#   corrupted pattern, the heads sharing them copy the wrong name.
# - **Attribution patching is an excellent map here.** Over all 270 heads it correlates with exact
#   patching at r = 1.00 and finds the same top 5, from one batched forward/backward (tens of
#   times faster than the exact sweep); it overestimates the strongest head (1.33 vs 1.14). It
#   equals TransformerLens's `attribution_patch`.
# - **The fast sweep is exact.** Tiling the corrupted batch, one patch per replica, reproduces
#   TransformerLens's per-head loop bit for bit. On this CPU it is only about 1.8x faster per head
#   (as timed above; 1.4x in an earlier run on a shared machine):
#   with 8 prompts a forward pass is mostly arithmetic, and tiling saves only the per-pass
#   overhead (the saving is far larger on small models and small batches).
