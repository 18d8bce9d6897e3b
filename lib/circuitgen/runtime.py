"""Shared set-up for a notebook run: seeds, threads, plotting style, the model, a header."""

from __future__ import annotations

import random

import numpy as np
import torch

from circuitgen.models import describe, load_model


def seed_everything(seed: int) -> None:
    """Fix every random source the notebooks use, so a rerun gives the committed outputs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_plotting() -> None:
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.dpi": 100, "figure.figsize": (7, 4), "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight",
    })


def start(model: str, seed: int = 0, device: str = "cpu", compatibility_mode: bool = True):
    """Seed, style, load the model and print what was loaded; returns the model."""
    seed_everything(seed)
    setup_plotting()
    torch.set_grad_enabled(False)
    bridge = load_model(model, device=device, compatibility_mode=compatibility_mode, seed=seed)
    info = describe(bridge)
    print(
        f"model {info['model']}: {info['n_layers']} layers x {info['n_heads']} heads "
        f"({info['n_key_value_heads']} KV heads), d_model {info['d_model']}; "
        f"compatibility mode {'on' if info['compatibility_mode'] else 'off'}, BOS prepended, "
        f"{info['dtype']} on {info['device']}, seed {seed}"
    )
    return bridge


def model_label(model) -> str:
    """Short label for figure titles."""
    return model.circuitgen.model
