"""Reading the residual stream: norms, per-component writes, and the logit lens (week 1)."""

from __future__ import annotations

import pandas as pd
import torch
from transformer_lens.tools.analysis import logit_lens


def residual_norms(cache, n_layers: int) -> torch.Tensor:
    """L2 norm of the residual stream entering each block and after the last, ``[n_layers+1, pos]``.

    Reads batch element 0 of the cache.
    """
    stack = [cache[f"blocks.{layer}.hook_resid_pre"][0] for layer in range(n_layers)]
    stack.append(cache[f"blocks.{n_layers - 1}.hook_resid_post"][0])
    return torch.stack(stack).norm(dim=-1)


def component_writes(cache, n_layers: int, pos: int = -1) -> pd.DataFrame:
    """Norm of what each layer's attention and MLP add to the residual stream at one position."""
    rows = []
    for layer in range(n_layers):
        rows.append({
            "layer": layer,
            "attention": cache[f"blocks.{layer}.hook_attn_out"][0, pos].norm().item(),
            "mlp": cache[f"blocks.{layer}.hook_mlp_out"][0, pos].norm().item(),
        })
    return pd.DataFrame(rows).set_index("layer")


def logit_lens_answer(model, tokens: torch.Tensor, answer: int, other: int) -> pd.DataFrame:
    """Logit lens at the last position (TransformerLens's ``logit_lens``), per stack entry:
    the answer's logit, the other name's, their difference and the answer's rank."""
    both = logit_lens(model, tokens, vocab=[answer, other], return_type="logits")
    ranks = logit_lens(model, tokens, targets=torch.tensor([answer]), return_type="logits")
    vals = both.values[:, 0]
    return pd.DataFrame({
        "entry": both.labels,
        "answer_logit": vals[:, 0].tolist(),
        "other_logit": vals[:, 1].tolist(),
        "logit_diff": (vals[:, 0] - vals[:, 1]).tolist(),
        "answer_rank": ranks.rank_trajectory().reshape(-1).tolist(),
    })
