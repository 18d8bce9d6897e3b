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
# *Revisited in [week 14](w14-does-it-generalise.ipynb).* This chapter scores the week-6 circuit,
# which [week 13](w13-faithful-circuits.ipynb) found was never faithful, even on its own prompts.
# Week 14 asks the same question of faithful circuits; where the two disagree, week 14's answer
# is the one to use, and this chapter's findings describe the week-6 circuit only.
#
# **Question.** Does the circuit carry over to other worlds? The same IOI structure told in the workplace, in
# sport, medicine, law, fantasy and science, each with its own places, objects and verbs: does
# the model still prefer the indirect object, and does the week-6 circuit, found on everyday
# prompts, still do the work?
#
# Each prompt is scored with the week-7 scorer (`circuitgen.sweeps.run_sweep`): the model's logit
# difference IO - S at END, the circuit's (every head outside the circuit mean-ablated) and the
# attention signature of the circuit's first class. The ablation means are taken per role
# position over ABC prompts grouped by (condition, order), so that within a group a role always
# holds the same kind of token (in ABBA the IO is the first name, in BABA the second); each group
# holds at least 20 ABC prompts, the counterparts of the group's own prompts topped up by
# token-level name substitution (the reference is printed below with its size and hash). Per
# condition we report accuracy (logit difference > 0) with an exact (Clopper-Pearson) 95%
# interval, and the mean logit differences, faithfulness as a ratio of means (circuit / model)
# and the mean signature with a 95% bootstrap interval that resamples whole templates (prompts of
# one template share their wording, so they are not independent draws). Over the whole family we
# also report the normalised faithfulness (F(C) - F(∅)) / (F(M) - F(∅)), F(∅) being the logit
# difference with every head ablated. With `N_PER_CONDITION` prompts per condition (a parameter
# below) the intervals are wide: they say which differences are clear, not which are small, and a
# difference that is not clear has not been shown to be absent.

# %% tags=["parameters"]
MODEL = "smollm2-135m"  # the embedded reference model; "gpt2" needs the Hugging Face hub
SEED = 0
DEVICE = "cpu"
OUTPUT_DIR = None
N_PER_CONDITION = 20  # prompts per condition (7 conditions)
CIRCUIT = None  # a spec path; None: the circuit week 6 found for MODEL

# %%
import matplotlib.pyplot as plt

from circuitgen import sweep_report

# %% [markdown]
# ## The domain prompts
# `variations.generate_domain` makes `N_PER_CONDITION` prompts per condition from the seed;
# the set is saved with its seed and generator version, and the scores beside it as a score file
# that week 12 reads (the paths are printed below; `circuitgen.sweep_report` is the body the four
# sweep chapters share). Prompts the scorer cannot score (a name that is not one token here, a
# prompt whose names are not where the template says) are kept and counted as flagged, never
# dropped silently.

# %%
report = sweep_report.run("domain", MODEL, SEED, DEVICE, N_PER_CONDITION, CIRCUIT, OUTPUT_DIR,
                          base="everyday")
print("\n".join(report.prompt_lines()))
report.examples()

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(report.check_lines()))

# %% [markdown]
# ## Behaviour and circuit, condition by condition
# Estimates with 95% intervals in brackets (exact for the accuracies, templates resampled for the
# rest; `n_clusters` is the number of templates); the `sig_` column is the mean attention of the circuit's
# first class along its signature (a probability). The dashed lines in the figure mark the
# reference condition.

# %%
# NBVAL_CHECK_OUTPUT
print(report.table_text())

# %% tags=["hide-input"]
report.figure("Domain variation")
plt.show()

# %% [markdown]
# ## How much of the behaviour the circuit carries, over all domains
# F(M), the model's mean logit difference; F(C), the circuit's; F(∅), with every head ablated; the
# ratio of means F(C)/F(M) and the normalised faithfulness (F(C) - F(∅)) / (F(M) - F(∅)), each
# with a 95% interval that resamples whole templates (`evaluation.faithfulness_table`).

# %%
# NBVAL_CHECK_OUTPUT
print(report.faithfulness.round(2).to_string())

# %% [markdown]
# ## How the conditions compare with the reference
# Each domain is compared with the everyday prompts on accuracy, mean logit difference and
# faithfulness (`sweeps.contrast_table`). Accuracy: the difference of proportions with Newcombe's
# interval and Fisher's exact test. Logit difference and faithfulness: a bootstrap of the
# difference that resamples the domain's and the reference's templates independently (so the
# reference's own uncertainty counts), with its bootstrap p-value. For each statistic the
# p-values of the {glue:text}`w10_n_contrasts` contrasts are adjusted with Benjamini-Hochberg, and
# a domain is called *clearly* different when its q < 0.05; the printed intervals are
# per-comparison 95% intervals, not adjusted. With {glue:text}`w10_templates_range` templates
# per condition the template bootstrap sees few clusters, and its intervals and p-values then
# tend to be too narrow rather than too wide: a clear call on
# a continuous statistic is a candidate until it replicates on another draw of prompts
# (`sweeps.replication_table` compares two seeds).

