"""Where the project's files live, independent of the working directory a notebook runs in.

Two situations, told apart once at import:

* **Inside the checkout** (the editable install ``make setup`` makes): ``REPO_ROOT`` is the
  repository, and data is read from and written to its ``data/`` (the notebooks' reference run
  commits what lands there).
* **Installed** (``pip install .`` or a built wheel, anywhere else): there is no repository.
  ``REPO_ROOT`` is None, the circuit specs the project ships come from the package
  (``circuitgen/specs/``, see pyproject.toml), and everything else (prompt sets, outputs) lives
  under ``data/`` relative to the working directory, unless the caller names a folder.
"""

from __future__ import annotations

import pathlib

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


def _checkout_root(package_dir: pathlib.Path) -> pathlib.Path | None:
    """The repository holding ``package_dir`` as ``lib/circuitgen``, or None for an installed copy.

    A wheel installs into ``.../site-packages/circuitgen``, whose grandparent has no pyproject.toml
    beside ``data/circuits/``; only the checkout has both.
    """
    root = package_dir.parents[1]
    is_checkout = (package_dir == root / "lib" / package_dir.name
                   and (root / "pyproject.toml").is_file()
                   and (root / "data" / "circuits").is_dir())
    return root if is_checkout else None


REPO_ROOT: pathlib.Path | None = _checkout_root(PACKAGE_DIR)
IN_CHECKOUT = REPO_ROOT is not None
# Installed: a relative path, so it resolves from the working directory when it is used.
DATA_DIR = REPO_ROOT / "data" if REPO_ROOT is not None else pathlib.Path("data")
PROMPTS_DIR = DATA_DIR / "prompts"
# The specs a bare circuit name refers to: the checkout's data/circuits/ (which notebooks also write
# to), or the copy of it shipped inside the package.
CIRCUITS_DIR = DATA_DIR / "circuits" if REPO_ROOT is not None else PACKAGE_DIR / "specs"


def shipped_circuits() -> list[str]:
    """Names of the circuit specs a bare ``--circuit NAME`` can load (for help and error text)."""
    return sorted(p.stem for p in CIRCUITS_DIR.glob("*.yaml"))


def output_dir(path: str | pathlib.Path | None) -> pathlib.Path:
    """A run's output folder: ``data/`` for the reference run, else the folder given (created)."""
    out = pathlib.Path(path) if path else DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def model_slug(model: str) -> str:
    """A model id as a file-name part: ``owner/name`` -> ``owner--name`` (no sub-folders)."""
    return str(model).replace("/", "--")


def result_path(kind: str, model: str, *parts: object, folder: str | pathlib.Path | None = None,
                suffix: str = ".csv") -> pathlib.Path:
    """The one rule for result files: ``<folder>/<model slug>-<part>-<part>...<suffix>``, the
    folder being ``data/<kind>/`` (``kind``: ``scores`` or ``discovery``) unless given. Writers
    and readers both call it, so a model id with "/" names the same file on both sides."""
    base = pathlib.Path(folder) if folder is not None else DATA_DIR / kind
    return base / ("-".join([model_slug(model), *map(str, parts)]) + suffix)


def shown_path(path: str | pathlib.Path) -> str:
    """``path`` relative to the repository (or, installed, the working directory) when inside it,
    so printed paths are the same across checkouts; else as given."""
    p = pathlib.Path(path).resolve()
    base = REPO_ROOT if REPO_ROOT is not None else pathlib.Path.cwd()
    return str(p.relative_to(base)) if p.is_relative_to(base) else str(path)
