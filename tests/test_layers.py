"""The library's layers (circuitgen.LAYERS): no module imports one above it, and no import cycles.

Imports are read from the source (ast), at the top of a module and inside functions alike; an
import under ``if TYPE_CHECKING:`` is for annotations only and does not count."""

from __future__ import annotations

import ast
import pathlib

import pandas as pd
import pytest

import circuitgen

LIB = pathlib.Path(circuitgen.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(LIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def imports_of(source: str, known: set[str]) -> set[str]:
    """The library modules ``source`` imports (``from circuitgen import x``, ``import
    circuitgen.x``, ``from circuitgen.x import y``), by their name under the package."""
    tree = ast.parse(source)
    skip = _type_checking_blocks(tree)
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "circuitgen":
            sub = node.module.removeprefix("circuitgen").lstrip(".")
            names = [f"{sub}.{a.name}".lstrip(".") for a in node.names] + ([sub] if sub else [])
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("circuitgen.") for a in node.names
                     if a.name.startswith("circuitgen.")]
        out |= {n for n in names if n in known}
    return out


def graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in LIB.rglob("*.py")}
    files.pop("", None)  # the package facade (it imports the tasks to register them)
    known = set(files)
    return {m: imports_of(p.read_text(), known) - {m} for m, p in files.items()}


def layer_of() -> dict[str, int]:
    return {m: i for i, (_, mods) in enumerate(circuitgen.LAYERS) for m in mods}


def upward(g: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    return sorted(f"{m} ({circuitgen.LAYERS[layers[m]][0]}) imports {d} "
                  f"({circuitgen.LAYERS[layers[d]][0]})"
                  for m, deps in g.items() for d in deps if layers[d] > layers[m])


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    missing = sorted(set(graph()) - set(layer_of()))
    assert not missing, f"add these modules to circuitgen.LAYERS: {missing}"
    extra = sorted(set(layer_of()) - set(graph()))
    assert not extra, f"circuitgen.LAYERS names modules that do not exist: {extra}"


def test_no_module_imports_a_layer_above_it():
    assert upward(graph(), layer_of()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_catch_a_planted_upward_import_and_cycle():
    g, layers = graph(), layer_of()
    planted = {**g, "batch": g["batch"] | {"generalise"}}  # core importing the generalise layer
    assert upward(planted, layers) == ["batch (core) imports generalise (generalise)"]
    assert cycles({**g, "task": g["task"] | {"scorer"}}), "task -> scorer -> task is a cycle"
    src = ("from circuitgen import scorer as S\nimport circuitgen.eap\n"
           "def f():\n    from circuitgen.tasks import ioi\n")
    assert imports_of(src, {"scorer", "eap", "tasks", "tasks.ioi"}) == {"scorer", "eap", "tasks", "tasks.ioi"}
    assert imports_of("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from circuitgen import eap\n",
                      {"eap"}) == set()


@pytest.mark.parametrize("layer", [name for name, _ in circuitgen.LAYERS])
def test_layers_are_named_once(layer):
    assert [n for n, _ in circuitgen.LAYERS].count(layer) == 1


def test_one_rule_for_result_paths(tmp_path):
    """Writers and readers name a result file by one rule (circuitgen.paths.result_path), so a
    model id with "/" names the same file on both sides: week 13's discovery writer and week 14's
    reader, the spec writer and reader, the family score files."""
    import types

    from circuitgen import circuits, faithful, generalise, paths, sweeps

    model = types.SimpleNamespace(circuitgen=types.SimpleNamespace(model="owner/some-model"))
    assert paths.result_path("discovery", "owner/some-model", "eap-ig", "set1", folder=tmp_path) \
        == tmp_path / "owner--some-model-eap-ig-set1.csv"
    assert paths.result_path("scores", "m", "x").parent == paths.DATA_DIR / "scores"
    assert circuits.spec_file("owner/some-model", "eap-ig", tmp_path) \
        == tmp_path / "owner--some-model-ioi-eap-ig.yaml"
    assert sweeps.score_file("lexical", "owner/some-model", 0, "c", "mean", tmp_path).name \
        == "owner--some-model-lexical-seed0-c-mean.csv"
    # week 13 writes what week 14 reads: the same file for a model id with "/"
    written = []

    class Stop(Exception):
        pass

    def record(path, *args, **kwargs):
        written.append(path)
        raise Stop

    real = faithful.T.cached
    faithful.T.cached = record
    try:
        with pytest.raises(Stop):
            faithful.discover(model, pd.DataFrame(), "eap-ig", "set1", out_dir=tmp_path / "discovery")
    finally:
        faithful.T.cached = real
    with pytest.raises(FileNotFoundError) as err:
        generalise.circuits_under_test(types.SimpleNamespace(
            circuitgen=model.circuitgen, cfg=types.SimpleNamespace(n_layers=2, n_heads=2)),
            output_dir=tmp_path, methods=["eap-ig"], log=lambda *_: None)
    assert str(written[0]) in str(err.value)
