"""Every value a chapter's prose quotes is glued by its committed reference run.

A chapter's markdown (the .py source) and the book's other pages quote results with
``{glue:text}`name``` (``notebook.ipynb::name`` from another page); a report object that drops
or renames a value would leave a hole in the rendered text. This reads the names the prose uses
and the names the committed .ipynb glues (myst-nb's ``application/papermill.record`` outputs)."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEMS = re.findall(r"file:\s*(notebooks/\S+)", (ROOT / "_toc.yml").read_text())
GLUE_ROLE = re.compile(r"\{glue:(?:text|any|md)\}`([^`]+?)(?::[^`:]*)?`")
PAGES = [ROOT / "intro.md", *ROOT.glob("notebooks/*.py")]


def glued(ipynb: pathlib.Path) -> set[str]:
    names = set()
    for cell in json.loads(ipynb.read_text())["cells"]:
        for out in cell.get("outputs", []):
            if any("papermill.record" in k for k in out.get("data", {})):
                names.add(out["metadata"]["scrapbook"]["name"])
    return names


def quoted(stem: str) -> set[str]:
    """Names the chapter's own prose quotes, and names other pages quote from it."""
    name = pathlib.Path(stem).name
    out = set()
    for page in PAGES:
        for ref in GLUE_ROLE.findall(page.read_text()):
            if "::" in ref:
                target, key = ref.split("::", 1)
                if pathlib.Path(target).stem == name:
                    out.add(key)
            elif page == ROOT / f"{stem}.py":
                out.add(ref)
    return out


def test_the_pattern_reads_both_forms():
    text = "a {glue:text}`w14_k_mid:d` b {glue:text}`notebooks/w14-x.ipynb::w14_flagged_list:s` c"
    assert GLUE_ROLE.findall(text) == ["w14_k_mid", "notebooks/w14-x.ipynb::w14_flagged_list"]


@pytest.mark.parametrize("stem", STEMS)
def test_every_quoted_value_is_glued(stem):
    missing = quoted(stem) - glued(ROOT / f"{stem}.ipynb")
    assert not missing, (f"{stem}: the prose quotes values its reference run does not glue: "
                         f"{sorted(missing)} (glue them, or re-run the chapter)")
