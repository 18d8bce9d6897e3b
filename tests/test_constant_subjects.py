"""Tests for library functions that no fast test exercised, found by
``scripts/constant_subjects.py``: each fails when its subject returns a constant of the right shape
and checks the value against an oracle that does not reuse the function (issue 13).

At the end, tests of the tool itself: its blind spots (issue 25), each checked with its own
machinery (:func:`constant_like`, the wrapper, the rebinding) on small fake subjects."""

from __future__ import annotations

import importlib
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import transformer_lens.patching as tlp

from circuitgen import attention, curves, ioi, nodes, residual
from circuitgen import patching as P
from circuitgen.models import hf_model_and_tokenizer

# The tool is a script (scripts/ is not a package); appended, so that PYTHONPATH may name another copy.
sys.path.append(str(Path(__file__).resolve().parents[1] / "scripts"))
cs = importlib.import_module("constant_subjects")


def test_mlp_nodes_lists_every_layer_and_role():
    got = nodes.mlp_nodes(2, roles=("IO", "END"))
    assert [(n.layer, n.head, n.role) for n in got] == [
        (0, None, "IO"), (0, None, "END"), (1, None, "IO"), (1, None, "END")]
    assert len(nodes.mlp_nodes(3)) == 3 * len(nodes.NODE_ROLES)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_n_kv_heads_matches_the_hf_config(name, request):
    model = request.getfixturevalue(name.replace("-", "_"))
    config = hf_model_and_tokenizer(name, seed=0)[0].config
    expected = getattr(config, "num_key_value_heads", None) or config.n_head
    assert attention.n_kv_heads(model) == expected
    if name == "tiny-llama":  # the GQA model: fewer key/value heads than query heads
        assert expected < model.cfg.n_heads


def test_layer_all_pos_patch_setter_copies_the_clean_layer():
    corrupted, clean = torch.zeros(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4)
    out = P.layer_all_pos_patch_setter(corrupted, [1], clean)
    assert torch.equal(out, clean) and torch.equal(corrupted, clean)


def test_patch_all_heads_equals_transformer_lens(tiny_gpt2):
    ps = P.aligned_prompts(tiny_gpt2, 4, seed=0)
    s = P.setup(tiny_gpt2, ps.df)
    ours = P.patch_all_heads(tiny_gpt2, s.corrupted.tokens, s.clean_cache, s.metric)
    with torch.no_grad():
        theirs = tlp.get_act_patch_attn_head_out_all_pos(tiny_gpt2, s.corrupted.tokens, s.clean_cache,
                                                         s.metric)
    assert ours.shape == (tiny_gpt2.cfg.n_layers, tiny_gpt2.cfg.n_heads)
    assert theirs.std() > 1e-3  # the heads differ, so a constant cannot pass
    assert torch.allclose(ours.cpu(), theirs.cpu(), atol=1e-4)


@pytest.fixture(scope="module")
def gpt2_run(tiny_gpt2):
    tokens = tiny_gpt2.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.no_grad():
        logits, cache = tiny_gpt2.run_with_cache(tokens)
    return tokens, logits, cache


def test_residual_norms_are_the_stream_rebuilt_from_its_writes(tiny_gpt2, gpt2_run):
    # Oracle: the stream entering layer 0 is the token plus position embedding, and each block
    # adds its attention and MLP outputs; the norms of that sum, position by position.
    tokens, _, cache = gpt2_run
    n = tiny_gpt2.cfg.n_layers
    x = cache["hook_embed"][0] + cache["hook_pos_embed"][0]
    expected = [x.norm(dim=-1)]
    for layer in range(n):
        x = x + cache[f"blocks.{layer}.hook_attn_out"][0] + cache[f"blocks.{layer}.hook_mlp_out"][0]
        expected.append(x.norm(dim=-1))
    got = residual.residual_norms(cache, n)
    assert got.shape == (n + 1, tokens.shape[1])
    assert torch.allclose(got, torch.stack(expected), rtol=1e-4, atol=1e-4)


def test_component_writes_are_the_differences_of_the_stream(tiny_gpt2, gpt2_run):
    _, _, cache = gpt2_run
    got = residual.component_writes(cache, tiny_gpt2.cfg.n_layers, pos=-1)
    for layer in range(tiny_gpt2.cfg.n_layers):
        pre, mid, post = (cache[f"blocks.{layer}.hook_resid_{k}"][0, -1] for k in ("pre", "mid", "post"))
        assert got.loc[layer, "attention"] == pytest.approx((mid - pre).norm().item(), rel=1e-4)
        assert got.loc[layer, "mlp"] == pytest.approx((post - mid).norm().item(), rel=1e-4)
    assert got["attention"].nunique() == tiny_gpt2.cfg.n_layers


