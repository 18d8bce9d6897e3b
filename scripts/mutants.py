"""Measure the test suite: plant known bugs in a copy of the library and check the fast tests fail.

Each mutant is a textual search/replace in one file of ``lib/circuitgen`` (the search text must
occur exactly once, else the script stops: the library moved on and the mutant needs updating).
For each mutant, ``lib/`` is copied into a temporary directory (beside links to the rest of the
checkout, so ``circuitgen.paths`` still finds the project's files), the patch is applied, and the mutant's
test files run against the copy (``PYTHONPATH`` first, ``-m "not slow and not book"``, ``-x``).
A mutant is *caught* when pytest reports a failure, *NOT caught* when every test passes.

    .venv/bin/python scripts/mutants.py                 # every mutant
    .venv/bin/python scripts/mutants.py role_io_s1 ...  # some of them
    .venv/bin/python scripts/mutants.py --list

First the mutants' tests run once on an unmutated copy: they must pass, or every mutant would
look caught. Exit status: 0 when every mutant is caught, 1 when one survives, 2 when the baseline
fails, a patch no longer applies, or a run errors in another way (collection errors, a crash).
To add a mutant, append a :class:`Mutant` to :data:`MUTANTS` (see README.md, "Measuring the test
suite").
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str  # the bug, in words
    file: str  # relative to lib/circuitgen
    search: str
    replace: str
    tests: tuple[str, ...]  # test files (or node ids) that must catch it


MUTANTS: list[Mutant] = [
    Mutant("role_io_s1", "IO and S1 swapped in the role map", "ablation.py",
           "        roles[rows, batch.pos[name]] = i",
           '        roles[rows, batch.pos[{"IO": "S1", "S1": "IO"}.get(name, name)]] = i',
           ("tests/test_scorer.py",)),
    Mutant("role_s1_s2", "S1 and S2 swapped in the role map", "ablation.py",
           "        roles[rows, batch.pos[name]] = i",
           '        roles[rows, batch.pos[{"S1": "S2", "S2": "S1"}.get(name, name)]] = i',
           ("tests/test_scorer.py",)),
    Mutant("faithfulness_inverted", "per-prompt faithfulness is logit_diff / circuit_logit_diff",
           "scorer.py",
           'scores["faithfulness"] = scores["circuit_logit_diff"] / scores["logit_diff"]',
           'scores["faithfulness"] = scores["logit_diff"] / scores["circuit_logit_diff"]',
           ("tests/test_scorer.py",)),
    Mutant("abc_reuses_io", "ABC counterparts of hand-written prompts keep the IO name", "ioi.py",
           "            names = rng.sample(others, 3)\n",
           "            names = rng.sample(others, 3)\n"
           '            names[[role for _, role in spans].index("io")] = str(r.io).strip()\n',
           ("tests/test_scorer.py", "tests/test_reference.py")),
    Mutant("heldout_r2_in_sample", "heldout_r2 returns the training R^2", "predictors.py",
           "    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())",
           "    return float(fit.rsquared)",
           ("tests/test_predictors.py",)),
    Mutant("compare_models_r2_on_train", "compare_models scores held-out R^2 on the training set",
           "predictors.py",
           '"r2_heldout": heldout_r2(fit, test, response)}',
           '"r2_heldout": heldout_r2(fit, train, response)}',
           ("tests/test_predictors.py",)),
    Mutant("compare_models_auc_on_train", "compare_models scores held-out AUC on the training set",
           "predictors.py",
           'row["auc_heldout"] = auc(test[response], fit.predict(test))',
           'row["auc_heldout"] = auc(train[response], fit.predict(train))',
           ("tests/test_predictors.py",)),
    Mutant("heldout_check_r2_on_train", "heldout_check scores R^2 on the training rows",
           "predictors.py",
           'name, score = "r2_heldout", heldout_r2(fa, te, outcome)',
           'name, score = "r2_heldout", heldout_r2(fa, tr, outcome)',
           ("tests/test_predictors.py",)),
    Mutant("heldout_check_fits_train_twice", "the held-out fit of heldout_check is the training fit",
           "predictors.py",
           "fa, fb = fitter(tr, spec, cov, by), fitter(te, spec, cov, by)",
           "fa, fb = fitter(tr, spec, cov, by), fitter(tr, spec, cov, by)",
           ("tests/test_predictors.py",)),
    Mutant("path_patch_qk_noop", "path patching into queries and keys adds nothing",
           "path_patching.py",
           "        add = (delta * live).reshape(k * n, n_pos, -1)",
           '        add = (delta * live * (comp == "v")).reshape(k * n, n_pos, -1)',
           ("tests/test_path_patching.py::test_matches_transformer_lens_direct_path",)),
    Mutant("orders_pooled", "the default mean-ablation groups pool ABBA and BABA", "reference.py",
           '        return ("template", "order")',
           '        return ("template",)',
           ("tests/test_scorer.py", "tests/test_reference.py")),
    Mutant("scorer_reads_last_position", "the scorer reads the last (padded) position, not END",
           "resume.py",
           "    end = x[labels][:, torch.arange(n), batch.end]  # [variant, batch, d_model]",
           "    end = x[labels][:, :, -1]  # [variant, batch, d_model]",
           ("tests/test_scorer.py",)),
    Mutant("end_logits_at_last_position", "ablation.end_logits (path patching, curves) reads the "
           "last (padded) position, not END", "ablation.py",
           "    at_end = resid[rows, batch.end.repeat(tile)][:, None]",
           "    at_end = resid[rows, -1][:, None]",
           ("tests/test_path_patching.py",)),
    Mutant("signature_transposed", "attention signature read key -> query", "scorer.py",
           "store.setdefault(name, []).append(pattern[rows, head, src, dst])",
           "store.setdefault(name, []).append(pattern[rows, head, dst, src])",
           ("tests/test_scorer.py",)),
    Mutant("knockout_sign", "knock-out effect has the wrong sign", "scorer.py",
           'cols[f"ko_{name}"] = diffs[3 + i] - diffs[0]',
           'cols[f"ko_{name}"] = diffs[0] - diffs[3 + i]',
           ("tests/test_scorer.py",)),
    Mutant("normalised_without_empty", "normalised faithfulness divides by F(M), not F(M) - F(empty)",
           "task.py",
           "    return f_circuit - f_empty, f_model - f_empty",
           "    return f_circuit - f_empty, f_model",
           ("tests/test_scorer.py", "tests/test_one_formula.py")),
    Mutant("head_signature_transposed", "discovery's attention signatures read key -> query",
           "head_roles.py",
           "rec[sig] = pat[rows, batch.pos[q], batch.pos[k]].mean().item()",
           "rec[sig] = pat[rows, batch.pos[k], batch.pos[q]].mean().item()",
           ("tests/test_evaluation.py",)),
    Mutant("means_ignore_groups", "every group's mean is the pooled mean of all groups",
           "ablation.py",
           "    empty = (counts == 0).view(n_g, n_r)\n",
           "    means = means.mean(0, keepdim=True).expand_as(means).clone()\n"
           "    empty = (counts == 0).view(n_g, n_r)\n",
           ("tests/test_scorer.py", "tests/test_reference.py")),
    # Issue 25: the verdict rule, EAP-IG's integration, path patching's causal order, pruning's
    # second stage, the methods' ranking order and the hand-written prompts' reference.
    Mutant("verdict_on_p", "the verdict table decides on p, not on the BH q", "generalise.py",
           "zip(t.estimate, t.difference, t.q)",
           "zip(t.estimate, t.difference, t.p)",
           ("tests/test_verdict_rule.py",)),
    Mutant("verdict_on_lower_bound", "the verdict table decides on the interval's lower bound, "
           "not on the estimate", "generalise.py",
           "zip(t.estimate, t.difference, t.q)",
           "zip(t.lo, t.difference, t.q)",
           ("tests/test_verdict_rule.py",)),
    Mutant("verdict_fdr_inclusive", "a q equal to the FDR counts as clear", "generalise.py",
           "clear = not pd.isna(q) and q < fdr",
           "clear = not pd.isna(q) and q <= fdr",
           ("tests/test_verdict_rule.py",)),
    Mutant("contrast_q_is_p", "the contrasts' q is the unadjusted p", "sweeps.py",
           'out["q"] = st.benjamini_hochberg(out.p.to_numpy(float))[1]',
           'out["q"] = out.p.to_numpy(float)',
           ("tests/test_verdict_rule.py",)),
    Mutant("eap_ig_last_step_only", "EAP-IG keeps the last step's gradient instead of summing "
           "the steps' (no longer integrated gradients)", "eap.py",
           "grads[hook.name] += grad.detach().float()",
           "grads[hook.name] = grad.detach().float()",
           ("tests/test_eap_ig_oracle.py",)),
    Mutant("path_patch_same_layer", "a path-patching sender reaches receivers in its own layer",
           "path_patching.py",
           "live = (sender_layers < r_layer).float()[:, None, None, None]",
           "live = (sender_layers <= r_layer).float()[:, None, None, None]",
           ("tests/test_path_patching_order.py",)),
    Mutant("path_patch_any_layer", "a path-patching sender reaches every receiver, earlier "
           "layers too", "path_patching.py",
           "live = (sender_layers < r_layer).float()[:, None, None, None]",
           "live = (sender_layers >= 0).float()[:, None, None, None]",
           ("tests/test_path_patching_order.py",)),
    Mutant("path_attribution_same_layer", "the path-patching screen lets a sender reach "
           "receivers in its own layer", "path_patching.py",
           "estimate += contrib * (layer_of < r_layer).float()",
           "estimate += contrib * (layer_of <= r_layer).float()",
           ("tests/test_path_patching_order.py",)),
    Mutant("path_patch_default_senders", "path patching's default senders include the deepest "
           "receiver's layer", "path_patching.py",
           "return [(layer, head) for layer in range(max_layer) for head in range(model.cfg.n_heads)]",
           "return [(layer, head) for layer in range(max_layer + 1) for head in range(model.cfg.n_heads)]",
           ("tests/test_path_patching_order.py",)),
    Mutant("prune_stage2_stale_residual", "pruning's second stage resumes from the full model's "
           "residuals, not the first stage's circuit's", "pruning.py",
           "        runner.set_base(kept)  # stage 2 starts from the heads-pruned circuit at every layer\n",
           "",
           ("tests/test_pruning_stages.py",)),
    Mutant("prune_stage2_from_full", "pruning's second stage starts from m(full model), not "
           "m(first stage's circuit)", "pruning.py",
           'm_cur = _greedy(runner, kept, [[n] for n in left], tau, m_cur, resumed, bar, log, "roles")',
           'm_cur = _greedy(runner, kept, [[n] for n in left], tau, full, resumed, bar, log, "roles")',
           ("tests/test_pruning_stages.py",)),
    Mutant("eap_rank_signed", "EAP-IG's ranking sorts by signed score, not |score|",
           "discovery_methods.py",
           't = t.assign(abs_score=t["score"].abs())',
           't = t.assign(abs_score=t["score"])',
           ("tests/test_ranking_order.py",)),
    Mutant("pruning_rank_ascending", "pruning's ranking lists the kept nodes smallest effect "
           "first", "discovery_methods.py",
           '_rank_by(t, ["kept", "abs_score"], [False, False], t["order"].notna())',
           '_rank_by(t, ["kept", "abs_score"], [False, True], t["order"].notna())',
           ("tests/test_ranking_order.py",)),
    Mutant("path_patching_rank_circuit_last", "path patching's ranking lists its circuit's nodes "
           "after the other patched nodes", "discovery_methods.py",
           '["not_in", "cr", "abs_score"], [True, True, False]',
           '["not_in", "cr", "abs_score"], [False, True, False]',
           ("tests/test_ranking_order.py",)),
    Mutant("ranking_ignores_rank", "faithful.ranking orders the ranked nodes by label, not rank",
           "faithful.py",
           'ranked = heads.dropna(subset=["rank"]).sort_values(["rank", "node"], kind="mergesort")',
           'ranked = heads.dropna(subset=["rank"]).sort_values(["node"], kind="mergesort")',
           ("tests/test_ranking_order.py",)),
    Mutant("heldout_own_reference", "hand-written prompts are mean-ablated towards their own ABC "
           "counterparts (the scorer's default), not their family's generated reference",
           "heldout.py",
           "means = (references or {}).get(family) or family_reference(model, family)",
           "means = None",
           ("tests/test_heldout_reference.py",)),
    Mutant("heldout_reference_seed_0", "the hand-written prompts' reference is the seed-0 draw",
           "heldout.py",
           "REFERENCE_SEED = 1  #",
           "REFERENCE_SEED = 0  #",
           ("tests/test_heldout_reference.py",)),
    Mutant("heldout_reference_from_handwritten", "score_handwritten builds each family's "
           "reference from the hand-written prompts themselves", "heldout.py",
           "ref_prompts = {f: generalise.family_prompts(model, f, reference_seed) for f in families}",
           'ref_prompts = {f: prompts[prompts["family"] == f] for f in families}',
           ("tests/test_heldout_reference.py",)),
    # The task core (issue 24): each scientific decision of circuitgen.task and its callers.
    Mutant("metric_sign", "the logit-difference metric is wrong minus answer", "task.py",
           "        return a.sum(1) / na - w.sum(1) / nw",
           "        return w.sum(1) / nw - a.sum(1) / na",
           ("tests/test_task_interface.py",)),
    Mutant("prob_diff_on_logits", "the probability difference sums logits, not probabilities",
           "task.py", "        p = torch.softmax(logits.float(), -1)", "        p = logits.float()",
           ("tests/test_task_interface.py",)),
    Mutant("answer_set_padding_counted", "a padded (-1) slot of an answer set counts as a token",
           "task.py", "    return values.gather(1, ids.clamp(min=0)) * valid, valid.sum(1)",
           "    return values.gather(1, ids.clamp(min=0)), valid.sum(1)",
           ("tests/test_task_interface.py",)),
    Mutant("task_reference_from_clean", "a task's mean reference averages the clean prompts, not "
           "their counterfactuals", "scorer.py",
           "    batch = B.encode(model, source, prompt_col=task.counterfactual_column, task=task)",
           '    batch = B.encode(model, source, prompt_col="prompt", task=task)',
           ("tests/test_task_interface.py",)),
    Mutant("task_resample_from_clean", "resample ablation patches in the clean run, not the "
           "counterfactual", "scorer.py",
           "        abc = B.encode(model, part, prompt_col=cf, task=task) if",
           '        abc = B.encode(model, part, prompt_col="prompt", task=task) if',
           ("tests/test_task_interface.py",)),
    Mutant("role_map_reversed", "named positions take each other's role indices", "ablation.py",
           "    for i, name in enumerate(names[2:], start=2):",
           "    for i, name in enumerate(reversed(names[2:]), start=2):",
           ("tests/test_task_interface.py",)),
    Mutant("result_path_keeps_slash", "a model id with '/' becomes a sub-folder in result paths",
           "paths.py", '    return str(model).replace("/", "--")', "    return str(model)",
           ("tests/test_layers.py",)),
    # Issue 25, item 2: hollow assertions rewritten.
    Mutant("reference_other_draw", "canonical prompts take their means from another draw than "
           "the fixed generated reference set", "reference.py",
           "source, label = generated_reference(model, min_per_group, seed), ",
           "source, label = generated_reference(model, min_per_group, seed + 1), ",
           ("tests/test_reference.py::test_group_mean_is_the_mean_over_the_generated_reference_prompts",)),
    Mutant("legacy_padded", "the legacy reference pads its own counterparts to 20 by name "
           "substitution", "circuits.py",
           'return cls("mean", group_by=("template",), min_per_group=1, legacy=True)',
           'return cls("mean", group_by=("template",), min_per_group=20, legacy=True)',
           ("tests/test_reference.py::test_legacy_option_pools_orders_over_own_counterparts",)),
    Mutant("stability_heads_are_nodes", "stability's head Jaccard compares nodes, not heads",
           "faithful.py",
           '"head_jaccard": N.jaccard(N.heads_of(sets[a][:k]),',
           '"head_jaccard": N.jaccard(N.heads_of(sets[a][:k]) and sets[a][:k],',
           ("tests/test_faithful.py::test_stability_and_selection_frequency_by_hand",)),
    Mutant("own_circuit_is_canonical", "re-discovery scores the canonical top k as each "
           "condition's own circuit", "rediscovery.py",
           '**{f"own top {k}": own[c][:k] for k in sizes},',
           '**{f"own top {k}": list(reference[:k]) for k in sizes},',
           ("tests/test_rediscovery.py::test_own_circuit_scores_match_the_family_scoring",)),
    # The task axis's four tasks (tests/test_tasks_four.py): each scientific decision planted wrong.
    Mutant("gt_sets_swapped", "greater-than: the later and earlier digit sets swapped",
           "tasks/greater_than.py",
           "return [d for d in range(10) if d > tens], [d for d in range(10) if d < tens]",
           "return [d for d in range(10) if d < tens], [d for d in range(10) if d > tens]",
           ("tests/test_tasks_four.py::test_answers_spelled_out",
            "tests/test_tasks_four.py::test_metric_against_hand_computation")),
    Mutant("gt_equal_digit_later", "greater-than: the equal tens digit counted as later",
           "tasks/greater_than.py", "[d for d in range(10) if d > tens]",
           "[d for d in range(10) if d >= tens]",
           ("tests/test_tasks_four.py::test_answers_spelled_out",)),
    Mutant("gt_metric_logits", "greater-than read as a logit difference, not probability mass",
           "tasks/greater_than.py", '    metric = "prob_diff"', '    metric = "logit_diff"',
           ("tests/test_tasks_four.py::test_metric_against_hand_computation",)),
    Mutant("gt_cf_not_01", "greater-than: the counterfactual start ends in 10, not 01",
           "tasks/greater_than.py", 'CF_ENDING = "01"', 'CF_ENDING = "10"',
           ("tests/test_tasks_four.py::test_counterfactuals_of_hand_written_rows",)),
    Mutant("gt_tens_ones_swapped", "greater-than: TENS and ONES positions swapped",
           "tasks/greater_than.py", '(("TENS", b - 2), ("ONES", b - 1),',
           '(("TENS", b - 1), ("ONES", b - 2),',
           ("tests/test_tasks_four.py::test_positions_greater_than",)),
    Mutant("gt_tens_nine_scored", "greater-than scores a start with tens digit 9 (no later digit)",
           "tasks/greater_than.py", "if digit in (0, 9):", "if digit in (0,):",
           ("tests/test_tasks_four.py::test_refusals_locate",)),
    Mutant("agreement_answers_swapped", "agreement: the agreeing and the other verb forms swapped",
           "tasks/agreement.py",
           "return verb_ids(tokenizer, number), verb_ids(tokenizer, OTHER[number])",
           "return verb_ids(tokenizer, OTHER[number]), verb_ids(tokenizer, number)",
           ("tests/test_tasks_four.py::test_answers_spelled_out",)),
    Mutant("agreement_number_not_flipped", "agreement: the counterfactual keeps the subject's number",
           "tasks/agreement.py", "for a, b in ((s, p), (p, s))}", "for a, b in ((s, s), (p, p))}",
           ("tests/test_tasks_four.py::test_counterfactuals_of_hand_written_rows",)),
    Mutant("agreement_subj_off_by_one", "agreement: SUBJ is the token after the subject",
           "tasks/agreement.py", '{"pos_subj": subj,', '{"pos_subj": subj + 1,',
           ("tests/test_tasks_four.py::test_positions_word_tasks",)),
    Mutant("capitals_wrong_capital", "capitals: the generator gives each country the counterfactual's "
           "capital", "tasks/capitals.py", "(country, capital), (other, other_capital) = rng.sample(",
           "(country, other_capital), (other, capital) = rng.sample(",
           ("tests/test_tasks_four.py::test_generated_prompts",)),
    Mutant("capitals_wrong_from_clean_country", "capitals: the wrong answer is looked up for the "
           "clean country", "tasks/capitals.py", '    country = C.text(row, "cf_country", idx)\n',
           '    country = C.text(row, "country", idx)\n',
           ("tests/test_tasks_four.py::test_answers_spelled_out",)),
    Mutant("pronouns_swapped", "pronouns: she and he swapped", "tasks/words.py",
           'PRONOUNS = {"female": "she", "male": "he"}', 'PRONOUNS = {"female": "he", "male": "she"}',
           ("tests/test_tasks_four.py::test_answers_spelled_out",)),
    Mutant("pronouns_cf_same_gender", "pronouns: the counterfactual name drawn from the same gender",
           "tasks/pronouns.py", "rng.sample(pools[OTHER[gender]],", "rng.sample(pools[gender],",
           ("tests/test_tasks_four.py::test_counterfactuals_of_hand_written_rows",)),
    # ... and their variation families
    Mutant("gt_compares_tens_always", "greater-than: a prompt ending one digit later still compares "
           "the tens digit", "tasks/greater_than.py", "    return int(start[len(tail.group(1))])",
           "    return int(start[-2])",
           ("tests/test_tasks_four.py::test_answers_spelled_out",
            "tests/test_tasks_four.py::test_variation_families")),
    Mutant("agreement_attractor_number_ignored", "agreement families: attractors always of the "
           "subject's number", "tasks/agreement.py",
           'attr_number = number if relation == "same" else OTHER[number]', "attr_number = number",
           ("tests/test_tasks_four.py::test_variation_families",)),
    Mutant("capitals_right_capital_named", "capitals family: the right capital named instead of the "
           "wrong one", "tasks/capitals.py", "wrong=other_capital)", "wrong=capital)",
           ("tests/test_tasks_four.py::test_variation_families",)),
    Mutant("pronouns_distractor_same_gender", "pronouns family: the distractor name of the same "
           "gender", "tasks/pronouns.py", 'other = rng.choice(others) if "{other}" in template else ""',
           'other = rng.choice(names[gender]) if "{other}" in template else ""',
           ("tests/test_tasks_four.py::test_variation_families",)),

    # Verdicts by equivalence (issue 23 item 3)
    Mutant("tost_min_not_max", "TOST's p is the smaller one-sided p, not the larger", "stats.py",
           "max(p_low_side, p_high_side)", "min(p_low_side, p_high_side)",
           ("tests/test_equivalence.py",)),
    Mutant("below_above_swapped", "the tests for lying below and above the band swapped", "stats.py",
           "                       p_below, p_above, se,", "                       p_above, p_below, se,",
           ("tests/test_equivalence.py",)),
    Mutant("equivalence_iid", "equivalence resamples prompts, not templates", "stats.py",
           "        return Equivalence(est, nan, nan, nan, nan, nan, nan, nan, k, nan)\n",
           "        return Equivalence(est, nan, nan, nan, nan, nan, nan, nan, k, nan)\n"
           "    codes = np.arange(codes.size)\n",
           ("tests/test_equivalence.py",)),
    Mutant("tost_power_two_sided_z", "power with the two-sided critical value", "stats.py",
           "    z = sps.norm.ppf(1 - alpha)\n", "    z = sps.norm.ppf(1 - alpha / 2)\n",
           ("tests/test_equivalence.py",)),
    Mutant("verdict_on_raw_p", "the equivalence verdict reads raw p-values, not BH q-values",
           "equivalence.py", "for a, b, c in zip(t.q_equiv, t.q_below, t.q_above)]",
           "for a, b, c in zip(t.p_equiv, t.p_below, t.p_above)]",
           ("tests/test_equivalence.py",)),
    Mutant("equivalence_mean_of_ratios", "the normalised faithfulness as a mean of per-prompt ratios",
           "equivalence.py", "    return st.cluster_equivalence((num, den),",
           "    return st.cluster_equivalence(num / den,",
           ("tests/test_equivalence.py",)),
]


def _copy_tree(tmp: pathlib.Path) -> None:
    shutil.copytree(ROOT / "lib", tmp / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # Everything else of the checkout is linked, so circuitgen.paths sees a checkout (data/ and
    # pyproject.toml beside lib/) and reads the project's files.
    for entry in ROOT.iterdir():
        if entry.name not in ("lib", ".git"):
            os.symlink(entry, tmp / entry.name)


def check(m: Mutant, lib: pathlib.Path) -> None:
    """Stop, saying which mutant and why, unless its search text occurs exactly once."""
    n = (lib / "circuitgen" / m.file).read_text().count(m.search)
    if n != 1:
        raise SystemExit(f"mutant {m.name!r}: its search text occurs {n} times in lib/circuitgen/"
                         f"{m.file} (it must occur exactly once); update the mutant in "
                         f"scripts/mutants.py:\n{m.search}")


def apply(m: Mutant, lib: pathlib.Path) -> None:
    check(m, lib)
    path = lib / "circuitgen" / m.file
    path.write_text(path.read_text().replace(m.search, m.replace))


def run(m: Mutant | None, keep: bool = False, tests: tuple[str, ...] = ()) -> tuple[str, float, str]:
    """('caught' | 'NOT caught' | 'error', seconds, the tail of pytest's output); ``m=None``
    runs ``tests`` on an unmutated copy (the baseline, which must pass)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"mutant-{m.name if m else 'none'}-"))
    tests = m.tests if m else tests
    try:
        _copy_tree(tmp)
        if m is not None:
            apply(m, tmp / "lib")
        env = os.environ | {"PYTHONPATH": str(tmp / "lib") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                            "PYTHONDONTWRITEBYTECODE": "1"}
        where = subprocess.run([sys.executable, "-c", "import circuitgen; print(circuitgen.__file__)"],
                               env=env, capture_output=True, text=True, cwd=ROOT)
        if not where.stdout.strip().startswith(str(tmp)):
            raise SystemExit(f"the mutated copy is not the one imported ({where.stdout.strip()} "
                             f"{where.stderr.strip()[-500:]}); is circuitgen on PYTHONPATH already?")
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                               "-m", "not slow and not book", *tests],
                              env=env, capture_output=True, text=True, cwd=ROOT)
        took = time.time() - t0
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    tail = "\n".join(proc.stdout.splitlines()[-15:])
    # pytest: 0 all passed, 1 some tests failed, other codes: usage/collection/internal errors.
    verdict = {0: "NOT caught", 1: "caught"}.get(proc.returncode, "error")
    return verdict, took, tail


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="mutants to run (default: all)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--verbose", "-v", action="store_true", help="print pytest's output tail")
    p.add_argument("--keep", action="store_true", help="keep the temporary copies")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip checking that the tests pass on the unmutated copy first")
    args = p.parse_args()
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:32} {m.what}  [{m.file}; {' '.join(m.tests)}]")
        return 0
    known = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"unknown mutant(s) {unknown}; --list shows them", file=sys.stderr)
        return 2
    chosen = [known[n] for n in args.names] if args.names else MUTANTS
    # Check every patch applies before spending minutes on tests.
    for m in chosen:
        check(m, ROOT / "lib")
    if not args.no_baseline:  # a test that fails anyway would "catch" every mutant
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        verdict, took, tail = run(None, keep=args.keep, tests=tests)
        print(f"{'baseline':11} {'(no mutant)':32} {took:6.1f} s  the tests pass unmutated: "
              f"{verdict == 'NOT caught'}", flush=True)
        if verdict != "NOT caught":
            print("    " + tail.replace("\n", "\n    "), file=sys.stderr)
            print("the tests fail without any mutant; fix them first.", file=sys.stderr)
            return 2
    results = []
    for m in chosen:
        verdict, took, tail = run(m, keep=args.keep)
        results.append((m, verdict))
        print(f"{verdict:11} {m.name:32} {took:6.1f} s  {m.what}", flush=True)
        if args.verbose or verdict == "error":
            print("    " + tail.replace("\n", "\n    "), flush=True)
    survived = [m.name for m, v in results if v == "NOT caught"]
    errors = [m.name for m, v in results if v == "error"]
    print(f"\n{len(results) - len(survived) - len(errors)} of {len(results)} mutants caught"
          + (f"; NOT caught: {', '.join(survived)}" if survived else "")
          + (f"; errors: {', '.join(errors)}" if errors else ""))
    return 2 if errors else (1 if survived else 0)


if __name__ == "__main__":
    sys.exit(main())
