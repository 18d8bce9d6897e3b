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
# # Week 15: what predicts failure, and the answer
#
# **Question.** Week 14 scored faithful circuits on 43 kinds of prompt and re-discovered the
# circuit on each. This closing chapter asks the two questions that remain, and then states the
# series' answer:
#
# 1. **What predicts the prompts where a circuit fails?** Week 12 asked it of the week-6 circuit,
#    which was never faithful. Here it is asked of each circuit under test, with outcomes that
#    are not mechanically tied to the model's confidence, errors clustered by template, and a
#    held-out check that includes {glue:text}`w15_n_hand:d` prompts written by hand in templates
#    and wordings the generator never made.
# 2. **Does a more faithful circuit generalise better?**
#
# Everything here is read from the score tables weeks 14 and 15 cached under `data/scores/`
# (`scripts/week14.py`, `scripts/week15.py`); the procedure is the one fixed in the lab notebook
# ("weeks 14-15 plan").

# %% tags=["parameters"]
MODEL = "smollm2-135m"
SEED = 0  # training draw (and the verdicts' draw)
HELDOUT_SEED = 1  # the generated held-out draw
DEVICE = "cpu"
OUTPUT_DIR = None  # reference run: data/; other runs: the folder weeks 6, 13 and 14 wrote to
N_PER_CONDITION = 20

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from circuitgen import faithful, generalise, heldout, paths, plots, predictors, runtime, stats
from circuitgen import tables as T

model = runtime.start(MODEL, SEED, DEVICE)
out = paths.output_dir(OUTPUT_DIR)
scores_dir = out / "scores"
FAMILIES = generalise.FAMILIES
pd.set_option("display.width", 160)
circuits = generalise.circuits_under_test(model, OUTPUT_DIR)
mid = next(label for label in circuits if label.startswith("eap-ig top "))
# chosen ones may be missing
HEADLINE = [c for c in (mid, "eap-ig", "path-patching", "week 6") if c in circuits]
tables = {seed: {f: generalise.score_family(model, f, seed, circuits, n_per_condition=N_PER_CONDITION,
                                            out_dir=scores_dir, log=None).df for f in FAMILIES}
          for seed in (SEED, HELDOUT_SEED)}

# %% [markdown]
# ## The held-out prompts
# Training: every family's seed-0 prompts. Held out: the seed-1 draw of the same families (same
# generator, other names and orderings) and {glue:text}`w15_n_hand:d` prompts written by hand,
# {glue:text}`w15_n_hand_per_family:d` per family, in templates and wordings the generator never made
# (`data/prompts/heldout-handwritten.csv`, loaded by `circuitgen.heldout`, which computes their
# features with the generator's own code and ablates each with the mean-ablation reference its
# family's seed-1 prompts were scored with).
# A few of them:

# %%
# NBVAL_CHECK_OUTPUT
sources = predictors.score_sources(model, scores_dir=scores_dir)
hand_prompts = heldout.load_handwritten(model)
for _, r in hand_prompts.groupby("family", sort=False).head(1).iterrows():
    print(f"{r.family:<12} {r.condition:<20} {r.prompt}  -> {r.io.strip()}")
if hand_prompts.attrs["skipped"]:  # rows whose names this model's tokenizer splits
    print(heldout.skipped_note(hand_prompts))
n_hand = len(hand_prompts)

# %%
glue("w15_n_hand", n_hand, display=False)
glue("w15_n_hand_per_family", int(hand_prompts.groupby("family").size().min()), display=False)

# %% [markdown]
# Each hand-written prompt is ablated with its family's seed-1 mean-ablation reference (the one
# the seed-1 prompts it is pooled with were scored with). The scorer's default would group the
# hand-written prompts by (condition, order) and take the means over their own one or two ABC
# counterparts, padded by name substitution: nearly a per-prompt reference. How much that choice
# moves the normalised faithfulness on these {glue:text}`w15_n_hand:d` prompts (point estimates):

# %%
# NBVAL_CHECK_OUTPUT
def normalised(t: pd.DataFrame) -> pd.Series:
    g = t.assign(num=t.circuit_logit_diff - t.empty_logit_diff, den=t.logit_diff - t.empty_logit_diff)
    s = g.groupby("circuit", sort=False)[["num", "den"]].mean()
    return s.num / s.den


