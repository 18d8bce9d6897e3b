"""Generalisation sweeps: score a circuit on a variation family and compare its conditions.

The four sweep notebooks (weeks 8-11: lexical, syntactic, domain, adversarial) are thin calls into
this module:

- :func:`run_sweep` scores every prompt of a family with :func:`circuitgen.scorer.score_circuit`
  (rows that cannot be scored are kept with their reason in ``status``; the ablation means, the
  scorer's default, are grouped by (condition, order), each group at least 20 ABC prompts made
  from its own prompts and name substitutions, see :mod:`circuitgen.reference`) and keeps the
  family, condition and per-prompt feature columns;
- :func:`by_condition` summarises per condition, each statistic with a 95% interval from
  :mod:`circuitgen.stats`: accuracy and circuit accuracy (logit difference > 0, the model's and the
  circuit's) with exact Clopper-Pearson intervals; mean logit difference, mean circuit logit
  difference, faithfulness as a **ratio of means** (circuit / model, paired: the same resampled
  prompts in numerator and denominator) and the mean of the main attention signature (the spec's
  first class with one) with a seeded percentile bootstrap that resamples whole templates
  (prompts of one template share their ablation means), or prompts when there is no
  ``template`` column;
- :func:`plot_conditions` draws each condition's point and CI for the logit difference and the
  faithfulness, with a reference line at the base condition;
- :func:`worst_prompts` lists the scored prompts where the circuit's logit difference is lowest.

The notebooks print their key results with the line-builders below, so the four of them say the
same things the same way (each returns a list of lines; the notebook prints them):

- :func:`flag_lines`: how many prompts were made, scored and flagged, the conditions the generator
  skipped and the names dropped, the n per condition and the commonest reasons for flags;
- :func:`difference_from_reference` / :func:`clearly_different` / :func:`compare_with_reference` /
  :func:`contrast_table`: each condition's difference from the reference condition, with its
  interval, p-value and Benjamini-Hochberg q across the family (every condition against the
  reference, per statistic): proportions by Newcombe's interval and Fisher's exact test,
  continuous statistics by a bootstrap resampling both groups' templates independently. A
  condition is *clearly different* when its q < 0.05;
- :func:`replication_table`: every contrast on the seed-0 and seed-1 prompt sets side by side,
  and whether it replicates (same sign, both q < 0.05);
- :func:`failure_counts` / :func:`worst_prompt_lines`: how often the circuit and the model prefer S,
  and the prompts where the circuit does worst;
- :func:`reference_line` / :func:`format_contrasts`: the ablation reference the scores used, and
  :func:`contrast_table` (or :func:`pair_contrasts`) as printable strings;
- :func:`findings`, :func:`condition_values`, :func:`contrast_values`: the numbers and condition
  names a chapter's findings quote, as a flat ``{key: int | float | str}`` for myst-nb ``glue``
  (plain Python values, so ``{glue:text}`key:.2f``` can format them; "none" for empty lists);
- :func:`family_scores`: :func:`run_sweep` kept as a score file
  (``data/scores/<model>-<family>-seed<SEED>-<circuit>-<ablation>.csv`` with its ``.meta.json``,
  a :class:`circuitgen.tables.ScoreTable`): the sweep chapters write it, later chapters (week 12)
  read it, and a file whose inputs (prompts, circuit, ablation, model, seed, the scoring code)
  have changed is recomputed, never used;
- :func:`save_prompt_set`: the generated set written as ``<family>-<model>-seed<SEED>.csv`` (with
  its ``.meta.json``) under ``data/prompts/`` for the reference run, else under the run's folder.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import pathlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from circuitgen import paths, scorer, tables
from circuitgen import stats as st
from circuitgen.circuits import CircuitSpec
from circuitgen.ioi import PromptSet
from circuitgen.stats import ratio_of_means_ci  # noqa: F401  (kept here for existing callers)
from circuitgen.task import normalised_parts

N_RESAMPLES = st.N_RESAMPLES
STATS = ("accuracy", "circuit_accuracy", "logit_diff", "circuit_logit_diff", "faithfulness", "signature")
# Shares of prompts: exact intervals, Newcombe differences and Fisher's test.
PROPORTION_STATS = ("accuracy", "circuit_accuracy")
# Prompts of one template share their ablation means: the bootstrap resamples whole templates.
CLUSTER = "template"
# A contrast is called clearly different when its Benjamini-Hochberg q is below this.
FDR = 0.05


def run_sweep(model, spec: CircuitSpec, prompt_set: PromptSet | pd.DataFrame, knockouts: bool = False,
              seed: int = 0, batch_size: int = 16, ablation: scorer.Ablation | None = None) -> pd.DataFrame:
    """One row per prompt of ``prompt_set``: its columns (family, condition, features, ...) and the
    scorer's columns. Unscorable rows stay, with ``status`` saying why and NaN scores.
    ``ablation``: the scorer's (default: mean over ABC prompts grouped by condition and order, at
    least 20 per group, see :mod:`circuitgen.reference`)."""
    df = prompt_set.df if isinstance(prompt_set, PromptSet) else prompt_set
    scores = scorer.score_circuit(model, spec, df, ablation=ablation, knockouts=knockouts,
                                  skip_invalid=True, progress=False, seed=seed,
                                  batch_size=batch_size)
    meta = dict(scores.attrs.get("circuitgen", {}))
    if isinstance(prompt_set, PromptSet):
        meta["prompt_set"] = {k: prompt_set.meta.get(k) for k in
                              ("family", "generator_version", "seed", "n_per_condition",
                               "conditions_skipped", "n_names_dropped") if k in prompt_set.meta}
    meta["main_signature"] = main_signature(scores, spec)
    scores.attrs["circuitgen"] = meta
    return scores


# The modules whose code decides a score: their source is one of a score file's inputs, so any
# change to how scores are computed makes the committed score files stale (recomputed on next use).
SCORING_MODULES = ("circuitgen.scorer", "circuitgen.reference", "circuitgen.ablation",
                   "circuitgen.batch", "circuitgen.resume", "circuitgen.ioi", "circuitgen.task",
                   "circuitgen.tasks.ioi")


@functools.cache
def scoring_code_sha() -> str:
    """sha256 (16 hex) of :data:`SCORING_MODULES`' source and :func:`run_sweep`'s."""
    text = "".join(inspect.getsource(importlib.import_module(m)) for m in SCORING_MODULES)
    return hashlib.sha256((text + inspect.getsource(run_sweep)).encode()).hexdigest()[:16]


def circuit_label(spec: CircuitSpec) -> str:
    """The spec's file stem (``smollm2-135m-ioi``), or ``circuit`` for a spec made in memory."""
    stem = pathlib.Path(spec.source).stem
    return stem if stem and not stem.startswith("<") else "circuit"


