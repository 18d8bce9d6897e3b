"""Shared fixtures: each model is loaded once per test session."""

from __future__ import annotations

import pytest
import torch

from circuitgen import load_model


@pytest.fixture(scope="session", autouse=True)
def _no_grad_by_default():
    torch.set_grad_enabled(True)
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