hand_scores = {name: T.load_table(scores_dir / f"{MODEL}-heldout-handwritten{suffix}-circuits.csv").df
               for name, suffix in (("family", ""), ("own", "-ownref"))}
ref_choice = pd.DataFrame({
    "mean, family reference": normalised(hand_scores["family"][hand_scores["family"].ablation == "mean"]),
    "mean, own counterparts": normalised(hand_scores["own"][hand_scores["own"].ablation == "mean"]),
    "resample": normalised(hand_scores["family"][hand_scores["family"].ablation == "resample"])})
print(ref_choice.round(2).to_string())
shift = (ref_choice["mean, own counterparts"] - ref_choice["mean, family reference"])

# %%
glue("w15_ref_shift_min", float(shift.min()), display=False)
glue("w15_ref_shift_max", float(shift.max()), display=False)

# %% [markdown]
# ## What predicts failure, circuit by circuit
# The two outcomes of week 12, neither of which a circuit keeping a constant share of the model's
# effect predicts by construction: **(a)** the circuit alone prefers S on a prompt the model gets
# right (logistic regression on those prompts), and **(b)** the circuit's *excess*: its logit
# difference minus the share of the model's that a line fitted on the training prompts gives it
# (OLS). Both with every feature at once, the model's confidence as a covariate, standard errors
# clustered by template. A term **replicates** when it is clearly non-zero (BH q < 0.05 across the
# fit's terms) with the same sign in the training fit and in a refit on the held-out prompts
# (generated and hand-written together). The training fit's predictions are also scored on the
# hand-written prompts alone (held-out R² for (b), AUC for (a)). Mean ablation.


# %%
def analyse(circuit: str, ablation: str = "mean") -> dict:
    """Week 12's two held-out checks for one circuit."""
    tr, ho = predictors.circuit_feature_tables(*predictors.circuit_inputs(sources, circuit, ablation))
    share = predictors.ProportionalShare.fit(tr)
    tr, ho = share.add_excess(tr), share.add_excess(ho)
    z = predictors.Standardizer.fit(tr)
    tr, ho = z.transform(tr), z.transform(ho)
    excess = predictors.heldout_check(tr, ho, "circuit_excess")
    wrong = predictors.heldout_check(tr, ho, "circuit_wrong_model_right")
    hand = ho[ho.source == predictors.HANDWRITTEN_SOURCE]
    hand_right = predictors.outcome_rows(hand, "circuit_wrong_model_right")
    both_classes = hand_right.circuit_wrong_model_right.nunique() == 2
    return {"train": tr, "heldout": ho, "excess": excess, "wrong": wrong,
            "r2_hand": predictors.heldout_r2(excess.fit_train, hand, "circuit_excess"),
            "auc_hand": (predictors.auc(hand_right.circuit_wrong_model_right,
                                        wrong.fit_train.predict(hand_right))
                         if both_classes else float("nan"))}


results = {c: analyse(c) for c in HEADLINE}

# %% [markdown]
# How often each circuit alone is wrong where the model is right (exact 95% intervals), per
# prompt set:

# %%
# NBVAL_CHECK_OUTPUT
rows = []
for c, r in results.items():
    held = r["heldout"]
    for label, df in (("train (seed 0)", r["train"]),
                      ("held out, seed 1", held[held.source != predictors.HANDWRITTEN_SOURCE]),
                      ("held out, hand-written", held[held.source == predictors.HANDWRITTEN_SOURCE])):
        y = predictors.outcome_rows(df, "circuit_wrong_model_right").circuit_wrong_model_right
        ci = stats.clopper_pearson(int(y.sum()), len(y))
        rows.append({"circuit": c, "prompts": label, "model right": len(y), "circuit wrong": int(y.sum()),
                     "share": f"{ci.estimate:.2f} [{ci.lo:.2f}, {ci.hi:.2f}]"})
wrong_rates = pd.DataFrame(rows)
print(wrong_rates.to_string(index=False))

# %% [markdown]
# The held-out checks per circuit: how well the training fits predict, and which terms replicate
# (odds ratios per SD for (a), nats per SD for (b)):

# %%
# NBVAL_CHECK_OUTPUT
summary = []
for c, r in results.items():
    e, w = r["excess"], r["wrong"]
    summary.append({"circuit": c, "n train": int(e.fit_train.nobs), "n held out": int(e.fit_heldout.nobs),
                    "(b) R² train": round(e.fit_train.rsquared, 2), "(b) R² held out": round(e.score, 2),
                    "(b) R² hand-written": round(r["r2_hand"], 2),
                    "(a) AUC held out": round(w.score, 2), "(a) AUC hand-written": round(r["auc_hand"], 2),
                    "(b) replicate": int((e.table.verdict == "replicates").sum()),
                    "(a) replicate": int((w.table.verdict == "replicates").sum())})
