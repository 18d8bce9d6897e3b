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
# # Week 4: IOI behaviour and direct logit attribution
#
# **Question.** Over a whole distribution of IOI prompts (*"Then, Mary and John went to the store.
# John gave a drink to"* -> " Mary"), how reliably does the model prefer the indirect object (IO)
# over the repeated subject (S), does that depend on the order the names come in (ABBA vs BABA) or
# on the template, and which layers and attention heads *write* the answer into the residual
# stream at the final position?
#
# Before looking for a circuit (weeks 5-7) we need the behaviour it must explain. The metric
# throughout is the **logit difference** $\mathrm{logit}(\text{IO}) - \mathrm{logit}(\text{S})$
# read at END, the last token of each prompt, as in Wang et al. (2022), whose GPT-2 small
# reference value is 3.56. **Direct logit attribution** (DLA) splits that difference into what
# each head (or each layer's attention and MLP) adds to it directly, through the final norm and
# the unembedding; the **logit lens** reads the difference off the residual stream after each
# layer. Both are correlational: they show who writes the answer, not who computes it. That is
# what patching (week 5) tests.

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None  # reference run saves the prompt set under data/prompts/; other runs pass a folder
N_PROMPTS = 180  # 18 templates x 2 orders x 5 prompts
BATCH_SIZE = 16

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from circuitgen import behaviour as bh
from circuitgen import ioi, paths, plots, runtime

model = runtime.start(MODEL, SEED, DEVICE)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads

# %% [markdown]
# ## The IOI distribution
# `circuitgen.ioi.generate_prompts` fills 18 templates, each in both orders, with names, places
# and objects drawn with the seed. In **BABA** order the subject comes first ("Then, John and Mary
# ... John gave a drink to"); in **ABBA** order the indirect object does ("Then, Mary and John ...
# John gave a drink to"). Only names that are one token with a leading space are used, so the
# answer is one token. Templates and orders are balanced. The prompt set is saved with its seed
# and generator version, so later weeks (and other models) can reuse exactly these prompts.

# %%
prompts = ioi.generate_prompts(model, n=N_PROMPTS, seed=SEED)
df = prompts.df
slug = MODEL.replace("/", "--")
saved = prompts.save(paths.output_dir(OUTPUT_DIR) / "prompts" / f"ioi-{slug}-seed{SEED}")
shown = saved.relative_to(paths.REPO_ROOT) if saved.is_relative_to(paths.REPO_ROOT) else saved

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(df)} prompts, {df['template'].nunique()} templates, orders "
      f"{df['order'].value_counts().sort_index().to_dict()}, "
      f"{prompts.meta['n_names_kept']} single-token names ({prompts.n_dropped} dropped)")
print(f"prompt lengths: {df['n_tokens'].min()} to {df['n_tokens'].max()} tokens (BOS included)")
if OUTPUT_DIR is None:
    print("saved:", shown)

# %%
examples = df.groupby("template", sort=True).head(1).set_index("template")
examples[["order", "prompt", "io", "s"]].head(8)

# %% [markdown]
# ## Behaviour: accuracy and logit difference
# One forward pass per batch of prompts (right-padded, each read at its own END) gives, for
# every prompt, the logit difference, whether IO beats S (**accuracy**), whether IO is the model's
# top token (**top-1**; a stricter test, since the model may prefer a word that is not a name) and
# IO's probability. The same pass caches the activations that DLA and the logit lens read (about
# half a minute for 180 prompts on two CPU cores; the library's progress bars are switched off
# here so the committed outputs stay clean). Accuracy and top-1 rate get exact (Clopper-Pearson)
# 95% intervals, which stay honest when a group is all right or all wrong; the mean logit
# difference gets a seeded 95% percentile-bootstrap interval over prompts.

# %%
analysis = bh.analyse(model, df, batch_size=BATCH_SIZE, progress=False)
scores = analysis.scores
overall = bh.summarise(scores, seed=SEED).iloc[0]
by_order = bh.summarise(scores, by="order", seed=SEED)
by_template = bh.summarise(scores, by="template", seed=SEED)