def test_logit_lens_answer_ends_at_the_model_logits(tiny_gpt2, gpt2_run):
    # The last entry of the lens is the final residual stream: its logits are the model's.
    tokens, logits, _ = gpt2_run
    answer, other = tiny_gpt2.to_single_token(" Mary"), tiny_gpt2.to_single_token(" John")
    got = residual.logit_lens_answer(tiny_gpt2, tokens, answer, other)
    final = logits[0, -1]
    last = got.iloc[-1]
    assert last["answer_logit"] == pytest.approx(final[answer].item(), abs=1e-3)
    assert last["other_logit"] == pytest.approx(final[other].item(), abs=1e-3)
    assert last["logit_diff"] == pytest.approx((final[answer] - final[other]).item(), abs=1e-3)
    assert last["answer_rank"] == int((final > final[answer]).sum())
    assert got["answer_logit"].nunique() > 1


def test_aligned_prompts_are_distinct_prompts_at_decoded_positions(tiny_gpt2):
    ps = P.aligned_prompts(tiny_gpt2, 6, seed=2, template=1)
    df = ps.df
    assert df["prompt_id"].tolist() == list(range(6))  # ids join tables: one per prompt
    assert df["prompt"].nunique() == 6 and set(df["template"]) == {1}
    for _, row in df.iterrows():
        ids = ioi.tokenize(tiny_gpt2.tokenizer, row["prompt"])
        word = lambda pos, ids=ids: tiny_gpt2.tokenizer.decode([ids[pos]]).strip()  # noqa: E731
        decoded = (word(row["pos_io"]), word(row["pos_s1"]), word(row["pos_s2"]))
        assert decoded == (row["io"], row["s"], row["s"])
        assert row["n_tokens"] == len(ids)


def test_random_circuit_is_a_uniform_sample_without_replacement():
    every = nodes.head_nodes(3, 4)
    draws = [curves.random_circuit(3, 4, 5, seed) for seed in range(400)]
    for d in draws[:20]:
        assert len(set(d)) == 5 and d == sorted(d) and set(d) <= set(every)
    assert curves.random_circuit(3, 4, 5, 7) == draws[7]  # seeded
    assert len({tuple(d) for d in draws}) > 300
    # Each of the 72 nodes is drawn with probability 5/72: ~27.8 times in 400 draws.
    counts = Counter(n for d in draws for n in d)
    assert len(counts) == len(every)
    assert max(abs(c - 400 * 5 / 72) for c in counts.values()) < 20


# -------------------------------------------------------------------------------------------
# The tool's blind spots (issue 25).


@pytest.fixture(autouse=True)
def _own_counts(monkeypatch):
    """The wrappers made here count their calls apart from a plugin run that includes this file."""
    monkeypatch.setattr(cs, "_STATE", {**cs._STATE, "calls": 0, "changed": 0, "types": {}})


def _fails(check, *args) -> bool:
    try:
        check(*args)
    except AssertionError:
        return True
    return False


ALL_EQUAL = {  # real results whose every element is the same: the mean is the result itself
    "float tensor": torch.full((2, 3), 0.25),
    "float tensor, equal within float noise": torch.tensor([0.25, 0.25 + 1e-7, 0.25 - 1e-7]),
    "int tensor": torch.full((4,), 3, dtype=torch.long),
    "bool tensor": torch.ones(3, dtype=torch.bool),
    "float array": np.zeros(5),
    "int array": np.full(3, 7, dtype=np.int64),
    "float Series": pd.Series([0.5, 0.5, 0.5]),
    "int Series": pd.Series([2, 2], dtype="Int64"),
}


@pytest.mark.parametrize("name", list(ALL_EQUAL))
def test_the_constant_differs_from_an_all_equal_result(name):
    # Blind spot 1: the constant (every element the mean) of an all-equal result was the result
    # itself, so no test could fail: the function was n/a or SURVIVED whatever its tests checked.
    real = ALL_EQUAL[name]
    flag = cs._Changed()
    out = cs.constant_like(real, flag)
    assert type(out) is type(real) and out.shape == real.shape and out.dtype == real.dtype
    as_np = lambda v: np.asarray(v, dtype=float)  # noqa: E731
    assert len(np.unique(as_np(out))) == 1  # still a constant
    assert not np.allclose(as_np(out), as_np(real), rtol=1e-3, atol=1e-3)
    assert flag.any


def test_a_dataframe_column_that_is_all_equal_is_changed_too():
    real = pd.DataFrame({"score": [0.1, 0.1], "layer": [0, 1], "node": ["a", "b"]})
    out = cs.constant_like(real)
    assert out["score"].nunique() == 1 and out["score"].iloc[0] != pytest.approx(0.1, abs=1e-3)
    assert out["layer"].nunique() == 1
    assert out["node"].tolist() == ["a", "b"]


def test_a_value_check_of_an_all_equal_result_fails_under_the_constant():
    def uniform(n):  # a subject whose real result is all-equal
        return torch.full((n,), 1 / n)

    def check(f):  # a hand-made test of its value
        assert torch.allclose(f(4), torch.tensor([0.25] * 4))

    check(uniform)
    assert _fails(check, cs._constant_wrapper(uniform))


