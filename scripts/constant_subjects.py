"""Measure the test suite another way: replace each library function by a constant and see a test fail.

A test that still passes when its subject returns a constant of the right shape checks shapes, not
science (issue 13). This script replaces, one at a time, each public function of the science
modules (:data:`MODULES`), and each public method of the classes in :data:`CLASSES` (a registered
task's methods), by a wrapper that calls the real function and then returns a *constant of the
same shape and type* (:func:`constant_like`):

- tensors and numpy arrays: the same shape and dtype, every element the mean of the real result
  (float; NaNs and infinities ignored), its rounded mean (integer) or its majority value (bool); a
  tensor that required grad still does (the constant is joined to the graph with a zero gradient);
- Python/numpy floats: ``0.5 + 1/7 = 0.642857...`` (:data:`FLOAT`); ints: ``1``;
- DataFrames / Series: the same index and columns, every numeric (non-bool) column set to its
  mean (floats) or rounded mean (ints); text, bool and object columns kept;
- tuples, lists, dicts, NamedTuples, dataclasses and generators: recursively;
- bools, strings, None, sets, callables and other objects (a model, a statsmodels fit): unchanged.

The constant always differs from the real result, so that a test that checks the value can fail
(issue 25):

- *All-equal results.* Where the real result already is that constant (a tensor, array or numeric
  column whose elements all equal their mean, within ``RTOL = ATOL = 1e-3``, the tolerance tests
  use; an int that is 1), the mean would be the result itself and prove nothing: the fill is moved
  clearly apart (``fill + max(1, |fill|)`` for floats, ``fill + 1`` for ints, the other value for
  bools). Before, such a function was *n/a* (or SURVIVED, when only some calls were all-equal)
  whatever its tests checked.
- *Round numbers.* The float constant is not 0.5, which a hand-made answer (a probability, a
  faithfulness, a midpoint) equals by coincidence, so that a constant passed a test of a real
  0.5; a real result within tolerance of :data:`FLOAT` itself gets ``FLOAT + 1``.

A function whose results were never changed by that (it returns only bools, strings, None,
objects or empty tensors) is *n/a*. Otherwise the target is *caught* when at least one test that
exercises it fails, and *SURVIVED* when they all pass.

How it works. The file is also a small pytest plugin (``-p constant_subjects`` with ``scripts/`` on
the path), driven by environment variables:

- ``CONSTANT_SUBJECT=module:function`` (or ``module:Class.method``) patches that function at
  runtime (:func:`_rebind_all`): every module's attribute that is the function (``from circuitgen.x
  import f``), and, in the library's modules, every reference held in their module-level values,
  recursively: registries (dicts, lists, tuples, sets, nested), ``functools.partial``, the fields
  of the library's objects (a frozen dataclass in a registry, such as ``patching.KINDS[...].setter``)
  and the library's classes (a method, so that a registered instance, such as the task that
  ``circuitgen.task.get_task`` returns, calls the wrapper). Calls inside the module go through the
  wrapper too (globals are looked up at call time). Everything is put back when pytest ends.
  ``CONSTANT_SUBJECT_LOG`` names a JSON file where the plugin writes how often the wrapper ran,
  how often it changed a result, and how many references it replaced (``rebound``).
- ``CONSTANT_SUBJECT_MAP=path`` (the *map* run) wraps every target with a recorder instead and
  writes, per target, the test node ids that called it (in setup, call or teardown), with each
  test's duration, outcome and fixtures. A call made while a module- or session-scoped fixture
  is set up is recorded against the fixture, and selects every test that uses it (otherwise
  only the first test to need the fixture would be run).

The driver (``main``) runs the fast suite once in map mode (``-m "not slow and not book"``; cached
in ``runs/constant_subjects/map.json`` until a file under lib/ or tests/ changes, ``--remap``
forces it; ~4 minutes on 2 idle cores), which is also the baseline: tests that fail there are
left out of every selection.
Then, for each target, it runs exactly the tests that called it, fastest first, with ``-x -q``
and a timeout. To save the ~5 s of imports per target, the driver imports torch, pandas and the
library once and forks one child per target (the patch lives only in the child); ``--no-fork``
runs a fresh ``python -m pytest`` per target instead. A target no fast test calls is reported as
*untested* and counts as a survivor.

    .venv/bin/python scripts/constant_subjects.py                      # every target
    .venv/bin/python scripts/constant_subjects.py stats scorer:summary  # modules or targets
    .venv/bin/python scripts/constant_subjects.py --list                # targets and exclusions

The table is printed and written to ``runs/constant_subjects/table.txt`` (runs/ is git-ignored;
each target's pytest output is beside it, in ``logs/``). Exit status: 0 when no applicable target
survives, 1 when one does (or is untested), 2 on errors (a crash of the harness, a timeout).

To exclude a function (it is not science: it formats text, draws a figure, reads or writes files,
parses arguments), add ``"module:function": "the reason"`` to :data:`EXCLUDED`; the reason is
printed with ``--list``. Prefer a test that fails under the constant: an independent oracle, a
hand-computed value, or a known fact about the tiny models.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import pathlib
import subprocess
import sys
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "constant_subjects"
ENV_TARGET, ENV_LOG, ENV_MAP = "CONSTANT_SUBJECT", "CONSTANT_SUBJECT_LOG", "CONSTANT_SUBJECT_MAP"

# The science modules of circuitgen whose public functions are replaced, one at a time.
MODULES = [
    "scorer", "ablation", "reference", "batch", "eap", "patching", "path_patching", "pruning",
    "curves", "faithful", "generalise", "rediscovery", "sweeps", "stats", "predictors", "nodes",
    "attention", "induction", "behaviour", "residual", "ioi", "variations", "heldout", "head_roles",
    "resume", "evaluation", "discovery", "splits",
]

# Classes whose public methods are replaced too ("module:Class.method" targets): a registered task
# is called through its instance, so the method is patched in the class.
CLASSES = ["tasks.ioi:IOITask"]

# "module:function" -> why it is not replaced. Only functions that are not science belong here.
EXCLUDED: dict[str, str] = {
    # Figures: their output is a matplotlib figure, checked by the book, not by a value.
    "induction:plot_loss_by_position": "draws a figure",
    "induction:plot_score_heatmaps": "draws a figure",
    "induction:plot_attention_patterns": "draws a figure",
    "sweeps:plot_conditions": "draws a figure",
    # Text for people: formatting of values computed (and tested) elsewhere.
    "sweeps:format_table": "formats a table as text",
    "sweeps:format_contrasts": "formats contrasts as text",
    "sweeps:interval_note": "formats an interval as text",
    "sweeps:flag_lines": "formats flags as text lines",
    "sweeps:worst_prompt_lines": "formats prompts as text lines",
    "sweeps:reference_line": "formats a line of text",
    "sweeps:names_or_none": "formats names as text",
    "sweeps:shown_path": "formats a path for display",
    "ioi:tokenizer_label": "a display label of a tokenizer",
    # Files and paths.
    "sweeps:save_prompt_set": "writes a file",
    "sweeps:prompt_set_name": "names a file",
    "ioi:meta_path": "a file path",
    "splits:save_splits": "writes files",
    "heldout:read_handwritten": "reads a file (its parse is tested through load_handwritten)",
    "generalise:load_scores": "reads a CSV that score_family wrote",
    "predictors:score_sources": "reads week 14/15's score tables from disk and regenerates their "
                                "prompts; the join is tested through circuit_inputs/circuit_rows",
    # Self-checks and notes.
    "induction:compare_with_tl_detector": "a self-check that reports our scores' difference from "
                                          "TransformerLens's detector; the scores themselves are "
                                          "tested against TL in test_induction",
    "variations:condition_notes": "one-line text notes on each condition",
    # Timing and plumbing.
    "patching:timed": "measures wall time",
}

# -------------------------------------------------------------------------------------------
# The constant of the same shape and type.

# The scalar constants. A float is 0.5 + 1/7 = 0.642857..., not a round number that a test's
# hand-made answer might equal by coincidence (0.5 is a probability, a faithfulness, a midpoint).
FLOAT, INT = 0.5 + 1 / 7, 1
# A constant counts as equal to the real result when it is this close (tests compare floats with
# tolerances such as pytest.approx or abs=1e-3): then a different constant is used.
RTOL = ATOL = 1e-3


def _apart(fill: float) -> float:
    """A fill clearly apart from ``fill`` (for a real result that already is ``fill``)."""
    return fill + max(1.0, abs(fill))


def _close(values, fill: float) -> bool:
    """Whether every one of ``values`` (finite floats, numpy) is within tolerance of ``fill``."""
    import numpy as np

    return bool(np.all(np.abs(values - fill) <= ATOL + RTOL * abs(fill)))


def _int_apart(fill: int, top: int | None = None) -> int:
    return fill - 1 if top is not None and fill + 1 > top else fill + 1


class _Changed:
    """Whether :func:`constant_like` changed anything (bools, strings and objects are kept)."""

    def __init__(self) -> None:
        self.any = False


def constant_like(x, changed: _Changed | None = None):
    """A constant of the same shape and type as ``x`` that differs from ``x`` (see the module
    docstring): where the usual constant (the mean, FLOAT, INT) would equal the real result, within
    :data:`RTOL`/:data:`ATOL` for floats, another one is used (:func:`_apart`)."""
    import numpy as np
    import pandas as pd
    import torch

    changed = changed if changed is not None else _Changed()
    if x is None or isinstance(x, (bool, np.bool_, str, bytes, type)) or callable(x) and not \
            isinstance(x, (torch.Tensor, np.ndarray, pd.DataFrame, pd.Series)):
        return x
    if isinstance(x, (float, np.floating)):
        close = np.isfinite(x) and _close(np.float64(x), FLOAT)
        out = type(x)(_apart(FLOAT) if close else FLOAT)
        changed.any = True
        return out
    if isinstance(x, (int, np.integer)):
        out = type(x)(INT if x != INT else _int_apart(INT))
        changed.any = True
        return out
    if isinstance(x, torch.Tensor):
        if x.numel() == 0 or x.is_complex():
            return x
        with torch.no_grad():
            d = x.detach()
            if x.dtype == torch.bool:
                fill = bool(d.float().mean() >= 0.5)
                if bool((d == fill).all()):
                    fill = not fill
            elif x.is_floating_point():
                finite = d[torch.isfinite(d)].double()
                if finite.numel() == 0:
                    return x
                fill = finite.mean().item()
                if bool(((finite - fill).abs() <= ATOL + RTOL * abs(fill)).all()):
                    fill = _apart(fill)
            else:
                fill = round(d.double().mean().item())
                if bool((d == fill).all()):
                    fill = _int_apart(fill, torch.iinfo(x.dtype).max)
            out = torch.full_like(d, fill)
            changed.any |= not torch.equal(out, d)
        if x.requires_grad:  # stay in the graph, with a zero gradient
            out = out + 0 * torch.nan_to_num(x)
        return out
    if isinstance(x, np.ndarray):
        if x.size == 0 or x.dtype.kind not in "biuf":
            return x
        if x.dtype.kind == "b":
            fill = bool(x.mean() >= 0.5)
            if (x == fill).all():
                fill = not fill
        elif x.dtype.kind == "f":
            finite = x[np.isfinite(x)].astype(np.float64)
            if finite.size == 0:
                return x
            fill = float(finite.mean())
            if _close(finite, fill):
                fill = _apart(fill)
        else:
            fill = round(float(x.mean()))
            if (x == fill).all():
                fill = _int_apart(fill, int(np.iinfo(x.dtype).max))
        out = np.full_like(x, fill)
        changed.any |= not np.array_equal(out, x, equal_nan=x.dtype.kind == "f")
        return out
    if isinstance(x, pd.Series):
        return _constant_column(x, changed)
    if isinstance(x, pd.DataFrame):
        out = x.copy()
        for i in range(out.shape[1]):
            out.isetitem(i, _constant_column(x.iloc[:, i], changed))
        return out
    if isinstance(x, types.GeneratorType):
        return (constant_like(v, changed) for v in x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # NamedTuple
        return type(x)._make(constant_like(v, changed) for v in x)
    if isinstance(x, (tuple, list)):
        return type(x)(constant_like(v, changed) for v in x)
    if isinstance(x, dict):
        out = x.copy()
        for k, v in x.items():
            out[k] = constant_like(v, changed)
        return out
    if dataclasses.is_dataclass(x):
        import copy

        out = copy.copy(x)
        for f in dataclasses.fields(x):
            object.__setattr__(out, f.name, constant_like(getattr(x, f.name), changed))
        return out
    return x  # sets, models, fitted statsmodels results, other objects


def _constant_column(s, changed: _Changed):
    import numpy as np
    import pandas as pd

    if (not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_complex_dtype(s) or s.isna().all()):
        return s
    values = s.dropna().to_numpy(dtype=np.float64)
    if pd.api.types.is_float_dtype(s):
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return s
        fill = float(finite.mean())
        if _close(finite, fill):
            fill = _apart(fill)
    else:
        fill = round(float(values.mean()))
        if (values == fill).all():
            fill = fill + 1
    out = pd.Series(np.full(len(s), fill), index=s.index, name=s.name).astype(s.dtype)
    changed.any |= not out.equals(s)
    return out


# -------------------------------------------------------------------------------------------
# Targets.


def targets(modules: list[str] = MODULES, classes: list[str] = CLASSES) -> list[str]:
    """``module:function`` for every public function defined in each module, and
    ``module:Class.method`` for every public method defined in each of ``classes`` (imports them)."""
    out = []
    for name in modules:
        mod = importlib.import_module(f"circuitgen.{name}")
        for attr, obj in vars(mod).items():
            if (not attr.startswith("_") and inspect.isfunction(obj)
                    and obj.__module__ == mod.__name__):
                out.append(f"{name}:{attr}")
    for spec in classes:
        module, cls_name = spec.split(":")
        cls = getattr(importlib.import_module(f"circuitgen.{module}"), cls_name)
        for attr, obj in vars(cls).items():
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
            if not attr.startswith("_") and inspect.isfunction(obj):
                out.append(f"{module}:{cls_name}.{attr}")
    return out


def _resolve(target: str):
    """``(module, name, function)`` for ``module:function`` or ``module:Class.method``."""
    module, name = target.split(":")
    mod = importlib.import_module(f"circuitgen.{module}")
    owner, *attrs = name.split(".")
    obj = getattr(mod, owner)
    for attr in attrs:  # the function in the class's own dict (or a base class's)
        obj = inspect.getattr_static(obj, attr)
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    return mod, name, obj


_DEPTH = 6  # how deep _rebind looks into the library's module-level containers


def _rebind(original, wrapper, undo: list | None = None) -> int:
    """Point every reference to ``original`` at ``wrapper`` (see :func:`_rebind_all`)."""
    return _rebind_all([(original, wrapper)], undo)


def _rebind_all(pairs, undo: list | None = None) -> int:
    """Point every reference to each ``original`` of ``pairs`` (``(original, wrapper)``) at its
    ``wrapper``; the number of places changed. ``undo`` collects how to put each back
    (:func:`_restore`).

    Every module's attributes are looked at; in the library's modules (``circuitgen*``) also what
    their module-level values hold, recursively (up to :data:`_DEPTH` levels): dicts, lists, sets
    (changed in place), tuples, NamedTuples, frozensets, ``functools.partial``, staticmethods and
    classmethods (rebuilt, and the new one put where the old one was), the library's classes (a
    method in the class dict: instances registered elsewhere, such as a task in
    ``circuitgen.task``'s registry, call it through the class) and the ``__dict__`` of instances
    of the library's classes (a frozen dataclass in a registry, such as ``patching.KINDS``)."""
    import functools

    swap = {id(o): (o, w) for o, w in pairs}
    undo = undo if undo is not None else []
    count = 0
    memo: dict[int, object] = {}  # id -> what replaces it (holds each object, so ids stay unique)

    def hit(val):
        pair = swap.get(id(val))
        return pair[1] if pair is not None and pair[0] is val else None

    def ours(obj) -> bool:
        return str(getattr(obj, "__module__", None) or "").startswith("circuitgen")

    def set_item(container, key, new, old):
        container[key] = new
        undo.append(lambda: container.__setitem__(key, old))

    def set_attr(obj, key, new, old, setter):
        try:
            setter(obj, key, new)
        except (AttributeError, TypeError):  # read-only (an enum member, a slot): left alone
            return
        undo.append(lambda: setter(obj, key, old))

    def sub(val, depth: int):
        """``val`` itself (changed in place, or nothing to change) or what replaces it."""
        nonlocal count
        w = hit(val)
        if w is not None:
            count += 1
            return w
        if (depth > _DEPTH or val is None or isinstance(val, (str, bytes, int, float, complex))
                or isinstance(val, types.ModuleType)):
            return val
        if id(val) in memo:
            return memo[id(val)]
        memo[id(val)] = val
        out = inside(val, depth + 1)
        memo[id(val)] = out
        return out

    def inside(val, depth: int):
        if isinstance(val, dict):
            for k, v in list(val.items()):
                new = sub(v, depth)
                if new is not v:
                    set_item(val, k, new, v)
            return val
        if isinstance(val, list):
            for i, v in enumerate(list(val)):
                new = sub(v, depth)
                if new is not v:
                    set_item(val, i, new, v)
            return val
        if isinstance(val, tuple):
            items = [sub(v, depth) for v in val]
            if all(n is v for n, v in zip(items, val)):
                return val
            if hasattr(val, "_fields"):  # NamedTuple
                return type(val)._make(items)
            return tuple(items) if type(val) is tuple else type(val)(items)
        if isinstance(val, (set, frozenset)):
            new = {v: sub(v, depth) for v in val}
            changed = {v: n for v, n in new.items() if n is not v}
            if not changed:
                return val
            if isinstance(val, frozenset):
                return type(val)(new.values())
            val.difference_update(changed)
            val.update(changed.values())
            undo.append(lambda: (val.difference_update(changed.values()), val.update(changed)))
            return val
        if isinstance(val, functools.partial):
            func, args = sub(val.func, depth), [sub(a, depth) for a in val.args]
            kw = {k: sub(v, depth) for k, v in val.keywords.items()}
            if (func is val.func and all(n is v for n, v in zip(args, val.args))
                    and all(kw[k] is v for k, v in val.keywords.items())):
                return val
            return functools.partial(func, *args, **kw)
        if isinstance(val, (staticmethod, classmethod)):
            func = sub(val.__func__, depth)
            return val if func is val.__func__ else type(val)(func)
        if isinstance(val, type):
            if ours(val):
                for k, v in list(vars(val).items()):
                    new = sub(v, depth)
                    if new is not v:
                        set_attr(val, k, new, v, setattr)
            return val
        if ours(type(val)) and isinstance(getattr(val, "__dict__", None), dict):
            for k, v in list(vars(val).items()):
                new = sub(v, depth)
                if new is not v:
                    set_attr(val, k, new, v, object.__setattr__)
        return val

    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        library = str(d.get("__name__", "")).startswith("circuitgen")
        for key, val in list(d.items()):
            if library:
                new = sub(val, 0)
            else:
                new = hit(val)
                count += new is not None
                new = val if new is None else new
            if new is not val:
                set_item(d, key, new, val)
    return count


