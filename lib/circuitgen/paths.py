"""Where the project's files live, independent of the working directory a notebook runs in."""

from __future__ import annotations

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
PROMPTS_DIR = DATA_DIR / "prompts"
CIRCUITS_DIR = DATA_DIR / "circuits"


def output_dir(path: str | None) -> pathlib.Path:
    """A run's output folder: ``data/`` for the reference run, else the folder given."""
    out = pathlib.Path(path) if path else DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out