# %%
# NBVAL_CHECK_OUTPUT
print(f"accuracy (IO logit > S logit): {overall['accuracy']:.2f}")
print(f"top-1 rate (IO is the argmax): {overall['top1']:.2f}")
print(f"mean logit difference: {overall['logit_diff']:.2f}")
for order, row in by_order.iterrows():
    print(f"{order}: accuracy {row['accuracy']:.2f}, mean logit difference {row['logit_diff']:.2f}")

# %%
cols = ["n", "accuracy", "accuracy_lo", "accuracy_hi", "top1", "logit_diff", "logit_diff_lo",
        "logit_diff_hi"]
pd.concat([by_order, bh.summarise(scores, seed=SEED)])[cols].round(2)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
ax = axes[0]
ax.hist([scores.loc[scores["order"] == o, "logit_diff"] for o in ("ABBA", "BABA")], bins=25,
        label=["ABBA", "BABA"], color=["C0", "C1"], alpha=0.8, histtype="stepfilled")
ax.axvline(0, color="grey", lw=1)
ax.set_xlabel("logit difference IO - S at END (nats)")
ax.set_ylabel("number of prompts")
ax.set_title("Per-prompt logit difference")
ax.legend()
for ax, metric, label in ((axes[1], "accuracy", "accuracy (fraction IO > S)"),
                          (axes[2], "logit_diff", "mean logit difference (nats)")):
    err = np.vstack([by_order[metric] - by_order[f"{metric}_lo"],
                     by_order[f"{metric}_hi"] - by_order[metric]])
    ax.bar(by_order.index, by_order[metric], yerr=err, capsize=6, color=["C0", "C1"])
    ax.set_xlabel("name order")
    ax.set_ylabel(label)
    ax.set_title(f"{label.split(' (')[0].capitalize()} by order, 95% CI")
axes[1].set_ylim(0, 1.05)
fig.suptitle(f"IOI behaviour ({MODEL}, {len(df)} prompts)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Per template
# Each template has `N_PROMPTS / 18` prompts (both orders), so the intervals are wide; what
# matters is whether some templates stand out.

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharex=True)
x = by_template.index.to_numpy()
for ax, metric, label in ((axes[0], "logit_diff", "mean logit difference IO - S (nats)"),
                          (axes[1], "accuracy", "accuracy (fraction IO > S)")):
    err = np.vstack([by_template[metric] - by_template[f"{metric}_lo"],
                     by_template[f"{metric}_hi"] - by_template[metric]])
    ax.bar(x, by_template[metric], yerr=err, capsize=3, color="C2")
    ax.axhline(overall[metric], color="k", ls="--", lw=1, label="all prompts")
    ax.set_xticks(x)
    ax.set_xlabel("template id")
    ax.set_ylabel(label)
    ax.legend(loc="lower left")
axes[0].axhline(0, color="grey", lw=1)
axes[1].set_ylim(0, 1.05)
fig.suptitle(f"IOI behaviour per template, 95% CI ({MODEL}, {len(df)} prompts, "
             f"{len(df) // len(by_template)} per template)")
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
worst = by_template.sort_values("logit_diff").head(3)
for tid, row in worst.iterrows():
    print(f"template {tid}: mean logit difference {row['logit_diff']:.2f}, accuracy "
          f"{row['accuracy']:.2f}  | {ioi.TEMPLATES[tid].text}")

# %% [markdown]
# ## Direct logit attribution by layer
# With compatibility mode on, the final norm's weights are folded into the unembedding, so the
# logit difference is a sum of terms, one per component that writes into the residual stream:
# each is the component's output at END, divided by the final norm's scale (the same scale for
# all, taken from the run), dotted with $W_U[:, \text{IO}] - W_U[:, \text{S}]$. We use
# TransformerLens's `direct_logit_attribution` on the padded batch and gather each prompt's END.
# The terms add up to the model's logit difference (less $b_U[\text{IO}] - b_U[\text{S}]$,
# which no component writes); we check that on every prompt.

# %%
heads, comps = analysis.heads, analysis.components
err_heads = heads.reconstruction_error().abs().max().item()
err_comps = comps.reconstruction_error().abs().max().item()
layer_stats = pd.DataFrame([
    {"layer": layer, "component": name, **dict(zip(("mean", "lo", "hi"),
                                                   bh.bootstrap_ci(comps.values[:, layer, c], seed=SEED)))}
    for layer in range(n_layers) for c, name in enumerate(bh.COMPONENTS)
])