def _restore(undo: list) -> None:
    """Undo what :func:`_rebind_all` did (newest first)."""
    while undo:
        undo.pop()()


# -------------------------------------------------------------------------------------------
# The pytest plugin (active only when one of the environment variables is set).

_STATE: dict = {"calls": 0, "changed": 0, "types": {}, "rebound": 0, "node": "<collection>"}
_MAP: dict[str, set] = {}
_NODES: dict[str, dict] = {}
_WRAPPERS: list[tuple] = []
_UNDO: list = []
_CHANGEABLE: set[str] = set()
_TYPES: dict[str, set] = {}


def _constant_wrapper(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        real = fn(*args, **kwargs)
        flag = _Changed()
        out = constant_like(real, flag)
        _STATE["calls"] += 1
        _STATE["changed"] += flag.any
        kind = type(real).__name__
        _STATE["types"][kind] = _STATE["types"].get(kind, 0) + 1
        return out

    wrapper.__constant_subject__ = True
    return wrapper


def _recording_wrapper(fn, target):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _MAP.setdefault(target, set()).add(_STATE["node"])
        real = fn(*args, **kwargs)
        if target not in _CHANGEABLE:  # would the constant differ? (once is enough)
            flag = _Changed()
            constant_like(real, flag)
            if flag.any:
                _CHANGEABLE.add(target)
            kind = type(real).__name__
            _TYPES.setdefault(target, set()).add(kind)
        return real

    return wrapper


def _install() -> None:
    target, mapping = os.environ.get(ENV_TARGET), os.environ.get(ENV_MAP)
    if target:
        _mod, _name, fn = _resolve(target)
        wrapper = _constant_wrapper(fn)
        _WRAPPERS.append((fn, wrapper))
    elif mapping:
        for t in targets():
            _mod, _name, fn = _resolve(t)
            _WRAPPERS.append((fn, _recording_wrapper(fn, t)))
    _STATE["rebound"] += _rebind_all(_WRAPPERS, _UNDO)


if os.environ.get(ENV_TARGET) or os.environ.get(ENV_MAP):
    _install()  # at plugin import, before conftest.py and the test modules import the library


def pytest_collection_finish(session):
    # Modules imported since (test modules) hold the wrapper already; this catches stragglers.
    _STATE["rebound"] += _rebind_all(_WRAPPERS, _UNDO)


def pytest_unconfigure(config):
    _restore(_UNDO)  # the library as it was (for a process that goes on after pytest.main)


def pytest_collectstart(collector):
    _STATE["node"] = collector.nodeid  # module-level calls: the file


def pytest_collection_modifyitems(session, config, items):
    for item in items:  # which fixtures each test uses (a shared fixture's calls select them all)
        _NODES.setdefault(item.nodeid, {"seconds": 0.0, "outcome": "passed"})["fixtures"] = \
            sorted(getattr(item, "fixturenames", ()))


import pytest as _pytest  # noqa: E402 - only the hooks below need it


@_pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    # Calls made while a module- or session-scoped fixture is set up are recorded against the
    # fixture too, so every test that uses its value is selected, not only the first one.
    shared = fixturedef.scope != "function"
    before = _STATE["node"]
    if shared:
        _STATE["node"] = f"fixture:{fixturedef.argname}"
    try:
        yield
    finally:
        _STATE["node"] = before


def pytest_runtest_logstart(nodeid, location):
    _STATE["node"] = nodeid
    _NODES.setdefault(nodeid, {"seconds": 0.0, "outcome": "passed"})


def pytest_runtest_logreport(report):
    rec = _NODES.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed"})
    rec["seconds"] += report.duration
    if report.failed:
        rec["outcome"] = "failed"
    elif report.skipped and rec["outcome"] == "passed":
        rec["outcome"] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get(ENV_TARGET) and os.environ.get(ENV_LOG):
        pathlib.Path(os.environ[ENV_LOG]).write_text(json.dumps(
            {k: _STATE[k] for k in ("calls", "changed", "types", "rebound")}))
    if os.environ.get(ENV_MAP):
        pathlib.Path(os.environ[ENV_MAP]).write_text(json.dumps(
            {"targets": {t: sorted(n) for t, n in _MAP.items()}, "nodes": _NODES,
             "changeable": sorted(_CHANGEABLE), "types": {t: sorted(k) for t, k in _TYPES.items()}},
            indent=1))


# -------------------------------------------------------------------------------------------
# The driver.

PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-p", "constant_subjects",
               "-m", "not slow and not book", "--no-header"]


