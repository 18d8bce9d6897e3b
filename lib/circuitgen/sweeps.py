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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuitgen import scorer
from circuitgen.behaviour import bootstrap_ci
from circuitgen.circuits import CircuitSpec
from circuitgen.ioi import PromptSet

N_RESAMPLES = 2000
STATS = ("accuracy", "logit_diff", "circuit_logit_diff", "faithfulness", "signature")


def run_sweep(model, spec: CircuitSpec, prompt_set: PromptSet | pd.DataFrame, knockouts: bool = False,
              seed: int = 0, batch_size: int = 16) -> pd.DataFrame:
    """One row per prompt of ``prompt_set``: its columns (family, condition, features, ...) and the
    scorer's columns. Unscorable rows stay, with ``status`` saying why and NaN scores."""
    df = prompt_set.df if isinstance(prompt_set, PromptSet) else prompt_set
    scores = scorer.score_circuit(model, spec, df, knockouts=knockouts, skip_invalid=True,
                                  progress=False, seed=seed, batch_size=batch_size)
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
        if len(ok):
            cols = {"accuracy": (ok.logit_diff > 0).astype(float), "logit_diff": ok.logit_diff,
                    "circuit_logit_diff": ok.circuit_logit_diff}
            if sig:
                cols["signature"] = ok[sig]
            for name, vals in cols.items():
                m, lo, hi = bootstrap_ci(vals, n_resamples=N_RESAMPLES, seed=seed)
                row |= {name: m, f"{name}_lo": lo, f"{name}_hi": hi}
            m, lo, hi = ratio_of_means_ci(ok.circuit_logit_diff, ok.logit_diff, seed=seed)
            row |= {"faithfulness": m, "faithfulness_lo": lo, "faithfulness_hi": hi}
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


__all__ = ["run_sweep", "by_condition", "ratio_of_means_ci", "format_table", "plot_conditions",
           "worst_prompts", "main_signature", "STATS"]
