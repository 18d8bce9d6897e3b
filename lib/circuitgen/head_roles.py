"""What a head does, measured directly: attention signatures and the OV copy score.

Path patching says *that* a head matters and along which path; these measurements say *how*, so a
head can be classed by what it does and not only by the sign of its effect.

- :func:`attention_signatures`: mean attention, on clean prompts, from one role position to
  another (END->IO for name movers, S2->S1 for duplicate-token heads, ...).
- :func:`copy_scores`: the OV copy score of Wang et al. (2022, appendix "copy score"): take the
  residual stream at a name token's position after the first MLP layer
  (``blocks.0.hook_resid_post``), at IO, S1 and S2; pass it through the head's OV circuit alone
  (its layer's input norm ``ln1``, then W_V and b_V of the head's key/value group, then the
  head's W_O, no b_O), apply the final norm and unembed. The copy score is the fraction of
  (prompt, position) pairs where the name at that position (IO at IO, S at S1 and S2) is among
  the top-5 logits. The *negative* copy score does the same with -OV (the output negated before
  the final norm), i.e. it asks whether the head writes *against* the name, as Wang et al. do for
  negative name movers. On grouped-query models (SmolLM2: 9 query heads, 3 KV heads) query head
  h reads KV head ``h // (n_heads // n_kv_heads)``: ``W_V`` has one slice per KV head, ``W_O``
  one per query head. (Wang et al.'s code normalises with the second block's LayerNorm on a model
  with LayerNorm weights folded in; here each head's own ``ln1`` is applied, which is what the
  head actually reads.)
- :func:`head_roles`: both, for a list of heads, and a functional role read off them by the rule
  in :func:`functional_role`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from circuitgen import batch as B

SIGNATURES = {  # name: (query role, key role)
    "END->IO": ("END", "IO"), "END->S1": ("END", "S1"), "END->S2": ("END", "S2"),
    "S2->S1": ("S2", "S1"), "S2->S1+1": ("S2", "S1+1"), "S1+1->S1": ("S1+1", "S1"),
}
COPY_POSITIONS = (("IO", "io"), ("S1", "s"), ("S2", "s"))  # (position, whose name sits there)
COPY_THRESHOLD = 0.5  # functional_role: a head "copies" when its copy score is at least this


def _label(layer: int, head: int) -> str:
    return f"{layer}.{head}"


@torch.no_grad()
def attention_signatures(model, batch: B.TaskBatch, heads: Sequence[tuple[int, int]] | None = None
                         ) -> pd.DataFrame:
    """Mean attention of each head along each IOI signature, one row per head."""
    layers = sorted({l for l, _ in heads}) if heads else list(range(model.cfg.n_layers))
    names = {f"blocks.{l}.attn.hook_pattern" for l in layers}
    _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.mask,
                                    names_filter=lambda n: n in names)
    rows = torch.arange(len(batch))
    heads = heads or [(l, h) for l in layers for h in range(model.cfg.n_heads)]
    out = []
    for layer, head in heads:
        pat = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]
        rec = {"head": _label(layer, head)}
        for sig, (q, k) in SIGNATURES.items():
            rec[sig] = pat[rows, batch.pos[q], batch.pos[k]].mean().item()
        out.append(rec)
    return pd.DataFrame(out).set_index("head")


def kv_group(model, head: int) -> int:
    """The key/value head that query head ``head`` reads (itself without grouped-query attention)."""
    n_kv = int(getattr(model.cfg, "n_key_value_heads", None) or model.cfg.n_heads)
    return head // (model.cfg.n_heads // n_kv)


@torch.no_grad()
def name_residuals(model, batch: B.TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual after the first MLP layer at IO, S1 and S2 of every prompt, ``[3 * batch,
    d_model]`` (all IO rows, then all S1 rows, then all S2 rows), and the name token at each."""
    name = "blocks.0.hook_resid_post"
    _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.mask,
                                    names_filter=lambda n: n == name)
    rows = torch.arange(len(batch))
    resid = torch.cat([cache[name][rows, batch.pos[p]] for p, _ in COPY_POSITIONS])
    ids = torch.cat([batch.answer_id if who == "io" else batch.wrong_id for _, who in COPY_POSITIONS])
    return resid, ids


