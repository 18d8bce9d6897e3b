"""Generalisation sweeps: score a circuit on a variation family and compare its conditions.

The four sweep notebooks (weeks 8-11: lexical, syntactic, domain, adversarial) are thin calls into
this module:

- :func:`run_sweep` scores every prompt of a family with :func:`circuitgen.scorer.score_circuit`
  (rows that cannot be scored are kept with their reason in ``status``; the ablation means come
  from the set's own ABC prompts, per template, the scorer's default) and keeps the family,
  condition and per-prompt feature columns;
- :func:`by_condition` summarises per condition, each statistic with a seeded percentile
  bootstrap 95% CI over prompts: accuracy (logit difference > 0), mean logit difference, mean
  circuit logit difference, faithfulness as a **ratio of means** (circuit / model; its CI from a
  *paired* bootstrap, the same resampled prompts in numerator and denominator) and the mean of the
  main attention signature (the spec's first class with one);
- :func:`plot_conditions` draws each condition's point and CI for the logit difference and the
  faithfulness, with a reference line at the base condition;
- :func:`worst_prompts` lists the scored prompts where the circuit's logit difference is lowest.

The notebooks print their key results with the line-builders below, so the four of them say the
same things the same way (each returns a list of lines; the notebook prints them):

- :func:`flag_lines`: how many prompts were made, scored and flagged, the conditions the generator
  skipped and the names dropped, the n per condition and the commonest reasons for flags;
- :func:`difference_from_reference` / :func:`clearly_different` / :func:`compare_with_reference`:
  each condition's difference from the reference condition with a bootstrap CI that resamples
  both, and the conditions whose difference CI excludes zero;
- :func:`failure_counts` / :func:`worst_prompt_lines`: how often the circuit and the model prefer S,
  and the prompts where the circuit does worst;
- :func:`save_prompt_set`: the generated set written as ``<family>-<model>-seed<SEED>.csv`` (with
  its ``.meta.json``) under ``data/prompts/`` for the reference run, else under the run's folder.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from circuitgen import paths, scorer
from circuitgen.behaviour import bootstrap_ci
from circuitgen.circuits import CircuitSpec
from circuitgen.ioi import PromptSet

N_RESAMPLES = 2000
STATS = ("accuracy", "logit_diff", "circuit_logit_diff", "faithfulness", "signature")


def run_sweep(model, spec: CircuitSpec, prompt_set: PromptSet | pd.DataFrame, knockouts: bool = False,
              seed: int = 0, batch_size: int = 16, ablation: scorer.Ablation | None = None) -> pd.DataFrame:
    """One row per prompt of ``prompt_set``: its columns (family, condition, features, ...) and the
    scorer's columns. Unscorable rows stay, with ``status`` saying why and NaN scores.
    ``ablation``: the scorer's (default: mean over the set's own ABC prompts, per template)."""
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


def ratio_of_means_ci(num, den, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean(num) / mean(den), low, high): a paired percentile bootstrap over prompts (the same
    resampled rows in numerator and denominator), seeded. Fewer than two rows: NaN bounds."""
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"numerator and denominator differ in length: {x.shape} vs {y.shape}.")
    if x.size == 0:
        raise ValueError("ratio_of_means_ci needs at least one pair.")
    est = float(x.mean() / y.mean())
    if x.size == 1:
        return est, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = x[idx].mean(1) / y[idx].mean(1)
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(boot, [alpha, 1 - alpha])
    return est, float(lo), float(hi)


def by_condition(scores: pd.DataFrame, seed: int = 0, by: str = "condition") -> pd.DataFrame:
    """Per condition (in order of appearance): ``n`` scored, ``n_flagged``, and for each of
    :data:`STATS` the estimate with ``_lo``/``_hi`` bootstrap 95% bounds."""
    sig = main_signature(scores)
    rows = []
    for key, g in scores.groupby(by, sort=False):
        ok = g[g.status == "ok"]
        row = {by: key, "n": len(ok), "n_flagged": int((g.status != "ok").sum())}
        for name in (s for s in STATS if len(ok) and (sig or s != "signature")):
            x, y = _stat_values(ok, name, sig)
            m, lo, hi = (ratio_of_means_ci(x, y, seed=seed) if y is not None
                         else bootstrap_ci(x, n_resamples=N_RESAMPLES, seed=seed))
            row |= {name: m, f"{name}_lo": lo, f"{name}_hi": hi}
        rows.append(row)
    cols = [by, "n", "n_flagged"] + [f"{s}{suf}" for s in STATS for suf in ("", "_lo", "_hi")]
    out = pd.DataFrame(rows).reindex(columns=cols).set_index(by)
    out.attrs["signature"] = sig
    return out


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """Estimates to 2 decimals with their CIs to 1 decimal, as strings ``est [lo, hi]``."""
    out = table[["n", "n_flagged"]].copy()
    for s in STATS:
        if s in table.columns:
            out[s] = [f"{m:.2f} [{lo:.1f}, {hi:.1f}]" if pd.notna(m) else "-"
                      for m, lo, hi in zip(table[s], table[f"{s}_lo"], table[f"{s}_hi"])]
    if table.attrs.get("signature"):
        out = out.rename(columns={"signature": table.attrs["signature"]})
    return out


