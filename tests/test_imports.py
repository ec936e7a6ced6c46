"""The import graph of ``wsfm``: no circle at any depth, and the layers keep their distance.

Every module under ``wsfm/`` is parsed with :mod:`ast`; every import statement counts, at the
top of a module or inside a function (a lazy import still runs, only later). Edges are the
``wsfm``-internal imports: ``import wsfm.a.b`` and ``from wsfm.a import b`` (``b`` a submodule
or a name) give an edge to the module imported.

Packages. Importing ``wsfm.a.b`` also runs ``wsfm/a/__init__.py``, so an import of
``wsfm.a.b`` from outside ``wsfm.a`` also gives an edge to the package ``wsfm.a`` (whose
``__init__`` may re-export half the package). A module's edges to its *own* ancestor
packages are left out: Python always finishes initialising ``wsfm.a`` before it starts
``wsfm.a.b`` unless ``wsfm.a`` is what imports it, so a package ``__init__`` that re-exports its
submodules (``wsfm/drafts/__init__.py``) is not a circle, while a submodule that imports its
sibling through the package (``from wsfm.drafts import ...`` inside ``wsfm.drafts.gmm``) would
be, and is caught: its edge goes to the sibling named, and ``wsfm.drafts`` imports that sibling.

Layers. ``wsfm.flow``, ``models``, ``drafts``, ``data``, ``metrics`` and ``stages`` never
import Ray, MLflow or DeepSpeed, neither themselves nor through any ``wsfm`` module they
import (the closure of the graph above): the reference implementation and the stages run
without the cluster's libraries, which reach them only through the runtime they are handed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wsfm"
HEAVY = frozenset({"ray", "mlflow", "deepspeed"})
CLUSTER_FREE = ("wsfm.flow", "wsfm.models", "wsfm.drafts", "wsfm.data", "wsfm.metrics",
                "wsfm.stages")


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package)}`` of every module under ``wsfm/``."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names that one import statement of ``module`` imports (relative imports
    resolved; ``from x import y`` names ``x.y`` when that is a module, else ``x``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[:len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names]


def _owner(name: str) -> str:
    """The ``wsfm`` module that defines ``name`` (itself, or its nearest enclosing module)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _graph() -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """``(internal, external)``: for each module, the ``wsfm`` modules it imports and the
    top-level outside packages it imports, each with the line of its first import."""
    internal: dict[str, dict[str, int]] = {}
    external: dict[str, dict[str, int]] = {}
    for module, (path, is_package) in MODULES.items():
        edges: dict[str, int] = {}
        outside: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(module, is_package, node):
                if name.split(".")[0] != "wsfm":
                    outside.setdefault(name.split(".")[0], node.lineno)
                    continue
                target = _owner(name)
                parts = target.split(".")
                packages = [".".join(parts[:i]) for i in range(2, len(parts))]  # its __init__s
                for dep in [*packages, target]:
                    own_ancestor = module.startswith(dep + ".")
                    if dep != module and not own_ancestor:
                        edges.setdefault(dep, node.lineno)
        internal[module], external[module] = edges, outside
    return internal, external


INTERNAL, EXTERNAL = _graph()


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def _describe(cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {INTERNAL[a][b]})" for a, b in zip(cycle, cycle[1:])) + \
        f" -> {cycle[-1]}"


def test_the_graph_sees_the_whole_package():
    assert len(MODULES) > 50 and "wsfm.stages.generate_drafts" in MODULES
    assert "wsfm.drafts" in INTERNAL["wsfm.bundle"]  # via ``from wsfm.drafts import ...``


def test_imports_inside_functions_and_relative_imports_count():
    tree = ast.parse("def f():\n    from . import base\n    from wsfm.flow.paths import WarmPath\n")
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [_imported("wsfm.drafts.gmm", False, n) for n in nodes] == [
        ["wsfm.drafts.base"], ["wsfm.flow.paths"]]


def test_the_cycle_finder_finds_and_prints_a_circle():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": 1}, "b": {}}) == []


def test_no_import_circle_in_wsfm():
    cycle = _find_cycle(INTERNAL)
    assert not cycle, f"import circle: {_describe(cycle)}"


def _closure(module: str) -> dict[str, str]:
    """Every ``wsfm`` module that importing ``module`` may import, each with the module that
    imports it (``module`` itself: ``""``), to print the chain."""
    parent = {module: ""}
    stack = [module]
    while stack:
        current = stack.pop()
        for dep in INTERNAL[current]:
            if dep not in parent:
                parent[dep] = current
                stack.append(dep)
    return parent


@pytest.mark.parametrize("layer", CLUSTER_FREE)
def test_the_reference_layers_and_stages_never_import_the_cluster_libraries(layer):
    found = []
    for module in sorted(m for m in MODULES if m == layer or m.startswith(layer + ".")):
        reached = _closure(module)
        for other in reached:
            for package in sorted(HEAVY & set(EXTERNAL[other])):
                chain = [other]
                while chain[-1] != module:
                    chain.append(reached[chain[-1]])
                found.append(f"{' -> '.join(reversed(chain))} imports {package} "
                             f"(line {EXTERNAL[other][package]})")
    assert not found, "\n".join(found)
