"""Exact pruning's second stage (issue 25): the heads-then-roles search against a plain
two-stage implementation of its rule over the ablation engine, on a case where the first stage
removes a head in layer 0 (which changes the residual every later test starts from) and heads
in layer 1 survive into the second stage (whose tests resume from that residual)."""

from __future__ import annotations

import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import ioi, scorer
from circuitgen import nodes as N
from circuitgen import pruning as P

# The random model's full mean logit difference is tiny (about -0.003), so τ = 1.5 x its size
# (about 0.0047): stage 1 then removes heads 1.2, 1.0 and 0.3 and keeps the rest; every test's
# |effect| is at least 2.5e-4 away from τ (measured), far above the paths' float differences.
THRESHOLD = 1.5


@pytest.fixture(scope="module")
def prompts(tiny_llama):
    return ioi.generate_prompts(tiny_llama, n=8, seed=0).df


@torch.no_grad()
def _metric(model, df, kept, means) -> float:
    """Mean logit difference with every head node outside ``kept`` mean-ablated: one full
    forward of the ablation engine (no resumed residuals, no cached state)."""
    batch = B.encode(model, df)
    replace = A.replacement_fn("mean", batch, means=means, groups=means.keys(df))
    return float(A.run_variants(model, batch, N.head_keep(kept, model, batch)[None], replace).mean())


def _plain_two_stage(model, df, threshold, means):
    """Stage 1: heads (all six roles together), last layer first, heads from the highest index
    down; stage 2: the roles of the surviving heads one by one in the same order. Each test
    compares m(current - group) with m(current); remove when |difference| <= τ."""
    every = N.head_nodes(model.cfg.n_layers, model.cfg.n_heads)
    order = list(reversed(every))
    cur = set(every)
    full = _metric(model, df, cur, means)
    tau, m = threshold * abs(full), full
    log = []
    heads = list(dict.fromkeys((n.layer, n.head) for n in order))
    for head in heads:
        group = {n for n in order if (n.layer, n.head) == head}
        m_new = _metric(model, df, cur - group, means)
        remove = abs(m_new - m) <= tau
        log.append(("heads", head, m_new - m, remove))
        if remove:
            cur -= group
            m = m_new
    for n in [n for n in order if n in cur]:
        m_new = _metric(model, df, cur - {n}, means)
        remove = abs(m_new - m) <= tau
        log.append(("roles", n.label, m_new - m, remove))
        if remove:
            cur.discard(n)
            m = m_new
    return cur, log, m


@pytest.mark.parametrize("resume", [None, False])
def test_second_stage_starts_from_the_first_stages_circuit(tiny_llama, prompts, resume):
    means = scorer.mean_reference(tiny_llama, prompts)
    cur, log, m_final = _plain_two_stage(tiny_llama, prompts, THRESHOLD, means)
    stage1 = [(head, eff, rem) for stage, head, eff, rem in log if stage == "heads"]
    # The case is the one the search can get wrong: a layer-0 head that changes the metric is
    # removed in stage 1, and layer-1 heads are tested role by role in stage 2 afterwards.
    assert any(head[0] == 0 and rem and abs(eff) > 1e-4 for head, eff, rem in stage1), stage1
    roles = [(label, eff, rem) for stage, label, eff, rem in log if stage == "roles"]
    assert any(label.startswith("1.") for label, _, _ in roles), roles
    assert any(rem for _, _, rem in roles) and not all(rem for _, _, rem in roles)

    r = P.prune(tiny_llama, prompts, threshold=THRESHOLD, means=means, stage="heads-then-roles",
                resume=resume, progress=False)
    if resume is None and P._resume_module() is not None:
        assert r.resumed
    t = r.table.set_index("node")
    for head, eff, rem in stage1:
        rows = t[(t.layer == head[0]) & (t["head"] == head[1]) & (t.stage == "heads")]
        if rem:  # a head removed whole: every role's row carries the head's test
            assert len(rows) == len(N.NODE_ROLES), head
            assert rows.effect.to_numpy() == pytest.approx([eff] * len(rows), abs=2e-5), head
            assert rows.removed.all()
        else:
            assert rows.empty, head
    for label, eff, rem in roles:
        assert t.at[label, "stage"] == "roles", label
        assert t.at[label, "effect"] == pytest.approx(eff, abs=2e-5), label
        assert bool(t.at[label, "removed"]) == rem, label
    assert {n.label for n in r.kept} == {n.label for n in cur}
    assert r.final_metric == pytest.approx(m_final, abs=2e-5)
    assert r.n_tests == len(log)