def plot_conditions(table: pd.DataFrame, title: str, base: str | None = None):
    """Point + 95% CI per condition for the model's and the circuit's logit difference and for the
    faithfulness (ratio of means); dashed lines mark the ``base`` condition (default: the first)."""
    import matplotlib.pyplot as plt

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
            err = np.vstack([est - table[f"{col}_lo"].to_numpy(float),
                             table[f"{col}_hi"].to_numpy(float) - est])
            ax.errorbar(est, y + dy, xerr=err, fmt="o", color=color, capsize=3, label=label)
            if base in table.index:
                ax.axvline(table.loc[base, col], color=color, ls="--", lw=1, alpha=0.7)
        ax.axvline(neutral, color="k", lw=0.8)
        ax.set_xlabel(xlabel)
    axes[0].set_yticks(y, [f"{c} (n={n})" for c, n in zip(table.index, table.n)])
    axes[0].set_ylabel("condition")
    axes[0].legend(loc="best", fontsize=8, title=f"dashed: {base}", title_fontsize=8)
    axes[1].set_title("Faithfulness (95% CI, paired bootstrap)")
    axes[0].set_title("Logit difference (95% CI)")
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
    return scores[scores.status == "ok"]


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
    """Per-prompt values of ``stat`` (numerator and denominator for the ratio ``faithfulness``)."""
    if stat == "faithfulness":
        return ok.circuit_logit_diff.to_numpy(float), ok.logit_diff.to_numpy(float)
    if stat == "accuracy":
        return (ok.logit_diff > 0).to_numpy(float), None
    if stat == "signature":
        if sig is None:
            raise KeyError("these scores have no signature column.")
        return ok[sig].to_numpy(float), None
    if stat in ("logit_diff", "circuit_logit_diff"):
        return ok[stat].to_numpy(float), None
    raise KeyError(f"unknown statistic {stat!r}; choose one of {list(STATS)}.")


def _boot(x: np.ndarray, y: np.ndarray | None, rng, n_resamples: int) -> tuple[float, np.ndarray]:
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    if y is None:
        return float(x.mean()), x[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(x.mean() / y.mean()), x[idx].mean(1) / y[idx].mean(1)


def difference_from_reference(scores: pd.DataFrame, base: str, stat: str, by: str = "condition",
                              seed: int = 0, confidence: float = 0.95,
                              n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """Per condition other than ``base``: ``stat`` (one of :data:`STATS`) of the condition minus
    that of ``base``, with a percentile-bootstrap CI that resamples the condition's prompts and the
    reference's prompts independently (the ratio of means in pairs within each), seeded. Unlike
    comparing one condition's CI with the reference's point estimate, the reference's own
    uncertainty counts."""
    ok = _scored(scores)
    if base not in set(ok[by]):
        raise KeyError(f"reference condition {base!r} has no scored prompts "
                       f"(conditions: {list(dict.fromkeys(scores[by]))}).")
    sig = main_signature(scores)
    rng = np.random.default_rng(seed)
    ref_est, ref_boot = _boot(*_stat_values(ok[ok[by] == base], stat, sig), rng, n_resamples)
    alpha = (1 - confidence) / 2
    rows = []
    for key, g in ok.groupby(by, sort=False):
        if key == base:
            continue
        est, boot = _boot(*_stat_values(g, stat, sig), rng, n_resamples)
        lo, hi = np.nanquantile(boot - ref_boot, [alpha, 1 - alpha]) if len(g) > 1 else (np.nan, np.nan)
        rows.append({by: key, "difference": est - ref_est, "lo": float(lo), "hi": float(hi)})
    return pd.DataFrame(rows, columns=[by, "difference", "lo", "hi"]).set_index(by)


def clearly_different(scores: pd.DataFrame, base: str, stat: str, seed: int = 0,
                      by: str = "condition") -> dict[str, list[str]]:
    """Conditions whose difference from ``base`` in ``stat`` has a 95% CI wholly below zero
    (``"lower"``) or above it (``"higher"``), from :func:`difference_from_reference`, in order of
    appearance. A screen at 95% per comparison, not corrected for the number of conditions."""
    d = difference_from_reference(scores, base, stat, by=by, seed=seed)
    return {"lower": d.index[d.hi < 0].tolist(), "higher": d.index[d.lo > 0].tolist()}


def compare_with_reference(scores: pd.DataFrame, table: pd.DataFrame, base: str,
                           stats: tuple[str, ...] = ("accuracy", "logit_diff", "faithfulness"),
                           seed: int = 0) -> list[str]:
    """One line per statistic naming the conditions clearly lower / higher than ``base`` (see
    :func:`clearly_different`), then the conditions with the lowest and highest faithfulness and
    the lowest accuracy (from ``table``, :func:`by_condition`'s output)."""
    lines = []
    for stat in stats:
        diff = clearly_different(scores, base, stat, seed=seed, by=table.index.name or "condition")
        lines.append(f"{stat} (reference {table.loc[base, stat]:.2f}): clearly lower in "
                     f"{diff['lower'] or 'none'}; clearly higher in {diff['higher'] or 'none'}")
    lines.append(f"lowest faithfulness: {table.faithfulness.idxmin()} ({table.faithfulness.min():.2f}); "
                 f"highest: {table.faithfulness.idxmax()} ({table.faithfulness.max():.2f})")
    lines.append(f"lowest accuracy: {table.accuracy.idxmin()} ({table.accuracy.min():.2f})")
    return lines


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


def prompt_set_name(family: str, model: str, seed: int) -> str:
    """``<family>-<model slug>-seed<seed>``, the slug being the model name with ``/`` as ``--``."""
    return f"{family}-{model.replace('/', '--')}-seed{seed}"


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
    p = pathlib.Path(path).resolve()
    return str(p.relative_to(paths.REPO_ROOT)) if p.is_relative_to(paths.REPO_ROOT) else str(path)


__all__ = ["run_sweep", "by_condition", "ratio_of_means_ci", "format_table", "plot_conditions",
           "worst_prompts", "main_signature", "flag_lines", "difference_from_reference", "clearly_different",
           "compare_with_reference", "failure_counts", "worst_prompt_lines", "prompt_set_name",
           "save_prompt_set", "shown_path", "STATS"]
