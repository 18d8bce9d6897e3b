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
# *Revisited in [week 14](w14-does-it-generalise.ipynb).* This chapter scores the week-6 circuit,
# which [week 13](w13-faithful-circuits.ipynb) found was never faithful, even on its own prompts.
# Week 14 asks the same question of faithful circuits; where the two disagree, week 14's answer
# is the one to use, and this chapter's findings describe the week-6 circuit only.
#
# **Question.** Where does the circuit's heuristic break? Prompts built to trip a "pick the name that is not
# repeated" rule: the IO mentioned two or three times (DoubleIO/TripleIO after Nainani et al.
# 2024), a distractor name, S mentioned three times, possessives at S1 or S2, and names that are
# also common words. Does the model still prefer the indirect object, does the circuit still
# do the work, and do they fail on the same prompts?
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
N_PER_CONDITION = 20  # prompts per condition (8 conditions)
CIRCUIT = None  # a spec path; None: the circuit week 6 found for MODEL

# %%
import matplotlib.pyplot as plt

from circuitgen import sweep_report, sweeps

# %% [markdown]
# ## The adversarial prompts
# `variations.generate_adversarial` makes `N_PER_CONDITION` prompts per condition from the seed;
# the set is saved with its seed and generator version, and the scores beside it as a score file
# that week 12 reads (the paths are printed below; `circuitgen.sweep_report` is the body the four
# sweep chapters share). Prompts the scorer cannot score (a name that is not one token here, a
# prompt whose names are not where the template says) are kept and counted as flagged, never
# dropped silently.

# %%
report = sweep_report.run("adversarial", MODEL, SEED, DEVICE, N_PER_CONDITION, CIRCUIT, OUTPUT_DIR,
                          base="base")
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
report.figure("Adversarial variation")
plt.show()

# %% [markdown]
# ## How much of the behaviour the circuit carries, over all adversarial conditions
# F(M), the model's mean logit difference; F(C), the circuit's; F(∅), with every head ablated; the
# ratio of means F(C)/F(M) and the normalised faithfulness (F(C) - F(∅)) / (F(M) - F(∅)), each
# with a 95% interval that resamples whole templates (`evaluation.faithfulness_table`).

# %%
# NBVAL_CHECK_OUTPUT
print(report.faithfulness.round(2).to_string())

# %% [markdown]
# ## How the conditions compare with the reference
# Each condition is compared with the base prompts on accuracy, mean logit difference and
# faithfulness (`sweeps.contrast_table`). Accuracy: the difference of proportions with Newcombe's
# interval and Fisher's exact test. Logit difference and faithfulness: a bootstrap of the
# difference that resamples the condition's and the reference's templates independently (so the
# reference's own uncertainty counts), with its bootstrap p-value. For each statistic the
# p-values of the {glue:text}`w11_n_contrasts` contrasts are adjusted with Benjamini-Hochberg, and
# a condition is called *clearly* different when its q < 0.05; the printed intervals are
# per-comparison 95% intervals, not adjusted. With {glue:text}`w11_templates_range` templates
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
table, contrasts = report.table, report.contrasts
found = report.findings()
SHOWN = {"accuracy": ["base", "word_names", "s_thrice"], "circuit_accuracy": ["s_thrice"],
         "logit_diff": ["base", "word_names", "double_io", "triple_io", "s_thrice"],
         "circuit_logit_diff": ["base", "double_io", "triple_io", "s_thrice"],
         "faithfulness": ["base", "double_io", "triple_io", "s_thrice", "possessive_s1", "possessive_s2"],
         "signature": ["base", "double_io", "triple_io"]}
for stat, conds in SHOWN.items():
    found |= sweeps.condition_values(table, conds, (stat,))
for stat, cond in (("accuracy", "word_names"), ("logit_diff", "word_names"), ("faithfulness", "double_io"),
                   ("faithfulness", "triple_io"), ("faithfulness", "s_thrice"),
                   ("faithfulness", "possessive_s1"), ("faithfulness", "possessive_s2")):
    found |= sweeps.contrast_values(contrasts, stat, cond)
report.glue("w11", found)

