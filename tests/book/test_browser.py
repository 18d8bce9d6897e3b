"""Open the built book in headless Chromium: every chapter renders its figures, no error output,
and shows each figure with the code that drew it folded away (the cell's `hide-input` tag).

Runs after `jupyter-book build` (make test does both). Chromium comes from Debian's package,
installed by scripts/ensure_chromium.sh.
"""

from __future__ import annotations

import base64
import pathlib
import re
import shutil
import subprocess

import jupytext
import pytest
from bs4 import BeautifulSoup

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
STEMS = re.findall(r"file:\s*(notebooks/\S+)", (ROOT / "_toc.yml").read_text())
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is missing: run `bash scripts/ensure_chromium.sh` (make test does)"
    return exe


def rendered_dom(page: pathlib.Path, tmp_path: pathlib.Path) -> str:
    out = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def expected_figures(stem: str) -> int:
    nb = jupytext.read(ROOT / f"{stem}.ipynb")
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))


def test_book_was_built():
    assert (HTML / "index.html").exists(), "no built book: run `make html` first"


@pytest.mark.parametrize("stem", STEMS)
def test_chapter_renders_figures_without_errors(stem, tmp_path):
    page = HTML / f"{stem}.html"
    assert page.exists(), f"{page} missing from the built book"
    dom = rendered_dom(page, tmp_path)
    title = re.search(r"<h1[^>]*>(.*?)</h1>", dom, re.S)
    assert title and "Week" in title.group(1), "chapter title did not render"
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    figures = [src for src in imgs if src.endswith(".png") or src.startswith("data:image/png")]
    assert len(figures) >= expected_figures(stem) > 0, f"{stem}: figures missing from the page"
    for src in figures:
        data = (base64.b64decode(src.split(",", 1)[1]) if src.startswith("data:")
                else (page.parent / src).read_bytes())
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{stem}: {src} is not a PNG"
    for bad in ("output traceback", "output error", 'class="output stderr'):
        assert bad not in dom, f"{stem}: the page shows error output ({bad})"
    assert "Traceback (most recent call last)" not in dom


@pytest.mark.parametrize("stem", STEMS)
def test_chapter_figures_show_with_their_code_folded(stem, tmp_path):
    """Every figure a code cell draws is on the page, outside any fold, while that cell's source
    sits in a closed <details> (myst-nb's rendering of the `hide-input` tag): the figure first,
    the code one click away."""
    page = HTML / f"{stem}.html"
    assert page.exists(), f"{page} missing from the built book"
    soup = BeautifulSoup(rendered_dom(page, tmp_path), "html.parser")
    figures = soup.select("div.cell div.cell_output img")
    assert len(figures) >= expected_figures(stem) > 0, f"{stem}: figures missing from the page"
    unfolded = []
    for img in figures:
        cell = img.find_parent("div", class_="cell")
        folds = [d for d in cell.find_all("details") if d.find("div", class_="cell_input")]
        ok = ("tag_hide-input" in cell.get("class", []) and len(folds) == 1
              and folds[0].get("open") is None  # closed: the reader clicks to see the code
              and img.find_parent("details") is None  # the figure itself is not folded
              and cell.find("div", class_="cell_input").find_parent("details") is folds[0])
        if not ok:
            code = cell.find("div", class_="cell_input")
            unfolded.append((code.get_text()[:60] if code else "?").strip().splitlines()[0])
    assert not unfolded, f"{stem}: figure cells whose code is not folded (tag them hide-input): {unfolded}"


def test_intro_and_lab_notebook_render(tmp_path):
    for name in ("index.html", "LAB_NOTEBOOK.html"):
        dom = rendered_dom(HTML / name, tmp_path)
        assert "<h1" in dom, f"{name} did not render"
