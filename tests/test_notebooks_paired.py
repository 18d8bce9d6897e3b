"""Every notebook in the book is a jupytext pair in sync, committed with the reference outputs."""

from __future__ import annotations

import json
import pathlib
import re

import jupytext
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def toc_stems() -> list[str]:
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"file:\s*(notebooks/\S+)", text)


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells
            if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


STEMS = toc_stems()


def test_toc_lists_notebooks():
    assert STEMS, "_toc.yml lists no notebooks"
    yaml.safe_load((ROOT / "_toc.yml").read_text())


@pytest.mark.parametrize("stem", STEMS)
def test_pair_in_sync(stem):
    py, ipynb = ROOT / f"{stem}.py", ROOT / f"{stem}.ipynb"
    assert py.exists() and ipynb.exists(), f"{stem}: both .py and .ipynb must be committed"
    nb, src = jupytext.read(ipynb), jupytext.read(py)
    assert cells(nb) == cells(src), (
        f"{stem}.py and .ipynb differ: edit the .py, then `make book` (or run_book.py --only) to "
        "regenerate the .ipynb with the reference outputs"
    )
    assert "py:percent" in json.dumps(nb.metadata.get("jupytext", {})), "missing jupytext pairing"


@pytest.mark.parametrize("stem", STEMS)
def test_reference_outputs_committed(stem):
    nb = jupytext.read(ROOT / f"{stem}.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") is not None for c in code)
    assert any(c.get("outputs") for c in code), f"{stem}.ipynb carries no outputs"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{stem}.ipynb has error outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{stem}: exactly one cell must be tagged 'parameters'"
    assert "MODEL" in params[0].source and "SEED" in params[0].source
    assert any("NBVAL_CHECK_OUTPUT" in c.source for c in code), f"{stem}: no nbval-checked cell"
    # The reference run injects no parameters: its outputs are the defaults'.
    assert not any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in code)


def test_pairing_check_catches_drift(tmp_path):
    """The check above can fail: a changed line in the .py is noticed."""
    stem = STEMS[0]
    src = jupytext.read(ROOT / f"{stem}.py")
    src.cells[-1].source += "\n# an edit not yet run"
    assert cells(src) != cells(jupytext.read(ROOT / f"{stem}.ipynb"))


LONG_FLOAT = re.compile(r"\d\.\d{7,}")  # more digits than any claim needs: float32 noise shows


@pytest.mark.parametrize("stem", STEMS)
def test_checked_cells_print_what_reproduces(stem):
    """A cell nbval checks prints the same text on any machine: it glues nothing (a glued value
    is display data at full precision, compared too), and its committed outputs are text with no
    full-precision float (circuitgen.shown prints at the precision a claim needs)."""
    checked = [c for c in jupytext.read(ROOT / f"{stem}.py").cells
               if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    glued = [c.source.splitlines()[1] for c in checked
             if re.search(r"^\s*(glue|keep)\(", c.source, re.MULTILINE)]
    assert not glued, f"{stem}: checked cells glue values; glue in the next, unchecked cell: {glued}"
    nb = jupytext.read(ROOT / f"{stem}.ipynb")
    for c in nb.cells:
        if c.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in c.source:
            continue
        kinds = {o.get("output_type") for o in c.get("outputs", [])}
        assert kinds <= {"stream"}, f"{stem}: a checked cell shows {kinds - {'stream'}}"
        text = "".join(o.get("text", "") for o in c.get("outputs", []))
        assert not LONG_FLOAT.search(text), (
            f"{stem}: a checked cell prints {LONG_FLOAT.search(text).group()}: print it at the "
            "precision the claim needs (circuitgen.shown)")
