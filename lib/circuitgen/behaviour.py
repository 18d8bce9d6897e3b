"""IOI behaviour: logit difference and accuracy, direct logit attribution, the logit lens (week 4).

Every quantity is read at each prompt's own END position of a right-padded batch
(:mod:`circuitgen.batch`), so prompts of different lengths and templates can share a batch.

- :func:`score_prompts`: per prompt, the logit difference IO - S at END, whether it is positive
  (``correct``), whether IO is the top token (``top1_io``) and its probability (``p_io``).
- :func:`dla`: direct logit attribution of the IO - S logit difference, per prompt, to every
  attention head (``unit="head"``, ``[n_prompts, n_layers, n_heads]``) or to every layer's
  attention and MLP output (``unit="component"``, ``[n_prompts, n_layers, 2]``). It is
  TransformerLens's :func:`~transformer_lens.tools.analysis.direct_logit_attribution` run on the
  padded batch's cache (``pos=None``), gathered at END. :func:`dla_terms` also returns what the
  tensor leaves out (TransformerLens's ``remainder``: embeddings, MLPs, attention biases; or the
  embeddings), so that ``values.sum() + rest + (b_U[IO] - b_U[S])`` rebuilds the model's logit
  difference, which the tests check.
- :func:`logit_lens_diff`: the logit lens read out as the IO - S logit difference, per prompt
  and per layer: the accumulated residual stream at END (``cache.accumulated_resid``), through
  the real final norm with recomputed statistics, dotted with ``W_U[:, IO] - W_U[:, S]``, plus
  ``b_U[IO] - b_U[S]``. Its last entry is the model's logit difference (checked on every batch).
- :func:`analyse` does all three in one forward pass per batch, as the notebook needs.
- :func:`summarise`: accuracy and top-1 rate with exact (Clopper-Pearson) intervals and the mean
  logit difference with a bootstrap one (:mod:`circuitgen.stats`); :func:`bootstrap_ci`: a mean
  with a seeded percentile-bootstrap interval.

DLA and the lens need the model loaded in compatibility mode (``load_model``'s default), where
the final norm's weights are folded into the unembedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformer_lens.tools.analysis import direct_logit_attribution

from circuitgen import batch as B
from circuitgen import stats

SCORE_COLUMNS = ("logit_diff", "correct", "top1_io", "p_io")
UNITS = ("head", "component")
COMPONENTS = ("attention", "mlp")
ATTENTION_TARGETS = ("IO", "S1", "S2", "BOS", "END")
# The last lens entry must reproduce the model's logit difference to this (float32) tolerance.
LENS_ATOL = 1e-3


@dataclass
class DLATerms:
    """Per-prompt direct logit attribution of the IO - S logit difference at END.

    ``values``: ``[n_prompts, n_layers, n_heads]`` (unit ``"head"``) or
    ``[n_prompts, n_layers, 2]`` with attention then MLP (unit ``"component"``).
    ``rest``: ``[n_prompts]``, the attribution of everything not in ``values`` (for heads,
    TransformerLens's ``remainder`` = embeddings + MLPs + attention biases; for components, the
    embeddings). ``unembed_bias``: ``b_U[IO] - b_U[S]``, which no component writes.
    ``logit_diff``: the model's own logit difference.
    """

    unit: str
    values: torch.Tensor
    rest: torch.Tensor
    unembed_bias: torch.Tensor
    logit_diff: torch.Tensor

    def total(self) -> torch.Tensor:
        """Sum of all attributions per prompt (``values`` + ``rest``): ``[n_prompts]``."""
        return self.values.flatten(1).sum(1) + self.rest

    def reconstruction_error(self) -> torch.Tensor:
        """``total + unembed_bias - logit_diff`` per prompt; zero up to float error."""
        return self.total() + self.unembed_bias - self.logit_diff


@dataclass
class Analysis:
    """Everything :func:`analyse` measures on one prompt table, one row per prompt."""

    scores: pd.DataFrame
    heads: DLATerms
    components: DLATerms
    lens: pd.DataFrame


def _cache_filter(model, incl_mid: bool):
    """The hooks DLA and the lens read (a full cache of every hook would be many times larger)."""
    n_layers = model.cfg.n_layers
    keep = {"hook_embed", "hook_pos_embed", "ln_final.hook_scale",
            f"blocks.{n_layers - 1}.hook_resid_post"}
    for layer in range(n_layers):
        keep |= {f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z",
                 f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_mlp_out"}
        if incl_mid:
            keep.add(f"blocks.{layer}.hook_resid_mid")
    return lambda name: name in keep


def _require_compatibility(model) -> None:
    if not getattr(model, "compatibility_mode", False):
        raise ValueError(
            "direct logit attribution and the logit lens need the model in compatibility mode "
            "(final norm folded into the unembedding). Load it with "
            "circuitgen.load_model(name) (compatibility_mode=True is the default)."
        )


def _scores(end_logits: torch.Tensor, b: B.TaskBatch) -> dict[str, torch.Tensor]:
    rows = torch.arange(len(b))
    io, s = end_logits[rows, b.answer_id], end_logits[rows, b.wrong_id]
    return {
        "logit_diff": io - s,
        "correct": io > s,
        "top1_io": end_logits.argmax(-1) == b.answer_id,
        "p_io": torch.softmax(end_logits.float(), -1)[rows, b.answer_id],
    }


def _dla_batch(model, cache, b: B.TaskBatch, unit: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(values ``[n, L, H or 2]``, rest ``[n]``) for one batch, from TransformerLens's DLA."""
    r = direct_logit_attribution(model, answer_tokens=b.answer_id, incorrect_tokens=b.wrong_id,
                                 unit=unit, pos=None, cache=cache)
    at_end = r.attribution[:, torch.arange(len(b)), b.end]  # [component, n]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    if unit == "head":
        expected = [f"L{layer}H{head}" for layer in range(L) for head in range(H)] + ["remainder"]
        if r.labels != expected:
            raise RuntimeError(f"unexpected head labels from direct_logit_attribution: {r.labels[:4]}"
                               f"...{r.labels[-2:]}; expected L0H0..L{L - 1}H{H - 1}, remainder.")
        return at_end[:-1].T.reshape(len(b), L, H), at_end[-1]
    index = {label: i for i, label in enumerate(r.labels)}
    try:
        layers = [[index[f"{layer}_attn_out"], index[f"{layer}_mlp_out"]] for layer in range(L)]
    except KeyError as err:
        raise RuntimeError(f"direct_logit_attribution gave no {err} component (labels: "
                           f"{r.labels}); the model may be attention-only or hybrid.") from None
    used = {i for pair in layers for i in pair}
    rest = at_end[[i for i in range(len(r.labels)) if i not in used]].sum(0)
    return at_end[torch.tensor(layers)].permute(2, 0, 1), rest


