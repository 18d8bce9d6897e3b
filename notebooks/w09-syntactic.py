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
# # Week 9: syntactic variation
#
# **Question.** Does the circuit depend on the sentence shapes it was found on? Changing the syntax while
# keeping who gives to whom (ABBA vs BABA order, IO or S as the subject of the first clause,
# 0-20 filler tokens between S1 and S2, one or two sentences, passive voice, relative clauses,
# reordered clauses), does the model still prefer the indirect object, and does the week-6
# circuit still do the work?
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
N_PER_CONDITION = 20  # prompts per condition (13 conditions)
CIRCUIT = None  # a spec path; None: the circuit week 6 found for MODEL

# %%
import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import circuits, runtime, sweeps, variations

model = runtime.start(MODEL, SEED, DEVICE)
spec = circuits.found_circuit(MODEL, CIRCUIT, OUTPUT_DIR)

# %% [markdown]
# ## The syntactic prompts
# `variations.generate_syntactic` makes `N_PER_CONDITION` prompts per condition from the seed;
# the set is saved with its seed and generator version (the path is printed below). Prompts the
# scorer cannot score (a name that is not one token here, a prompt whose names are not where the
# template says) are kept and counted as flagged, never dropped silently.

# %%
prompt_set = variations.generate_syntactic(model, n_per_condition=N_PER_CONDITION, seed=SEED)
saved = sweeps.save_prompt_set(prompt_set, MODEL, SEED, OUTPUT_DIR)
print("prompt set saved:", sweeps.shown_path(saved))
notes = {k: v for k, v in variations.condition_notes("syntactic").items() if v}
for cond, note in notes.items():
    print(f"{cond}: {note}")
prompt_set.df.groupby("condition", sort=False).head(1)[["condition", "prompt", "io", "s"]]

# %%
scores = sweeps.run_sweep(model, spec, prompt_set, seed=SEED)
table = sweeps.by_condition(scores, seed=SEED)
meta = scores.attrs["circuitgen"]
BASE = "order_abba" if "order_abba" in table.index else table.index[0]

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
    table, f"Syntactic variation: {MODEL}, {meta['n_scored']} prompts ({N_PER_CONDITION} per condition)", base=BASE)
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
# From the reference run above (20 prompts per condition, 260 prompts, none flagged):
#
# - **Syntax barely dents the behaviour.** The model prefers the indirect object on 252 of 260
#   prompts. Its misses are mostly in the canonical templates (accuracy 0.90 in ABBA order, 0.80
#   in BABA, the lowest), with one each in `filler_0` and `reordered_clauses`; every other
#   condition is at 1.00.
# - **Order matters more than length for the model.** The ABBA reference has the smallest mean
#   logit difference (2.87) and IO-first prompts in the other templates are close to it (2.93);
#   BABA and S-first prompts are larger (4.33 and 4.80). Filler between S1 and S2 does not shrink
#   it: 4.97, 5.21, 5.37 and 5.14 with about 0, 5, 10 and 20 filler tokens.
# - **The circuit is most faithful when the IO is named first.** Faithfulness is 0.67 [0.4, 1.2]
#   in ABBA order and 0.46 in `io_first`; every other condition lies between 0.16 (`s_first`) and
#   0.40 (`passive`), and 9 of them are clearly lower than ABBA (all but `io_first`,
#   `one_sentence` and `passive`). Part of it is the circuit's output: the circuit's own
#   logit difference is 1.92 in ABBA against 0.88 in BABA. Part is the denominator: the model's
#   logit difference is smallest in exactly the IO-first conditions, so the same circuit output is
#   a larger share of it. In the canonical templates the name movers' END -> IO attention goes the
#   other way (0.24 in ABBA, 0.35 in BABA). Week 12 finds that the ABBA advantage belongs to the
#   mean ablation: scored with resample ablation it shrinks to an effect indistinguishable from 0.
# - **Distance between S1 and S2 does not make the circuit less faithful.** With 0, 5, 10 and 20
#   filler tokens faithfulness is 0.19, 0.28, 0.35 and 0.28.
# - **Read the screen with the reference in mind.** ABBA is the extreme condition in logit
#   difference (lowest) and faithfulness (highest), so many conditions differ from it: 8 clearly
#   higher in logit difference, 9 clearly lower in faithfulness; none in accuracy.
# - The circuit alone prefers S on 49 of the 260 prompts, the model on 8 (5 of them the same);
#   five of the six prompts where the circuit most prefers S are ones the model gets right.
