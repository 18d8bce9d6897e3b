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
