"""The Makefile's front door stays honest: ``.PHONY`` names exactly the targets, and ``make help``
lists every one of them (issue 12, item 9)."""

from __future__ import annotations

import pathlib
import re

MAKEFILE = pathlib.Path(__file__).resolve().parents[1] / "Makefile"


def _makefile() -> tuple[set[str], set[str], set[str]]:
    text = MAKEFILE.read_text()
    # Named targets (`name:` at the start of a line, not `:=`); file targets like $(PY) are not.
    targets = set(re.findall(r"^([a-z][\w-]*):(?!=)", text, flags=re.M))
    (phony,) = re.findall(r"^\.PHONY:(.*)$", text, flags=re.M)
    helped = set(re.findall(r'^\t@echo "make ([\w-]+)', text, flags=re.M))
    return targets, set(phony.split()), helped


def test_phony_matches_the_targets():
    targets, phony, _ = _makefile()
    assert phony == targets, f"only in .PHONY: {phony - targets}; not in .PHONY: {targets - phony}"


def test_help_lists_every_target():
    targets, _, helped = _makefile()
    assert helped == targets, f"missing from help: {targets - helped}; help only: {helped - targets}"


def _recipe(target: str) -> list[str]:
    text = MAKEFILE.read_text()
    (body,) = re.findall(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", text, flags=re.M)
    return [line.strip() for line in body.splitlines()]


def test_ci_runs_the_smoke_run_after_nbval():
    """CI (.ci/run) runs ``make test``, whose recipe runs every chapter on both tiny models
    (scripts/smoke.py, what ``make smoke`` runs) after the notebook check (issue 12, item 8)."""
    ci = (MAKEFILE.parent / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)
    steps = _recipe("test")
    smoke = [i for i, s in enumerate(steps) if "scripts/smoke.py" in s]
    nbval = [i for i, s in enumerate(steps) if "--nbval-lax" in s]
    assert len(smoke) == 1 and len(nbval) == 1 and smoke[0] > nbval[0]
    assert steps[smoke[0]].split("scripts/smoke.py")[1].split() == _recipe("smoke")[0].split(
        "scripts/smoke.py")[1].split()  # the same run as make smoke, every model and chapter


def test_a_failing_chapter_fails_the_smoke_run(monkeypatch, tmp_path, capsys):
    """scripts/smoke.py exits nonzero (so make test fails) when a chapter raises, and still runs
    the other model."""
    import sys

    import pytest

    sys.path.insert(0, str(MAKEFILE.parent / "scripts"))
    import run_book
    import smoke

    ran: list[tuple[str, str]] = []

    def execute(stems, out, params):
        ran.append((params["MODEL"], stems[0]))
        if stems[0].endswith("w02-attention-by-hand") and params["MODEL"] == "tiny-gpt2":
            raise RuntimeError("cell 3 raised ValueError")

    stems = run_book.toc_notebooks()
    monkeypatch.setattr(run_book, "toc_notebooks", lambda: stems)
    monkeypatch.setattr(run_book, "execute", execute)
    monkeypatch.setattr(run_book, "ROOT", tmp_path)  # runs/smoke-* under tmp_path
    monkeypatch.setattr(sys, "argv", ["smoke.py", "--only", "w01", "w02"])
    with pytest.raises(SystemExit) as exit_:
        smoke.main()
    assert exit_.value.code not in (0, None)
    assert "tiny-gpt2 w02" in str(exit_.value) and "ValueError" in str(exit_.value)
    assert [m for m, _ in ran] == ["tiny-gpt2", "tiny-gpt2", "tiny-llama", "tiny-llama"]
    ran.clear()
    monkeypatch.setattr(sys, "argv", ["smoke.py", "--only", "w01", "--models", "tiny-llama"])
    smoke.main()  # no failure: returns normally
    assert ran == [("tiny-llama", "notebooks/w01-residual-stream")]
