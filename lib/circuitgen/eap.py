"""EAP and EAP-IG node scores (Hanna et al. 2024, "Have faith in faithfulness"), per role position.

Convention (EAP-IG "inputs" variant). For a prompt with clean input embeddings ``e_clean`` and
corrupted (ABC) input embeddings ``e_corr`` (``hook_embed``; the ABC prompt has the clean prompt's
length, so GPT-2's positional embeddings are equal in both and need no interpolation), let

    e(α) = e_corr + α (e_clean - e_corr),    α_k = k / steps,  k = 1 .. steps

and ``m`` the logit difference logit(IO) - logit(S) at the clean prompt's END, IO and S being the
clean prompt's names in every run. A node's activation ``a`` is a head's ``blocks.L.attn.hook_z``
(one query head; summing the score over d_head equals scoring the head's output ``z @ W_O``, which
is linear in z) or an MLP's ``blocks.L.hook_mlp_out``. Its score is

    score(node) = mean over prompts of  Σ_{p of the node's role} Σ_d
                      (a_clean[p] - a_corr[p]) · (1/steps) Σ_k ∂m/∂a[p] |_{input e(α_k)}

with ``a_clean``/``a_corr`` the activations of the plain clean and corrupted runs. Positive means
the node's clean activation pushes the model towards the clean answer (a *denoising* sign: the
first-order gain of patching clean into corrupted along the path). With ``steps=1`` (α=1 only) it
is plain EAP, attribution patching with the gradient of the clean run.

Compared with the reference implementation (github:hannamw/EAP-IG, ``attribute_node.py``,
``get_scores_eap_ig``): the same α grid (k/steps, k=1..steps, α=1 is the clean input), gradients at
the interpolated inputs, activation differences of the plain runs. Differences, all deliberate:
(1) sign: the reference multiplies by ``a_corr - a_clean`` (the effect of *noising* the clean run),
we by ``a_clean - a_corr``, so a score here is the reference's with the opposite sign; (2) the
reference interpolates ``blocks.0.hook_resid_pre`` (embeddings + positional), we ``hook_embed``
(the same thing wherever positional embeddings are equal, as here); (3) it sums over every
position, we split the sum by role (BOS excluded, padding masked) as :mod:`circuitgen.nodes` asks;
(4) it divides by the number of prompts after summing a metric over the batch; we do the same.

Edge level (head -> head, "sender write · receiver input gradient"): not provided yet, for lack
of time, not of hooks. Checked on the bridge (tiny-llama): with split forks on
(:func:`circuitgen.path_patching.forks_at`) backward hooks on ``blocks.L.attn.hook_q_input`` /
``hook_k_input`` / ``hook_v_input`` fire, giving ``[batch, pos, slot, d_model]`` gradients of the
pre-LN residual copy each receiver reads; ``hook_attn_in`` needs ``set_use_attn_in(True)`` and is
not needed. On a grouped-query model (SmolLM2, tiny-llama) the K/V slots are one per *KV* head
(3 query heads share one on SmolLM2), so a K/V edge into one query head must be scored in
:func:`circuitgen.path_patching.mha_twin`, whose K/V slots are one per query head (checked: 4
slots on tiny-llama's twin). An edge score would be
``Σ_{b,p} (W_O z_u,clean - W_O z_u,corr)[b,p] · mean_k ∂m/∂input_v[b,p]`` per (sender u,
receiver v, q/k/v); what is missing is that code, its table format (``circuitgen.nodes`` has only
nodes) and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from circuitgen import batch as B
from circuitgen.ablation import role_index, role_map, role_names
from circuitgen.nodes import node_roles, parse_node, score_frame
from circuitgen.task import Task, get_task

EMBED = "hook_embed"


def _z(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def _mlp(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def alphas(steps: int) -> list[float]:
    """The interpolation points α_k = k / steps, k = 1 .. steps (α = 1 is the clean input)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    return [k / steps for k in range(1, steps + 1)]


