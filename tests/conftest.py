"""Shared fixtures: each model is loaded once per test session."""

from __future__ import annotations

import os

import pytest
import torch

from circuitgen import load_model


def pytest_configure(config):
    """Under pytest-xdist (``make test-fast`` runs ``-n 2``) each worker gets its share of the
    cores: two workers with two torch threads each on two cores would run slower than one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(scope="session", autouse=True)
def _grad_enabled():
    """Gradients on for the whole session, whatever an imported module set: the attribution
    tests need them (the library turns them off locally where it does not)."""
    torch.set_grad_enabled(True)
    yield


SLOW_FIXTURES = {"smollm2"}  # fixtures that load the embedded 135M model


def pytest_collection_modifyitems(config, items):
    """A test that uses the 135M model (through any fixture that needs :func:`smollm2`) is marked
    slow here, from its fixtures, never by hand: ``make test-fast`` then loads no 135M model."""
    for item in items:
        # a parameter naming the fixture counts too: tests that take the model by
        # request.getfixturevalue(name) (one test body for every model)
        params = getattr(getattr(item, "callspec", None), "params", {})
        named = {v for v in params.values() if isinstance(v, str)}
        if SLOW_FIXTURES & (set(getattr(item, "fixturenames", ())) | named):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_135m_in_fast_tests(request, monkeypatch):
    """A test not marked slow that loads the 135M model anyway (by name, bypassing the fixture)
    fails at once, saying how to fix it, instead of making the fast tier slow."""
    if request.node.get_closest_marker("slow") is None:
        from circuitgen import models

        def refuse():
            raise RuntimeError(f"{request.node.nodeid} loads the 135M model but is not marked slow: "
                               "take the smollm2 fixture (marked slow automatically), or mark it "
                               "@pytest.mark.slow, or use a tiny model.")

        monkeypatch.setattr(models, "_smollm2_hf", refuse)
    yield


@pytest.fixture(scope="session")
def smollm2():
    """The embedded reference model (real weights, ~4 s from the cache, ~40 s the first time)."""
    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_gpt2():
    return load_model("tiny-gpt2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama():
    return load_model("tiny-llama", seed=0)


TINY_SPEC = """
model: tiny
task: ioi
classes:
  movers: {heads: ["1.0", "1.3"], positions: [END], signature: {from: END, to: IO}}
  inhibit: {heads: ["0.2"], positions: [S2, END], signature: {from: END, to: S2}}
"""


@pytest.fixture(scope="session")
def tiny_spec():
    """A two-class circuit on the 2-layer tiny models, for the sweep and predictor tests."""
    from circuitgen import circuits

    return circuits.parse_circuit(TINY_SPEC, source="<test spec>")
