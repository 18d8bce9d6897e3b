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
# # Week 13: faithful circuits, found three ways
#
# **Question.** The circuit of week 6 keeps well under half of the model's logit difference even
# on the prompts it was made for ([week 7](w07-circuit-scorer.ipynb)), so its failures on other
# prompts (weeks 8-12) say little about circuits in general. Is there a *faithful* IOI circuit in
# SmolLM2 (one that, alone, does what the model does on held-out prompts), how large must it be,
# do three different discovery methods agree on it, and is it the same when found on other
# prompts?
#
# Three methods, one format (circuits of (head, role position) nodes; every MLP runs):
# **EAP-IG** {cite}`hanna2024faith` (gradients, integrated between the ABC and the clean input),
# **exact pruning** in the manner of ACDC {cite}`conmy2023acdc` (remove a node when removing it
# barely moves the logit difference), and **path patching** {cite}`wang2022ioi` (from the logits
# backwards). Each ranks the 1620 head nodes; a circuit of size *k* is a method's top *k*. Circuits
# are scored on an evaluation set whose names the discovery never saw and with four templates it
# never saw, as MIB {cite}`mueller2025mib` scores them: normalised faithfulness against size, and the
# areas under that curve. The procedure and thresholds were fixed before any result was seen
# (LAB_NOTEBOOK, 2026-11-26, "week 13 plan").

# %% tags=["parameters"]
MODEL = "smollm2-135m"
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None  # reference run: data/discovery and data/circuits; other runs: this folder
N_DISCOVERY = 200  # prompts per discovery set (three sets)
N_EVAL = 144  # evaluation prompts (8 per template; 4 templates never seen in discovery)
N_RANDOM = 2  # size-matched random circuits per size
METHODS = ["eap-ig", "pruning", "path-patching"]
STABILITY_FRACTIONS = [0.02, 0.05, 0.10]  # circuit sizes compared across discovery sets

# %%
import matplotlib.pyplot as plt
import pandas as pd

from myst_nb import glue

from circuitgen import circuits, curves, faithful, paths, plots, runtime, splits
from circuitgen import nodes as N

model = runtime.start(MODEL, SEED, DEVICE)
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
n_nodes = n_layers * n_heads * len(N.NODE_ROLES)
out = paths.output_dir(OUTPUT_DIR) / "discovery"
week6 = circuits.found_circuit(MODEL, None, OUTPUT_DIR)

# %% [markdown]
# ## The prompt sets
# Names are split once into a discovery pool and an evaluation pool; four templates appear only in
# the evaluation set (`circuitgen.splits`). Three disjoint discovery sets let us ask whether a
# method finds the same circuit twice.

# %%
# NBVAL_CHECK_OUTPUT
sets = splits.make_splits(model, N_DISCOVERY, N_EVAL)
evaluation = sets.evaluation.df
info = sets.describe()
print(f"discovery: {info['n_discovery']} prompts, {info['n_discovery_names']} names; "
      f"evaluation: {info['n_eval']} prompts, {info['n_eval_names']} other names, "
      f"held-out templates {info['held_out_templates']} "
      f"({int(evaluation.held_out_template.sum())} prompts)")

# %% [markdown]
# ## Discovery, three methods on three sets
# Each run is stored under `data/discovery/` with a fingerprint of its inputs (prompts, model,
# parameters, code version) and re-used only while they are unchanged; `scripts/week13.py` runs
# the same steps outside the notebook. The parameters are `faithful.MethodConfig`'s.

# %%
config = faithful.MethodConfig()
runs = {(m, f"set{i}"): faithful.discover(model, d.df, m, f"set{i}", config=config, out_dir=out)
        for m in METHODS for i, d in enumerate(sets.discovery, start=1)}
rankings = {key: faithful.ranking(run.df) for key, run in runs.items()}
cost = pd.DataFrame([{"method": m, "set": s, "prompts": r.meta["n_prompts"],
                      "seconds": r.meta.get("seconds")} for (m, s), r in runs.items()])
print(cost.pivot(index="method", columns="set", values="seconds").to_string())

# %% [markdown]
# The ten highest-ranked head nodes of each method on the first discovery set:

# %%
# NBVAL_CHECK_OUTPUT
top = pd.DataFrame({m: [n.label for n in rankings[(m, "set1")][:10]] for m in METHODS})
print(top.to_string())

# %% [markdown]
# ## Faithfulness against size
# Each method's top-*k* circuits at MIB's node fractions (0.1% to 100% of the 1620 head nodes),
# scored on the evaluation prompts with every other (head, position) replaced by its mean over
# ABC prompts of the same template and order (mean ablation) or by the prompt's own ABC
# counterpart (resample ablation). Shaded: 95% intervals resampling templates. Grey: random
# circuits of the same sizes. Star: the week-6 circuit.

# %%
rank1 = {m: rankings[(m, "set1")] for m in METHODS}
curve = faithful.size_curves(model, evaluation, rank1, n_random=N_RANDOM,
                             extra={"week 6": week6.nodes()}, out_dir=out).df
summary = pd.concat([curves.with_intervals(g, curves.summarise(g, by=["circuit", "family", "k"]))
                     .assign(ablation=a) for a, g in curve.groupby("ablation", sort=False)],
                    ignore_index=True)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
for ax, abl in zip(axes, ["mean", "resample"]):
    s = summary[summary.ablation == abl]
    plots.size_curve(ax, s[s.family.isin(METHODS)], n_nodes=n_nodes,
                     random=s[s.family.str.startswith("random")], points=s[s.family == "week 6"],
                     title=f"{abl} ablation, {len(evaluation)} held-out prompts ({MODEL})")
plt.tight_layout()
plt.show()

# %% [markdown]
# MIB's summaries of each curve: CPR, the area under the normalised faithfulness (the whole model
# scores 1), and CMD, the area between the curve and 1 (lower is better).

# %%
# NBVAL_CHECK_OUTPUT
areas = []
for (abl, fam), g in summary[summary.family.isin(METHODS)].groupby(["ablation", "family"]):
    g = g.sort_values("k")
    areas.append({"ablation": abl, "method": fam,
                  **curves.area_summaries(g.k / n_nodes, g.normalised)})
areas = pd.DataFrame(areas).pivot(index="method", columns="ablation")
print(areas.round(2).to_string())

# %% [markdown]
# ## The smallest faithful circuit per method
# The target fixed in advance: normalised faithfulness within [0.85, 1.15] on the evaluation set
# under mean ablation. The first grid size inside the band is refined by bisection against the
# size before it; since a curve need not rise monotonically this is the smallest size *found*.

# %%
target = faithful.targets(model, evaluation, rank1, curve, out_dir=out).df

# %%
# NBVAL_CHECK_OUTPUT
show = target[["method", "k", "n_heads", "mean_normalised", "mean_normalised_lo",
               "mean_normalised_hi", "resample_normalised"]].copy()
show.insert(2, "fraction", show.k / n_nodes)
print(show.round(3).to_string(index=False))