def score_file(family: str, model: str, seed: int, circuit: str, ablation: str,
               output_dir: str | pathlib.Path | None = None) -> pathlib.Path:
    """``<output dir>/scores/<model slug>-<family>-seed<seed>-<circuit>-<ablation>.csv``:
    ``data/scores/`` for the reference run, the run's own folder otherwise."""
    folder = paths.output_dir(None if output_dir is None else str(output_dir)) / "scores"
    return paths.result_path("scores", model, family, f"seed{seed}", circuit, ablation.replace(" ", "_"),
                             folder=folder)


def family_scores(model, spec: CircuitSpec, prompt_set: PromptSet, *, seed: int = 0,
                  ablation: scorer.Ablation | None = None, output_dir: str | pathlib.Path | None = None,
                  refresh: bool = False, batch_size: int = 16,
                  log: Callable[[str], None] | None = print) -> pd.DataFrame:
    """:func:`run_sweep`'s scores of ``prompt_set`` through its score file (:func:`score_file`):
    read when the file was made from the same prompts, circuit, ablation, model, seed and scoring
    code (:func:`scoring_code_sha`), else computed and written; ``refresh`` always computes (the
    sweep chapters do, so running them re-checks the scores that later chapters read) but keeps
    a fresh file, byte for byte, when the new scores match it within float noise
    (:func:`circuitgen.tables.cached`), returning the file's values; it warns and rewrites the
    file only when they differ beyond that. The returned frame carries the scorer's provenance
    in ``attrs["circuitgen"]`` as :func:`run_sweep`'s does."""
    family = prompt_set.meta.get("family")
    if not family:
        raise ValueError("the prompt set's meta has no 'family'; make it with circuitgen.variations.")
    abl = ablation or scorer.spec_ablation(spec)
    name = model.circuitgen.model
    path = score_file(family, name, seed, circuit_label(spec), abl.method, output_dir)
    inputs = {"prompts": prompt_set.df, "prompt_meta": prompt_set.meta, "circuit": spec.to_dict(),
              "ablation": abl.to_dict(), "model": name, "seed": seed, "code": scoring_code_sha()}

    def compute() -> tables.ScoreTable:
        return tables.ScoreTable.from_scores(run_sweep(model, spec, prompt_set, seed=seed,
                                                       ablation=ablation, batch_size=batch_size))

    table = tables.cached(path, inputs, compute, log=log, refresh=refresh)
    scores = tables.ScoreTable(table.df, table.meta).scores()
    scores.attrs["score_file"] = str(path)
    return scores


def main_signature(scores: pd.DataFrame, spec: CircuitSpec | None = None) -> str | None:
    """The ``sig_<class>`` column of the spec's first class with a signature (without ``spec``:
    the one :func:`run_sweep` recorded, else the first ``sig_`` column), or None."""
    if spec is not None:
        names = [f"sig_{n}" for n, c in spec.classes.items() if c.signature is not None]
        return next((c for c in names if c in scores.columns), None)
    recorded = scores.attrs.get("circuitgen", {}).get("main_signature")
    if recorded in scores.columns:
        return recorded
    cols = [c for c in scores.columns if c.startswith("sig_")]
    return cols[0] if cols else None


def is_proportion(stat: str, ok: pd.DataFrame | None = None) -> bool:
    """Whether ``stat`` is a share of prompts (an exact interval and Fisher's test fit it) rather
    than a mean of continuous scores (a bootstrap fits it): one of :data:`PROPORTION_STATS`, or a
    boolean column of the scores."""
    if stat in PROPORTION_STATS:
        return True
    return ok is not None and stat in ok.columns and pd.api.types.is_bool_dtype(ok[stat])


def _clusters(ok: pd.DataFrame, cluster: str | None) -> np.ndarray:
    """Cluster labels per scored prompt: the ``cluster`` column when there is one, else one
    cluster per prompt (the iid bootstrap)."""
    if cluster is not None and cluster in ok.columns:
        return ok[cluster].astype(str).to_numpy()
    return np.arange(len(ok))


def _interval(ok: pd.DataFrame, stat: str, sig: str | None, cluster: str | None,
              seed: int) -> st.Interval:
    """One condition's estimate and 95% interval of ``stat``: exact for a proportion, a cluster
    bootstrap over ``cluster`` for a continuous statistic (an iid one without that column)."""
    x, y = _stat_values(ok, stat, sig)
    if is_proportion(stat, ok):
        return st.clopper_pearson(int(x.sum()), x.size)
    if cluster is not None and cluster in ok.columns:
        data = x if y is None else (x, y)
        return st.cluster_bootstrap_ci(data, _clusters(ok, cluster), n_resamples=N_RESAMPLES, seed=seed)
    if y is None:
        return st.bootstrap_mean_ci(x, n_resamples=N_RESAMPLES, seed=seed)
    return st.ratio_of_means_ci(x, y, n_resamples=N_RESAMPLES, seed=seed)


