"""Path-patching discovery: a planted name mover is found, thresholds are monotone and swept
without recomputing, the backup step is the direct effect with the name movers mean-ablated, the
exact subset is exact, and the node score table has the shared format and ranking rule."""

from __future__ import annotations

import pytest
import torch

from circuitgen import ablation as A
from circuitgen import batch as B
from circuitgen import discovery as D
from circuitgen import ioi, load_model, nodes
from circuitgen import path_patching as PP

MAX_PER_STEP = 16  # no cap on a 2 x 4 model: the monotonicity test must see every hit


@pytest.fixture(scope="module")
def df(tiny_llama):
    return ioi.generate_prompts(tiny_llama, n=8, seed=0).df


@pytest.fixture(scope="module")
def sweep(tiny_llama, df):
    return D.discover_sweep(tiny_llama, df, thresholds=(0.0, 0.05, 0.2, 1.0),
                            max_per_step=MAX_PER_STEP, progress=False)


def test_lazy_deltas_and_direct_effects_match_path_patching(tiny_llama, df):
    clean, corr = B.encode(tiny_llama, df), B.encode(tiny_llama, df, prompt_col="abc_prompt")
    full = PP.sender_deltas(tiny_llama, clean, corr)
    lazy = D.LazyDeltas(tiny_llama, D._z_per_layer(tiny_llama, clean), D._z_per_layer(tiny_llama, corr))
    rows = torch.arange(len(clean))
    for layer, head in [(0, 0), (1, 3)]:
        torch.testing.assert_close(lazy[:, :, layer, head], full[:, :, layer, head], atol=1e-6, rtol=0)
    torch.testing.assert_close(lazy[rows, clean.end], full[rows, clean.end], atol=1e-6, rtol=0)
    torch.testing.assert_close(D.direct_effects(tiny_llama, clean, lazy),
                               PP.to_logits(tiny_llama, clean, full), atol=1e-5, rtol=0)


def planted(df):
    """tiny-llama with the W_O of the head that *least* helps IO directly (smallest negative
    direct effect) scaled up 50x; also returns the unplanted model's step 1."""
    model = load_model("tiny-llama", seed=0)
    before = D.discover(model, df, threshold=10.0, progress=False).steps[0]
    helping = [i for i in range(len(before.senders)) if before.effect[i] < 0]
    i = min(helping, key=lambda i: float(before.effect[i].abs()))
    layer, head = before.senders[i]
    o = model.blocks[layer].attn.o.original_component.weight
    d = model.cfg.d_head
    with torch.no_grad():
        o[:, head * d:(head + 1) * d] *= 50
    return model, (layer, head), before


def test_planted_name_mover_is_found(df):
    model, head, before = planted(df)
    assert before.effect.abs().argmax() != before.senders.index(head), "not dominant unplanted"
    found = D.discover(model, df, threshold=0.05, max_per_step=2, progress=False)
    assert head in found.spec.classes["name_mover"].heads
    step1 = found.steps[0]
    assert step1.selected[0] == head, "the planted head has the largest direct effect for IO"
    i = step1.senders.index(head)
    assert step1.effect[i] < 0 and step1.effect[i] == step1.effect.min()
    movers = found.nodes[found.nodes["class"] == "name_mover"].sort_values("rank")
    assert (movers.node.iloc[0], movers.step.iloc[0]) == (f"{head[0]}.{head[1]}@END", 1)


def test_thresholds_are_monotone(sweep):
    thresholds = sorted(sweep)
    for lo, hi in zip(thresholds, thresholds[1:]):
        assert set(sweep[hi].steps[0].selected) <= set(sweep[lo].steps[0].selected)
    assert len(sweep[0.0].steps[0].selected) > len(sweep[1.0].steps[0].selected) > 0


def test_sweep_equals_single_runs_and_reuses_effects(tiny_llama, df, sweep, monkeypatch):
    calls = []
    real = PP.to_receivers

    def counting(*args, **kwargs):
        calls.append((tuple(args[3]), tuple(args[4]), args[5]))
        return real(*args, **kwargs)

    monkeypatch.setattr(PP, "to_receivers", counting)
    again = D.discover_sweep(tiny_llama, df, thresholds=(0.0, 0.0001, 0.05), max_per_step=MAX_PER_STEP,
                             progress=False)
    calls, in_sweep = [], list(calls)
    single = D.discover(tiny_llama, df, threshold=0.05, max_per_step=MAX_PER_STEP, progress=False)
    calls = in_sweep
    assert again[0.05].spec.classes == single.spec.classes == sweep[0.05].spec.classes
    needed = {(tuple(st.receivers), st.component, st.position)
              for found in again.values() for st in found.steps[2:]}
    assert sorted(calls) == sorted(needed), "each receiver set path-patched once per sweep"
    assert len(calls) < sum(len(found.steps[2:]) for found in again.values()), "some reuse"


