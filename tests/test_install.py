"""circuitgen outside the checkout (issue 12, item 7): a built wheel carries every module and the
shipped circuit specs, and, installed into a fresh environment, ``circuitgen score`` runs from a
temporary folder on the user's own prompts with a shipped circuit, writing where it is told."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile

import pandas as pd
import pytest

from circuitgen import paths

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A user's own prompts (not from data/prompts/), written into the temporary folder.
USER_PROMPTS = """prompt,io,s
"When Mary and John went to the store, John gave a drink to",Mary,John
"After the meeting, Sarah and Tom walked home. Tom handed the keys to",Sarah,Tom
"Then, Alice and Bob had lunch at the cafe. Alice passed the salt to",Bob,Alice
"""


def _run(cmd: list[str], cwd: pathlib.Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    """The wheel, built offline from a copy of the files it needs (so the checkout gets no build/
    folder, and a file the build silently relied on outside these would show up here)."""
    pytest.importorskip("setuptools", reason="the build backend; requirements.txt pins it (make setup)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    (src / "lib").mkdir(parents=True)
    (src / "data").mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lib" / "circuitgen", src / "lib" / "circuitgen", ignore=ignore)
    shutil.copytree(ROOT / "data" / "circuits", src / "data" / "circuits", ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", tmp / "dist", src], cwd=tmp)
    (whl,) = (tmp / "dist").glob("circuitgen-*.whl")
    return whl


def test_wheel_holds_every_module_and_the_shipped_specs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "lib" / "circuitgen"
    modules = {f"circuitgen/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel: list new subpackages in pyproject.toml"
    specs = {f"circuitgen/specs/{p.name}" for p in (ROOT / "data" / "circuits").glob("*.yaml")}
    assert specs and specs <= names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "circuitgen = circuitgen.cli:main" in entry_points


def test_checkout_paths_unchanged():
    """Inside the checkout (editable install) data is still the repository's data/."""
    assert paths.REPO_ROOT == ROOT
    assert paths.DATA_DIR == ROOT / "data"
    assert paths.CIRCUITS_DIR == ROOT / "data" / "circuits"
    assert paths.PROMPTS_DIR == ROOT / "data" / "prompts"
    assert "smollm2-135m-ioi" in paths.shipped_circuits()


def test_checkout_root_detection(tmp_path):
    """Only a lib/circuitgen beside pyproject.toml and data/circuits/ counts as the checkout."""
    pkg = tmp_path / "lib" / "circuitgen"
    pkg.mkdir(parents=True)
    assert paths._checkout_root(pkg) is None
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data" / "circuits").mkdir(parents=True)
    assert paths._checkout_root(pkg) == tmp_path
    site_pkg = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "circuitgen"
    site_pkg.mkdir(parents=True)
    assert paths._checkout_root(site_pkg) is None


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> pathlib.Path:
    """A fresh venv with the wheel installed; its dependencies (torch, the embedded model) come
    from this environment's site-packages through a .pth line, so nothing is downloaded. Such a
    line adds the folder but does not run the .pth files inside it, so the checkout's editable
    hook stays out and ``circuitgen`` can only come from the wheel."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = pathlib.Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                cwd=venv.parent).stdout.strip())
    ours = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if os.path.isdir(p)]
    (purelib / "_circuitgen_test_deps.pth").write_text("\n".join(ours) + "\n")
    # --ignore-installed: never touch the checkout's editable install, which pip can see.
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel],
         cwd=venv.parent)
    return venv


@pytest.mark.slow
def test_installed_circuitgen_scores_user_prompts_with_a_shipped_circuit(installed, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    probe = _run([installed / "bin" / "python", "-c",
                  "import circuitgen, circuitgen.paths as p; print(circuitgen.__file__); "
                  "print(p.REPO_ROOT); print(p.CIRCUITS_DIR)"], cwd=work).stdout.splitlines()
    assert pathlib.Path(probe[0]).is_relative_to(installed), probe
    assert probe[1] == "None"
    assert pathlib.Path(probe[2]).is_relative_to(installed), probe

    (work / "my-prompts.csv").write_text(USER_PROMPTS)
    # A name that is neither a file here nor a shipped spec: one error line naming the shipped ones.
    bad = subprocess.run([installed / "bin" / "circuitgen", "score", "--circuit", "no-such-circuit",
                          "--prompts", "my-prompts.csv", "--out", "x.csv"], cwd=work,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("circuitgen: error:") and "smollm2-135m-ioi" in bad.stderr, bad.stderr
    proc = _run([installed / "bin" / "circuitgen", "score", "--circuit", "smollm2-135m-ioi",
                 "--prompts", "my-prompts.csv", "--out", "results/scores.csv",
                 "--no-knockouts", "--no-progress"], cwd=work)
    out = work / "results" / "scores.csv"
    assert out.exists(), proc.stdout
    scores = pd.read_csv(out)
    assert len(scores) == 3
    assert list(scores.prompt) == list(pd.read_csv(work / "my-prompts.csv").prompt)
    assert (scores.status == "ok").all(), scores.status.tolist()
    assert scores[["logit_diff", "circuit_logit_diff", "faithfulness"]].notna().all().all()
    meta_text = (work / "results" / "scores.meta.json").read_text()
    meta = json.loads(meta_text)
    assert pathlib.Path(meta["circuit"]).is_relative_to(installed), meta["circuit"]  # the shipped copy
    for inside in (ROOT / "data", ROOT / "lib"):
        assert str(inside) not in meta_text, "the installed command read something from the checkout"
    assert not (work / "data").exists(), "nothing is written where the user did not say"
