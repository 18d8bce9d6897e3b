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
# 8 prompts per condition by default the intervals are wide: they say which differences
# are clear, not which are small.

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None
N_PER_CONDITION = 8  # prompts per condition (13 conditions)
CIRCUIT = None  # a spec path; None: the circuit week 6 found for MODEL

# %%
import matplotlib.pyplot as plt
import pandas as pd

from circuitgen import circuits, paths, runtime, sweeps, variations

model = runtime.start(MODEL, SEED, DEVICE)
spec_path = CIRCUIT or (paths.CIRCUITS_DIR if OUTPUT_DIR is None else paths.output_dir(OUTPUT_DIR)) / f"{MODEL.replace('/', '--')}-ioi.yaml"
spec = circuits.load_circuit(spec_path)
print(f"circuit: {spec_path.name if hasattr(spec_path, 'name') else spec_path}, "
      f"{len(spec.heads())} heads in {len(spec.classes)} classes: {', '.join(spec.classes)}")

# %% [markdown]
# ## The syntactic prompts
# `variations.generate_syntactic` makes 11 prompts per condition with the seed. Prompts the
# scorer cannot score (a name that is not one token here, a prompt whose names are not where the
# template says) are kept and counted as flagged, never dropped silently.

# %%
prompt_set = variations.generate_syntactic(model, n_per_condition=N_PER_CONDITION, seed=SEED)
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
print(f"prompts: {meta['n_prompts']}, scored: {meta['n_scored']}, flagged: {meta['n_flagged']}")
print("conditions skipped by the generator:", prompt_set.meta["conditions_skipped"] or "none")
print(f"names not single tokens in this tokenizer (not used): {prompt_set.meta['n_names_dropped']}")
print(table[["n", "n_flagged"]].T.to_string())
flagged = scores[scores.status != "ok"]
if len(flagged):
    print(flagged.status.str.split(":").str[-1].str.strip().value_counts().head(5).to_string())

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
# A condition is called clearly different when its CI does not contain the reference condition's
# estimate (a rough screen at these sample sizes, not a test corrected for many comparisons).
# An accuracy interval collapses to a point when every prompt of a condition is right (the
# bootstrap of constant data), so "clearly higher" accuracy at 1.00 only says all its prompts
# were right; read it with the condition's n.

# %%
# NBVAL_CHECK_OUTPUT
ref = table.loc[BASE]
for col in ("accuracy", "logit_diff", "faithfulness"):
    lower = table.index[table[f"{col}_hi"] < ref[col]].tolist()
    higher = table.index[table[f"{col}_lo"] > ref[col]].tolist()
    print(f"{col} (reference {ref[col]:.2f}): clearly lower in {lower or 'none'}; clearly higher in {higher or 'none'}")
print(f"lowest faithfulness: {table.faithfulness.idxmin()} ({table.faithfulness.min():.2f}); "
      f"highest: {table.faithfulness.idxmax()} ({table.faithfulness.max():.2f})")
print(f"lowest accuracy: {table.accuracy.idxmin()} ({table.accuracy.min():.2f})")

# %% [markdown]
# ## The prompts where the circuit does worst
# The scored prompts with the lowest circuit logit difference: where the circuit alone most
# prefers S, with the model's own logit difference beside it.

# %%
# NBVAL_CHECK_OUTPUT
worst = sweeps.worst_prompts(scores, 6)
ok = scores[scores.status == "ok"]
both = ((ok.logit_diff <= 0) & (ok.circuit_logit_diff <= 0)).sum()
print(f"circuit wrong: {(ok.circuit_logit_diff <= 0).sum()} of {len(ok)}; model wrong: "
      f"{(ok.logit_diff <= 0).sum()}; both wrong: {both}")
for r in worst.itertuples():
    print(f"[{r.condition}] {r.prompt!r} -> IO {r.io}, S {r.s}: model {r.logit_diff:.2f}, circuit {r.circuit_logit_diff:.2f}")

# %% [markdown]
# ## What we found
# From the reference run above (8 prompts per condition):
#
# - **Syntax does not break the behaviour.** The model is right on every prompt. Its logit
#   difference is larger in BABA order than in ABBA order (the reference here), and filler between
#   S1 and S2, up to about 20 tokens, does not shrink it.
# - **The circuit's share is low and roughly constant.** Faithfulness (ratio of means) stays between
#   about 0.15 and 0.4 in every condition; only `filler_0` is flagged below the ABBA reference, a
#   weak contrast at n = 8 (the filler conditions with more tokens are not lower). Distance between
#   S1 and S2 does not make the circuit less faithful here.
# - **Order shows in the name movers' attention.** Their END -> IO attention is lower in ABBA and
#   S-first prompts than in BABA prompts, while faithfulness is not clearly different.
# - The circuit alone prefers S on about a quarter of the prompts, all of which the model gets
#   right: the failures are the circuit's incompleteness, not hard syntax.