def _env(**extra) -> dict:
    scripts = str(ROOT / "scripts")
    return os.environ | {"PYTHONPATH": scripts + os.pathsep + os.environ.get("PYTHONPATH", ""),
                         "PYTHONDONTWRITEBYTECODE": "1"} | extra


def _newest(paths) -> float:
    return max(p.stat().st_mtime for d in paths for p in d.rglob("*.py"))


def build_map(force: bool) -> dict:
    path = OUT / "map.json"
    if not force and path.exists() and path.stat().st_mtime > _newest([ROOT / "lib", ROOT / "tests"]):
        return json.loads(path.read_text())
    print("map run: the fast suite once, recording which tests call each target ...", flush=True)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "constant_subjects", "-m", "not slow and not book", "tests"],
                          env=_env(**{ENV_MAP: str(path)}), cwd=ROOT, capture_output=True, text=True)
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    (OUT / "logs" / "map-run.txt").write_text(proc.stdout + proc.stderr)
    print(f"map run: {time.time() - t0:.0f} s, pytest exit {proc.returncode} "
          f"({proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''})", flush=True)
    if not path.exists():
        raise SystemExit("the map run wrote no map; see runs/constant_subjects/logs/map-run.txt")
    return json.loads(path.read_text())


def selection(target: str, the_map: dict) -> list[str]:
    """The node ids that called ``target`` and passed in the map run, fastest first."""
    nodes = the_map["nodes"]
    called = the_map["targets"].get(target, [])
    ok = [n for n in called if nodes.get(n, {}).get("outcome") == "passed"]
    # Calls made while collecting (module-level code) select the whole file.
    files = sorted({n.split("::")[0] for n in called if n not in nodes and n.endswith(".py")})
    # Calls made while a shared fixture was set up select every passing test that uses it.
    shared = {n[len("fixture:"):] for n in called if n.startswith("fixture:")}
    ok += [n for n, r in nodes.items() if r.get("outcome") == "passed" and n not in ok
           and shared & set(r.get("fixtures", ()))]
    return files + sorted(ok, key=lambda n: nodes[n]["seconds"])