# %% [markdown]
# ## What we found
# From the reference run above ({glue:text}`w11_n_scored` prompts scored of
# {glue:text}`w11_n_prompts`, {glue:text}`w11_n_flagged` flagged; {glue:text}`w11_n_range` per
# condition in {glue:text}`w11_n_conditions` conditions of {glue:text}`w11_templates_range`
# templates each; reference condition {glue:text}`w11_base`):
#
# - **The behaviour.** The model prefers the indirect object on {glue:text}`w11_n_model_right` of
#   the {glue:text}`w11_n_scored` prompts; conditions where it misses any:
#   {glue:text}`w11_accuracy_misses`. After the FDR correction over the
#   {glue:text}`w11_n_contrasts` contrasts, clearly below the base prompts in accuracy:
#   {glue:text}`w11_accuracy_clear_lower`. Its mean logit difference is
#   {glue:text}`w11_logit_diff_base:.2f` nats on the base prompts and runs from
#   {glue:text}`w11_logit_diff_min:.2f` ({glue:text}`w11_logit_diff_min_cond`) to
#   {glue:text}`w11_logit_diff_max:.2f` ({glue:text}`w11_logit_diff_max_cond`); clearly below the
#   base prompts: {glue:text}`w11_logit_diff_clear_lower`; clearly above:
#   {glue:text}`w11_logit_diff_clear_higher`.
# - **Names that are also common words.** The model is right on {glue:text}`w11_accuracy_word_names_k`
#   of {glue:text}`w11_accuracy_word_names_n` (exact 95% CI {glue:text}`w11_accuracy_word_names_lo:.2f`
#   to {glue:text}`w11_accuracy_word_names_hi:.2f`) against {glue:text}`w11_accuracy_base_k` of
#   {glue:text}`w11_accuracy_base_n` base prompts ({glue:text}`w11_accuracy_base_lo:.2f` to
#   {glue:text}`w11_accuracy_base_hi:.2f`): a difference of
#   {glue:text}`w11_accuracy_word_names_diff:+.2f` (Newcombe 95% CI
#   {glue:text}`w11_accuracy_word_names_diff_lo:+.2f` to
#   {glue:text}`w11_accuracy_word_names_diff_hi:+.2f`, Fisher p =
#   {glue:text}`w11_accuracy_word_names_p:.2g`, q = {glue:text}`w11_accuracy_word_names_q:.2g`):
#   {glue:text}`w11_accuracy_word_names_verdict`. Their mean logit difference is
#   {glue:text}`w11_logit_diff_word_names:.2f` (q = {glue:text}`w11_logit_diff_word_names_q:.2g`:
#   {glue:text}`w11_logit_diff_word_names_verdict`). An earlier version of this chapter called word
#   names clearly less accurate than the base prompts; that call rested on a percentile-bootstrap
#   interval that has zero width when every prompt is right, and on no correction across
#   conditions. Since the measurement fix of 2026-11-26 accuracy has exact intervals and the
#   contrast is Newcombe's interval with Fisher's test, FDR-adjusted: the verdict above is what
#   those give.
# - **How much the circuit carries.** Over all conditions the ratio of means is
#   {glue:text}`w11_ratio:.2f` (95% CI {glue:text}`w11_ratio_lo:.2f` to
#   {glue:text}`w11_ratio_hi:.2f`) and the normalised faithfulness {glue:text}`w11_norm:.2f`
#   ({glue:text}`w11_norm_lo:.2f` to {glue:text}`w11_norm_hi:.2f`), with F(M) =
#   {glue:text}`w11_f_m:.2f`, F(C) = {glue:text}`w11_f_c:.2f` and F(∅) = {glue:text}`w11_f_0:.2f`
#   nats. On the base prompts the ratio of means is {glue:text}`w11_faithfulness_base:.2f`
#   ({glue:text}`w11_faithfulness_base_lo:.2f` to {glue:text}`w11_faithfulness_base_hi:.2f`);
#   clearly more faithful after the FDR correction: {glue:text}`w11_faithfulness_clear_higher`;
#   clearly less: {glue:text}`w11_faithfulness_clear_lower`.
# - **The IO repeated.** With the IO mentioned two or three times the ratio of means is
#   {glue:text}`w11_faithfulness_double_io:.2f` ({glue:text}`w11_faithfulness_double_io_lo:.2f` to
#   {glue:text}`w11_faithfulness_double_io_hi:.2f`; q = {glue:text}`w11_faithfulness_double_io_q:.2g`,
#   {glue:text}`w11_faithfulness_double_io_verdict`) and {glue:text}`w11_faithfulness_triple_io:.2f`
#   ({glue:text}`w11_faithfulness_triple_io_lo:.2f` to {glue:text}`w11_faithfulness_triple_io_hi:.2f`;
#   q = {glue:text}`w11_faithfulness_triple_io_q:.2g`, {glue:text}`w11_faithfulness_triple_io_verdict`).
#   The circuit's own logit difference there is {glue:text}`w11_circuit_logit_diff_double_io:.2f`
#   and {glue:text}`w11_circuit_logit_diff_triple_io:.2f` against the model's
#   {glue:text}`w11_logit_diff_double_io:.2f` and {glue:text}`w11_logit_diff_triple_io:.2f` (base
#   prompts: circuit {glue:text}`w11_circuit_logit_diff_base:.2f`, model
#   {glue:text}`w11_logit_diff_base:.2f`); where the circuit's exceeds the model's, ablating the heads
#   outside the circuit raises the logit difference. The main signature
#   ({glue:text}`w11_signature_name`) is {glue:text}`w11_signature_double_io:.2f` and
#   {glue:text}`w11_signature_triple_io:.2f` against {glue:text}`w11_signature_base:.2f` on the base
#   prompts; it measures attention to the *first* IO mention only, so whether the heads attend to
#   the later mentions instead is not measured here.
# - **S three times.** The model is right on {glue:text}`w11_accuracy_s_thrice_k` of
#   {glue:text}`w11_accuracy_s_thrice_n` prompts (mean logit difference
#   {glue:text}`w11_logit_diff_s_thrice:.2f`), the circuit alone on
#   {glue:text}`w11_circuit_accuracy_s_thrice_k`; the circuit's logit difference is
#   {glue:text}`w11_circuit_logit_diff_s_thrice:.2f` ({glue:text}`w11_circuit_logit_diff_s_thrice_lo:.2f`
#   to {glue:text}`w11_circuit_logit_diff_s_thrice_hi:.2f`) and its ratio of means
#   {glue:text}`w11_faithfulness_s_thrice:.2f` ({glue:text}`w11_faithfulness_s_thrice_lo:.2f` to
#   {glue:text}`w11_faithfulness_s_thrice_hi:.2f`); against the base prompts its faithfulness is
#   {glue:text}`w11_faithfulness_s_thrice_verdict` (q = {glue:text}`w11_faithfulness_s_thrice_q:.2g`).
# - **Possessives.** A possessor at S1 gives a ratio of means of
#   {glue:text}`w11_faithfulness_possessive_s1:.2f` ({glue:text}`w11_faithfulness_possessive_s1_lo:.2f`
#   to {glue:text}`w11_faithfulness_possessive_s1_hi:.2f`;
#   {glue:text}`w11_faithfulness_possessive_s1_verdict`, q =
#   {glue:text}`w11_faithfulness_possessive_s1_q:.2g`), at S2
#   {glue:text}`w11_faithfulness_possessive_s2:.2f` ({glue:text}`w11_faithfulness_possessive_s2_lo:.2f`
#   to {glue:text}`w11_faithfulness_possessive_s2_hi:.2f`;
#   {glue:text}`w11_faithfulness_possessive_s2_verdict`, q =
#   {glue:text}`w11_faithfulness_possessive_s2_q:.2g`).
# - **Where the circuit fails.** The circuit alone prefers S on {glue:text}`w11_n_circuit_wrong`
#   of the {glue:text}`w11_n_scored` prompts, the model on {glue:text}`w11_n_model_wrong`
#   ({glue:text}`w11_n_both_wrong` of them the same prompts). Of the {glue:text}`w11_n_worst`
#   prompts where the circuit most prefers S, the model gets {glue:text}`w11_worst_model_right`
#   right (model logit difference {glue:text}`w11_worst_model_min:.2f` to
#   {glue:text}`w11_worst_model_max:.2f`); by condition: {glue:text}`w11_worst_conditions`.
#
# A condition not listed as clearly different could not be told apart from the base prompts at
# this sample size; that is not evidence that the manipulation makes no difference.
# Week 12 relates the failures to per-prompt features.
