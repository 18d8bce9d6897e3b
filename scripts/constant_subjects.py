"""Measure the test suite another way: replace each library function by a constant and see a test fail.

A test that still passes when its subject returns a constant of the right shape checks shapes, not
science (issue 13). This script replaces, one at a time, each public function of the science
modules (:data:`MODULES`) by a wrapper that calls the real function and then returns a *constant of
the same shape and type* (:func:`constant_like`):

- tensors and numpy arrays: the same shape and dtype, every element the mean of the real result
  (float; NaNs ignored), its rounded mean (integer) or its majority value (bool); a tensor that
  required grad still does (the constant is joined to the graph with a zero gradient);
- Python/numpy floats: ``0.5``; ints: ``1``;
- DataFrames / Series: the same index and columns, every numeric (non-bool) column set to its
  mean (floats) or rounded mean (ints); text, bool and object columns kept;
- tuples, lists, dicts, NamedTuples, dataclasses and generators: recursively;
- bools, strings, None, sets, callables and other objects (a model, a statsmodels fit): unchanged.

A function whose results were never changed by that (it returns bools, strings, None, objects, or
its real results already are constant) is *n/a*. Otherwise the target is *caught* when at least one
test that exercises it fails, and *SURVIVED* when they all pass.

How it works. The file is also a small pytest plugin (``-p constant_subjects`` with ``scripts/`` on
the path), driven by environment variables:

- ``CONSTANT_SUBJECT=module:function`` patches that function at runtime: the module's attribute,
  and every other module that bound the same object (``from circuitgen.x import f``) or holds it in
  a dict (a registry of methods). Calls inside the module go through the wrapper too (globals are
  looked up at call time). ``CONSTANT_SUBJECT_LOG`` names a JSON file where the plugin writes how
  often the wrapper ran and how often it changed a result.
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

FLOAT, INT = 0.5, 1


class _Changed:
    """Whether :func:`constant_like` changed anything (a result that already is constant is not)."""

    def __init__(self) -> None:
        self.any = False


def constant_like(x, changed: _Changed | None = None):
    """A constant of the same shape and type as ``x`` (see the module docstring)."""
    import numpy as np
    import pandas as pd
    import torch

    changed = changed if changed is not None else _Changed()
    if x is None or isinstance(x, (bool, np.bool_, str, bytes, type)) or callable(x) and not \
            isinstance(x, (torch.Tensor, np.ndarray, pd.DataFrame, pd.Series)):
        return x
    if isinstance(x, (float, np.floating)):
        out = type(x)(FLOAT)
        changed.any |= not (x == out)
        return out
    if isinstance(x, (int, np.integer)):
        out = type(x)(INT)
        changed.any |= x != out
        return out
    if isinstance(x, torch.Tensor):
        if x.numel() == 0 or x.is_complex():
            return x
        with torch.no_grad():
            if x.dtype == torch.bool:
                fill = bool(x.float().mean() >= 0.5)
            elif x.is_floating_point():
                finite = x[~torch.isnan(x)]
                if finite.numel() == 0:
                    return x
                fill = finite.double().mean().item()
            else:
                fill = round(x.double().mean().item())
            out = torch.full_like(x.detach(), fill)
            changed.any |= not torch.equal(out, x.detach())
        if x.requires_grad:  # stay in the graph, with a zero gradient
            out = out + 0 * torch.nan_to_num(x)
        return out
    if isinstance(x, np.ndarray):
        if x.size == 0 or x.dtype.kind not in "biuf":
            return x
        if x.dtype.kind == "b":
            fill = bool(x.mean() >= 0.5)
        elif x.dtype.kind == "f":
            if np.isnan(x).all():
                return x
            fill = np.nanmean(x)
        else:
            fill = round(float(x.mean()))
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

    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or s.isna().all():
        return s
    if pd.api.types.is_float_dtype(s):
        fill = float(s.mean())
    else:
        fill = round(float(s.mean()))
    out = pd.Series(np.full(len(s), fill), index=s.index, name=s.name).astype(s.dtype)
    changed.any |= not out.equals(s)
    return out


# -------------------------------------------------------------------------------------------
# Targets.


def targets(modules: list[str] = MODULES) -> list[str]:
    """``module:function`` for every public function defined in each module (imports it)."""
    out = []
    for name in modules:
        mod = importlib.import_module(f"circuitgen.{name}")
        for attr, obj in vars(mod).items():
            if (not attr.startswith("_") and inspect.isfunction(obj)
                    and obj.__module__ == mod.__name__):
                out.append(f"{name}:{attr}")
    return out


def _resolve(target: str):
    module, name = target.split(":")
    mod = importlib.import_module(f"circuitgen.{module}")
    return mod, name, getattr(mod, name)


def _rebind(original, wrapper) -> int:
    """Point every module attribute (and module-level dict value) that is ``original`` at
    ``wrapper``; the number of places changed."""
    n = 0
    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        ours = str(d.get("__name__", "")).startswith("circuitgen")
        for key, val in list(d.items()):
            if val is original:
                d[key] = wrapper
                n += 1
            elif ours and type(val) is dict:  # a registry of functions
                for k, v in list(val.items()):
                    if v is original:
                        val[k] = wrapper
                        n += 1
    return n


# -------------------------------------------------------------------------------------------
# The pytest plugin (active only when one of the environment variables is set).

_STATE: dict = {"calls": 0, "changed": 0, "types": {}, "rebound": 0, "node": "<collection>"}
_MAP: dict[str, set] = {}
_NODES: dict[str, dict] = {}
_WRAPPERS: list[tuple] = []
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
    for fn, wrapper in _WRAPPERS:
        _STATE["rebound"] += _rebind(fn, wrapper)


if os.environ.get(ENV_TARGET) or os.environ.get(ENV_MAP):
    _install()  # at plugin import, before conftest.py and the test modules import the library


def pytest_collection_finish(session):
    # Modules imported since (test modules) hold the wrapper already; this catches stragglers.
    for fn, wrapper in _WRAPPERS:
        _STATE["rebound"] += _rebind(fn, wrapper)


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

        for m in MODULES:
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
        unknown = [n for n in args.names if n not in everything and n not in MODULES]
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