# %%
# NBVAL_CHECK_OUTPUT
print(report.contrast_text())

# %% [markdown]
# ## The prompts where the circuit does worst
# The scored prompts with the lowest circuit logit difference: where the circuit alone most
# prefers S, with the model's own logit difference beside it.

# %%
# NBVAL_CHECK_OUTPUT
print("\n".join(report.worst_lines(6)))

# %%
report.glue("w10", report.findings())

# %% [markdown]
# ## What we found
# From the reference run above ({glue:text}`w10_n_scored` prompts scored of
# {glue:text}`w10_n_prompts`, {glue:text}`w10_n_flagged` flagged; {glue:text}`w10_n_range` per
# domain, of {glue:text}`w10_templates_range` templates each; reference condition
# {glue:text}`w10_base`):
#
# - **The behaviour.** The model prefers the indirect object on {glue:text}`w10_n_model_right` of
#   the {glue:text}`w10_n_scored` prompts; domains where it misses any: {glue:text}`w10_accuracy_misses`.
#   Its mean logit difference runs from {glue:text}`w10_logit_diff_min:.2f` nats
#   ({glue:text}`w10_logit_diff_min_cond`) to {glue:text}`w10_logit_diff_max:.2f`
#   ({glue:text}`w10_logit_diff_max_cond`), against {glue:text}`w10_logit_diff_ref:.2f` on everyday
#   prompts. After the FDR correction, domains clearly below everyday in accuracy:
#   {glue:text}`w10_accuracy_clear_lower`; above: {glue:text}`w10_accuracy_clear_higher`. In logit
#   difference, clearly below: {glue:text}`w10_logit_diff_clear_lower`; above:
#   {glue:text}`w10_logit_diff_clear_higher`.
# - **How much the circuit carries.** Over all domains the ratio of means is
#   {glue:text}`w10_ratio:.2f` (95% CI {glue:text}`w10_ratio_lo:.2f` to
#   {glue:text}`w10_ratio_hi:.2f`) and the normalised faithfulness {glue:text}`w10_norm:.2f`
#   ({glue:text}`w10_norm_lo:.2f` to {glue:text}`w10_norm_hi:.2f`), with F(M) =
#   {glue:text}`w10_f_m:.2f`, F(C) = {glue:text}`w10_f_c:.2f` and F(∅) = {glue:text}`w10_f_0:.2f`
#   nats; 1 would be a circuit that carries all of it. Per domain the ratio of means lies between
#   {glue:text}`w10_faithfulness_min:.2f` ({glue:text}`w10_faithfulness_min_cond`) and
#   {glue:text}`w10_faithfulness_max:.2f` ({glue:text}`w10_faithfulness_max_cond`); on the everyday
#   prompts it is {glue:text}`w10_faithfulness_ref:.2f` ({glue:text}`w10_faithfulness_ref_lo:.2f`
#   to {glue:text}`w10_faithfulness_ref_hi:.2f`).
# - **Does the domain change it?** Domains clearly less faithful than everyday after the FDR
#   correction: {glue:text}`w10_faithfulness_clear_lower`; clearly more faithful:
#   {glue:text}`w10_faithfulness_clear_higher`. Where a domain is not listed, its prompts (a few
#   templates each) could not tell it apart from everyday prompts: that is an absence of evidence, not
#   evidence that the domain makes no difference.
# - **Where the circuit fails.** The circuit alone prefers S on {glue:text}`w10_n_circuit_wrong`
#   of the {glue:text}`w10_n_scored` prompts, the model on {glue:text}`w10_n_model_wrong`
#   ({glue:text}`w10_n_both_wrong` of them the same prompts). Of the
#   {glue:text}`w10_n_worst` prompts where the circuit most prefers S, the model gets
#   {glue:text}`w10_worst_model_right` right (model logit difference
#   {glue:text}`w10_worst_model_min:.2f` to {glue:text}`w10_worst_model_max:.2f`); by domain:
#   {glue:text}`w10_worst_conditions`. The main attention signature
#   ({glue:text}`w10_signature_name`, a probability) lies between
#   {glue:text}`w10_signature_min:.2f` ({glue:text}`w10_signature_min_cond`) and
#   {glue:text}`w10_signature_max:.2f` ({glue:text}`w10_signature_max_cond`).
#
# Each domain is judged against the circuit on everyday prompts, not against a complete circuit: a
# domain can match the everyday prompts and still leave much of the behaviour outside the circuit
# (compare the ratio of means with 1). Week 12 asks which per-prompt features predict where the
# circuit fails.