@dataclass
class Attributions:
    """Per-prompt, per-position attributions of one batch (summed over the hidden dimension).

    ``heads`` ``[batch, pos, layer, head]``, ``mlps`` ``[batch, pos, layer]``, ``embed``
    ``[batch, pos]`` (the input embedding itself: by IG completeness its sum over positions tends
    to ``m_clean - m_corr`` as steps grow), all zero at padding; ``m_clean``/``m_corr`` ``[batch]``.
    """

    heads: torch.Tensor
    mlps: torch.Tensor
    embed: torch.Tensor
    m_clean: torch.Tensor
    m_corr: torch.Tensor


def attributions(model, clean: B.TaskBatch, corrupted: B.TaskBatch, steps: int = 5) -> Attributions:
    """EAP-IG attributions of one batch (module docstring). Both batches must be right-padded
    alike (:func:`circuitgen.batch.encode` of ``prompt`` and ``abc_prompt`` of the same rows)."""
    if not torch.equal(clean.mask, corrupted.mask):
        raise ValueError("clean and corrupted batches differ in length per prompt; the ABC prompt "
                         "must have the clean prompt's tokens count (encode both from one table).")
    n_layers = model.cfg.n_layers
    names = [_z(l) for l in range(n_layers)] + [_mlp(l) for l in range(n_layers)]
    wanted = set(names) | {EMBED}

    def run(b: B.TaskBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with torch.no_grad():
            logits, cache = model.run_with_cache(b.tokens, attention_mask=clean.mask,
                                                 names_filter=lambda n: n in wanted)
        return {n: cache[n].detach().float() for n in wanted}, B.logit_diff(logits, clean)

    acts_clean, m_clean = run(clean)
    acts_corr, m_corr = run(corrupted)
    e_clean, e_corr = acts_clean[EMBED], acts_corr[EMBED]
    grads: dict[str, torch.Tensor] = {n: torch.zeros_like(acts_clean[n]) for n in names}

    def add_grad(grad: torch.Tensor, hook) -> None:
        grads[hook.name] += grad.detach().float()

    embed_grad = torch.zeros_like(e_clean)
    for alpha in alphas(steps):
        leaf = (e_corr + alpha * (e_clean - e_corr)).detach().requires_grad_(True)

        def interpolate(act, hook, leaf=leaf):
            return leaf.to(act.dtype)

        with torch.enable_grad(), model.hooks(fwd_hooks=[(EMBED, interpolate)],
                                              bwd_hooks=[(n, add_grad) for n in names]):
            m = B.logit_diff(model(clean.tokens, attention_mask=clean.mask), clean).sum()
            (g,) = torch.autograd.grad(m, [leaf])
        embed_grad += g.float()
    mask = clean.mask.float()

    def score(name: str, grad: torch.Tensor) -> torch.Tensor:
        return (acts_clean[name] - acts_corr[name]) * grad / steps

    heads = torch.stack([score(_z(l), grads[_z(l)]).sum(-1) for l in range(n_layers)], dim=2)
    mlps = torch.stack([score(_mlp(l), grads[_mlp(l)]).sum(-1) for l in range(n_layers)], dim=2)
    embed = score(EMBED, embed_grad).sum(-1)
    return Attributions(heads * mask[..., None, None], mlps * mask[..., None], embed * mask,
                        m_clean, m_corr)


def _by_role(scores: torch.Tensor, batch: B.TaskBatch) -> torch.Tensor:
    """Sum ``[batch, pos, *rest]`` over prompts and the positions of each role: ``[*rest, role]``
    in :func:`circuitgen.nodes.node_roles` order. Padding (masked) and BOS are left out."""
    onehot = torch.nn.functional.one_hot(role_map(batch), len(role_names(batch))).float()
    onehot = onehot * batch.mask[..., None].float()
    keep = [role_index(batch, r) for r in node_roles(batch)]
    return torch.einsum("bp...,bpr->...r", scores, onehot[..., keep])


def eap_ig_nodes(model, df: pd.DataFrame, *, steps: int = 5, batch_size: int = 16,
                 method_label: str = "eap-ig", progress: bool = True,
                 task: str | Task | None = None) -> pd.DataFrame:
    """EAP-IG score of every (head, role) and (MLP, role) node over the prompts of ``df``.

    ``df`` needs ``prompt``, ``abc_prompt``, ``io``, ``s`` (and the pos_* columns, else they are
    found by tokenising). Returns a :func:`circuitgen.nodes.score_frame` table, head rows then MLP
    rows, with columns ``method`` (= ``method_label``), ``steps`` and ``n_prompts``; scores are in
    logit-difference units, averaged over prompts (module docstring for the exact convention).
    Another ``task`` brings its own columns, counterfactual column, positions and metric.
    """
    task = get_task(task)
    clean = B.encode(model, df, task=task)
    corrupted = B.encode(model, df, prompt_col=task.counterfactual_column, task=task)
    cfg = model.cfg
    roles = node_roles(clean)
    heads = torch.zeros(cfg.n_layers, cfg.n_heads, len(roles))
    mlps = torch.zeros(cfg.n_layers, len(roles))
    slices = list(B.chunks(len(clean), batch_size))
    for sl in tqdm(slices, desc=f"{method_label} ({steps} steps)", unit="batch",
                   disable=not progress or len(slices) < 2):
        c, x = clean.subset(sl), corrupted.subset(sl)
        a = attributions(model, c, x, steps)
        heads += _by_role(a.heads, c)
        mlps += _by_role(a.mlps, c)
    n = len(clean)
    extra = dict(method=method_label, steps=steps, n_prompts=n)
    return pd.concat([score_frame(heads / n, kind="head", roles=roles, **extra),
                      score_frame(mlps / n, kind="mlp", roles=roles, **extra)], ignore_index=True)


@torch.no_grad()
def exact_node_effects(model, df: pd.DataFrame, nodes, *, batch_size: int = 16,
                       task: str | Task | None = None) -> pd.Series:
    """Exact activation-patching effect of each node alone, to validate the gradient scores:
    run the corrupted (ABC) prompts with the node's activation (head ``z`` or MLP output) at its
    role's positions replaced by the clean run's, and return mean m(patched) - mean m(corrupted)
    per node label (logit-difference units; the denoising sign of the EAP-IG scores)."""

    task = get_task(task)
    nodes = [parse_node(n) if isinstance(n, str) else n for n in nodes]
    clean = B.encode(model, df, task=task)
    corrupted = B.encode(model, df, prompt_col=task.counterfactual_column, task=task)
    total = torch.zeros(len(nodes))
    for sl in B.chunks(len(clean), batch_size):
        c, x = clean.subset(sl), corrupted.subset(sl)
        names = {(_mlp if n.head is None else _z)(n.layer) for n in nodes}
        _, cache = model.run_with_cache(c.tokens, attention_mask=c.mask,
                                        names_filter=lambda n: n in names)  # noqa: B023  (used at once)
        base = B.logit_diff(B.forward(model, x), c).sum()
        roles = role_map(c)
        for i, n in enumerate(nodes):
            name = (_mlp if n.head is None else _z)(n.layer)
            where = (roles == role_index(c, n.role)) & c.mask.bool()

            def patch(act, hook, n=n, name=name, where=where, cache=cache):
                act = act.clone()
                if n.head is None:
                    act[where] = cache[name][where].to(act.dtype)
                else:
                    act[:, :, n.head][where] = cache[name][:, :, n.head][where].to(act.dtype)
                return act

            total[i] += B.logit_diff(B.forward(model, x, [(name, patch)]), c).sum() - base
    return pd.Series((total / len(clean)).numpy(), index=[n.label for n in nodes], name="exact")


def eap_nodes(model, df: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """Plain EAP (attribution patching, gradient of the clean run): :func:`eap_ig_nodes` with
    ``steps=1``, labelled ``"eap"``."""
    kwargs.setdefault("method_label", "eap")
    return eap_ig_nodes(model, df, steps=1, **kwargs)


__all__ = ["Attributions", "alphas", "attributions", "eap_ig_nodes", "eap_nodes", "exact_node_effects"]
