"""The circuit scorer: per-prompt scores of how much a circuit does the work.

``score_circuit(model, spec, prompts)`` returns one row per prompt (input columns passed through):

- ``logit_diff``: the model's IO - S logit difference at END;
- ``circuit_logit_diff``: the same with every (position, head) outside the circuit ablated (and,
  for a spec with ``mlps:``, every (position, MLP) outside it);
- ``empty_logit_diff``: the same with *every* head ablated (and every MLP, for a spec with
  ``mlps:``), F(∅), the baseline against which
  normalised faithfulness (F(C) - F(∅)) / (F(M) - F(∅)) is measured (Hanna et al. 2024, MIB);
- ``faithfulness``: circuit_logit_diff / logit_diff for this prompt (the paper's figure is a ratio
  of *means*, recorded in the metadata as ``faithfulness_ratio_of_means``, beside
  ``normalised_faithfulness``);
- ``sig_<class>``: mean attention, over the class's heads, from its signature's query position to
  its key position (e.g. name movers END -> IO), on the clean run;
- ``ko_<class>``: change in logit difference when that class alone is ablated at every position;
- ``status``: ``ok``, or why the row could not be scored (only with ``skip_invalid=True``).

All variants of a batch (clean, circuit, one per knock-out) run in one tiled forward pass, and only
END is unembedded. The ablation reference (method, distribution, grouping, sizes, seed, hash; see
:mod:`circuitgen.reference`) is a parameter and is recorded in ``df.attrs["circuitgen"]``. Scores do
not depend on how prompts are batched.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch
from tqdm.auto import tqdm

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import resume
from circuitgen.circuits import Ablation, CircuitSpec, validate_for_model  # Ablation: one type, re-exported
from circuitgen.task import (
    AblationReferenceError,
    PromptError,
    Task,
    get_task,
    group_keys,
    normalised_faithfulness,
    ratio_of_means,
)

MULTI_TOKEN_POLICY = (
    "refused: a name that is several tokens with a leading space has no single answer token, so "
    "its logit difference is undefined; the row is reported, never scored on a partial token"
)


def check_prompts(model, df: pd.DataFrame, task: str | Task | None = None) -> pd.DataFrame:
    """Validate every row for ``task`` (default IOI); returns a table with ``status`` ('ok' or the
    reason) and the task's positions."""
    task = get_task(task)
    task.check_columns(df)
    n_ctx = model.cfg.n_ctx
    rows = []
    for idx, r in zip(df.index, B.records(df)):
        row = {"status": "ok"}
        try:
            if not isinstance(r["prompt"], str) or not r["prompt"].strip():
                raise PromptError(f"row {idx}: the prompt is empty.")
            found = task.locate(model.tokenizer, r, idx)
            if found["n_tokens"] > n_ctx:
                raise PromptError(f"row {idx}: the prompt is {found['n_tokens']} tokens (BOS "
                                  f"included); the model's context is {n_ctx}. Shorten it.")
            task.answer_tokens(model.tokenizer, r)
            row |= found
        except PromptError as err:
            row["status"] = str(err) if str(err).startswith("row ") else f"row {idx}: {err}"
        rows.append(row)
    return pd.DataFrame(rows, index=df.index)


def _raise_on_invalid(checked: pd.DataFrame) -> None:
    bad = checked[checked.status != "ok"]
    if len(bad):
        shown = "\n  ".join(bad.status.head(10))
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise PromptError(f"{len(bad)} of {len(checked)} prompts cannot be scored:\n  {shown}{more}\n"
                          "Fix them, or pass skip_invalid=True (--skip-invalid) to score the rest "
                          "and keep these rows with their reason in the status column.")


def _signature_hooks(spec: CircuitSpec, batch: B.TaskBatch, store: dict) -> list:
    """Capture, on the clean rows (the first tile), each signature head's attention weight."""
    n = len(batch)
    rows = torch.arange(n)
    by_layer: dict[int, list] = {}
    for cls in spec.classes.values():
        if cls.signature is None:
            continue
        src, dst = batch.pos[cls.signature.source], batch.pos[cls.signature.target]
        for layer, head in cls.heads:
            by_layer.setdefault(layer, []).append((cls.name, head, src, dst))

    hooks = []
    for layer, items in by_layer.items():
        def hook(pattern, hook, items=items):
            for name, head, src, dst in items:
                store.setdefault(name, []).append(pattern[rows, head, src, dst])
        hooks.append((f"blocks.{layer}.attn.hook_pattern", hook))
    return hooks


