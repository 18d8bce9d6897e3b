"""Finding an IOI circuit by path patching, step by step from the logits backwards (Wang et al.).

Each step patches every candidate sender (ABC value into the clean run) on its path to a set of
receivers, and keeps the senders whose effect on the logit difference passes a threshold stated
in advance, as a fraction of the clean logit difference:

1. senders -> logits (direct):          name movers (effect <= -t), negative name movers (>= +t)
2. senders -> name movers' queries at END:              S-inhibition heads (effect <= -t)
3. senders -> S-inhibition heads' keys and values:       induction or duplicate-token heads
4. senders -> induction heads' keys:                     previous-token heads

Heads found in steps 3-4 are classed by their attention signature (mean attention, on the clean
prompts, from one role position to another), and each class acts at the positions the IOI story
gives it. The result is a :class:`~circuitgen.circuits.CircuitSpec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import path_patching as PP
from circuitgen.circuits import Ablation as SpecAblation
from circuitgen.circuits import CircuitSpec, HeadClass, Signature

SIGNATURES = {  # name: (query role, key role)
    "END->IO": ("END", "IO"), "END->S1": ("END", "S1"), "END->S2": ("END", "S2"),
    "S2->S1": ("S2", "S1"), "S2->S1+1": ("S2", "S1+1"), "S1+1->S1": ("S1+1", "S1"),
}


@dataclass
class Step:
    """One path-patching sweep and what it selected."""

    name: str
    receivers: list[tuple[int, int]]
    component: tuple[str, ...]
    senders: list[tuple[int, int]]
    effect: torch.Tensor  # [n_senders], relative change of the mean logit difference
    selected: list[tuple[int, int]] = field(default_factory=list)
    screened: pd.DataFrame | None = None  # every sender's attribution estimate (and exact if run)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"head": [f"{l}.{h}" for l, h in self.senders],
                             "layer": [l for l, _ in self.senders],
                             "effect": self.effect.numpy()}).sort_values("effect")


def relative_effect(patched: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """(mean patched - mean clean) / mean clean logit difference, per sender."""
    return (patched.mean(-1) - base.mean()) / base.mean()


@torch.no_grad()
def attention_signatures(model, batch: B.IOIBatch, heads: Sequence[tuple[int, int]] | None = None
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
        rec = {"head": f"{layer}.{head}"}
        for sig, (q, k) in SIGNATURES.items():
            rec[sig] = pat[rows, batch.pos[q], batch.pos[k]].mean().item()
        out.append(rec)
    return pd.DataFrame(out).set_index("head")


def _select(effect: torch.Tensor, senders, threshold: float, sign: int) -> list[tuple[int, int]]:
    hits = (effect * sign >= threshold).nonzero().flatten().tolist()
    return sorted((senders[i] for i in hits), key=lambda s: float(effect[senders.index(s)]) * sign,
                  reverse=True)


@torch.no_grad()
def discover(model, df: pd.DataFrame, threshold: float = 0.05, max_per_step: int = 8,
             n_candidates: int = 24, tile: int = 12, progress: bool = True
             ) -> tuple[CircuitSpec, list[Step], pd.DataFrame]:
    """Run the four steps on ``df`` (with ABC prompts); returns the spec, the steps, signatures.

    Step 1 is exact for every head (it is cheap). Steps 2-4 screen every sender with attribution
    patching (one backward pass) and path-patch exactly the ``n_candidates`` with the largest
    estimated effect; selection uses the exact effects only.
    """
    clean = B.encode(model, df)
    corr = B.encode(model, df, prompt_col="abc_prompt")
    deltas = PP.sender_deltas(model, clean, corr)
    base = A.end_logit_diff(A.end_logits(model, clean), clean)[0]
    n_l, n_h = model.cfg.n_layers, model.cfg.n_heads
    everyone = [(l, h) for l in range(n_l) for h in range(n_h)]
    steps: list[Step] = []

    direct = relative_effect(PP.to_logits(model, clean, deltas).flatten(0, 1), base)
    step1 = Step("direct to logits", [], (), everyone, direct)
    movers = _select(direct, everyone, threshold, -1)[:max_per_step]
    negative = _select(direct, everyone, threshold, +1)[:max_per_step]
    step1.selected = movers + negative
    steps.append(step1)

    taken: set[tuple[int, int]] = set(movers + negative)

    def sweep(name, receivers, component, position):
        every = [(l, h) for l in range(max(r[0] for r in receivers)) for h in range(n_h)
                 if (l, h) not in receivers]
        if not every:  # receivers in layer 0 have no senders
            return []
        estimate = PP.attribution_to_receivers(model, clean, deltas, receivers, component, position,
                                               senders=every) / base.mean()
        order = estimate.abs().argsort(descending=True)[: n_candidates].tolist()
        senders = [every[i] for i in sorted(order)]
        patched = PP.to_receivers(model, clean, deltas, receivers, component, position,
                                  senders=senders, tile=tile, progress=progress)
        step = Step(name, list(receivers), tuple(component), senders, relative_effect(patched, base))
        step.screened = pd.DataFrame({"head": [f"{l}.{h}" for l, h in every],
                                      "estimate": estimate.numpy()})
        step.screened["exact"] = step.screened["head"].map(
            dict(zip([f"{l}.{h}" for l, h in senders], step.effect.numpy())))
        step.selected = [s for s in _select(step.effect, senders, threshold, -1)
                         if s not in taken][:max_per_step]
        taken.update(step.selected)
        steps.append(step)
        return step.selected

    s_inhibition = sweep("-> name movers' queries (END)", movers, ("q",), "END") if movers else []
    early = sweep("-> S-inhibition keys/values", s_inhibition, ("k", "v"), None) if s_inhibition else []
    sig = attention_signatures(model, clean)
    induction = [h for h in early if sig.loc[f"{h[0]}.{h[1]}", "S2->S1+1"] >= sig.loc[f"{h[0]}.{h[1]}", "S2->S1"]]
    duplicate = [h for h in early if h not in induction]
    previous = sweep("-> induction heads' keys", induction, ("k",), None) if induction else []

    classes = {}
    plan = [
        ("name_mover", movers, ["END"], ("END", "IO"), "direct effect for IO (path patching to logits)"),
        ("negative_name_mover", negative, ["END"], ("END", "IO"), "direct effect against IO"),
        ("s_inhibition", s_inhibition, ["END"], ("END", "S2"), "steer name movers' queries at END"),
        ("induction", induction, ["S2"], ("S2", "S1+1"), "feed S-inhibition keys/values; attend S2->S1+1"),
        ("duplicate_token", duplicate, ["S2"], ("S2", "S1"), "feed S-inhibition keys/values; attend S2->S1"),
        ("previous_token", previous, ["S1+1"], ("S1+1", "S1"), "feed induction heads' keys"),
    ]
    for name, heads, positions, (q, k), why in plan:
        if heads:
            classes[name] = HeadClass(name, tuple(sorted(heads)), tuple(positions), Signature(q, k), why)
    spec = CircuitSpec(
        model=model.circuitgen.model, task="ioi", classes=classes,
        description="IOI circuit found by path patching (circuitgen.discovery.discover)",
        provenance={"method": "path patching from the logits backwards, ABC corruption, "
                              f"threshold {threshold} of the clean logit difference, at most "
                              f"{max_per_step} heads per step; steps 2-4 screen senders by "
                              f"attribution patching and path-patch the top {n_candidates} "
                              "exactly", "n_prompts": len(df),
                    "found_by": "notebooks/w06-ioi-circuit"},
        ablation=SpecAblation("mean", "abc"),
    )
    return spec, steps, sig