def test_the_float_constant_is_not_a_round_number_a_test_may_expect():
    # Blind spot 2: floats were replaced by 0.5, which a hand-made answer (a probability, a
    # faithfulness, a midpoint) equals by coincidence; a test of such a value passed.
    def chance(n_answers):
        return 1 / n_answers

    def check(f):
        assert f(2) == pytest.approx(0.5)
        assert f(2.0000001) == pytest.approx(0.5, abs=1e-3)

    check(chance)
    assert _fails(check, cs._constant_wrapper(chance))
    assert all(abs(cs.FLOAT - v) > 0.01 for v in (0, 0.25, 0.5, 0.75, 1, 1 / 3, 2 / 3, 0.1, 0.9))
    # and a real result that is the constant itself gets another one; so does an int that is 1
    assert cs.constant_like(cs.FLOAT) != pytest.approx(cs.FLOAT, abs=1e-3)
    assert cs.constant_like(np.float32(cs.FLOAT)) != pytest.approx(cs.FLOAT, abs=1e-3)
    assert cs.constant_like(1) != 1 and cs.constant_like(5) == cs.INT


FAKE = "circuitgen._constant_subjects_fake"
FAKE_SOURCE = """
import dataclasses
import functools


def score(x):
    return 2.0 * x


REGISTRY = {"score": score}                     # a dict of functions
TABLE = [("score", score)]                      # a list of tuples
CHAIN = (score,)                                # a tuple
NESTED = {"group": {"inner": [score]}}          # nested containers
HALF = functools.partial(score, 0.5)            # a partial


@dataclasses.dataclass(frozen=True)
class Kind:                                     # like circuitgen.patching.Kind
    name: str
    fn: object


KINDS = {"double": Kind("double", score)}       # a frozen dataclass in a registry


class Holder:
    fn = staticmethod(score)                    # a staticmethod


class Task:                                     # like circuitgen.task.Task
    def value(self, x):
        return 3.0 * x


_TASKS = {"t": Task()}                          # a registered instance
"""


@pytest.fixture
def fake(monkeypatch):
    """A library module (its name starts with circuitgen) that holds a function in registries."""
    mod = types.ModuleType(FAKE)
    monkeypatch.setitem(sys.modules, FAKE, mod)
    exec(compile(FAKE_SOURCE, FAKE, "exec"), mod.__dict__)
    return mod


def _reached(fake) -> dict:
    """Each way of calling ``score`` with 1.0 (really 2.0) and what it returns."""
    return {"attribute": fake.score(1.0), "dict": fake.REGISTRY["score"](1.0),
            "list of tuples": fake.TABLE[0][1](1.0), "tuple": fake.CHAIN[0](1.0),
            "nested": fake.NESTED["group"]["inner"][0](1.0), "partial": 2 * fake.HALF(),
            "frozen dataclass in a dict": fake.KINDS["double"].fn(1.0),
            "staticmethod": fake.Holder.fn(1.0)}


def test_a_function_held_in_registries_is_replaced_there_too(fake):
    # Blind spot 3: a function called through a registry (a list, a tuple, a dataclass in a dict)
    # kept the real one, so the tests that call it that way never saw the constant.
    fn = fake.score
    assert set(_reached(fake).values()) == {2.0}
    n = cs._rebind(fn, cs._constant_wrapper(fn))
    not_reached = {k: v for k, v in _reached(fake).items() if v == 2.0}
    assert not_reached == {}
    assert n == 8


def test_a_method_of_a_registered_instance_is_a_target(fake):
    target = "_constant_subjects_fake:Task.value"
    assert target in cs.targets(modules=["_constant_subjects_fake"],
                                classes=["_constant_subjects_fake:Task"])
    _mod, _name, fn = cs._resolve(target)
    assert fn is vars(fake.Task)["value"]
    task = fake._TASKS["t"]
    assert task.value(1.0) == 3.0
    undo = []
    assert cs._rebind(fn, cs._constant_wrapper(fn), undo) == 1
    assert task.value(1.0) != 3.0  # called on the registered instance: the class is patched
    cs._restore(undo)
    assert task.value(1.0) == 3.0


def test_the_rebinding_is_undone(fake):
    fn, chain, kind, half = fake.score, fake.CHAIN, fake.KINDS["double"], fake.HALF
    undo = []
    cs._rebind(fn, cs._constant_wrapper(fn), undo)
    assert fake.score is not fn and fake.CHAIN is not chain
    cs._restore(undo)
    assert undo == []
    assert fake.score is fn and fake.REGISTRY["score"] is fn and fake.TABLE[0][1] is fn
    assert fake.CHAIN is chain and fake.HALF is half and fake.KINDS["double"] is kind
    assert kind.fn is fn and vars(fake.Holder)["fn"].__func__ is fn
    assert set(_reached(fake).values()) == {2.0}