@torch.no_grad()
def ov_logits(model, resid: torch.Tensor, layer: int, head: int, sign: int = 1) -> torch.Tensor:
    """Logits of ``sign`` x the head's OV output on ``resid`` (``[n, d_model]``): ``ln1``, W_V and
    b_V of the head's KV group, W_O of the head (no b_O), final norm, unembedding. ``[n, vocab]``."""
    attn = model.blocks[layer].attn
    g = kv_group(model, head)
    if attn.W_V.shape[0] <= g or attn.W_O.shape[0] != model.cfg.n_heads:
        raise ValueError(f"unexpected OV shapes W_V {tuple(attn.W_V.shape)}, W_O "
                         f"{tuple(attn.W_O.shape)} for {model.cfg.n_heads} query heads")
    x = model.blocks[layer].ln1(resid)
    v = x @ attn.W_V[g]
    if attn.b_V is not None:
        v = v + attn.b_V[g]
    out = sign * (v @ attn.W_O[head])
    return model.unembed(model.ln_final(out)[:, None])[:, 0]


@torch.no_grad()
def copy_scores(model, batch: B.TaskBatch, heads: Sequence[tuple[int, int]], k: int = 5
                ) -> pd.DataFrame:
    """Copy score and negative copy score of each head (see the module docstring), one row per
    head: ``copy_score``, ``neg_copy_score`` in [0, 1], over ``3 * len(batch)`` name positions."""
    resid, ids = name_residuals(model, batch)
    out = []
    for layer, head in heads:
        rec = {"head": _label(layer, head)}
        for col, sign in (("copy_score", 1), ("neg_copy_score", -1)):
            top = ov_logits(model, resid, layer, head, sign).topk(k, dim=-1).indices
            rec[col] = (top == ids[:, None]).any(-1).float().mean().item()
        out.append(rec)
    return pd.DataFrame(out, columns=["head", "copy_score", "neg_copy_score"]).set_index("head")


def functional_role(row: pd.Series, copy_threshold: float = COPY_THRESHOLD) -> str:
    """A role read off a head's measurements alone (no path patching), by this rule, stated in
    advance: the head's strongest attention signature picks the family; for END->IO the copy scores
    decide between name mover (copies) and negative name mover (negatively copies); S2->S1+1 is induction,
    S2->S1 duplicate-token, S1+1->S1 previous-token. END->S1/S2 is S-inhibition-like. A head that
    attends END->IO but neither copies nor negatively copies is ``attends IO (no copy)``."""
    sig = row[list(SIGNATURES)].astype(float)
    top = sig.idxmax()
    copies = row.get("copy_score", 0.0) >= copy_threshold
    negative = row.get("neg_copy_score", 0.0) >= copy_threshold
    if top == "END->IO":
        if copies and not negative:
            return "name_mover"
        if negative and not copies:
            return "negative_name_mover"
        return "attends IO (no copy)"
    if top in ("END->S1", "END->S2"):
        return "s_inhibition"
    return {"S2->S1+1": "induction", "S2->S1": "duplicate_token",
            "S1+1->S1": "previous_token"}[top]


def head_roles(model, batch: B.TaskBatch, heads: Sequence[tuple[int, int]],
               signatures: pd.DataFrame | None = None, k: int = 5) -> pd.DataFrame:
    """Signatures, copy scores and :func:`functional_role` of ``heads``, one row per head."""
    if not heads:
        return pd.DataFrame(columns=[*SIGNATURES, "copy_score", "neg_copy_score", "role"])
    labels = [_label(*h) for h in heads]
    sig = (signatures.loc[labels] if signatures is not None
           else attention_signatures(model, batch, heads))
    table = sig.join(copy_scores(model, batch, heads, k=k))
    table["role"] = table.apply(functional_role, axis=1)
    return table


__all__ = ["SIGNATURES", "attention_signatures", "kv_group", "name_residuals", "ov_logits",
           "copy_scores", "functional_role", "head_roles"]
