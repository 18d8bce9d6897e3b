"""Exact ACDC-style pruning of (head, role) nodes (circuitgen.pruning)."""

from __future__ import annotations

import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import ioi, load_model, scorer
from circuitgen import nodes as N
from circuitgen import pruning as P

HAS_RESUME = P._resume_module() is not None
needs_resume = pytest.mark.skipif(not HAS_RESUME, reason="circuitgen.resume is not installed")

PLANTED = {(1, 2): 8.0, (0, 1): 8.0}  # head -> W_O scale; every other head's W_O is zeroed
# Known by construction: a head with W_O = 0 writes nothing, and the last layer's output reaches
# the END logits only from END; so exactly these nodes can change the metric.
PLANTED_NODES = {"1.2@END"} | {f"0.1@{r}" for r in N.NODE_ROLES}


@pytest.fixture(scope="session")
def planted():
    """A tiny Llama whose only writing heads are 1.2 and 0.1 (W_O scaled up). Session scope: it
    stays alive, so the scorer's per-model reference cache (keyed by id) cannot be reused by a
    later model."""
    model = load_model("tiny-llama", seed=0)
    dh = model.cfg.d_head
    with torch.no_grad():
        for layer in range(model.cfg.n_layers):
            W = model.blocks[layer].attn.o.original_component.weight
            for head in range(model.cfg.n_heads):
                W[:, head * dh:(head + 1) * dh] *= PLANTED.get((layer, head), 0.0)
    return model


@pytest.fixture(scope="module")
def prompts(tiny_llama):
    return ioi.generate_prompts(tiny_llama, n=8, seed=0).df


@torch.no_grad()
def _engine_metric(model, df, kept, means) -> float:
    """The ablation engine on its own: head_keep + run_variants, one forward."""
    batch = B.encode(model, df)
    replace = A.replacement_fn("mean", batch, means=means, groups=means.keys(df))
    return float(A.run_variants(model, batch, N.head_keep(kept, model, batch)[None], replace).mean())


def _naive_log(model, df, threshold, means):
    """ACDC's greedy rule written plainly over the engine: visit reversed(head_nodes), remove a
    node when |m(current - node) - m(current)| <= threshold * |m(full)|."""
    cur = set(N.head_nodes(model.cfg.n_layers, model.cfg.n_heads))
    full = _engine_metric(model, df, cur, means)
    tau, m = threshold * abs(full), full
    log = []
    for n in reversed(N.head_nodes(model.cfg.n_layers, model.cfg.n_heads)):
        m_new = _engine_metric(model, df, cur - {n}, means)
        effect = m_new - m
        remove = abs(effect) <= tau
        if remove:
            cur.discard(n)
            m = m_new
        log.append((n.label, effect, remove))
    return cur, full, m, log


@pytest.mark.parametrize("ablation", ["mean", "resample"])
@pytest.mark.parametrize("stage", P.STAGES)
def test_planted_circuit_is_found_exactly(planted, ablation, stage):
    df = ioi.generate_prompts(planted, n=8, seed=3).df
    for threshold in (0.0, 1e-5):
        r = P.prune(planted, df, threshold=threshold, ablation=ablation, stage=stage, progress=False)
        assert {n.label for n in r.kept} == PLANTED_NODES, (threshold, [n.label for n in r.kept])
        t = r.table
        # every removed node changed nothing at all; every kept one changed the metric
        assert (t.loc[t.removed, "effect"] == 0).all()
        assert (t.loc[~t.removed, "score"] > r.tau).all()
        assert r.final_metric == pytest.approx(r.full_metric, abs=1e-6)
    # a threshold above every planted node's effect removes them too
    big = P.prune(planted, df, threshold=1e3, ablation=ablation, stage=stage, progress=False)
    assert big.kept == [] and big.table.removed.all()


def test_matches_plain_acdc_over_the_engine(tiny_llama, prompts):
    """Decisions, effects and visit order equal a plain implementation of the rule."""
    means = scorer.mean_reference(tiny_llama, prompts)
    threshold = 0.05
    cur, full, m_final, log = _naive_log(tiny_llama, prompts, threshold, means)
    r = P.prune(tiny_llama, prompts, threshold=threshold, means=means, progress=False)
    assert 0 < len(r.kept) < len(r.table)          # the case is not trivial
    assert any(rem and eff != 0 for _, eff, rem in log)  # nodes with an effect were removed
    t = r.table.set_index("node")
    assert r.full_metric == pytest.approx(full, abs=1e-5)
    for i, (label, effect, removed) in enumerate(log):
        assert t.at[label, "order"] == i, label
        assert bool(t.at[label, "removed"]) == removed, label
        assert t.at[label, "effect"] == pytest.approx(effect, abs=2e-5), label
    assert {n.label for n in r.kept} == {n.label for n in cur}
    assert r.final_metric == pytest.approx(m_final, abs=2e-5)


def test_visit_order_is_reverse_topological(tiny_llama, prompts):
    r = P.prune(tiny_llama, prompts, threshold=0.05, progress=False)
    t = r.table.sort_values("order")
    assert list(t.node) == [n.label for n in reversed(N.head_nodes(2, tiny_llama.cfg.n_heads))]
    assert t.layer.is_monotonic_decreasing
    nodes = [N.Node(0, 0, "IO"), N.Node(1, 0, "IO"), N.Node(0, 1, "IO"), N.Node(0, 1, "END")]
    assert [n.label for n in P.visit_order(nodes)] == ["1.0@IO", "0.1@END", "0.1@IO", "0.0@IO"]