def _run_forked(target: str, nodeids: list[str], log: pathlib.Path, result: pathlib.Path,
                timeout: float) -> int | None:
    import pytest

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: patch (at plugin import), run, exit
        rc = 3
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ.update({ENV_TARGET: target, ENV_LOG: str(result)})
            os.environ.pop(ENV_MAP, None)
            rc = int(pytest.main([*PYTEST_ARGS, *nodeids]))
        except BaseException:  # noqa: BLE001 - anything is an error of the harness
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def _run_subprocess(target, nodeids, log, result, timeout) -> int | None:
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", *PYTEST_ARGS, *nodeids], cwd=ROOT,
                              env=_env(**{ENV_TARGET: target, ENV_LOG: str(result)}),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    log.write_text(proc.stdout + proc.stderr)
    return proc.returncode


def sweep(chosen: list[str], the_map: dict, fork: bool, timeout: float) -> list[dict]:
    if fork:  # import the heavy dependencies once; each child imports only the test modules
        import numpy  # noqa: F401
        import pandas  # noqa: F401
        import pytest  # noqa: F401
        import torch  # noqa: F401

        for m in MODULES + [c.split(":")[0] for c in CLASSES]:
            importlib.import_module(f"circuitgen.{m}")
        sys.path.insert(0, str(ROOT / "scripts"))
        os.chdir(ROOT)
        os.environ.update(_env())
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in chosen:
        nodeids = selection(target, the_map)
        row = {"target": target, "tests": len(nodeids), "verdict": "", "seconds": 0.0, "note": ""}
        rows.append(row)
        if not nodeids:
            row["verdict"] = "UNTESTED"
            row["note"] = "no passing fast test calls it"
            _print_row(row)
            continue
        if target not in the_map["changeable"]:  # the map run saw nothing a constant would change
            row["verdict"] = "n/a"
            row["note"] = ("returns " + ", ".join(the_map["types"].get(target, []))
                           + " (nothing to make constant; from the map run)")
            _print_row(row)
            continue
        log = logs / f"{target.replace(':', '.')}.txt"
        result = logs / f"{target.replace(':', '.')}.json"
        result.unlink(missing_ok=True)
        t0 = time.time()
        rc = (_run_forked if fork else _run_subprocess)(target, nodeids, log, result, timeout)
        row["seconds"] = time.time() - t0
        stats = json.loads(result.read_text()) if result.exists() else {}
        if rc is None:
            row["verdict"], row["note"] = "error", f"timeout after {timeout:.0f} s"
        elif rc == 1:
            row["verdict"] = "caught"
            row["note"] = _first_failure(log)
        elif rc == 0 and stats.get("calls", 0) and not stats.get("changed"):
            row["verdict"] = "n/a"
            row["note"] = "returns " + ", ".join(sorted(stats["types"])) + " (nothing to make constant)"
        elif rc == 0:
            row["verdict"] = "SURVIVED"
            row["note"] = (f"{stats.get('calls', 0)} calls, {stats.get('changed', 0)} changed; "
                           f"returns {', '.join(sorted(stats.get('types', {})))}")
        else:
            row["verdict"], row["note"] = "error", f"pytest exit {rc}; see {log.relative_to(ROOT)}"
        _print_row(row)
    return rows