def test_backup_step_is_the_ablated_direct_effect(tiny_llama, df, sweep):
    found = sweep[0.0]
    movers = list(found.spec.classes["name_mover"].heads)
    backup = found.steps[1]
    assert backup.name.startswith("direct to logits, name movers mean-ablated")
    # Independently: mean-ablate the movers (the same ABC means), add each sender's delta, taken
    # in the ablated runs, to the final residual at END by a hook.
    clean, corr = B.encode(tiny_llama, df), B.encode(tiny_llama, df, prompt_col="abc_prompt")
    keys = [f"template={t}|order={o}" for t, o in zip(df.template, df.order)]
    means = A.compute_means(tiny_llama, corr, keys, ("template", "order"))
    keep = A.knockout_keep(movers, tiny_llama, clean)[None]
    hooks = A.ablation_hooks(keep, A.replacement_fn("mean", clean, means=means, groups=keys))
    zc = D._z_per_layer(tiny_llama, clean, hooks)
    zk = D._z_per_layer(tiny_llama, corr, hooks)
    base_clean = A.end_logit_diff(A.end_logits(tiny_llama, clean), clean)[0].mean()
    base_abl = A.end_logit_diff(A.end_logits(tiny_llama, clean, hooks), clean)[0].mean()
    last = f"blocks.{tiny_llama.cfg.n_layers - 1}.hook_resid_post"
    rows = torch.arange(len(clean))
    for layer, head in [(0, 0), (0, 3), (1, 2)]:
        delta = (zk[layer][rows, clean.end, head] - zc[layer][rows, clean.end, head]) @ \
            tiny_llama.blocks[layer].attn.W_O[head]

        def add(x, hook, delta=delta):
            x = x.clone()
            x[rows, clean.end] += delta
            return x

        logits = B.forward(tiny_llama, clean, [*hooks, (last, add)])
        want = (B.logit_diff(logits, clean).mean() - base_abl) / base_clean
        got = backup.effect[backup.senders.index((layer, head))]
        assert float(got) == pytest.approx(float(want), abs=1e-4)
    # the rule: growth (ablated - unablated direct effect) <= -t, not already kept, strongest first
    growth = backup.effect - found.steps[0].effect
    taken = set(found.steps[0].selected)
    want = sorted([s for s, g in zip(backup.senders, growth) if g <= 0 and s not in taken],
                  key=lambda s: float(growth[backup.senders.index(s)]))
    assert backup.selected == want


def test_exact_subset_is_path_patching_on_those_prompts(tiny_llama, df):
    found = D.discover(tiny_llama, df, threshold=0.0, max_per_step=3, progress=False,
                       n_exact_prompts=5, seed=1)
    step = found.steps[2]
    assert step.n_prompts == 5 and found.spec.provenance["n_exact_prompts"] == 5
    idx = torch.randperm(len(df), generator=torch.Generator().manual_seed(1))[:5].sort().values
    sub = df.iloc[idx.numpy()]
    clean, corr = B.encode(tiny_llama, sub), B.encode(tiny_llama, sub, prompt_col="abc_prompt")
    deltas = PP.sender_deltas(tiny_llama, clean, corr)
    base = A.end_logit_diff(A.end_logits(tiny_llama, clean), clean)[0]
    patched = PP.to_receivers(tiny_llama, clean, deltas, step.receivers, step.component,
                              step.position, senders=step.senders, progress=False)
    torch.testing.assert_close(step.effect, D.relative_effect(patched, base), atol=1e-5, rtol=1e-4)


def test_node_table_format_and_ranking(tiny_llama, sweep):
    found = sweep[0.0]
    t = found.nodes
    n = tiny_llama.cfg.n_layers * tiny_llama.cfg.n_heads * len(nodes.NODE_ROLES)
    assert len(t) == n and set(t.kind) == {"head"}
    base_cols = list(nodes.score_frame(torch.zeros(2, 4, len(nodes.NODE_ROLES))).columns)
    assert list(t.columns[: len(base_cols)]) == base_cols
    assert {"method", "threshold", "step", "class", "rank"} <= set(t.columns)
    assert (t.method == "path-patching").all()
    scored = t.dropna(subset=["rank"])
    kept = {h: name for name, cls in found.spec.classes.items() for h in cls.heads}
    assert len(scored) == sum(len(D.CLASSES[c][1]) for c in kept.values())
    effect = {h: float(st.effect[st.senders.index(h)]) for st in found.steps for h in st.selected}
    for _, row in scored.iterrows():
        head = (row["layer"], row["head"])
        assert row["role"] in D.CLASSES[kept[head]][1] and row["class"] == kept[head]
        assert row["score"] == pytest.approx(effect[head]) and row["step"] == D.CLASSES[kept[head]][0]
    assert (t.loc[t["rank"].isna(), "score"] == 0).all()
    # ranking: step order, then |score|
    s = scored.sort_values("rank")
    assert list(s.step) == sorted(s.step)
    for _, grp in s.groupby("step"):
        assert list(grp.score.abs()) == sorted(grp.score.abs(), reverse=True)
    assert D.ranked_nodes(t, 2) == [nodes.parse_node(x) for x in s.node.head(2)]


def test_discover_still_unpacks(tiny_gpt2):
    df = ioi.generate_prompts(tiny_gpt2, n=6, seed=0).df
    spec, steps, sig = D.discover(tiny_gpt2, df, threshold=0.0, max_per_step=2, progress=False)
    assert set(sig.columns) == set(D.SIGNATURES) and steps[0].name == "direct to logits"
    assert spec.provenance["threshold"] == 0.0
