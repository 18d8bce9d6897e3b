"""Execute the notebooks with papermill in _toc.yml order, then build the Jupyter Book.

The reference run (the embedded model, default parameters) writes its outputs into
notebooks/*.ipynb, which are committed and validated by nbval. Any other model or parameter set
runs into runs/<name>/ with its own copy of the book, so the reference outputs are never touched.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import jupytext
import papermill as pm
import yaml
from tqdm import tqdm

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_MODEL = "smollm2-135m"
BOOK_FILES = ["_config.yml", "_toc.yml", "intro.md", "LAB_NOTEBOOK.md", "references.bib",
              "references.md"]


def toc_notebooks() -> list[str]:
    """Notebook stems (``notebooks/w01-...``) in the order _toc.yml lists them."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node and str(node["file"]).startswith("notebooks/"):
                files.append(str(node["file"]).removesuffix(".ipynb"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(toc)
    return files


def parse_params(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs; values are Python literals where they parse, else strings."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            sys.exit(f"bad parameter {pair!r}: write it as KEY=VALUE, e.g. N_PROMPTS=50")
        key, value = pair.split("=", 1)
        try:
            params[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key] = value
    return params


def execute(stems: list[str], out_dir: pathlib.Path, params: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem in tqdm(stems, desc="notebooks", unit="nb"):
        source = ROOT / f"{stem}.py"
        target = out_dir / f"{pathlib.Path(stem).name}.ipynb"
        with tempfile.TemporaryDirectory() as tmp:
            unexecuted = pathlib.Path(tmp) / target.name
            jupytext.write(jupytext.read(source), unexecuted)
            start = time.time()
            pm.execute_notebook(
                str(unexecuted), str(target), parameters=params or None, kernel_name="python3",
                cwd=str(ROOT / "notebooks"), progress_bar=True, log_output=False,
            )
        tqdm.write(f"{stem}: {time.time() - start:.0f} s")


def build(book_dir: pathlib.Path) -> None:
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(book_dir), "--warningiserror",
           "--nitpick", "--keep-going", "--quiet"]
    jb = pathlib.Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb)] + cmd[3:]
    subprocess.run(cmd, check=True)
    print(f"book: {book_dir / '_build' / 'html' / 'index.html'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=REFERENCE_MODEL)
    ap.add_argument("--params", nargs="*", default=[], help="papermill parameters, KEY=VALUE")
    ap.add_argument("--no-execute", action="store_true", help="build from committed outputs")
    ap.add_argument("--no-build", action="store_true", help="execute only")
    ap.add_argument("--only", nargs="*", help="run only these notebook stems (e.g. w03)")
    args = ap.parse_args()

    params = parse_params(args.params)
    stems = toc_notebooks()
    if args.only:
        stems = [s for s in stems if any(pathlib.Path(s).name.startswith(o) for o in args.only)]
    reference = args.model == REFERENCE_MODEL and not params
    if reference:
        book_dir, nb_dir = ROOT, ROOT / "notebooks"
    else:
        slug = args.model.replace("/", "--") + "".join(f"_{k}-{v}" for k, v in sorted(params.items()))
        book_dir = ROOT / "runs" / slug
        nb_dir = book_dir / "notebooks"
        params = {"MODEL": args.model, "OUTPUT_DIR": str(book_dir / "outputs"), **params}
        book_dir.mkdir(parents=True, exist_ok=True)
        for name in BOOK_FILES:
            if (ROOT / name).exists():
                shutil.copy(ROOT / name, book_dir / name)
        print(f"non-reference run: outputs go to {book_dir}, the committed notebooks are untouched")
    if not args.no_execute:
        execute(stems, nb_dir, params)
    if not args.no_build:
        build(book_dir)


if __name__ == "__main__":
    main()