def _lens_batch(model, cache, b: B.TaskBatch, incl_mid: bool) -> tuple[torch.Tensor, list[str]]:
    """IO - S logit difference read from the accumulated residual stream at END: ``[n, entries]``."""
    stack, labels = cache.accumulated_resid(layer=None, incl_mid=incl_mid, apply_ln=False,
                                            pos_slice=None, return_labels=True)
    at_end = stack[:, torch.arange(len(b)), b.end]  # [entries, n, d_model]
    # The real final norm with statistics recomputed for each entry, as TL's logit_lens does.
    normed = cache.apply_ln_to_stack(at_end, layer=None, has_batch_dim=True, recompute_ln=True)
    direction = model.W_U[:, b.answer_id] - model.W_U[:, b.wrong_id]  # [d_model, n]
    bias = model.b_U[b.answer_id] - model.b_U[b.wrong_id]
    diff = torch.einsum("end,dn->ne", normed, direction) + bias[:, None]
    return diff, labels


def _iterate(model, df: pd.DataFrame, batch_size: int, *, heads: bool, components: bool,
             lens: bool, incl_mid: bool = False, desc: str = "prompts", progress: bool = True):
    """Run the prompts batch by batch; yield the per-batch results as a dict of tensors."""
    need_cache = heads or components or lens
    if need_cache:
        _require_compatibility(model)
    b_all = B.encode(model, df)
    names_filter = _cache_filter(model, incl_mid)
    slices = list(B.chunks(len(df), batch_size))
    with torch.no_grad(), tqdm(total=len(df), desc=desc, unit="prompt", leave=False,
                               disable=not progress or len(slices) < 2) as bar:
        for sl in slices:
            b = b_all.subset(sl)
            if need_cache:
                logits, cache = model.run_with_cache(b.tokens, attention_mask=b.mask,
                                                     names_filter=names_filter)
            else:
                logits, cache = B.forward(model, b), None
            end_logits = B.at_end(logits, b)
            out = _scores(end_logits, b)
            out["unembed_bias"] = model.b_U[b.answer_id] - model.b_U[b.wrong_id]
            del logits
            if heads:
                out["heads"], out["heads_rest"] = _dla_batch(model, cache, b, "head")
            if components:
                out["components"], out["components_rest"] = _dla_batch(model, cache, b, "component")
            if lens:
                out["lens"], out["lens_labels"] = _lens_batch(model, cache, b, incl_mid)
                gap = (out["lens"][:, -1] - out["logit_diff"]).abs().max().item()
                if gap > LENS_ATOL * max(1.0, out["logit_diff"].abs().max().item()):
                    raise RuntimeError(
                        f"the logit lens's last entry differs from the model's logit difference "
                        f"by {gap:.2e}: the readout is not ln_final -> W_U (an output transform or "
                        "an unfolded final norm?). Load the model with load_model(name).")
            del cache
            yield out
            bar.update(len(b))