def _first_failure(log: pathlib.Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:110]
    return ""


def _print_row(row: dict) -> None:
    print(f"{row['target']:42} {row['tests']:5d} {row['verdict']:9} {row['seconds']:6.1f} s  "
          f"{row['note']}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="modules or module:function targets (default: all)")
    p.add_argument("--list", action="store_true", help="list the targets and exclusions, and exit")
    p.add_argument("--remap", action="store_true", help="redo the map run even if it is current")
    p.add_argument("--no-fork", action="store_true", help="a fresh python per target (slower)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per target (default 300)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "lib"))
    everything = targets()
    unknown_excl = sorted(set(EXCLUDED) - set(everything))
    if unknown_excl:
        print(f"EXCLUDED names functions that no longer exist: {unknown_excl}", file=sys.stderr)
        return 2
    if args.list:
        for t in everything:
            print(f"{t:42} {'excluded: ' + EXCLUDED[t] if t in EXCLUDED else ''}")
        return 0
    chosen = [t for t in everything if t not in EXCLUDED]
    if args.names:
        modules = MODULES + [c.split(":")[0] for c in CLASSES]
        unknown = [n for n in args.names if n not in everything and n not in modules]
        if unknown:
            print(f"unknown module(s) or target(s) {unknown}; --list shows them", file=sys.stderr)
            return 2
        chosen = [t for t in chosen if t in args.names or t.split(":")[0] in args.names]
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    the_map = build_map(args.remap)
    failing = sorted(n for n, r in the_map["nodes"].items() if r["outcome"] == "failed")
    if failing:
        print(f"{len(failing)} test(s) fail without any constant (left out of every selection): "
              + ", ".join(failing[:10]), flush=True)
    print(f"{'target':42} {'tests':>5} {'verdict':9} {'time':>8}  note", flush=True)
    rows = sweep(chosen, the_map, fork=not args.no_fork, timeout=args.timeout)
    verdicts = ("caught", "SURVIVED", "UNTESTED", "n/a", "error")
    count = {v: sum(r["verdict"] == v for r in rows) for v in verdicts}
    summary = (f"{len(rows)} targets in {time.time() - t0:.0f} s: {count['caught']} caught, "
               f"{count['SURVIVED']} survived, {count['UNTESTED']} untested, {count['n/a']} n/a, "
               f"{count['error']} errors; {len(EXCLUDED)} excluded (--list)")
    print("\n" + summary)
    lines = [f"{r['target']:42} {r['tests']:5d} {r['verdict']:9} {r['seconds']:6.1f} s  {r['note']}"
             for r in rows]
    (OUT / "table.txt").write_text(f"{'target':42} {'tests':>5} {'verdict':9} {'time':>8}  note\n"
                                   + "\n".join(lines) + "\n\n" + summary + "\n")
    print(f"table: {(OUT / 'table.txt').relative_to(ROOT)}")
    if count["error"]:
        return 2
    return 1 if count["SURVIVED"] or count["UNTESTED"] else 0


if __name__ == "__main__":
    sys.exit(main())