# %%
# NBVAL_CHECK_OUTPUT
print("heads + remainder rebuild the logit difference to within 1e-3 on every prompt:", err_heads < 1e-3)
print("attention + MLP + embeddings rebuild it to within 1e-3 on every prompt:", err_comps < 1e-3)
attn_total = comps.values[:, :, 0].sum(1).mean().item()
mlp_total = comps.values[:, :, 1].sum(1).mean().item()
print(f"mean DLA, all attention layers: {attn_total:.1f}; all MLP layers: {mlp_total:.1f}; "
      f"embeddings: {comps.rest.mean().item():.1f}")
attn = layer_stats[layer_stats["component"] == "attention"].set_index("layer")["mean"]
mlp = layer_stats[layer_stats["component"] == "mlp"].set_index("layer")["mean"]
print(f"attention: largest layer {attn.idxmax()} ({attn.max():+.1f}), "
      f"most negative layer {attn.idxmin()} ({attn.min():+.1f})")
print(f"MLP: largest layer {mlp.idxmax()} ({mlp.max():+.1f})")

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(10, 4))
for c, name in enumerate(bh.COMPONENTS):
    s = layer_stats[layer_stats["component"] == name]
    ax.plot(s["layer"], s["mean"], marker="o", ms=4, color=f"C{c}", label=name)
    ax.fill_between(s["layer"], s["lo"], s["hi"], color=f"C{c}", alpha=0.25)
ax.axhline(0, color="grey", lw=1)
ax.set_xlabel("layer")
ax.set_ylabel("mean DLA to IO - S logit difference (nats)")
ax.set_title(f"Direct logit attribution by layer, mean and 95% CI ({MODEL}, {len(df)} prompts)")
ax.legend()
plt.show()

# %% [markdown]
# ## Direct logit attribution by head
# Each attention layer's output is a sum over its heads (plus an output bias, zero in Llama-style
# models), so the attention DLA splits further, head by head. Red heads push towards IO, blue
# heads towards S.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6, 9) if n_layers > 12 else (6, 4))
plots.head_heatmap(ax, heads.values.mean(0).numpy(), title=f"Mean DLA per head ({MODEL}, {len(df)} prompts)",
                   label="mean DLA to IO - S logit difference (nats)")
plt.show()

# %% [markdown]
# ### The heads that write the answer
# Heads with a large positive mean DLA are **candidate name movers**: in GPT-2 small, Wang et al.
# found heads that attend from END to the IO token and copy it to the output, and **negative name
# movers** that do the same with the opposite sign. DLA alone cannot say *how* a head writes
# IO - S; its attention can: a name mover should attend from END to IO more than to either
# mention of S. We look at where the top 5 and bottom 3 heads attend from END (IO, S1, S2, the
# BOS token, END itself), and at their DLA separately in the two orders.

# %%
top_pos = bh.top_heads(heads.values, k=5)
top_neg = bh.top_heads(heads.values, k=5, largest=False)
head_total = heads.values.sum((1, 2)).mean().item()

# %%
# NBVAL_CHECK_OUTPUT
print(f"mean DLA of all heads together: {head_total:.1f}")
print("top 5 heads by mean DLA (write IO over S):")
for r in top_pos.itertuples():
    print(f"  {r.head}: {r.mean_dla:+.1f}")
print("bottom 5 heads by mean DLA (write S over IO):")
for r in top_neg.itertuples():
    print(f"  {r.head}: {r.mean_dla:+.1f}")

# %%
cands = list(dict.fromkeys(list(top_pos["head"]) + list(top_neg["head"][:3])))
targets = list(bh.ATTENTION_TARGETS)
att = bh.end_attention(model, df, cands, batch_size=32, progress=False)
att_mean = att.groupby("head", sort=False)[targets].mean().loc[cands]
per_head = pd.DataFrame({h: heads.values[:, int(h.split(".")[0]), int(h.split(".")[1])].numpy()
                         for h in cands}, index=df.index)