def _cat(parts: list[dict], key: str) -> torch.Tensor:
    return torch.cat([p[key].detach().cpu() for p in parts])


def _scores_frame(df: pd.DataFrame, parts: list[dict]) -> pd.DataFrame:
    out = df.copy()
    for col in SCORE_COLUMNS:
        out[col] = _cat(parts, col).numpy()
    return out


def _terms(parts: list[dict], unit: str) -> DLATerms:
    key = "heads" if unit == "head" else "components"
    return DLATerms(unit=unit, values=_cat(parts, key), rest=_cat(parts, f"{key}_rest"),
                    unembed_bias=_cat(parts, "unembed_bias"), logit_diff=_cat(parts, "logit_diff"))


def _lens_frame(df: pd.DataFrame, parts: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(_cat(parts, "lens").numpy(), index=df.index,
                        columns=parts[0]["lens_labels"])


def score_prompts(model, df: pd.DataFrame, batch_size: int = 32, progress: bool = True) -> pd.DataFrame:
    """``df`` with ``logit_diff`` (IO - S logit at END), ``correct`` (IO logit > S logit),
    ``top1_io`` (IO is the argmax) and ``p_io`` (softmax probability of IO) added.

    ``df`` needs ``prompt``, ``io`` and ``s``; position columns are found if missing. Prompts are
    right-padded in batches of ``batch_size`` and read at their own END.
    """
    parts = list(_iterate(model, df, batch_size, heads=False, components=False, lens=False,
                          desc="scoring", progress=progress))
    return _scores_frame(df, parts)


def dla_terms(model, df: pd.DataFrame, unit: str = "head", batch_size: int = 16,
              progress: bool = True) -> DLATerms:
    """Per-prompt DLA at END (see :class:`DLATerms`), with what it leaves out, for checks."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}.")
    parts = list(_iterate(model, df, batch_size, heads=unit == "head",
                          components=unit == "component", lens=False, desc=f"DLA ({unit})",
                          progress=progress))
    return _terms(parts, unit)


def dla(model, df: pd.DataFrame, unit: str = "head", batch_size: int = 16,
        progress: bool = True) -> torch.Tensor:
    """Direct logit attribution of IO - S at END, per prompt.

    ``unit="head"``: ``[n_prompts, n_layers, n_heads]``; ``unit="component"``:
    ``[n_prompts, n_layers, 2]`` (attention output, MLP output). In logit-difference units.
    """
    return dla_terms(model, df, unit, batch_size, progress).values


def logit_lens_diff(model, df: pd.DataFrame, batch_size: int = 16, incl_mid: bool = False,
                    progress: bool = True) -> pd.DataFrame:
    """IO - S logit difference the logit lens reads at END after each layer.

    One row per prompt (``df``'s index), one column per entry of the accumulated residual
    stream (``0_pre`` = embeddings, ..., ``final_post`` = the model's output). The last column
    equals :func:`score_prompts`'s ``logit_diff`` (checked).
    """
    parts = list(_iterate(model, df, batch_size, heads=False, components=False, lens=True,
                          incl_mid=incl_mid, desc="logit lens", progress=progress))
    return _lens_frame(df, parts)


def analyse(model, df: pd.DataFrame, batch_size: int = 16, incl_mid: bool = False,
            progress: bool = True) -> Analysis:
    """Scores, head and component DLA and the logit lens, in one forward pass per batch."""
    parts = list(_iterate(model, df, batch_size, heads=True, components=True, lens=True,
                          incl_mid=incl_mid, desc="IOI analysis", progress=progress))
    return Analysis(scores=_scores_frame(df, parts), heads=_terms(parts, "head"),
                    components=_terms(parts, "component"), lens=_lens_frame(df, parts))


def top_heads(values: torch.Tensor, k: int = 5, largest: bool = True) -> pd.DataFrame:
    """The ``k`` heads with the largest (or smallest) mean DLA over prompts.

    ``values`` is :func:`dla`'s ``[n_prompts, n_layers, n_heads]``. Columns: ``head``
    (``"L.H"``), ``layer``, ``head_index``, ``mean_dla``, ``std_dla``.
    """
    mean = values.mean(0)
    std = values.std(0) if len(values) > 1 else torch.zeros_like(mean)
    flat = mean.flatten()
    k = min(k, flat.numel())
    idx = torch.topk(flat, k, largest=largest).indices
    H = values.shape[2]
    return pd.DataFrame({
        "head": [f"{int(i) // H}.{int(i) % H}" for i in idx],
        "layer": [int(i) // H for i in idx],
        "head_index": [int(i) % H for i in idx],
        "mean_dla": flat[idx].tolist(),
        "std_dla": std.flatten()[idx].tolist(),
    })


def _parse_head(head) -> tuple[int, int]:
    if isinstance(head, str):
        layer, _, index = head.partition(".")
        return int(layer), int(index)
    layer, index = head
    return int(layer), int(index)


def end_attention(model, df: pd.DataFrame, heads, batch_size: int = 32,
                  progress: bool = True) -> pd.DataFrame:
    """How much each of ``heads`` attends from END to IO, S1, S2, BOS and END itself, per prompt.

    ``heads``: ``"layer.head"`` strings or ``(layer, head)`` pairs. Returns a long table: one row
    per prompt and head, with ``row`` (``df``'s index), ``head`` (``"L.H"``) and the attention
    probabilities in :data:`ATTENTION_TARGETS`. Name movers attend END -> IO (Wang et al. 2022).
    """
    pairs = [_parse_head(h) for h in heads]
    names = {f"blocks.{layer}.attn.hook_pattern" for layer, _ in pairs}
    b_all = B.encode(model, df)
    slices = list(B.chunks(len(df), batch_size))
    rows = []
    with torch.no_grad(), tqdm(total=len(df), desc="attention", unit="prompt", leave=False,
                               disable=not progress or len(slices) < 2) as bar:
        for sl in slices:
            b = b_all.subset(sl)
            _, cache = model.run_with_cache(b.tokens, attention_mask=b.mask,
                                            names_filter=lambda name: name in names)
            n = torch.arange(len(b))
            for layer, head in pairs:
                at_end = cache[f"blocks.{layer}.attn.hook_pattern"][n, head, b.end]  # [n, key]
                where = {"IO": b.pos["IO"], "S1": b.pos["S1"], "S2": b.pos["S2"],
                         "BOS": torch.zeros_like(b.end), "END": b.end}
                got = {role: at_end[n, where[role]].cpu() for role in ATTENTION_TARGETS}
                for j, idx in enumerate(df.index[sl]):
                    rows.append({"row": idx, "head": f"{layer}.{head}",
                                 **{role: float(v[j]) for role, v in got.items()}})
            del cache
            bar.update(len(b))
    return pd.DataFrame(rows, columns=["row", "head", *ATTENTION_TARGETS])


def bootstrap_ci(values, confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and a seeded percentile-bootstrap CI over independent values,
    :func:`circuitgen.stats.bootstrap_mean_ci` (kept under this name for the notebooks).

    One value: NaN bounds. Constant data: a zero-width interval at the value (a bootstrap cannot
    show spread the sample lacks), which is why proportions use :func:`summarise`'s exact
    intervals instead.
    """
    return tuple(stats.bootstrap_mean_ci(values, confidence, n_resamples, seed))


def summarise(scores: pd.DataFrame, by: str | list[str] | None = None, seed: int = 0,
              cluster: str | None = None) -> pd.DataFrame:
    """Accuracy, top-1 rate and mean logit difference, each with a 95% interval.

    Accuracy (``correct``) and the top-1 rate (``top1_io``) are shares of prompts, so they get the
    exact Clopper-Pearson interval, which stays honest at 20/20 where a bootstrap collapses to
    [1, 1]. The mean logit difference gets a seeded percentile bootstrap: over prompts, or over
    whole ``cluster`` groups (e.g. ``"template"``) when that column is given, since prompts of one
    template are not independent. ``by`` groups the rows (e.g. ``"order"`` or ``"template"``);
    ``None`` gives one row for all.
    """
    groups = [("all", scores)] if by is None else list(scores.groupby(by, sort=True))
    rows = []
    for key, g in groups:
        row = {"group": key, "n": len(g)}
        for col, name in (("correct", "accuracy"), ("top1_io", "top1")):
            hits = g[col].astype(bool)
            row |= dict(zip((name, f"{name}_lo", f"{name}_hi"),
                            stats.clopper_pearson(int(hits.sum()), len(hits))))
        ld = g["logit_diff"].to_numpy(float)
        ci = (stats.cluster_bootstrap_ci(ld, g[cluster].astype(str).to_numpy(), seed=seed)
              if cluster is not None else stats.bootstrap_mean_ci(ld, seed=seed))
        row |= dict(zip(("logit_diff", "logit_diff_lo", "logit_diff_hi"), ci))
        rows.append(row)
    out = pd.DataFrame(rows).set_index("group")
    out.index.name = by if isinstance(by, str) else None
    return out


__all__ = [
    "SCORE_COLUMNS", "UNITS", "COMPONENTS", "ATTENTION_TARGETS", "DLATerms", "Analysis", "score_prompts",
    "dla",
    "dla_terms", "logit_lens_diff", "analyse", "top_heads", "end_attention", "bootstrap_ci",
    "summarise",
]