def by_condition(scores: pd.DataFrame, seed: int = 0, by: str = "condition",
                 cluster: str | None = CLUSTER) -> pd.DataFrame:
    """Per condition (in order of appearance): ``n`` scored, ``n_flagged``, ``n_clusters`` (scored
    templates; ``n`` when there is no ``cluster`` column) and for each of :data:`STATS` the
    estimate with ``_lo``/``_hi`` 95% bounds: Clopper-Pearson for the proportions
    (:data:`PROPORTION_STATS`), a bootstrap resampling whole ``cluster`` groups (templates) for the
    rest, because prompts of one template share their ablation means."""
    sig = main_signature(scores)
    rows = []
    for key, g in scores.groupby(by, sort=False):
        ok = g[g.status == "ok"]
        row = {by: key, "n": len(ok), "n_flagged": int((g.status != "ok").sum()),
               "n_clusters": len(set(_clusters(ok, cluster)))}
        for name in (s for s in STATS if len(ok) and (sig or s != "signature")):
            row |= dict(zip((name, f"{name}_lo", f"{name}_hi"), _interval(ok, name, sig, cluster, seed)))
        rows.append(row)
    cols = [by, "n", "n_flagged", "n_clusters"] + [f"{s}{suf}" for s in STATS for suf in ("", "_lo", "_hi")]
    out = pd.DataFrame(rows).reindex(columns=cols).set_index(by)
    out.attrs["signature"] = sig
    out.attrs["cluster"] = cluster if cluster is not None and cluster in scores.columns else None
    out.attrs["intervals"] = interval_note(out.attrs["cluster"])
    return out


def condition_intervals(scores: pd.DataFrame, stat: str, by: str = "condition", seed: int = 0,
                        cluster: str | None = CLUSTER) -> pd.DataFrame:
    """One statistic per condition (in order of appearance): ``n``, ``n_clusters``, ``estimate``
    with its 95% ``lo``/``hi`` (as :func:`by_condition`, for any statistic ``_stat_values``
    knows, e.g. ``normalised``)."""
    ok = _scored(scores)
    sig = main_signature(scores)
    rows = [{by: key, "n": len(g), "n_clusters": len(set(_clusters(g, cluster))),
             **dict(zip(("estimate", "lo", "hi"), _interval(g, stat, sig, cluster, seed)))}
            for key, g in ok.groupby(by, sort=False)]
    return pd.DataFrame(rows, columns=[by, "n", "n_clusters", "estimate", "lo", "hi"]).set_index(by)


def interval_note(cluster: str | None) -> str:
    """One sentence saying how :func:`by_condition`'s intervals were made."""
    boot = (f"a percentile bootstrap resampling whole {cluster}s" if cluster
            else "a percentile bootstrap over prompts")
    return (f"95% intervals: exact (Clopper-Pearson) for {', '.join(PROPORTION_STATS)}; "
            f"{boot} for the means and the ratio of means ({N_RESAMPLES} resamples).")


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """``n``, ``n_flagged``, ``n_clusters`` and each estimate with its 95% interval as a string
    ``est [lo, hi]``, all to 2 decimals (an exact interval such as 20/20's [0.83, 1.00] needs them)."""
    out = table[[c for c in ("n", "n_flagged", "n_clusters") if c in table.columns]].copy()
    for s in STATS:
        if s in table.columns:
            out[s] = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(m) else "-"
                      for m, lo, hi in zip(table[s], table[f"{s}_lo"], table[f"{s}_hi"])]
    if table.attrs.get("signature"):
        out = out.rename(columns={"signature": table.attrs["signature"]})
    return out