head_table = pd.concat({"mean DLA": per_head.mean(),
                        "DLA ABBA": per_head[df["order"] == "ABBA"].mean(),
                        "DLA BABA": per_head[df["order"] == "BABA"].mean()}, axis=1)
head_table.index.name = "head"
head_table = head_table.join(att_mean.add_prefix("END -> "))
head_table.round(2)

# %% tags=["hide-input"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
xs = np.arange(len(cands))
width = 0.16
for i, role in enumerate(targets):
    ax1.bar(xs + (i - 2) * width, att_mean[role], width, label=f"END -> {role}")
ax1.set_xticks(xs, cands, rotation=45)
ax1.set_xlabel("head (layer.head)")
ax1.set_ylabel("mean attention probability from END")
ax1.set_title("Where the top and bottom DLA heads attend")
ax1.set_ylim(0, 1)
ax1.legend(ncol=3, fontsize=8, loc="upper left")
ax2.boxplot([per_head[h] for h in cands], tick_labels=cands)
ax2.tick_params(axis="x", rotation=45)
ax2.axhline(0, color="grey", lw=1)
ax2.set_xlabel("head (layer.head)")
ax2.set_ylabel("DLA to IO - S logit difference (nats)")
ax2.set_title("Per-prompt DLA of the same heads")
fig.suptitle(f"The heads with the largest direct effect ({MODEL}, {len(df)} prompts)")
plt.tight_layout()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for h, r in head_table.iterrows():
    shares = ", ".join(f"{t} {r['END -> ' + t]:.2f}" for t in targets)
    print(f"{h}: DLA {r['mean DLA']:+.1f} (ABBA {r['DLA ABBA']:+.1f}, BABA {r['DLA BABA']:+.1f}); "
          f"attends most to {att_mean.loc[h].idxmax()} ({shares})")

# %% [markdown]
# ## The logit lens over the distribution
# The logit lens reads the residual stream at END after each layer as if it were the last: the
# real final norm (with statistics recomputed for each layer's stream), then
# $W_U[:, \text{IO}] - W_U[:, \text{S}]$. Unlike DLA, each entry is normalised on its own, so the
# entries do not add up; they show when the answer becomes readable. The last entry is the model's
# own logit difference (checked in the library, batch by batch).

# %%
lens = analysis.lens
lens_stats = pd.DataFrame([dict(zip(("mean", "lo", "hi"), bh.bootstrap_ci(lens[c], seed=SEED)))
                           for c in lens.columns])
lens_by_order = lens.groupby(df["order"]).mean()

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(10, 4))
xs = np.arange(len(lens.columns))
ax.plot(xs, lens_stats["mean"], marker="o", ms=4, color="k", label="all prompts (95% CI)")
ax.fill_between(xs, lens_stats["lo"], lens_stats["hi"], color="k", alpha=0.2)
for order, color in (("ABBA", "C0"), ("BABA", "C1")):
    ax.plot(xs, lens_by_order.loc[order], lw=1, color=color, label=order)
ax.axhline(0, color="grey", lw=1)
ax.set_xlabel(f"residual stream entering layer (0 = embeddings, {n_layers} = final output)")
ax.set_ylabel("logit lens: IO - S logit difference (nats)")
ax.set_title(f"Logit lens at END, mean over prompts ({MODEL}, {len(df)} prompts)")
ax.legend()
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print("logit lens, last entry equals the model's logit difference:",
      bool(np.allclose(lens.iloc[:, -1], scores["logit_diff"], atol=1e-3)))
peak = int(lens_stats["mean"].idxmax())
print(f"largest mean lens logit difference: entering layer {peak} ({lens_stats['mean'][peak]:.1f}); "
      f"final: {lens_stats['mean'].iloc[-1]:.1f}")
above = [i for i in range(len(lens.columns)) if (lens_stats["mean"][i:] > 1).all()]
print("mean lens logit difference stays above 1 from the stream entering layer",
      above[0] if above else "(never: the final logit difference is below 1)")

# %%
from myst_nb import glue

glue("w04_n_prompts", len(df), display=False)
glue("w04_n_templates", int(df["template"].nunique()), display=False)
for key, row in {"all": overall, "abba": by_order.loc["ABBA"], "baba": by_order.loc["BABA"]}.items():
    for col in ("accuracy", "accuracy_lo", "accuracy_hi", "top1", "logit_diff", "logit_diff_lo",
                "logit_diff_hi"):
        glue(f"w04_{key}_{col}", float(row[col]), display=False)