summary = pd.DataFrame(summary).set_index("circuit")
print(summary.T.to_string())
print()
for c, r in results.items():
    print(f"{c}: (b) {predictors.summarise_terms(r['excess'].table)}")
    print(f"{' ' * len(c)}  (a) {predictors.summarise_terms(r['wrong'].table)}")

# %% [markdown]
# The excess model's coefficients for the most faithful circuit (EAP-IG top
# {glue:text}`w15_k_mid:d`), training fit against the held-out refit:

# %% tags=["hide-input"]
tab = results[mid]["excess"].table
fig, ax = plt.subplots(figsize=(7, 0.32 * len(tab) + 1.2))
plots.coefficient_forest(ax, tab, label=predictors.term_label,
                         sets=(("train", "training (seed 0)"),
                               ("heldout", "held out (seed 1 + hand-written)")),
                         xlabel="circuit excess, nats per SD (or per level), 95% CI clustered by template",
                         title=f"What predicts the excess of {mid} ({MODEL}, mean ablation; * replicates)")
fig.tight_layout()
glue("w15_k_mid", len(circuits[mid]), display=False)

# %% [markdown]
# ## Does a more faithful circuit generalise better?
# For every circuit and ablation: its normalised faithfulness at home (pooled over the four
# families' reference conditions, which use the canonical templates and vocabulary) against the
# share of the 43 conditions on which it holds, and against the spread of its per-condition
# estimates relative to home (the median of |condition / home − 1|: by how large a fraction of
# its home value it changes from one kind of prompt to another). The first is partly
# mechanical (a circuit far from the band at home holds only where it changes a lot); the second
# asks the question directly. Fourteen points, not independent (the same prompts, nested
# circuits); the rank correlations describe, they do not test.

# %%
verdicts = generalise.family_verdicts(tables[SEED])
refs = [generalise.BASES[f] for f in FAMILIES]
home = pd.concat([t[t.condition == generalise.BASES[f]] for f, t in tables[SEED].items()])
rows = []
for (c, a), g in home.groupby(["circuit", "ablation"], sort=False):
    h = ((g.circuit_logit_diff - g.empty_logit_diff).mean() / (g.logit_diff - g.empty_logit_diff).mean())
    v = verdicts[(verdicts.circuit == c) & (verdicts.ablation == a)]
    rows.append({"circuit": c, "ablation": a, "home": h, "share holds": (v.verdict == "holds").mean(),
                 "spread": (v.estimate / h - 1).abs().median()})
