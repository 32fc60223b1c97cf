"""The package's layers (docs/architecture.md): imports only go down, no cycles, one registry of formats."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from grcf.pipeline.codedeps import imported_names

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "grcf"
# a layer may import the layers after it in this list (and itself); `base` is grcf/*.py
ORDER = ["cli", "pipeline", "use", "results", "training", "data", "base"]
# the package's front door: `from grcf import load_model` hands over to the Python API (imported lazily)
FRONT_DOOR = {("grcf", "grcf.use.api")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] in ("cli", "cli_predict"):
        return "cli"
    return parts[1] if parts[1] in ORDER else "base"


def imports(path: Path) -> set[str]:
    """grcf modules imported anywhere in the file (function-level imports included), read as the
    pipeline's code fingerprints read them; a name taken from a module counts when it is a module."""
    module = module_name(path)
    names = imported_names(ast.parse(path.read_text()), module, path.name == "__init__.py")
    return {m for m in names if m in MODULES and m != module}


MODULES = {module_name(p) for p in PKG.rglob("*.py")}
GRAPH = {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def test_no_import_goes_up_a_layer():
    upward = [(a, b) for a, deps in GRAPH.items() for b in deps
              if b != "grcf" and (a, b) not in FRONT_DOOR and ORDER.index(layer(b)) < ORDER.index(layer(a))]
    assert not upward, f"imports into a higher layer: {upward}"


def test_nothing_imports_the_command_line():
    users = [(a, b) for a, deps in GRAPH.items() for b in deps if layer(b) == "cli" and layer(a) != "cli"]
    assert not users


def test_no_import_cycle():
    def visit(node, stack, seen):
        if node in stack:
            return stack[stack.index(node):]
        if node in seen:
            return None
        seen.add(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt in GRAPH and nxt != "grcf":
                cycle = visit(nxt, stack + [node], seen)
                if cycle:
                    return cycle
        return None

    seen: set = set()
    for start in sorted(GRAPH):
        cycle = visit(start, [], seen)
        assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_warm_server_is_fenced():
    server = "grcf.pipeline.server"
    assert not [a for a, deps in GRAPH.items() if server in deps and layer(a) in ("data", "training", "results", "use")]
    assert not [b for b in GRAPH[server] if layer(b) == "cli"]


@pytest.mark.parametrize("name", ["mmsa_pickle", "mmsa_raw", "urfunny", "mustard"])
def test_format_names_live_in_the_registry_and_their_module_only(name):
    """Adding a format is one module and one registry line: nobody else spells the names out."""
    registry = PKG / "data" / "datasets"
    pattern = re.compile(rf"""["']{name}["']""")
    others = [p for p in list(PKG.rglob("*.py")) + list((SRC.parent / "workflow").rglob("*.smk"))
              + [SRC.parent / "Snakefile"] if registry not in p.parents and pattern.search(p.read_text())]
    assert not others, f"{name!r} spelled out outside grcf/data/datasets: {others}"