def plot_conditions(table: pd.DataFrame, title: str, base: str | None = None):
    """Point + 95% CI per condition for the model's and the circuit's logit difference and for the
    faithfulness (ratio of means); dashed lines mark the ``base`` condition (default: the first)."""
    import matplotlib.pyplot as plt

    from circuitgen import plots

    base = table.index[0] if base is None else base
    y = np.arange(len(table))[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.38 * len(table) + 1.8), sharey=True)
    panels = [
        (axes[0], [("logit_diff", "model", "C0", -0.12), ("circuit_logit_diff", "circuit", "C1", 0.12)],
         "mean logit difference IO - S at END (nats)", 0.0),
        (axes[1], [("faithfulness", "circuit / model", "C2", 0.0)],
         "faithfulness, ratio of means (circuit / model)", 1.0),
    ]
    for ax, series, xlabel, neutral in panels:
        for col, label, color, dy in series:
            est = table[col].to_numpy(float)
            plots.interval(ax, table[f"{col}_lo"], table[f"{col}_hi"], y + dy, color=color,
                           lw=plt.rcParams["lines.linewidth"])
            ax.plot(est, y + dy, "o", color=color, label=label)
            if base in table.index:
                ax.axvline(table.loc[base, col], color=color, ls="--", lw=1, alpha=0.7)
        ax.axvline(neutral, color="k", lw=0.8)
        ax.set_xlabel(xlabel)
    axes[0].set_yticks(y, [f"{c} (n={n})" for c, n in zip(table.index, table.n)])
    axes[0].set_ylabel("condition")
    axes[0].legend(loc="best", fontsize=8, title=f"dashed: {base}", title_fontsize=8)
    how = f"bootstrap by {table.attrs['cluster']}" if table.attrs.get("cluster") else "bootstrap by prompt"
    axes[1].set_title(f"Faithfulness (95% CI, paired {how})")
    axes[0].set_title(f"Logit difference (95% CI, {how})")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def worst_prompts(scores: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The ``k`` scored prompts with the lowest circuit logit difference (where the circuit, on its
    own, most prefers S), with the model's own logit difference beside it."""
    cols = [c for c in ("condition", "prompt", "io", "s", "logit_diff", "circuit_logit_diff",
                        "faithfulness") if c in scores.columns]
    ok = scores[scores.status == "ok"]
    return ok.nsmallest(k, "circuit_logit_diff")[cols]


def _scored(scores: pd.DataFrame) -> pd.DataFrame:
    """The scored rows: status ``ok`` (a node-circuit table without ``status`` is all scored)."""
    return scores[scores.status == "ok"] if "status" in scores.columns else scores


def flag_lines(scores: pd.DataFrame, prompt_set: PromptSet | None = None, table: pd.DataFrame | None = None,
               top: int = 5) -> list[str]:
    """What was scored and what was not: prompts made / scored / flagged; with ``prompt_set``, the
    conditions its generator skipped and how many names were dropped (not single tokens); the
    number scored and flagged per condition (from ``table``, else computed); and the ``top``
    commonest reasons a row was flagged (the last ``:``-separated part of ``status``)."""
    ok = _scored(scores)
    lines = [f"prompts: {len(scores)}, scored: {len(ok)}, flagged: {len(scores) - len(ok)}"]
    if prompt_set is not None:
        skipped = prompt_set.meta.get("conditions_skipped") or {}
        lines.append(f"conditions skipped by the generator: {skipped or 'none'}")
        lines.append("names not single tokens in this tokenizer (not used): "
                     f"{prompt_set.meta.get('n_names_dropped', 0)}")
    if table is None:
        table = pd.DataFrame({"n": ok.groupby("condition", sort=False).size(),
                              "n_flagged": scores[scores.status != "ok"]
                              .groupby("condition", sort=False).size()})
        table = table.reindex(scores.condition.unique()).fillna(0).astype(int)
        table.index.name = "condition"
    lines += table[["n", "n_flagged"]].T.to_string().splitlines()
    flagged = scores[scores.status != "ok"]
    if len(flagged):
        reasons = flagged.status.str.split(":").str[-1].str.strip().value_counts().head(top)
        lines += [f"flagged because {why}: {n}" for why, n in reasons.items()]
    return lines


def _stat_values(ok: pd.DataFrame, stat: str, sig: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-prompt values of ``stat`` (numerator and denominator for the ratios ``faithfulness`` and
    ``normalised``; 0/1 for a proportion). Besides :data:`STATS`: ``normalised``, the faithfulness
    net of the empty circuit, (F(C) - F(∅)) / (F(M) - F(∅)) as a ratio of means (scores with an
    ``empty_logit_diff`` column), and any numeric or boolean column of the scores."""
    if stat == "faithfulness":
        return ok.circuit_logit_diff.to_numpy(float), ok.logit_diff.to_numpy(float)
    if stat == "normalised":
        if "empty_logit_diff" not in ok.columns:
            raise KeyError("'normalised' needs the empty circuit's logit difference: score with "
                           "circuitgen.curves.score_circuits (column empty_logit_diff).")
        return normalised_parts(ok.logit_diff.to_numpy(float), ok.circuit_logit_diff.to_numpy(float),
                                ok.empty_logit_diff.to_numpy(float))
    if stat == "accuracy":
        return (ok.logit_diff > 0).to_numpy(float), None
    if stat == "circuit_accuracy":
        return (ok.circuit_logit_diff > 0).to_numpy(float), None
    if stat == "signature":
        if sig is None:
            raise KeyError("these scores have no signature column.")
        return ok[sig].to_numpy(float), None
    if stat in ok.columns and pd.api.types.is_numeric_dtype(ok[stat]):  # bool counts as numeric
        return ok[stat].to_numpy(float), None
    raise KeyError(f"unknown statistic {stat!r}; choose one of {list(STATS)} or a numeric column.")


def _contrast(g: pd.DataFrame, ref: pd.DataFrame, stat: str, sig: str | None, cluster: str | None,
              seed: int, confidence: float, n_resamples: int) -> st.Contrast:
    """``stat`` in ``g`` minus in ``ref``: Newcombe interval and Fisher's p for a proportion; for a
    continuous statistic a bootstrap resampling each group's clusters (prompts, without a
    ``cluster`` column) independently, with its two-sided bootstrap p."""
    (x, y), (rx, ry) = _stat_values(g, stat, sig), _stat_values(ref, stat, sig)
    if is_proportion(stat, g):
        return st.proportion_contrast(int(x.sum()), x.size, int(rx.sum()), rx.size, confidence)
    return st.cluster_bootstrap_diff(x if y is None else (x, y), _clusters(g, cluster),
                                     rx if ry is None else (rx, ry), _clusters(ref, cluster),
                                     confidence=confidence, n_resamples=n_resamples, seed=seed)


def _method(stat: str, ok: pd.DataFrame, cluster: str | None) -> str:
    if is_proportion(stat, ok):
        return "Newcombe + Fisher"
    clustered = cluster is not None and cluster in ok.columns
    return f"bootstrap by {cluster}" if clustered else "bootstrap by prompt"


def difference_from_reference(scores: pd.DataFrame, base: str, stat: str, by: str = "condition",
                              seed: int = 0, confidence: float = 0.95,
                              n_resamples: int = N_RESAMPLES, cluster: str | None = CLUSTER) -> pd.DataFrame:
    """Per condition other than ``base`` (in order of appearance): ``stat`` there (``estimate``)
    and in ``base`` (``reference``), their ``difference`` with a ``lo``/``hi`` interval, the
    two-sided ``p`` for no difference, and ``q``, the Benjamini-Hochberg adjustment of ``p`` across
    this family (every condition against ``base``, for this one statistic).

    Proportions (:data:`PROPORTION_STATS` or a boolean column): Newcombe's hybrid score interval and
    Fisher's exact test. Continuous statistics (means, the ratio of means): a percentile bootstrap
    that resamples the condition's and the reference's ``cluster`` groups (templates)
    independently, seeded, and the bootstrap p of :func:`circuitgen.stats.bootstrap_p_value`; without
    a ``cluster`` column, prompts. The reference's own uncertainty counts in both. The intervals are
    per-comparison 95% intervals, not adjusted; the q-values are. ``method`` says which was used.
    """
    ok = _scored(scores)
    if base not in set(ok[by]):
        raise KeyError(f"reference condition {base!r} has no scored prompts "
                       f"(conditions: {list(dict.fromkeys(scores[by]))}).")
    sig = main_signature(scores)
    ref = ok[ok[by] == base]
    ref_est = _point_estimate(ref, stat, sig)
    rows = []
    for key, g in ok.groupby(by, sort=False):
        if key == base:
            continue
        c = _contrast(g, ref, stat, sig, cluster, seed, confidence, n_resamples)
        rows.append({by: key, "estimate": _point_estimate(g, stat, sig), "reference": ref_est,
                     "difference": c.estimate, "lo": c.lo, "hi": c.hi, "p": c.p})
    cols = [by, "estimate", "reference", "difference", "lo", "hi", "p", "q", "method"]
    out = pd.DataFrame(rows, columns=cols[:-2]).set_index(by)
    out["q"] = st.benjamini_hochberg(out.p.to_numpy(float))[1]
    out["method"] = _method(stat, ok, cluster)
    out.attrs |= {"statistic": stat, "base": base}
    return out


def _point_estimate(ok: pd.DataFrame, stat: str, sig: str | None) -> float:
    x, y = _stat_values(ok, stat, sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(x.mean() if y is None else x.mean() / y.mean())


def contrast_table(scores: pd.DataFrame, base: str,
                   stats: tuple[str, ...] = ("accuracy", "logit_diff", "faithfulness"),
                   by: str = "condition", seed: int = 0, cluster: str | None = CLUSTER) -> pd.DataFrame:
    """:func:`difference_from_reference` for each statistic in ``stats``, stacked: one row per
    (statistic, condition), with ``clear`` = q < :data:`FDR` (BH within each statistic)."""
    parts = [difference_from_reference(scores, base, s, by=by, seed=seed, cluster=cluster)
             .reset_index().assign(statistic=s) for s in stats]
    out = pd.concat(parts, ignore_index=True)
    out["clear"] = out.q < FDR
    return out.set_index(["statistic", by])


def clearly_different(scores: pd.DataFrame, base: str, stat: str, seed: int = 0,
                      by: str = "condition", cluster: str | None = CLUSTER) -> dict[str, list[str]]:
    """Conditions whose difference from ``base`` in ``stat`` is clearly below zero (``"lower"``) or
    above it (``"higher"``), in order of appearance: clearly means a Benjamini-Hochberg q below
    :data:`FDR` (0.05) across all the conditions' contrasts with ``base`` for this statistic
    (:func:`difference_from_reference`), so that among many conditions a false flag is rare."""
    d = difference_from_reference(scores, base, stat, by=by, seed=seed, cluster=cluster)
    clear = d.q < FDR
    return {"lower": d.index[clear & (d.difference < 0)].tolist(),
            "higher": d.index[clear & (d.difference > 0)].tolist()}


def _named_q(d: pd.DataFrame, names: list[str]) -> str:
    return ", ".join(f"{n} (q={d.loc[n, 'q']:.2g})" for n in names) or "none"


def compare_with_reference(scores: pd.DataFrame, table: pd.DataFrame, base: str,
                           stats: tuple[str, ...] = ("accuracy", "logit_diff", "faithfulness"),
                           seed: int = 0, cluster: str | None = CLUSTER) -> list[str]:
    """One line per statistic naming the conditions clearly lower / higher than ``base`` with their
    q (see :func:`clearly_different`), a line saying how that was decided, then the conditions with
    the lowest and highest faithfulness and the lowest accuracy (from ``table``,
    :func:`by_condition`'s output)."""
    by = table.index.name or "condition"
    lines = []
    for stat in stats:
        d = difference_from_reference(scores, base, stat, by=by, seed=seed, cluster=cluster)
        clear = d.q < FDR
        lower = d.index[clear & (d.difference < 0)].tolist()
        higher = d.index[clear & (d.difference > 0)].tolist()
        lines.append(f"{stat} (reference {table.loc[base, stat]:.2f}): clearly lower in "
                     f"{_named_q(d, lower)}; clearly higher in {_named_q(d, higher)}")
    lines.append(f"clearly = Benjamini-Hochberg q < {FDR} over the {len(table) - 1} contrasts with "
                 f"{base}, per statistic (proportions: Newcombe interval + Fisher's exact test; "
                 f"means and ratio: bootstrap by {cluster if cluster in scores.columns else 'prompt'})")
    lines.append(f"lowest faithfulness: {table.faithfulness.idxmin()} ({table.faithfulness.min():.2f}); "
                 f"highest: {table.faithfulness.idxmax()} ({table.faithfulness.max():.2f})")
    lines.append(f"lowest accuracy: {table.accuracy.idxmin()} ({table.accuracy.min():.2f})")
    return lines


def _replication_side(scores: pd.DataFrame, base: str, stat: str, by: str, seed: int,
                      cluster: str | None, tag: str) -> pd.DataFrame:
    d = difference_from_reference(scores, base, stat, by=by, seed=seed, cluster=cluster)
    d = d[["difference", "lo", "hi", "p", "q"]].add_suffix(f"_{tag}")
    return d.reset_index().assign(statistic=stat)


def _verdict(row) -> str:
    d0, d1, q0, q1 = row.difference_seed0, row.difference_seed1, row.q_seed0, row.q_seed1
    if pd.isna(d0) or pd.isna(d1):
        return "missing in seed 0" if pd.isna(d0) else "missing in seed 1"
    same = np.sign(d0) == np.sign(d1) and np.sign(d0) != 0
    sig0, sig1 = bool(q0 < FDR), bool(q1 < FDR)
    if sig0 and sig1:
        return "replicates" if same else "reverses"
    if sig0 or sig1:
        which = "seed 0" if sig0 else "seed 1"
        return f"direction only ({which} clear)" if same else f"{which} only, sign flips"
    return "neither clear"


def replication_table(scores_seed0: pd.DataFrame, scores_seed1: pd.DataFrame, base: str,
                      stats: tuple[str, ...] = ("accuracy", "logit_diff", "faithfulness"),
                      by: str = "condition", seed: int = 0, cluster: str | None = CLUSTER) -> pd.DataFrame:
    """Does each condition contrast replicate on a fresh draw of prompts? For every condition
    (vs ``base``) and statistic: :func:`difference_from_reference` on each seed's scores side by
    side (``difference``/``lo``/``hi``/``p``/``q`` with ``_seed0`` and ``_seed1``; each seed's q from
    its own BH family), and

    - ``replicates``: same sign and both q < :data:`FDR`;
    - ``direction_only``: same sign, but exactly one of the two q < :data:`FDR`;
    - ``verdict``: those in words, and also "reverses" (both clear, opposite signs), "seed k only,
      sign flips", "neither clear" and "missing in seed k" (a condition scored in one seed only).

    Rows are (statistic, condition), in the order of ``stats`` and of the conditions in seed 0."""
    parts = []
    for stat in stats:
        a = _replication_side(scores_seed0, base, stat, by, seed, cluster, "seed0")
        b = _replication_side(scores_seed1, base, stat, by, seed, cluster, "seed1")
        keys = list(dict.fromkeys([*a[by], *b[by]]))  # seed 0's order, then seed 1's extras
        both = a.set_index(by).drop(columns="statistic").join(b.set_index(by).drop(columns="statistic"),
                                                             how="outer")
        parts.append(both.reindex(keys).rename_axis(by).reset_index().assign(statistic=stat))
    out = pd.concat(parts, ignore_index=True).set_index(["statistic", by])
    sign0, sign1 = np.sign(out.difference_seed0), np.sign(out.difference_seed1)
    same = (sign0 == sign1) & (sign0 != 0)
    clear0, clear1 = out.q_seed0 < FDR, out.q_seed1 < FDR
    out["replicates"] = same & clear0 & clear1
    out["direction_only"] = same & (clear0 ^ clear1)
    out["verdict"] = [_verdict(r) for r in out.itertuples()]
    return out


def failure_counts(scores: pd.DataFrame) -> dict[str, int]:
    """Among scored prompts: ``n``, and how many the circuit alone, the model, and both get wrong
    (a logit difference IO - S of zero or less)."""
    ok = _scored(scores)
    circuit, model = ok.circuit_logit_diff <= 0, ok.logit_diff <= 0
    return {"n": len(ok), "circuit_wrong": int(circuit.sum()), "model_wrong": int(model.sum()),
            "both_wrong": int((circuit & model).sum())}


def worst_prompt_lines(scores: pd.DataFrame, k: int = 6) -> list[str]:
    """The :func:`failure_counts` line, then one line per prompt of :func:`worst_prompts` (lowest
    circuit logit difference first): condition, prompt, names, model and circuit logit difference."""
    c = failure_counts(scores)
    lines = [f"circuit wrong: {c['circuit_wrong']} of {c['n']}; model wrong: {c['model_wrong']}; "
             f"both wrong: {c['both_wrong']}"]
    for r in worst_prompts(scores, k).itertuples():
        lines.append(f"[{getattr(r, 'condition', '-')}] {r.prompt!r} -> IO {r.io}, S {r.s}: "
                     f"model {r.logit_diff:.2f}, circuit {r.circuit_logit_diff:.2f}")
    return lines


# ---- what the chapters quote: printable contrasts, the ablation reference, values for glue ----

def pair_contrasts(scores: pd.DataFrame, pairs: list[tuple[str, str]],
                   stats: tuple[str, ...] = ("logit_diff", "faithfulness"), by: str = "condition",
                   seed: int = 0, cluster: str | None = CLUSTER) -> pd.DataFrame:
    """Planned contrasts between two conditions, neither of them the reference: for each
    ``(a, b)`` in ``pairs`` and each statistic, ``stat`` in ``a`` minus in ``b`` as
    :func:`difference_from_reference` makes it (``b`` as the reference), with ``q`` the
    Benjamini-Hochberg adjustment across the pairs of one statistic and ``clear`` = q < :data:`FDR`.
    Rows are (``statistic``, ``contrast``), the contrast labelled ``"a vs b"``; a pair with a
    condition that has no scored prompt is left out."""
    scored = set(_scored(scores)[by])
    parts = []
    for stat in stats:
        rows = []
        for a, b in pairs:
            if not {a, b} <= scored:
                continue
            d = difference_from_reference(scores[scores[by].isin([a, b])], b, stat, by=by,
                                          seed=seed, cluster=cluster)
            rows.append(d.loc[[a]].rename(index={a: f"{a} vs {b}"}))
        if rows:
            part = pd.concat(rows)
            part["q"] = st.benjamini_hochberg(part.p.to_numpy(float))[1]
            parts.append(part.rename_axis("contrast").reset_index().assign(statistic=stat))
    cols = ["statistic", "contrast", "estimate", "reference", "difference", "lo", "hi", "p", "q", "method"]
    out = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    out["clear"] = out.q.astype(float) < FDR
    return out.set_index(["statistic", "contrast"])


def format_contrasts(contrasts: pd.DataFrame) -> pd.DataFrame:
    """:func:`contrast_table` (or :func:`pair_contrasts`) as strings: the two estimates, the
    difference with its per-comparison 95% interval, ``p``, the BH ``q`` and ``clear`` (``yes``
    when q < :data:`FDR`), and the method."""
    def num(v, fmt):
        return "-" if pd.isna(v) else format(v, fmt)

    return pd.DataFrame({
        "estimate": [num(v, ".2f") for v in contrasts.estimate],
        "reference": [num(v, ".2f") for v in contrasts.reference],
        "difference [95% CI]": [f"{num(d, '+.2f')} [{num(lo, '+.2f')}, {num(hi, '+.2f')}]"
                                for d, lo, hi in zip(contrasts.difference, contrasts.lo, contrasts.hi)],
        "p": [num(v, ".2g") for v in contrasts.p],
        "q (BH)": [num(v, ".2g") for v in contrasts.q],
        f"q < {FDR}": ["yes" if c else "" for c in contrasts.clear],
        "method": list(contrasts.method),
    }, index=contrasts.index)


def reference_line(scores: pd.DataFrame) -> str:
    """One line saying which ablation reference ``scores`` used (from the scorer's metadata): for
    mean ablation the grouping, the number of groups and ABC prompts, the smallest and median group,
    where the prompts came from, the seed and the hash of the reference's token ids."""
    abl = scores.attrs.get("circuitgen", {}).get("ablation") or {}
    if abl.get("method") != "mean" or "n_groups" not in abl:
        return f"ablation: {abl.get('label', abl.get('method', 'not recorded'))}"
    sources = list(abl.get("sources", []))
    origin = "; ".join(dict.fromkeys(s.split(" + ")[0] for s in sources)) or "not recorded"
    if any(" + " in s for s in sources):
        origin += f", with name substitutions where a group had fewer than {abl.get('min_per_group')}"
    legacy = " (LEGACY: template only, own counterparts)" if abl.get("legacy") else ""
    return (f"ablation reference{legacy}: means over {abl['n_reference_prompts']} ABC prompts in "
            f"{abl['n_groups']} groups by ({', '.join(abl['group_by'])}); smallest group "
            f"{abl.get('group_size_min')}, median {abl.get('group_size_median', float('nan')):g} "
            f"(minimum {abl.get('min_per_group')}); from {origin}; seed {abl.get('seed')}, "
            f"hash {abl.get('sha256_16')}")


def names_or_none(names) -> str:
    """``a, b, c``, or ``none`` for an empty list (a condition list to glue into prose)."""
    return ", ".join(str(n) for n in names) or "none"


def _plain(value):
    """A plain Python value: glue stores its repr, which myst-nb reads back with literal_eval, so
    ``np.float64(0.5)`` would not format as a number."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


_FAITH_ROWS = {"f_m": "F(M)", "f_c": "F(C)", "f_0": "F(∅)", "ratio": "F(C)/F(M)",
               "norm": "(F(C)-F(∅))/(F(M)-F(∅))"}


def findings(scores: pd.DataFrame, table: pd.DataFrame, contrasts: pd.DataFrame, base: str,
             faith: pd.DataFrame | None = None, worst: int = 6) -> dict[str, int | float | str]:
    """The values a sweep chapter's findings quote, as ``{key: plain value}`` to glue (prefix the
    keys with the week). ``table``: :func:`by_condition`; ``contrasts``: :func:`contrast_table`
    against ``base``; ``faith``: :func:`circuitgen.evaluation.faithfulness_table` of the family.

    - counts: ``n_prompts``, ``n_scored``, ``n_flagged``, ``n_conditions``, ``n_contrasts`` (the
      conditions other than ``base``), ``n_min``/``n_max`` (scored prompts per condition),
      ``templates_min``/``templates_max`` (templates per condition: the bootstrap's clusters),
      ``n_range``/``templates_range`` (the same as text, ``20`` or ``3 to 10``),
      ``n_model_right``, ``n_model_wrong``, ``n_circuit_wrong``, ``n_both_wrong``;
    - ``base``; ``accuracy_misses``: the conditions where the model misses any prompt, as
      ``cond (k/n)``, or ``none``;
    - per statistic of :data:`STATS` in ``table``: ``<stat>_ref`` (+ ``_ref_lo``/``_ref_hi``) in
      ``base``, ``<stat>_min``/``<stat>_max`` with ``<stat>_min_cond``/``<stat>_max_cond``;
      ``signature_name``, the signature column;
    - per statistic in ``contrasts``: ``<stat>_clear_lower``/``<stat>_clear_higher`` (``cond
      (q=...)`` or ``none``) and their counts ``<stat>_n_clear_lower``/``_higher``; ``n_tests`` and
      ``n_clear`` over all of them;
    - with ``faith``: ``f_m``, ``f_c``, ``f_0``, ``ratio``, ``norm``, each with ``_lo``/``_hi``;
    - the ``worst`` prompts of :func:`worst_prompts`: ``n_worst``, ``worst_model_right`` (how many
      of them the model gets right), ``worst_model_min``/``_max`` (their model logit differences)
      and ``worst_conditions`` (``cond (count)``);
    - the ablation reference: ``ref_n_groups``, ``ref_n_prompts``, ``ref_group_min`` (NaN when
      the ablation was not a mean)."""
    ok = _scored(scores)
    out: dict = {"n_prompts": len(scores), "n_scored": len(ok), "n_flagged": len(scores) - len(ok),
                 "n_conditions": len(table), "n_contrasts": len(table) - 1, "base": base,
                 "n_min": table.n.min(), "n_max": table.n.max(),
                 "templates_min": table.n_clusters.min(), "templates_max": table.n_clusters.max()}
    for name, col in (("n", "n"), ("templates", "n_clusters")):
        lo, hi = int(table[col].min()), int(table[col].max())
        out[f"{name}_range"] = f"{lo}" if lo == hi else f"{lo} to {hi}"
    c = failure_counts(scores)
    out |= {"n_model_right": c["n"] - c["model_wrong"], "n_model_wrong": c["model_wrong"],
            "n_circuit_wrong": c["circuit_wrong"], "n_both_wrong": c["both_wrong"]}
    right = (table.accuracy * table.n).round().astype(int)
    out["accuracy_misses"] = names_or_none(f"{cond} ({k}/{n})" for cond, k, n in
                                           zip(table.index, right, table.n) if k < n)
    out["signature_name"] = table.attrs.get("signature") or "none"
    for s in STATS:
        if s not in table.columns or table[s].isna().all():
            continue
        out |= {f"{s}_ref": table.loc[base, s], f"{s}_ref_lo": table.loc[base, f"{s}_lo"],
                f"{s}_ref_hi": table.loc[base, f"{s}_hi"],
                f"{s}_min": table[s].min(), f"{s}_min_cond": table[s].idxmin(),
                f"{s}_max": table[s].max(), f"{s}_max_cond": table[s].idxmax()}
    for stat in dict.fromkeys(contrasts.index.get_level_values(0)):
        d = contrasts.loc[stat]
        clear = d.q < FDR
        for side, mask in (("lower", d.difference < 0), ("higher", d.difference > 0)):
            names = d.index[clear & mask].tolist()
            out[f"{stat}_clear_{side}"] = _named_q(d, names)
            out[f"{stat}_n_clear_{side}"] = len(names)
    out["n_tests"], out["n_clear"] = len(contrasts), int((contrasts.q < FDR).sum())
    if faith is not None:
        for key, row in _FAITH_ROWS.items():
            for suffix, col in (("", "estimate"), ("_lo", "lo"), ("_hi", "hi")):
                out[f"{key}{suffix}"] = faith.loc[row, col]
    w = worst_prompts(scores, worst)
    out |= {"n_worst": len(w), "worst_model_right": int((w.logit_diff > 0).sum()),
            "worst_model_min": w.logit_diff.min(), "worst_model_max": w.logit_diff.max()}
    if "condition" in w.columns:
        out["worst_conditions"] = names_or_none(f"{k} ({n})" for k, n in w.condition.value_counts().items())
    abl = scores.attrs.get("circuitgen", {}).get("ablation") or {}
    out |= {"ref_n_groups": abl.get("n_groups", float("nan")),
            "ref_n_prompts": abl.get("n_reference_prompts", float("nan")),
            "ref_group_min": abl.get("group_size_min", float("nan"))}
    return {k: _plain(v) for k, v in out.items()}


def condition_values(table: pd.DataFrame, conditions,
                     stats=("faithfulness",)) -> dict[str, int | float | str]:
    """``<stat>_<condition>`` with ``_lo``/``_hi`` from :func:`by_condition`'s ``table`` for each
    condition and statistic, and for a proportion also ``_k`` and ``_n`` (prompts right, scored).
    A condition that was not scored (skipped for this tokenizer) gives NaN, so the text says so
    rather than the notebook failing."""
    if isinstance(conditions, str):
        conditions = [conditions]
    out = {}
    for cond in conditions:
        there = cond in table.index
        for s in stats:
            key = f"{s}_{cond}"
            for suffix in ("", "_lo", "_hi"):
                out[key + suffix] = table.loc[cond, f"{s}{suffix}"] if there else float("nan")
            if is_proportion(s):
                n = int(table.loc[cond, "n"]) if there else 0
                out[f"{key}_k"] = int(round(table.loc[cond, s] * n)) if there and n else 0
                out[f"{key}_n"] = n
    return {k: _plain(v) for k, v in out.items()}


def verdict(difference: float, q: float) -> str:
    """A contrast in words: ``clearly lower``/``clearly higher`` (q < :data:`FDR`), ``not clearly
    different`` (which is not evidence of no difference) or ``not tested`` (no q)."""
    if pd.isna(q) or pd.isna(difference):
        return "not tested"
    if q < FDR and difference != 0:
        return "clearly lower" if difference < 0 else "clearly higher"
    return "not clearly different"


def contrast_values(contrasts: pd.DataFrame, stat: str, row: str, key: str | None = None
                    ) -> dict[str, int | float | str]:
    """One contrast of :func:`contrast_table` / :func:`pair_contrasts` for glue: ``<key>_diff``
    with ``_diff_lo``/``_diff_hi``, ``_p``, ``_q`` and ``_verdict`` (:func:`verdict`); ``key``
    defaults to ``<stat>_<row>``. A contrast that is not in the table (a condition not scored)
    gives NaN and the verdict ``not scored``."""
    key = key or f"{stat}_{row}"
    if (stat, row) in contrasts.index:
        r = contrasts.loc[(stat, row)]
        vals = [r.difference, r.lo, r.hi, r.p, r.q, verdict(r.difference, r.q)]
    else:
        vals = [float("nan")] * 5 + ["not scored"]
    names = ("_diff", "_diff_lo", "_diff_hi", "_p", "_q", "_verdict")
    return {key + n: _plain(v) for n, v in zip(names, vals)}


def prompt_set_name(family: str, model: str, seed: int) -> str:
    """``<family>-<model slug>-seed<seed>``, the slug being the model name with ``/`` as ``--``."""
    return f"{family}-{paths.model_slug(model)}-seed{seed}"


def save_prompt_set(prompt_set: PromptSet, model: str, seed: int,
                    output_dir: str | pathlib.Path | None = None) -> pathlib.Path:
    """Write ``prompt_set`` (CSV + ``.meta.json``) as :func:`prompt_set_name` of its family under
    ``<output dir>/prompts/``: ``data/prompts/`` for the reference run (``output_dir`` None),
    the run's own folder otherwise, so other runs never overwrite the committed sets. Returns the
    CSV's path."""
    family = prompt_set.meta.get("family")
    if not family:
        raise ValueError("the prompt set's meta has no 'family'; make it with circuitgen.variations.")
    folder = paths.output_dir(None if output_dir is None else str(output_dir)) / "prompts"
    return prompt_set.save(folder / prompt_set_name(family, model, seed))


def shown_path(path: str | pathlib.Path) -> str:
    """``path`` relative to the repository when it is inside it (stable across checkouts), else
    as given."""
    return paths.shown_path(path)


__all__ = ["run_sweep", "family_scores", "score_file", "scoring_code_sha", "circuit_label",
           "by_condition", "ratio_of_means_ci", "format_table", "plot_conditions",
           "worst_prompts", "main_signature", "flag_lines", "difference_from_reference", "clearly_different",
           "compare_with_reference", "contrast_table", "replication_table", "is_proportion", "interval_note",
           "PROPORTION_STATS", "CLUSTER", "FDR", "failure_counts", "worst_prompt_lines", "prompt_set_name",
           "save_prompt_set", "shown_path", "STATS", "pair_contrasts", "format_contrasts", "reference_line",
           "names_or_none", "findings", "condition_values", "verdict", "contrast_values",
           "condition_intervals"]
