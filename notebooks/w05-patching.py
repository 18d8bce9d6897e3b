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
# $$\frac{\overline{LD}_\text{patched} - \overline{LD}_\text{corrupted}}
# {\overline{LD}_\text{clean} - \overline{LD}_\text{corrupted}}$$
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

from circuitgen import patching as P
from circuitgen import plots, runtime

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

# %% [markdown]
# ## The residual stream, layer by position
# Patch the clean residual stream entering layer $L$ at position $p$ into the corrupted run
# (`get_act_patch_resid_pre`). Before the first name the two prompts are identical, so those
# cells cannot change anything and are filled without a forward pass.

# %%
resid, timings["residual stream (layer x position)"] = P.timed(
    P.patch, model, s, "resid_pre", progress=PROGRESS)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(10, 7))
plots.head_heatmap(ax, resid, title=f"Patching the residual stream {title_tail}",
                   xlabel="position (token or role)", ylabel="layer (residual stream entering it)",
                   xticks=s.labels, label="normalised logit difference (0 corrupted, 1 clean)")
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

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 4))
ax.plot(range(n_layers), attn_layer, marker="o", label="attention output")
ax.plot(range(n_layers), mlp_layer, marker="s", label="MLP output")
ax.axhline(0, color="grey", lw=1)
ax.set_xlabel("layer")
ax.set_ylabel("normalised logit difference (0 corrupted, 1 clean)")
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

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 8))
plots.head_heatmap(ax, heads, title=f"Patching each head's output {title_tail}",
                   label="normalised logit difference (0 corrupted, 1 clean)")
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

# %% tags=["hide-input"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 8), gridspec_kw={"width_ratios": [1, 2]})
lim = plots.symmetric_limit(values, patterns)  # one scale, so the two panels compare directly
plots.head_heatmap(ax1, values, title="values, per K/V head", xlabel="K/V head", vmax=lim,
                   label="normalised logit difference")
plots.head_heatmap(ax2, patterns, title="attention patterns, per head", vmax=lim,
                   label="normalised logit difference")
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

# %% tags=["hide-input"]
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

# %%
from myst_nb import glue

io_col = resid[:, pos["IO"]]
names_until = max((l for l in range(n_layers) if io_col[l] > 0.5), default=None)
end_from = next((l for l in range(n_layers) if (end_col[l:] > 0.5).all()), None)
attn_top = attn_layer.abs().argsort(descending=True)[:3].tolist()
mlp_order = mlp_layer.abs().argsort(descending=True).tolist()
best = top_heads.iloc[0]
r_attr, _ = P.correlation(attr, heads)
glue("w05_n_prompts", len(s), display=False)
glue("w05_template", TEMPLATE, display=False)
glue("w05_order", ORDER, display=False)
glue("w05_clean_ld", s.clean_mean, display=False)
glue("w05_corrupted_ld", s.corrupted_mean, display=False)
for role in ("IO", "S1", "S2"):
    glue(f"w05_{role.lower()}_layer0", float(resid[0, pos[role]]), display=False)
glue("w05_names_until", "none" if names_until is None else str(names_until), display=False)
glue("w05_end_from", "none" if end_from is None else str(end_from), display=False)
glue("w05_end_last", float(end_col[-1]), display=False)
glue("w05_end_before_layer", str(end_from - 1) if end_from else "none", display=False)
glue("w05_end_before", float(end_col[end_from - 1]) if end_from else float("nan"), display=False)
glue("w05_end_at", float(end_col[end_from]) if end_from is not None else float("nan"), display=False)
glue("w05_s2_max", float(s2_col.max()), display=False)
glue("w05_s2_max_layer", int(s2_col.argmax()), display=False)
glue("w05_attn_layers", ", ".join(f"{l} ({attn_layer[l]:+.2f})" for l in attn_top), display=False)
glue("w05_attn_top_layer", attn_top[0], display=False)
glue("w05_attn_top_effect", float(attn_layer[attn_top[0]]), display=False)
glue("w05_mlp_top_layer", mlp_order[0], display=False)
glue("w05_mlp_top_effect", float(mlp_layer[mlp_order[0]]), display=False)
glue("w05_mlp_rest_max", float(mlp_layer[mlp_order[1]].abs()), display=False)
glue("w05_top_head", best["head"], display=False)
glue("w05_top_effect", float(best["effect"]), display=False)
glue("w05_next_heads",
     ", ".join(f"{h} ({e:+.2f})" for h, e in zip(top_heads["head"][1:], top_heads["effect"][1:])),
     display=False)