ld_apart = (by_order["logit_diff_lo"].max() > by_order["logit_diff_hi"].min())
glue("w04_order_ld_overlap", "do not overlap" if ld_apart else "overlap", display=False)
worst_id, worst_row = next(worst.iterrows())
glue("w04_worst_template", int(worst_id), display=False)
glue("w04_worst_text", ioi.TEMPLATES[worst_id].text, display=False)
glue("w04_worst_logit_diff", float(worst_row["logit_diff"]), display=False)
glue("w04_worst_accuracy", float(worst_row["accuracy"]), display=False)
glue("w04_worst_n", int(worst_row["n"]), display=False)
glue("w04_dla_attn", attn_total, display=False)
glue("w04_dla_mlp", mlp_total, display=False)
glue("w04_dla_embed", comps.rest.mean().item(), display=False)
glue("w04_attn_top_layer", int(attn.idxmax()), display=False)
glue("w04_attn_top_value", float(attn.max()), display=False)
glue("w04_attn_min_layer", int(attn.idxmin()), display=False)
glue("w04_attn_min_value", float(attn.min()), display=False)
glue("w04_mlp_top_layer", int(mlp.idxmax()), display=False)
glue("w04_mlp_top_value", float(mlp.max()), display=False)


def head_text(h):
    r = head_table.loc[h]
    return (f"{h} (DLA {r['mean DLA']:+.1f}: ABBA {r['DLA ABBA']:+.1f}, BABA {r['DLA BABA']:+.1f}; "
            f"attends most to {att_mean.loc[h].idxmax()})")


movers = [h for h in top_pos["head"] if att_mean.loc[h].idxmax() == "IO"]
top_head = top_pos["head"].iloc[0]
glue("w04_top_heads", ", ".join(f"{h} ({v:+.1f})" for h, v in zip(top_pos["head"], top_pos["mean_dla"])),
     display=False)
glue("w04_name_movers", "; ".join(head_text(h) for h in movers) or "none", display=False)
glue("w04_top_head", top_head, display=False)
glue("w04_top_head_dla", float(head_table.loc[top_head, "mean DLA"]), display=False)
glue("w04_top_head_target", att_mean.loc[top_head].idxmax(), display=False)
glue("w04_top_head_target_share", float(att_mean.loc[top_head].max()), display=False)
glue("w04_top_head_io_share", float(att_mean.loc[top_head, "IO"]), display=False)
glue("w04_neg_heads", "; ".join(head_text(h) for h in top_neg["head"][:3]), display=False)
glue("w04_lens_peak_layer", peak, display=False)
glue("w04_lens_peak", float(lens_stats["mean"][peak]), display=False)
# a peak at the embeddings (a model that does not do the task) has no layer before it: NaN
glue("w04_lens_before_layer", peak - 1, display=False)
glue("w04_lens_before", float(lens_stats["mean"][peak - 1]) if peak > 0 else float("nan"), display=False)
glue("w04_lens_final", float(lens_stats["mean"].iloc[-1]), display=False)
early = max(peak - 1, 0)
glue("w04_lens_early_abba", float(lens_by_order.loc["ABBA"].iloc[:early].mean()), display=False)
glue("w04_lens_early_baba", float(lens_by_order.loc["BABA"].iloc[:early].mean()), display=False)

