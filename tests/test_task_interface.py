"""A second task plugs into the core with no change to it: the synthetic copy task
(tests/copy_task.py) through the scorer, EAP-IG, the size curves, the verdicts and the CLI, on the
tiny models. Expected values come from plain TransformerLens runs and hooks, not the library."""

from __future__ import annotations

import json
import sys

import copy_task  # noqa: F401  (registers the "copy" task, as a user's module would)
import pandas as pd
import pytest
import torch

from circuitgen import batch as B
from circuitgen import circuits, cli, curves, eap, generalise, scorer
from circuitgen import nodes as N
from circuitgen.task import PromptError, UnknownTaskError, get_task, metric, normalised_faithfulness

MODELS = ["tiny_gpt2", "tiny_llama"]
SPEC = """
model: tiny
task: copy
classes:
  copiers: {heads: ["1.0", "1.1"], positions: [END], signature: {from: END, to: TARGET}}
  early: {heads: ["0.1"], positions: [TARGET, END]}
"""


@pytest.fixture(params=MODELS)
def model(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def prompts(model):
    return get_task("copy").generate(model.tokenizer, n=24, seed=3)


def _spec():
    return circuits.parse_circuit(SPEC, source="<copy spec>")


def _end_logits(model, texts, hooks=()):
    """Logits at the last real token of each text, one prompt at a time (no padding at all)."""
    out = []
    for text in texts:
        tokens = torch.tensor([[model.tokenizer.bos_token_id]
                               + model.tokenizer(text, add_special_tokens=False)["input_ids"]])
        out.append(model.run_with_hooks(tokens, fwd_hooks=list(hooks))[0, -1])
    return torch.stack(out)


def _word_id(model, word):
    return model.tokenizer(" " + word, add_special_tokens=False)["input_ids"][0]


def _oracle_diff(model, df, hooks=()):
    logits = _end_logits(model, df.prompt, hooks)
    rows = torch.arange(len(df))
    t = torch.tensor([_word_id(model, w) for w in df.target])
    c = torch.tensor([_word_id(model, w) for w in df.cf_target])
    return (logits[rows, t] - logits[rows, c]).detach()


def test_registry_and_refusals(tiny_gpt2):
    task = get_task("copy")
    assert task.positions == ("MARK", "TARGET", "END") and task.node_roles[-1] == "other"
    with pytest.raises(UnknownTaskError, match="known tasks"):
        get_task("no-such-task")
    bad = pd.DataFrame({"prompt": ["red tree lamp code"], "target": ["lamp"], "cf_target": ["door"]})
    checked = scorer.check_prompts(tiny_gpt2, bad, task)
    assert "marker" in checked.status.iloc[0]
    with pytest.raises(PromptError, match="cf_target"):
        scorer.check_prompts(tiny_gpt2, bad.drop(columns="cf_target"), task)


def test_positions_come_from_the_tokenizer(model, prompts):
    batch = B.encode(model, prompts, task="copy")
    for i, row in enumerate(prompts.itertuples()):
        ids = batch.tokens[i]
        assert ids[batch.pos["TARGET"][i]] == _word_id(model, row.target)
        assert ids[batch.pos["MARK"][i]] == ids[batch.pos["END"][i]] == _word_id(model, "code")


def test_model_metric_and_batching(model, prompts):
    spec = _spec()
    abl = scorer.Ablation("mean", min_per_group=8)
    one = scorer.score_circuit(model, spec, prompts, ablation=abl, batch_size=1, progress=False)
    many = scorer.score_circuit(model, spec, prompts, ablation=abl, batch_size=7, progress=False)
    assert torch.allclose(torch.tensor(one.logit_diff.to_numpy()), _oracle_diff(model, prompts), atol=1e-4)
    for col in ("logit_diff", "circuit_logit_diff", "empty_logit_diff", "sig_copiers", "ko_copiers"):
        assert one[col].to_numpy() == pytest.approx(many[col].to_numpy(), abs=1e-5), col
    meta = one.attrs["circuitgen"]
    assert meta["task"] == "copy" and meta["ablation"]["group_by"] == ["condition"]
    ok = one[one.status == "ok"]
    want = normalised_faithfulness(ok.logit_diff.mean(), ok.circuit_logit_diff.mean(),
                                   ok.empty_logit_diff.mean())
    assert meta["normalised_faithfulness"] == pytest.approx(want)


def test_mean_ablated_empty_circuit_against_hooks(model, prompts):
    """F(∅) under mean ablation: every head's z replaced, at each position, by its mean over the
    counterfactual prompts of the prompt's condition (all prompts of a condition share one layout,
    so position = role here): computed with plain hooks."""
    scores = scorer.score_circuit(model, _spec(), prompts, ablation=scorer.Ablation("mean", min_per_group=8),
                                  progress=False, knockouts=False)
    expected = torch.zeros(len(prompts))
    for _, rows in prompts.groupby("condition"):
        cf_tokens = [[model.tokenizer.bos_token_id]
                     + model.tokenizer(p, add_special_tokens=False)["input_ids"] for p in rows.cf_prompt]
        _, cache = model.run_with_cache(torch.tensor(cf_tokens))
        means = {l: cache[f"blocks.{l}.attn.hook_z"].mean(0, keepdim=True) for l in range(model.cfg.n_layers)}
        hooks = [(f"blocks.{l}.attn.hook_z", lambda z, hook, m=means[l]: m.expand_as(z).clone())
                 for l in range(model.cfg.n_layers)]
        idx = [prompts.index.get_loc(i) for i in rows.index]
        expected[idx] = _oracle_diff(model, rows, hooks)
    assert scores.empty_logit_diff.to_numpy() == pytest.approx(expected.numpy(), abs=1e-4)


def test_resample_uses_the_counterfactual(tiny_llama):
    """Resample ablation of every head: each prompt's heads carry its own counterfactual's z."""
    df = get_task("copy").generate(tiny_llama.tokenizer, n=6, seed=5)
    scores = scorer.score_circuit(tiny_llama, _spec(), df, ablation=scorer.Ablation("resample"),
                                  progress=False, knockouts=False)
    expected = []
    for row in df.itertuples():
        cf = torch.tensor([[tiny_llama.tokenizer.bos_token_id]
                           + tiny_llama.tokenizer(row.cf_prompt, add_special_tokens=False)["input_ids"]])
        _, cache = tiny_llama.run_with_cache(cf)
        hooks = [(f"blocks.{l}.attn.hook_z", lambda z, hook, l=l, c=cache: c[f"blocks.{l}.attn.hook_z"])
                 for l in range(tiny_llama.cfg.n_layers)]
        expected.append(float(_oracle_diff(tiny_llama, pd.DataFrame([row._asdict()]), hooks)[0]))
    assert scores.empty_logit_diff.to_numpy() == pytest.approx(expected, abs=1e-4)


def test_prob_diff_metric_is_probability_mass():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    answers, wrongs = torch.tensor([[3, 2], [0, -1]]), torch.tensor([[0, -1], [1, 2]])
    p = torch.softmax(logits, -1)
    want = torch.tensor([p[0, 3] + p[0, 2] - p[0, 0], p[1, 0] - p[1, 1] - p[1, 2]])
    assert torch.allclose(metric(logits, answers, wrongs, "prob_diff"), want)
    mean_diff = torch.tensor([(3.0 + 2.0) / 2 - 0.0, 1.0 - 1.0])
    assert torch.allclose(metric(logits, answers, wrongs, "logit_diff"), mean_diff)


def test_eap_ig_sees_the_task_positions(model, prompts):
    """Clean and counterfactual prompts differ only from TARGET on, so under causal attention
    every activation at MARK is the same in both runs and its attribution is exactly zero; at
    TARGET it is not."""
    table = eap.eap_ig_nodes(model, prompts, steps=3, task="copy", progress=False)
    assert set(table.role) == {"MARK", "TARGET", "END", "other"}
    assert (table[table.role == "MARK"].score.abs() < 1e-6).all()
    assert table[table.role == "TARGET"].score.abs().max() > 1e-4


def test_size_curves_and_verdicts(tiny_gpt2):
    df = get_task("copy").generate(tiny_gpt2.tokenizer, n=40, seed=1)
    setting = curves.Setting(tiny_gpt2, df, means=None, task="copy")
    every = N.head_nodes(tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads, get_task("copy").node_roles)
    long = curves.score_circuits(setting, {"all": every, "none": [], "one": every[:3]})
    summary = curves.summarise(long).set_index("circuit")
    assert summary.loc["all", "normalised"] == pytest.approx(1.0, abs=1e-4)
    assert summary.loc["none", "normalised"] == pytest.approx(0.0, abs=1e-6)
    assert (long[long.circuit == "all"].logit_diff.to_numpy()
            == pytest.approx(_oracle_diff(tiny_gpt2, df).numpy(), abs=1e-4))
    verdicts = generalise.verdict_table(long.assign(n_nodes=long.n_nodes), "near")
    assert set(verdicts.condition) == {"near", "far"}
    assert verdicts.set_index(["circuit", "condition"]).loc[("all", "far"), "verdict"] == "holds"


def test_spec_positions_are_the_tasks():
    with pytest.raises(circuits.CircuitSpecError, match="unknown position 'S2'"):
        circuits.parse_circuit(SPEC.replace("[TARGET, END]", "[S2, END]"))
    with pytest.raises(circuits.CircuitSpecError, match="unknown task"):
        circuits.parse_circuit(SPEC.replace("task: copy", "task: nothing"))
    nodes = {n.label for n in _spec().nodes()}
    assert nodes == {"0.1@TARGET", "0.1@END", "1.0@END", "1.1@END"}


def test_cli_scores_with_task(tmp_path, tiny_gpt2, monkeypatch, capsys):
    df = get_task("copy").generate(tiny_gpt2.tokenizer, n=20, seed=2)
    df.to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "c.yaml").write_text(SPEC)
    monkeypatch.syspath_prepend(str(tmp_path))  # the task module is importable as copy_task anyway
    out = tmp_path / "s.csv"
    args = ["score", "--model", "tiny-gpt2", "--circuit", str(tmp_path / "c.yaml"), "--prompts",
            str(tmp_path / "p.csv"), "--out", str(out), "--no-progress", "--ablation", "resample"]
    assert cli.main(args) == 2  # the spec is a copy circuit; --task defaults to ioi
    assert "--task copy" in capsys.readouterr().err
    assert cli.main([*args, "--task", "copy", "--task-module", "copy_task"]) == 0
    scored = pd.read_csv(out)
    assert scored.logit_diff.to_numpy() == pytest.approx(_oracle_diff(tiny_gpt2, df).numpy(), abs=1e-4)
    assert json.loads(out.with_name("s.meta.json").read_text())["task"] == "copy"
    assert cli.main([*args, "--task", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


assert "copy_task" in sys.modules