glue("w05_pattern_max", float(patterns.abs().max()), display=False)
glue("w05_top_head_values", float(values[int(best["layer"]), int(best["index"]) // group]), display=False)
glue("w05_top_head_pattern", float(patterns[int(best["layer"]), int(best["index"])]), display=False)
top_values = P.ranked_heads(values, 3)
glue("w05_values_top", ", ".join(f"{h} ({e:+.2f})" for h, e in zip(top_values["head"], top_values["effect"])),
     display=False)
glue("w05_n_heads", heads.numel(), display=False)
glue("w05_attr_r", float(r_attr), display=False)
glue("w05_attr_overlap", len(set(top_attr["head"]) & set(top_heads["head"])), display=False)
glue("w05_attr_top_estimate", float(attr[int(best["layer"]), int(best["index"])]), display=False)
glue("w05_attr_tl_diff", P.max_abs_diff(attr, attr_tl), display=False)
glue("w05_attr_speedup", timings["all heads, output (fast)"] / timings["attribution, all heads (batched)"],
     display=False)
glue("w05_tl_diff", float(diff), display=False)
glue("w05_tl_n_checked", n_checked, display=False)
glue("w05_tl_speedup", t_tl / t_fast_subset, display=False)

# %% [markdown]
# ## What we found
# On {glue:text}`w05_n_prompts` prompts of template {glue:text}`w05_template` in
# {glue:text}`w05_order` order (reference run; clean logit difference
# {glue:text}`w05_clean_ld:.2f`, corrupted {glue:text}`w05_corrupted_ld:.2f`):
# - **Where the information sits.** Early on, the difference between the clean and the ABC
#   prompts lives at the name positions themselves: patching the clean IO name alone *overshoots*
#   ({glue:text}`w05_io_layer0:+.2f` entering layer 0, since the corrupted prompt then holds the
#   clean IO but not the clean S), patching S1 alone gives {glue:text}`w05_s1_layer0:+.2f`, and S2
#   early on {glue:text}`w05_s2_layer0:+.2f`. Patching IO alone recovers more than half up to the
#   stream entering layer {glue:text}`w05_names_until`. In the middle layers S2 carries a smaller
#   positive effect (at most {glue:text}`w05_s2_max:.2f`, entering layer
#   {glue:text}`w05_s2_max_layer`): "this name is repeated" sits at S2. END alone recovers
#   {glue:text}`w05_end_before:+.2f` entering layer {glue:text}`w05_end_before_layer` but
#   {glue:text}`w05_end_at:.2f` entering layer {glue:text}`w05_end_from`, and more than half from
#   there on ({glue:text}`w05_end_last:.2f` entering the last layer): the move to END is abrupt,
#   not gradual.
# - **Attention moves it.** The attention layers with the largest effect (whole output, every
#   position) are {glue:text}`w05_attn_layers`; a negative one pushes the other way. The largest
#   MLP effect is MLP {glue:text}`w05_mlp_top_layer` ({glue:text}`w05_mlp_top_effect:.2f`); no
#   other MLP exceeds {glue:text}`w05_mlp_rest_max:.2f` in magnitude. In the reference run that
#   MLP is MLP 0, which rewrites the name tokens themselves (patching it at every position acts
#   like an extended embedding).
# - **A few heads carry it.** Head {glue:text}`w05_top_head` alone recovers
#   {glue:text}`w05_top_effect:.2f`; the next four are {glue:text}`w05_next_heads` (negative ones
#   work against the answer). Week 4's direct logit attribution ranked
#   {glue:text}`w04-ioi-behaviour.ipynb::w04_top_heads:s` highest; patching tests which of them
#   are causal.
# - **Output, not values or pattern alone.** No head's attention pattern alone moves the metric by
#   more than {glue:text}`w05_pattern_max:.2f`; the pattern of head {glue:text}`w05_top_head` alone
#   gives {glue:text}`w05_top_head_pattern:+.2f` and its values alone (its K/V head)
#   {glue:text}`w05_top_head_values:+.2f`, against {glue:text}`w05_top_effect:.2f` for its whole
#   output: its effect needs the clean pattern *and* the clean values together (the head must look
#   at the right name and read that name). The K/V heads whose clean values matter most are
#   {glue:text}`w05_values_top` (layer.K/V head); a negative effect means that with the corrupted
#   pattern, the heads sharing those values copy the wrong name.
# - **Attribution patching is a good map here.** Over all {glue:text}`w05_n_heads` heads it
#   correlates with exact patching at r = {glue:text}`w05_attr_r:.2f` and shares
#   {glue:text}`w05_attr_overlap` of the exact top 5, from one batched forward/backward
#   ({glue:text}`w05_attr_speedup:.0f` times faster than the exact sweep in this run); for the
#   strongest head it estimates {glue:text}`w05_attr_top_estimate:.2f` against the exact
#   {glue:text}`w05_top_effect:.2f`. It equals TransformerLens's `attribution_patch` (max abs
#   difference {glue:text}`w05_attr_tl_diff:.1e`).
# - **The fast sweep is exact.** Tiling the corrupted batch, one patch per replica, reproduces
#   TransformerLens's per-head loop on {glue:text}`w05_tl_n_checked` heads (max abs difference
#   {glue:text}`w05_tl_diff:.1e`). In this run it was {glue:text}`w05_tl_speedup:.1f` times faster
#   per head (wall-clock on a shared machine, so it varies from run to run): with
#   {glue:text}`w05_n_prompts` prompts a forward pass is mostly arithmetic, and tiling saves only
#   the per-pass overhead (the saving is far larger on small models and small batches).
