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
# # Week 11: adversarial variation
#
# **Question.** Where does the circuit's heuristic break? Prompts built to trip a "pick the name that is not
# repeated" rule: the IO mentioned two or three times (DoubleIO/TripleIO after Nainani et al.
# 2024), a distractor name, S mentioned three times, possessives at S1 or S2, and names that are
# also common words. Does the model still prefer the indirect object, does the circuit still
# do the work, and do they fail on the same prompts?
#
# Each prompt is scored with the week-7 scorer (`circuitgen.sweeps.run_sweep`): the model's logit
# difference IO - S at END, the circuit's (every head outside the circuit mean-ablated, the means
# taken over this set's own ABC prompts per template) and the attention signature of the
# circuit's first class. Per condition we report accuracy (logit difference > 0), the mean logit
# differences, faithfulness as a ratio of means (circuit / model) and the mean signature, each
# with a seeded bootstrap 95% CI over prompts (the ratio with a paired bootstrap). With
# `N_PER_CONDITION` prompts per condition (a parameter below) the intervals are still wide:
# they say which differences are clear, not which are small.

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None
N_PER_CONDITION = 20  # prompts per condition (8 conditions)
CIRCUIT = None  # a spec path; None: the circuit week 6 found for MODEL

# %%
import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import circuits, runtime, sweeps, variations

model = runtime.start(MODEL, SEED, DEVICE)
spec = circuits.found_circuit(MODEL, CIRCUIT, OUTPUT_DIR)

# %% [markdown]
# ## The adversarial prompts
# `variations.generate_adversarial` makes `N_PER_CONDITION` prompts per condition from the seed;
# the set is saved with its seed and generator version (the path is printed below). Prompts the
# scorer cannot score (a name that is not one token here, a prompt whose names are not where the
# template says) are kept and counted as flagged, never dropped silently.

# %%
prompt_set = variations.generate_adversarial(model, n_per_condition=N_PER_CONDITION, seed=SEED)
saved = sweeps.save_prompt_set(prompt_set, MODEL, SEED, OUTPUT_DIR)
print("prompt set saved:", sweeps.shown_path(saved))
notes = {k: v for k, v in variations.condition_notes("adversarial").items() if v}
for cond, note in notes.items():
    print(f"{cond}: {note}")
prompt_set.df.groupby("condition", sort=False).head(1)[["condition", "prompt", "io", "s"]]

# %%
scores = sweeps.run_sweep(model, spec, prompt_set, seed=SEED)
table = sweeps.by_condition(scores, seed=SEED)
meta = scores.attrs["circuitgen"]
BASE = "base" if "base" in table.index else table.index[0]

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(sweeps.flag_lines(scores, prompt_set, table)))

# %% [markdown]
# ## Behaviour and circuit, condition by condition
# Estimates with bootstrap 95% CIs in brackets; the `sig_` column is the mean attention of the circuit's
# first class along its signature (a probability). The dashed lines in the figure mark the
# reference condition.

# %%
# NBVAL_CHECK_OUTPUT
print(f"main signature: {table.attrs['signature']}; reference condition: {BASE}")
with pd.option_context("display.width", 250, "display.max_colwidth", 40):
    print(sweeps.format_table(table).to_string())

# %%
fig = sweeps.plot_conditions(
    table, f"Adversarial variation: {MODEL}, {meta['n_scored']} prompts ({N_PER_CONDITION} per condition)", base=BASE)
plt.show()

# %% [markdown]
# ## How the conditions compare with the reference
# A condition is called clearly different when the 95% bootstrap CI of its *difference* from the
# reference condition excludes zero (`sweeps.difference_from_reference`: the condition's prompts
# and the reference's are resampled independently, so the reference's own uncertainty counts).
# It is a screen at 95% per comparison, not corrected for the number of conditions: among a dozen
# conditions that do not differ, one may be flagged by chance. Week 12 checks which differences
# replicate on a fresh draw of prompts.

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(sweeps.compare_with_reference(scores, table, BASE, seed=SEED)))

# %% [markdown]
# ## The prompts where the circuit does worst
# The scored prompts with the lowest circuit logit difference: where the circuit alone most
# prefers S, with the model's own logit difference beside it.

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(sweeps.worst_prompt_lines(scores, 6)))

# %% [markdown]
# ## What we found
# From the reference run above (20 prompts per condition, 160 prompts, none flagged):
#
# - **The model is hard to trip, but names that are words do it.** It prefers the indirect object
#   on 152 of the 160 prompts. Names that are also common words are the clearest dent: accuracy
#   0.80 [0.6, 0.9], the only condition clearly below the base prompts, and the smallest mean
#   logit difference (2.62). Every adversarial condition has a smaller mean logit difference than
#   the base prompts (5.07); clearly smaller are word names, a possessive at S2 (2.66) and the IO
#   mentioned twice (2.86).
# - **Repeating the IO makes the circuit look more faithful, not less.** With the IO mentioned two
#   or three times faithfulness is 1.09 [0.9, 1.5] and 0.71 [0.5, 0.9], clearly above the base
#   condition's 0.25. The circuit's own logit difference is larger there (3.12 and 2.97 against
#   1.27), with the IO twice even larger than the whole model's (2.86), while the name movers'
#   attention from END to the *first* IO mention falls to less than half (0.14 and 0.13 against
#   0.31), which suggests they attend to the later IO mentions (the signature measures the
#   first). The ratio also rises because the heads outside the circuit add less towards the IO
#   here than on the base prompts (relative to their ABC means): with the IO twice, mean-ablating
#   them even raises the logit difference.
# - **S three times is where the circuit breaks, not the model.** The model is right on all 20
#   prompts (mean logit difference 4.23), while the circuit alone prefers S on average (circuit
#   logit difference -0.41 [-1.4, 0.5]); its faithfulness, -0.10 [-0.4, 0.1], is the lowest of
#   all, though at 20 prompts its difference from the base condition's 0.25 [-0.0, 0.5] is not
#   clear at 95%. The three prompts where the circuit most prefers S
#   (circuit -5.72 to -3.98) are S-three-times prompts the model gets right by 1.97 to 4.49.
# - **Possessives point both ways, not clearly.** A possessor at S1 gives a more faithful circuit
#   (0.48), a possessor at S2 a less faithful one (0.13) whose interval reaches below zero; neither
#   differs clearly from the base prompts.
# - The circuit alone prefers S on 48 of the 160 prompts, the model on 8 (5 of them the same).
#   The other three of the six worst prompts are *base* prompts the model gets right by 3.30 to
#   7.36: the circuit's failures are not confined to adversarial prompts.
#
# On this model, mentioning S a third time weakens the circuit most but not the behaviour, repeating the
# IO shrinks the model's margin but not the circuit's, and names that are common words are what
# trips the model itself. Week 12 relates the failures to per-prompt features.