_FIXED_MEANS: dict[tuple, A.MeanReference] = {}


def spec_ablation(spec: CircuitSpec) -> Ablation:
    """The scorer's ablation for a spec's ``ablation:`` block (method and ``group_by``)."""
    wanted = spec.ablation
    if wanted.method == "mean" and wanted.reference not in (None, "abc"):
        raise ValueError(f"{spec.source}: ablation reference {wanted.reference!r} is not one the "
                         "scorer implements; use reference: abc (the ABC prompts), or pass an "
                         "Ablation explicitly.")
    return replace(wanted, group_by=wanted.group_by or None)  # a spec's () is the default rule too


def _valid_rows(model, prompts: pd.DataFrame, skip_invalid: bool, task: str | Task | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The check table, and the valid rows with positions this model's tokenizer gives."""
    checked = check_prompts(model, prompts, task)
    if not skip_invalid:
        _raise_on_invalid(checked)
    ok = checked.status == "ok"
    good = pd.concat([prompts[ok].drop(columns=[c for c in checked.columns if c in prompts.columns
                                                 and c != "status"]), checked[ok]], axis=1)
    return checked, good


def scorable_rows(model, prompts: pd.DataFrame, task: str | Task | None = None) -> pd.DataFrame:
    """The rows of ``prompts`` this model can score, with the positions its tokenizer gives (the
    rest are reported by :func:`check_prompts`): what a sweep scores, for callers that build on
    the same prompts."""
    return _valid_rows(model, prompts, skip_invalid=True, task=task)[1]


def counterfactual_reference(model, prompts: pd.DataFrame, ablation: Ablation, task: Task
                             ) -> tuple[A.ReferenceBatch, tuple[str, ...]]:
    """A task's mean-ablation reference, for tasks without one of their own: the counterfactual
    partners of the reference prompts (``ablation.reference_prompts``, else the scored prompts),
    grouped by ``ablation.group_by`` or the task's grouping columns the prompts have (none: one
    group). A group with fewer than ``ablation.min_per_group`` prompts is refused, never padded."""
    cols = tuple(ablation.group_by) if ablation.group_by else task.reference_groups(prompts)
    source = prompts if ablation.reference_prompts is None else ablation.reference_prompts
    source = task.counterfactuals(source.reset_index(drop=True), model.tokenizer, seed=ablation.seed)
    keys = group_keys(source, cols) if cols else ["all"] * len(source)
    wanted = set(group_keys(prompts, cols)) if cols else {"all"}
    sizes = pd.Series(keys).value_counts()
    short = {k: int(sizes.get(k, 0)) for k in sorted(wanted) if sizes.get(k, 0) < ablation.min_per_group}
    if short:
        raise AblationReferenceError(f"the {task.name} mean reference has fewer than "
                               f"{ablation.min_per_group} counterfactual prompts in group(s) "
                               f"{dict(list(short.items())[:5])} (grouped by {list(cols)}); give more "
                               "prompts or a larger reference table, group by fewer columns, or "
                               "lower min_per_group (an explicit, recorded choice).")
    batch = B.encode(model, source, prompt_col=task.counterfactual_column, task=task)
    label = f"{task.name} counterfactuals of the " + ("scored prompts" if ablation.reference_prompts
                                                       is None else "given reference table")
    return A.ReferenceBatch(batch, keys, dict.fromkeys(sorted(set(keys)), label)), cols


@torch.no_grad()
def mean_reference(model, prompts: pd.DataFrame, ablation: Ablation | None = None,
                   batch_size: int = 32, task: str | Task | None = None) -> A.MeanReference:
    """Per-(group, role) mean ``z`` over the reference for ``prompts``: for IOI the ABC
    reference (see :mod:`circuitgen.reference`; the fixed generated reference is computed once
    per model), for another task its counterfactuals (:func:`counterfactual_reference`)."""
    ablation = ablation or Ablation()
    task = get_task(task)
    if ablation.method != "mean":
        raise ValueError(f"a mean reference is for mean ablation, not {ablation.method!r}.")
    if ablation.reference not in (None, "abc"):
        raise ValueError(f"ablation reference {ablation.reference!r} is not one the scorer "
                         "implements; use reference='abc' (the ABC prompts).")
    _, prompts = _valid_rows(model, prompts, skip_invalid=False, task=task)
    if ablation.reference_prompts is not None:
        _, ref_rows = _valid_rows(model, ablation.reference_prompts, skip_invalid=False, task=task)
        ablation = replace(ablation, reference_prompts=ref_rows)
    # A reference that does not depend on the scored prompts (IOI's fixed generated one) is
    # computed once per model.
    fixed = task.fixed_reference_key(prompts, ablation)
    key = None if fixed is None else (id(model), task.name, fixed)
    if key is not None and key in _FIXED_MEANS:
        return _FIXED_MEANS[key]
    built = task.reference(model, prompts, ablation)
    ref, cols = built if built is not None else counterfactual_reference(model, prompts, ablation, task)
    means = _means(model, ref, cols, ablation, batch_size, source=task.reference_source)
    if key is not None:
        _FIXED_MEANS[key] = means
    return means


def _means(model, ref: A.ReferenceBatch, cols: tuple[str, ...], ablation: Ablation, batch_size: int,
           source: str = "counterfactual prompts") -> A.MeanReference:
    """The means over a built reference, with its provenance recorded."""
    sizes = ref.sizes()
    details = {"min_per_group": ablation.min_per_group, "seed": ablation.seed,
               "group_size_min": int(sizes.min()), "group_size_median": float(sizes.median()),
               "sources": sorted(set(ref.sources.values())), "sha256_16": ref.digest(),
               "legacy": ablation.legacy}
    return A.compute_means(model, ref.batch, ref.keys, cols, batch_size=batch_size,
                           source=source, details=details)


@torch.no_grad()
def score_circuit(model, spec: CircuitSpec, prompts: pd.DataFrame, *, ablation: Ablation | None = None,
                  means: A.MeanReference | None = None, batch_size: int = 16, knockouts: bool = True,
                  skip_invalid: bool = False, progress: bool = True, seed: int = 0,
                  task: str | Task | None = None) -> pd.DataFrame:
    """Score ``spec`` on every prompt; see the module docstring for the columns. Without
    ``ablation``, the spec's own (method and grouping) is used, as the command line does. The
    task is the spec's (``task:``) unless given; a spec found for another task is refused."""
    task = get_task(task if task is not None else spec.task)
    if spec.task != task.name:
        raise ValueError(f"{spec.source} is a circuit for the {spec.task!r} task, not {task.name!r}; "
                         "score it on its own task's prompts (--task).")
    ablation = ablation or spec_ablation(spec)
    validate_for_model(spec, model.cfg.n_layers, model.cfg.n_heads, model.circuitgen.model)
    checked, good = _valid_rows(model, prompts, skip_invalid, task)
    cf = task.counterfactual_column
    if ablation.method == "resample" and len(good):
        good = task.counterfactuals(good, model.tokenizer, seed=seed)
    if ablation.method == "mean" and means is None and len(good):
        means = mean_reference(model, good, ablation, task=task)
    if spec.mlps is not None and ablation.method == "mean" and means is not None and means.mlp_means is None:
        raise ValueError(f"{spec.source} ablates MLPs (mlps:) but the given MeanReference holds no "
                         "MLP means; rebuild it with scorer.mean_reference(model, prompts).")

    names = list(spec.classes)
    results = []
    bar = tqdm(total=len(good), desc="scoring", unit="prompt", disable=not progress)
    for sl in B.chunks(len(good), batch_size):
        part = good.iloc[sl]
        batch = B.encode(model, part, task=task)
        abc = B.encode(model, part, prompt_col=cf, task=task) if ablation.method == "resample" else None
        groups = means.keys(part) if ablation.method == "mean" else None
        keeps = [A.full_keep(model, batch), A.circuit_keep(spec, model, batch),
                 A.empty_keep(model, batch)]
        if knockouts:
            keeps += [A.knockout_keep(spec.classes[n].heads, model, batch) for n in names]
        keep = torch.stack(keeps)
        if spec.mlps is None:  # every MLP runs in every variant
            replace = A.replacement_fn(ablation.method, batch, means=means, groups=groups,
                                       model=model, abc=abc)
            mlp_keep = mlp_replace = None
        else:  # MLP nodes: kept in the circuit, all ablated in F(∅), intact in M and knock-outs
            replace, mlp_replace = A.replacement_fns(ablation.method, batch, means=means,
                                                     groups=groups, model=model, abc=abc)
            full = A.full_mlp_keep(model, batch)
            mlp_keep = torch.stack([full, A.circuit_mlp_keep(spec, model, batch),
                                    A.empty_mlp_keep(model, batch)] + [full] * (len(keeps) - 3))
        store: dict[str, list] = {}
        # variants share the unablated model below each knock-out's first head: run those blocks once
        diffs = resume.run_variants_resumed(model, batch, keep, replace, mlp_keep, mlp_replace,
                                            fwd_hooks=_signature_hooks(spec, batch, store))
        cols = {"logit_diff": diffs[0], "circuit_logit_diff": diffs[1], "empty_logit_diff": diffs[2]}
        for name, vals in store.items():
            cols[f"sig_{name}"] = torch.stack(vals).mean(0)
        if knockouts:
            for i, name in enumerate(names):
                cols[f"ko_{name}"] = diffs[3 + i] - diffs[0]
        results.append(pd.DataFrame({k: v.numpy() for k, v in cols.items()}, index=part.index))
        bar.update(len(part))
    bar.close()

    scores = pd.concat(results) if results else pd.DataFrame(index=good.index)
    scores["faithfulness"] = scores["circuit_logit_diff"] / scores["logit_diff"] if len(scores) else []
    # Positions are always those this model's tokenizer gives, and scores those just computed,
    # whatever the input carried (a scored table can be scored again, e.g. with another ablation).
    stale = [c for c in (*checked.columns, *scores.columns) if c in prompts.columns]
    out = prompts.drop(columns=stale)
    out = out.join(checked).join(scores)
    out.attrs["circuitgen"] = _metadata(model, spec, ablation, means, out, knockouts, task)
    return out


def _metadata(model, spec, ablation: Ablation, means, out: pd.DataFrame, knockouts: bool,
              task: Task) -> dict:
    ok = out[out.status == "ok"]
    f_m, f_c = ok.logit_diff.mean(), ok.circuit_logit_diff.mean()
    f_0 = ok.empty_logit_diff.mean() if len(ok) else float("nan")
    ratio = float(ratio_of_means(f_m, f_c)) if len(ok) else float("nan")
    normalised = float(normalised_faithfulness(f_m, f_c, f_0)) if len(ok) else float("nan")
    if ablation.method == "mean" and means is not None:
        abl = means.describe() | {"label": ablation.label()}
    elif ablation.method == "resample":
        abl = {"method": "resample", "reference": f"each prompt's own {task.counterfactual_label}"}
    else:
        abl = {"method": ablation.method}
    return {
        "model": model.circuitgen.model, "circuit": spec.source, "circuit_model": spec.model,
        "n_prompts": len(out), "n_scored": len(ok), "n_flagged": int((out.status != "ok").sum()),
        "faithfulness_ratio_of_means": ratio, "normalised_faithfulness": normalised,
        "F(M)": float(f_m) if len(ok) else float("nan"), "F(C)": float(f_c) if len(ok) else float("nan"),
        "F(empty)": float(f_0), "ablation": abl, "knockouts": knockouts,
        "circuit_kept_at": "each head at its positions (its own, else its class's); all other "
                           "(position, head) ablated" + ("" if spec.mlps is None else
                           "; each listed MLP at its positions, all other (position, MLP) ablated"),
        "mlps": ({"ablated": False, "note": "the spec has no mlps: every MLP runs in every variant"}
                 if spec.mlps is None else
                 {"ablated": True, "kept": [n.label for n in spec.nodes() if n.head is None],
                  "hook": "blocks.L.hook_mlp_out",
                  "empty_circuit": "every head and every MLP ablated",
                  "knockout": "MLPs intact"}),
        "knockout": "the class's heads ablated at every position, the rest of the model intact",
        "multi_token_names": MULTI_TOKEN_POLICY, "bos": True,
        "task": task.name, "metric": task.metric,
        "compatibility_mode": model.circuitgen.compatibility_mode,
    }


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and quartiles of the main scores over the scored rows."""
    ok = scores[scores.status == "ok"]
    cols = [c for c in ok.columns if c in ("logit_diff", "circuit_logit_diff", "faithfulness")
            or c.startswith(("sig_", "ko_"))]
    return ok[cols].describe(percentiles=[0.25, 0.5, 0.75]).T[["count", "mean", "25%", "50%", "75%"]]


__all__ = ["Ablation", "spec_ablation", "score_circuit", "check_prompts", "scorable_rows", "mean_reference",
           "summary", "MULTI_TOKEN_POLICY"]