# %% [markdown]
# ## What we found
# In the reference run (SmolLM2-135M-Instruct, {glue:text}`w04_n_prompts` prompts over
# {glue:text}`w04_n_templates` templates; intervals are 95%, exact for accuracy):
# - The model does IOI: IO beats S on {glue:text}`w04_all_accuracy:.0%` of prompts
#   ({glue:text}`w04_all_accuracy_lo:.2f` to {glue:text}`w04_all_accuracy_hi:.2f`) and the mean
#   logit difference is {glue:text}`w04_all_logit_diff:.2f` ({glue:text}`w04_all_logit_diff_lo:.2f`
#   to {glue:text}`w04_all_logit_diff_hi:.2f`), against GPT-2 small's 3.56 in Wang et al. IO is
#   the top token on only {glue:text}`w04_all_top1:.0%` of the prompts, though: often another word
#   outranks both names.
# - **Name order.** BABA prompts (subject first) reach accuracy
#   {glue:text}`w04_baba_accuracy:.2f` ({glue:text}`w04_baba_accuracy_lo:.2f` to
#   {glue:text}`w04_baba_accuracy_hi:.2f`) and mean logit difference
#   {glue:text}`w04_baba_logit_diff:.2f` ({glue:text}`w04_baba_logit_diff_lo:.2f` to
#   {glue:text}`w04_baba_logit_diff_hi:.2f`); ABBA prompts {glue:text}`w04_abba_accuracy:.2f`
#   ({glue:text}`w04_abba_accuracy_lo:.2f` to {glue:text}`w04_abba_accuracy_hi:.2f`) and
#   {glue:text}`w04_abba_logit_diff:.2f` ({glue:text}`w04_abba_logit_diff_lo:.2f` to
#   {glue:text}`w04_abba_logit_diff_hi:.2f`). The logit-difference intervals of the two orders
#   {glue:text}`w04_order_ld_overlap`. A circuit must explain both.
# - Templates differ. The weakest is template {glue:text}`w04_worst_template`
#   (*{glue:text}`w04_worst_text`*): mean logit difference {glue:text}`w04_worst_logit_diff:.2f`,
#   accuracy {glue:text}`w04_worst_accuracy:.2f` on its {glue:text}`w04_worst_n` prompts. In the
#   reference run it is the template that repeats the object ("bought a book ... gave the book
#   to"), where the subject is a plausible recipient too. This is a first case where the same
#   "computation" is not done equally well across prompts.
# - The direct effect is mostly attention's: all attention layers together write
#   {glue:text}`w04_dla_attn:.1f` nats of mean DLA, all MLPs {glue:text}`w04_dla_mlp:.1f`, the
#   embeddings {glue:text}`w04_dla_embed:.1f`. The heads of layer {glue:text}`w04_attn_top_layer`
#   write the most ({glue:text}`w04_attn_top_value:+.1f`), those of layer
#   {glue:text}`w04_attn_min_layer` the most against it ({glue:text}`w04_attn_min_value:+.1f`); the
#   largest MLP layer is {glue:text}`w04_mlp_top_layer` ({glue:text}`w04_mlp_top_value:+.1f`).
# - The heads are not all classic name movers. The top five by mean DLA are
#   {glue:text}`w04_top_heads`. Those that attend from END most to IO, the name movers, are:
#   {glue:text}`w04_name_movers`. But the single strongest head, {glue:text}`w04_top_head`
#   (DLA {glue:text}`w04_top_head_dla:+.1f`), attends most to **{glue:text}`w04_top_head_target`**
#   ({glue:text}`w04_top_head_target_share:.2f` of its attention from END, IO
#   {glue:text}`w04_top_head_io_share:.2f`) and still writes in favour of IO: where that target is
#   a mention of S, as in the reference run, the head pushes the subject down rather than copying
#   the answer (a hypothesis for weeks 5-6). The three strongest negative heads are
#   {glue:text}`w04_neg_heads`: one that attends to IO is a negative name mover; ones that attend
#   to END itself or BOS have an effect that is not about names at all.
# - The logit lens shows the answer appearing late and at once: the mean lens logit difference
#   goes from {glue:text}`w04_lens_before:.1f` entering layer {glue:text}`w04_lens_before_layer`
#   to {glue:text}`w04_lens_peak:.1f` entering layer {glue:text}`w04_lens_peak_layer` (its peak),
#   and later layers bring it back to {glue:text}`w04_lens_final:.1f` at the output. Before that,
#   the lens averages {glue:text}`w04_lens_early_abba:+.2f` in ABBA prompts (IO first) and
#   {glue:text}`w04_lens_early_baba:+.2f` in BABA prompts (S first): it leans towards whichever
#   name came first in the prompt, not towards the answer.
# - DLA is correlational: a head can write IO without being needed, and heads that compute the
#   answer earlier (duplicate-token, induction, S-inhibition) write nothing directly. Week 5
#   measures importance causally, with activation and attribution patching.
