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
# # Week 10: domain variation
#
# **Question.** Does the circuit carry over to other worlds? The same IOI structure told in the workplace, in
# sport, medicine, law, fantasy and science, each with its own places, objects and verbs: does
# the model still prefer the indirect object, and does the week-6 circuit, found on everyday
# prompts, still do the work?
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
N_PER_CONDITION = 20  # prompts per condition (7 conditions)
CIRCUIT = None  # a spec path; None: the circuit week 6 found for MODEL

# %%
import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import circuits, runtime, sweeps, variations

model = runtime.start(MODEL, SEED, DEVICE)
spec = circuits.found_circuit(MODEL, CIRCUIT, OUTPUT_DIR)

# %% [markdown]
# ## The domain prompts
# `variations.generate_domain` makes `N_PER_CONDITION` prompts per condition from the seed;
# the set is saved with its seed and generator version (the path is printed below). Prompts the
# scorer cannot score (a name that is not one token here, a prompt whose names are not where the
# template says) are kept and counted as flagged, never dropped silently.

# %%
prompt_set = variations.generate_domain(model, n_per_condition=N_PER_CONDITION, seed=SEED)
saved = sweeps.save_prompt_set(prompt_set, MODEL, SEED, OUTPUT_DIR)
print("prompt set saved:", sweeps.shown_path(saved))
notes = {k: v for k, v in variations.condition_notes("domain").items() if v}
for cond, note in notes.items():
    print(f"{cond}: {note}")
prompt_set.df.groupby("condition", sort=False).head(1)[["condition", "prompt", "io", "s"]]

# %%
scores = sweeps.run_sweep(model, spec, prompt_set, seed=SEED)
table = sweeps.by_condition(scores, seed=SEED)
meta = scores.attrs["circuitgen"]
BASE = "everyday" if "everyday" in table.index else table.index[0]

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
    table, f"Domain variation: {MODEL}, {meta['n_scored']} prompts ({N_PER_CONDITION} per condition)", base=BASE)
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
# From the reference run above (20 prompts per domain, 140 prompts, none flagged):
#
# - **The behaviour carries over.** The model prefers the indirect object on 136 of the 140
#   prompts (accuracy 0.90 in law and science, 1.00 in every other domain). Its mean logit
#   difference runs from 3.55 (sport, law) to 4.90 (medicine) against 4.41 on everyday prompts,
#   and no domain is clearly lower or higher than everyday on accuracy, logit difference or
#   faithfulness.
# - **The circuit is weak everywhere, not only off-domain.** Faithfulness as a ratio of means lies
#   between 0.21 (fantasy) and 0.37 (workplace); the everyday reference, 0.23 [0.1, 0.4], is among
#   the lowest, and every domain's interval contains it. At 20 prompts per domain the domain does
#   not change how much of the behaviour the week-6 circuit carries.
# - **The circuit fails on prompts the model gets right.** The circuit alone prefers S on 36 of
#   the 140 prompts, the model on 4 (3 of them the same); all six prompts where the circuit most
#   prefers S are ones the model gets right (model logit difference 1.31 to 4.63), three of them
#   from sport. The name movers' signature (attention END -> IO) is of similar size in every
#   domain (0.24 in law to 0.33).
#
# So the domain is not what limits this circuit: its incompleteness on the model's own
# distribution is. Week 12 asks which per-prompt features predict where it fails.