def test_final_metric_is_the_engines_for_the_kept_nodes(tiny_llama, prompts):
    means = scorer.mean_reference(tiny_llama, prompts)
    for threshold in (0.02, 0.3):
        r = P.prune(tiny_llama, prompts, threshold=threshold, means=means, progress=False)
        assert r.final_metric == pytest.approx(_engine_metric(tiny_llama, prompts, r.kept, means), abs=1e-6)
        assert r.full_metric == pytest.approx(_engine_metric(
            tiny_llama, prompts, N.head_nodes(2, tiny_llama.cfg.n_heads), means), abs=1e-6)
        assert r.details["drift"] < 1e-5


def test_thresholds(tiny_llama, prompts):
    """What greedy ACDC guarantees: τ=0 removes exactly the nodes with no effect where they were
    tried; a huge τ removes all; runs at two τ agree up to and including the first node where
    their decisions differ; kept == score > τ; each removal moves the metric by at most τ."""
    means = scorer.mean_reference(tiny_llama, prompts)
    zero = P.prune(tiny_llama, prompts, threshold=0.0, means=means, progress=False)
    tz = zero.table
    assert (tz.loc[tz.removed, "effect"] == 0).all() and (tz.loc[~tz.removed, "score"] > 0).all()
    huge = P.prune(tiny_llama, prompts, threshold=1e6, means=means, progress=False)
    assert huge.kept == []
    assert huge.final_metric == pytest.approx(_engine_metric(tiny_llama, prompts, [], means), abs=1e-6)

    lo = P.prune(tiny_llama, prompts, threshold=0.01, means=means, progress=False).table.sort_values("order")
    hi = P.prune(tiny_llama, prompts, threshold=0.2, means=means, progress=False)
    th = hi.table.sort_values("order")
    differ = (lo.removed.to_numpy() != th.removed.to_numpy()).nonzero()[0]
    assert len(differ)
    first = differ[0]
    assert lo.effect.to_numpy()[: first + 1] == pytest.approx(th.effect.to_numpy()[: first + 1], abs=1e-6)
    assert ((th.score <= hi.tau) == th.removed).all()
    assert abs(hi.final_metric - hi.full_metric) <= th.removed.sum() * hi.tau + 1e-6


@needs_resume
@pytest.mark.parametrize("stage", P.STAGES)
def test_resumed_path_decides_as_the_full_forward_path(tiny_llama, prompts, stage):
    means = scorer.mean_reference(tiny_llama, prompts)
    fast = P.prune(tiny_llama, prompts, threshold=0.05, means=means, stage=stage, progress=False)
    slow = P.prune(tiny_llama, prompts, threshold=0.05, means=means, stage=stage, resume=False,
                   progress=False)
    assert fast.resumed and not slow.resumed
    assert (fast.table.removed == slow.table.removed).all()
    assert fast.table.effect.to_numpy() == pytest.approx(slow.table.effect.to_numpy(), abs=1e-5, nan_ok=True)
    assert fast.kept == slow.kept and fast.final_metric == pytest.approx(slow.final_metric, abs=1e-6)


def test_candidate_subset_and_errors(tiny_llama, prompts):
    r = P.prune(tiny_llama, prompts, threshold=1e6, nodes=["1.0@END", "1.1@END"], progress=False)
    t = r.table
    assert r.n_tests == 2 and t.order.notna().sum() == 2
    assert {n.label for n in r.removed} == {"1.0@END", "1.1@END"}
    assert len(r.kept) == len(t) - 2 and not t.loc[t.order.isna(), "removed"].any()
    assert set(t.columns) >= {"node", "kind", "layer", "head", "role", "score", "removed", "order"}
    assert N.top_nodes(t, 1)[0].label in {"1.0@END", "1.1@END"}
    with pytest.raises(ValueError, match="MLP"):
        P.prune(tiny_llama, prompts, threshold=0.1, nodes=["mlp0@END"], progress=False)
    with pytest.raises(ValueError, match="stage"):
        P.prune(tiny_llama, prompts, threshold=0.1, stage="edges", progress=False)
    with pytest.raises(ValueError, match="threshold"):
        P.prune(tiny_llama, prompts, threshold=-1, progress=False)


def test_batching_does_not_change_decisions(tiny_llama, prompts):
    a = P.prune(tiny_llama, prompts, threshold=0.05, progress=False)
    b = P.prune(tiny_llama, prompts, threshold=0.05, batch_size=5, progress=False)
    assert (a.table.removed == b.table.removed).all()
    assert a.table.effect.to_numpy() == pytest.approx(b.table.effect.to_numpy(), abs=1e-5)


@pytest.mark.slow
def test_smollm2_top_layers(smollm2):
    """On the real model, a short run (the last two layers' END nodes) agrees with the engine."""
    df = ioi.generate_prompts(smollm2, n=8, seed=0).df
    cands = [N.Node(l, h, "END") for l in (28, 29) for h in range(smollm2.cfg.n_heads)]
    r = P.prune(smollm2, df, threshold=0.02, nodes=cands, progress=False)
    means = scorer.mean_reference(smollm2, df)
    assert r.n_tests == len(cands)
    assert r.final_metric == pytest.approx(_engine_metric(smollm2, df, r.kept, means), abs=1e-4)
    assert r.full_metric > 0