by_circuit = pd.DataFrame(rows)
rho_holds = by_circuit[["home", "share holds"]].corr(method="spearman").iloc[0, 1]
rho_spread = by_circuit[["home", "spread"]].corr(method="spearman").iloc[0, 1]

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, col, label in ((axes[0], "share holds", "share of conditions on which it holds"),
                       (axes[1], "spread", "median |condition / home − 1|")):
    for a, marker in (("mean", "o"), ("resample", "s")):
        s = by_circuit[by_circuit.ablation == a]
        ax.scatter(s.home, s[col], marker=marker, label=f"{a} ablation")
        for _, r in s.iterrows():
            ax.annotate(r.circuit, (r.home, r[col]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axvspan(0.85, 1.15, color="0.92", zorder=0)
    ax.set_xlabel("normalised faithfulness at home (reference conditions)")
    ax.set_ylabel(label)
axes[0].legend(fontsize=8)
fig.suptitle(f"Faithful at home vs generalises ({MODEL}, seed {SEED}; 7 circuits x 2 ablations)")
fig.tight_layout()

# %%
# NBVAL_CHECK_OUTPUT
print(by_circuit.round(2).to_string(index=False))
print(f"\nSpearman rho (n = {len(by_circuit)}): home vs share holding {rho_holds:.2f}; "
      f"home vs spread {rho_spread:.2f}")

# %% [markdown]
# ## The answer
# Per family and circuit: the normalised faithfulness over all the family's prompts (95% interval
# resampling templates) and the verdicts of its conditions (week 14's rule: **h**olds /
# **d**egrades / **e**xceeds / **u**nclear). Mean ablation is the criterion fixed beforehand;
# resample ablation is the second reading.

# %%
answer = generalise.answer_table(tables[SEED], verdicts)


def cell(r) -> str:
    return (f"{r.estimate:.2f} [{r.lo:.2f}, {r.hi:.2f}]; h {r.holds} d {r.degrades} e {r.exceeds} "
            f"u {r.unclear} of {r.n_conditions}")


# %%
# NBVAL_CHECK_OUTPUT
for ablation in ("mean", "resample"):
    a = answer[(answer.ablation == ablation) & answer.circuit.isin(HEADLINE)]
    print(f"{ablation} ablation")
    print(a.assign(cell=[cell(r) for r in a.itertuples()])
          .pivot(index="family", columns="circuit", values="cell").reindex(list(FAMILIES))[HEADLINE]
          .to_string())
    print()

# %% tags=["hide-input"]
shown = answer[answer.circuit.isin(HEADLINE)].rename(columns={"circuit": "condition", "ablation": "circuit"})
shown = shown.assign(reference=False)
fig, ax = plt.subplots(figsize=(8, 7))
plots.condition_forest(ax, shown, ["mean", "resample"], title=f"Per family, pooled ({MODEL}, seed {SEED})",
                       xlim=(0, 1.6))
ax.legend(title="ablation", fontsize=8, loc="lower right")
fig.tight_layout()

# %% [markdown]
# ## What would change the verdict
# - **The ablation.** The chosen (smallest in-band) circuits were chosen under mean ablation;
#   under resample ablation they keep {glue:text}`w15_chosen_resample_range:s` of the effect, pooled
#   per family (the table above and its full version in week 14). A reader who
#   trusts resample ablation more would call them unfaithful, at home and away.
# - **The reading of "holds".** The rule looks at the estimate; counting only conditions whose
#   whole interval lies in the band, EAP-IG's top {glue:text}`w15_k_mid:d` holds on
#   {glue:text}`w15_mid_within_mean:d` (mean) and {glue:text}`w15_mid_within_resample:d` (resample)
#   of {glue:text}`w15_n_conditions:d` conditions: 20 prompts per condition are not enough to pin
#   faithfulness to ±15%.
# - **The mean-ablation reference.** On the hand-written prompts, taking the means over their own
#   counterparts instead of their family's moves the normalised faithfulness by
#   {glue:text}`w15_ref_shift_min:+.2f` to {glue:text}`w15_ref_shift_max:+.2f` across the circuits.
# - **More prompts per condition** would turn many *unclear* verdicts into *holds* or
#   *degrades*; the replication draw (week 14) says which of the clear ones are stable.
#
# ## What we found
# (Every number below comes from the cells above.)

# %%
def pick(family: str, circuit: str, ablation: str):
    return answer[(answer.family == family) & (answer.circuit == circuit)
                  & (answer.ablation == ablation)].iloc[0]


key = {mid: "mid", "eap-ig": "eap", "path-patching": "pp", "week 6": "w6"}
for f in FAMILIES:
    for c in HEADLINE:
        for a in ("mean", "resample"):
            r = pick(f, c, a)
            glue(f"w15_{f}_{key[c]}_{a}", f"{r.estimate:.2f} [{r.lo:.2f}, {r.hi:.2f}]", display=False)
            glue(f"w15_{f}_{key[c]}_{a}_verdicts", f"{r.holds}/{r.n_conditions} hold, {r.degrades} degrade, "
                 f"{r.exceeds} exceed", display=False)
for f in FAMILIES:
    r = pick(f, mid, "mean")
    glue(f"w15_{f}_n", f"{r.n} prompts, {r.n_templates} templates, {r.n_conditions} conditions",
         display=False)
chosen_resample = answer[answer.circuit.isin(list(faithful.METHODS))
                         & (answer.ablation == "resample")].estimate
glue("w15_chosen_resample_range", f"{chosen_resample.min():.2f} to {chosen_resample.max():.2f}",
     display=False)
counts = generalise.verdict_counts(verdicts)
fl = verdicts[(verdicts.circuit == mid) & (verdicts.ablation == "mean")
              & verdicts.verdict.isin(["degrades", "exceeds"])]
glue("w15_mid_flagged",
     ", ".join(f"{f}/{c} ({v}, {e:.2f})" for f, c, v, e in
               zip(fl.family, fl.condition, fl.verdict, fl.estimate)) or "none", display=False)
for a in ("mean", "resample"):
    glue(f"w15_mid_within_{a}", int(counts.loc[(mid, a), "within"]), display=False)
    glue(f"w15_mid_holds_{a}", int(counts.loc[(mid, a), "holds"]), display=False)
    glue(f"w15_eap_holds_{a}", int(counts.loc[("eap-ig", a), "holds"]) if "eap-ig" in circuits else "(none)",
         display=False)
glue("w15_n_conditions", int(counts["n"].iloc[0]), display=False)
glue("w15_rho_spread", float(rho_spread), display=False)
glue("w15_rho_holds", float(rho_holds), display=False)
r = results[mid]
glue("w15_mid_excess_replicated", predictors.summarise_terms(r["excess"].table), display=False)
glue("w15_mid_wrong_replicated", predictors.summarise_terms(r["wrong"].table), display=False)
glue("w15_mid_r2_heldout", r["excess"].score, display=False)
glue("w15_mid_r2_hand", r["r2_hand"], display=False)
glue("w15_w6_excess_replicated", predictors.summarise_terms(results["week 6"]["excess"].table), display=False)
mr = wrong_rates[(wrong_rates.circuit == mid)].set_index("prompts")
glue("w15_mid_wrong_train", mr.loc["train (seed 0)", "share"], display=False)
glue("w15_mid_wrong_hand", mr.loc["held out, hand-written", "share"], display=False)
print("glued")

# %% [markdown]
# - **The answer.** A circuit faithful at home (EAP-IG's top {glue:text}`w15_k_mid:d` head nodes)
#   largely *does* generalise across lexical, syntactic and domain variation: pooled normalised
#   faithfulness {glue:text}`w15_lexical_mid_mean:s` (lexical), {glue:text}`w15_syntactic_mid_mean:s`
#   (syntactic) and {glue:text}`w15_domain_mid_mean:s` (domain) under mean ablation, and
#   {glue:text}`w15_lexical_mid_resample:s`, {glue:text}`w15_syntactic_mid_resample:s` and
#   {glue:text}`w15_domain_mid_resample:s` under resample ablation. It holds on
#   {glue:text}`w15_mid_holds_mean:d` (mean) and {glue:text}`w15_mid_holds_resample:d` (resample) of
#   {glue:text}`w15_n_conditions:d` conditions.
# - **Adversarial prompts are where it breaks**, in both directions: pooled
#   {glue:text}`w15_adversarial_mid_mean:s` ({glue:text}`w15_adversarial_mid_mean_verdicts:s`),
#   the conditions where it clearly degrades or exceeds are {glue:text}`w15_mid_flagged:s` (week 14
#   compares the repeated-IO conditions with Nainani et al.'s GPT-2 figures).
# - **The smallest "faithful" circuits are faithful only under the ablation that chose them**:
#   EAP-IG's {glue:text}`w15_eap_holds_mean` conditions holding under mean ablation become
#   {glue:text}`w15_eap_holds_resample` under resample.
# - **More faithful at home, less change away?** Spearman's rho between home faithfulness and the
#   median change across conditions is {glue:text}`w15_rho_spread:.2f` (14 circuit-ablation pairs,
#   descriptive).
# - **What predicts the failures.** For EAP-IG's top {glue:text}`w15_k_mid:d`, the circuit is wrong
#   where the model is right on {glue:text}`w15_mid_wrong_train:s` of training prompts and
#   {glue:text}`w15_mid_wrong_hand:s` of hand-written ones. Terms that replicate on held-out prompts
#   — excess: {glue:text}`w15_mid_excess_replicated:s`; circuit wrong:
#   {glue:text}`w15_mid_wrong_replicated:s`. The training fit's held-out R² for the excess is
#   {glue:text}`w15_mid_r2_heldout:.2f`, on the hand-written prompts alone
#   {glue:text}`w15_mid_r2_hand:.2f`. (The week-6 circuit's replicated excess terms, for comparison:
#   {glue:text}`w15_w6_excess_replicated:s`.)
#
# **Limits.** One model (SmolLM2-135M); node-level circuits with every MLP running; mean and
# resample ablation only; 20 prompts and 3-5 templates per condition (optimistic template
# bootstrap); EAP-IG the only method re-run per condition; {glue:text}`w15_n_hand:d`
# hand-written prompts are enough to check predictions, not to refit.
