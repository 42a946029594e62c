"""The architecture, checked: no import cycles, no private names used across modules, modules
and functions that stay small, and layers that import one way only (``docs/ARCHITECTURE.md``).

The import graph is read with ``ast`` from ``src/faceledger`` (nothing is imported), so a
module that fails to import cannot hide an edge. Imports under ``if TYPE_CHECKING:`` are left
out: they never run, and they are how a type hint names a class of a lower layer.

Cycles are counted on **module-level** imports only. A cycle among module-level imports works
only because of import order (the `# noqa: E402` trick) and breaks when someone imports the
other module first. An import inside a function runs when the function is called, after
every module has loaded, so it cannot break start-up; the code uses it on purpose to keep
heavy dependencies (models, FastAPI, PyAV) out of ``faceledger --help`` and out of processes
that never need them. Those deferred imports still obey the layer order, which is checked
on every import, deferred or not.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "faceledger"
# The repository's ``src`` folder, found upwards from here (wherever ``tests/`` puts this file).
SRC = next(p / "src" for p in Path(__file__).resolve().parents if (p / "src" / PACKAGE).is_dir())
MAX_MODULE_LINES = 700
# A function's lines run from its ``def`` to its last line, docstring included (decorators not).
MAX_FUNCTION_LINES = 60

# Layers, lowest first; a module may import its own layer and the layers before it.
# ``domain`` and the package's top-level helpers come first; ``api`` and ``cli`` last.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("faceledger", "faceledger.domain", "faceledger.config", "faceledger.logs",
     "faceledger.process"),
    ("faceledger.inference", "faceledger.index", "faceledger.store", "faceledger.audit"),
    ("faceledger.video",),
    ("faceledger.evaluation",),
    ("faceledger.services",),
    ("faceledger.api", "faceledger.cli"),
)  # fmt: skip
# Underscore names still imported across modules, each with why; remove an entry once it is gone.
PRIVATE_ALLOWED: dict[tuple[str, str], str] = {}

# Functions over ``MAX_FUNCTION_LINES`` that read better flat (one dispatch), each with why,
# keyed by ``module:qualified.name``; remove an entry once it is split.
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {}

# Imports against the layer order that are meant, each with why.
UPWARD_ALLOWED: dict[tuple[str, str], str] = {
    ("faceledger", "faceledger.inference.engine"): "the package's public facade: "
    "``faceledger.FaceEngine`` is imported lazily by ``__getattr__`` (nothing at import)",
}


@dataclasses.dataclass(frozen=True)
class Import:
    """One ``import``/``from … import`` of a ``faceledger`` module, as written in ``source``."""

    source: str  # importing module, e.g. "faceledger.cli.main"
    target: str  # imported module (a submodule when ``from pkg import sub`` names one)
    names: tuple[str, ...]  # names imported from ``target`` (empty for ``import x``)
    line: int
    module_level: bool  # False inside a function (a deferred import)


# -- reading the source ----------------------------------------------------------------------
@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(
    nodes: Iterable[ast.AST], module_level: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``nodes`` with whether it runs at import time (not inside
    a function); the bodies of ``if TYPE_CHECKING:`` are skipped (their ``else:`` is kept)."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, module_level
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.orelse, module_level)
        else:
            deferred = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _statements(ast.iter_child_nodes(node), module_level and not deferred)


def _resolve(source: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    is_package = modules()[source].name == "__init__.py"
    base = source.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a ``faceledger`` module inside ``src/faceledger``."""
    known = modules()
    found: list[Import] = []
    for source, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, module_level in _statements(tree.body, True):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == PACKAGE:
                        found.append(Import(source, alias.name, (), node.lineno, module_level))
                continue
            target = _resolve(source, node)
            if target.split(".")[0] != PACKAGE:
                continue
            attributes: list[str] = []
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in known:  # ``from faceledger.cli import audit``: a module
                    found.append(Import(source, submodule, (), node.lineno, module_level))
                else:
                    attributes.append(alias.name)
            if attributes:
                found.append(Import(source, target, tuple(attributes), node.lineno, module_level))
    return tuple(found)


# -- the checks, as functions that return what is wrong ---------------------------------------
def import_cycles() -> list[list[str]]:
    """Groups of modules that import each other at module level (strongly connected
    components of more than one module, or a module importing itself), sorted."""
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for edge in imports():
        if edge.module_level and edge.target in graph:
            graph[edge.source].add(edge.target)
    # Tarjan's algorithm, iterative (no recursion limit on a deep graph).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cycles.append(sorted(component))
    return sorted(cycles)


def private_imports() -> list[str]:
    """``module:line imports _name from other.module`` for each underscore name imported
    from another module (dunder names such as ``__version__`` are public)."""
    found = []
    for edge in imports():
        if edge.source == edge.target:
            continue
        for name in edge.names:
            if (edge.source, name) in PRIVATE_ALLOWED:
                continue
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                found.append(f"{edge.source}:{edge.line} imports {name} from {edge.target}")
        if any(part.startswith("_") for part in edge.target.split(".")):
            found.append(f"{edge.source}:{edge.line} imports private module {edge.target}")
    return sorted(found)


def long_modules() -> list[str]:
    """``module: N lines`` for each module over ``MAX_MODULE_LINES``."""
    found = []
    for name, path in modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{name}: {lines} lines")
    return sorted(found)


def _function_lengths(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function under ``node`` (methods and nested functions too) by qualified name."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _function_lengths(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _function_lengths(child, f"{prefix}{child.name}.")
        else:
            yield from _function_lengths(child, prefix)


def long_functions() -> list[str]:
    """``module:qualified.name: N lines`` for each function over ``MAX_FUNCTION_LINES`` (from
    its ``def`` line to its last line) that ``LONG_FUNCTIONS_ALLOWED`` does not name."""
    found = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for qualified, function in _function_lengths(tree):
            assert function.end_lineno is not None
            lines = function.end_lineno - function.lineno + 1
            key = f"{name}:{qualified}"
            if lines > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS_ALLOWED:
                found.append(f"{key}: {lines} lines")
    return sorted(found)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of the longest prefix that names ``module``'s layer."""
    best, rank = -1, -1
    for position, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), position
    if rank < 0:
        raise LookupError(f"{module} is in no layer: add its package to LAYERS")
    return rank


def upward_imports() -> list[str]:
    """``module:line (layer) imports target (higher layer)`` for each import, module-level or
    deferred, of a module in a later layer."""
    found = []
    for edge in imports():
        source, target = layer_of(edge.source), layer_of(edge.target)
        if target > source and (edge.source, edge.target) not in UPWARD_ALLOWED:
            found.append(
                f"{edge.source}:{edge.line} ({', '.join(LAYERS[source])}) imports "
                f"{edge.target} ({', '.join(LAYERS[target])})"
            )
    return sorted(found)


def _report(title: str, problems: list[str]) -> str:
    return f"{len(problems)} {title}:\n  " + "\n  ".join(problems)


# -- tests -----------------------------------------------------------------------------------
def test_the_graph_is_read() -> None:
    """The reader sees the imports it should (a broken reader would pass every check)."""
    edges = {(e.source, e.target) for e in imports()}
    assert len(modules()) > 100
    assert ("faceledger.api.rekognition.router", "faceledger.api.rekognition.protocol") in edges
    assert ("faceledger.cli.main", "faceledger.cli.audit") in edges  # ``from pkg import mod``
    assert not any(e.source == e.target for e in imports() if not e.names)


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, _report("import cycles", [" <-> ".join(c) for c in cycles])


def test_no_private_names_imported_across_modules() -> None:
    problems = private_imports()
    assert not problems, _report("cross-module imports of underscore names", problems)


def test_no_module_over_the_line_limit() -> None:
    problems = long_modules()
    assert not problems, _report(f"modules over {MAX_MODULE_LINES} lines", problems)


def test_no_function_over_the_line_limit() -> None:
    problems = long_functions()
    assert not problems, _report(f"functions over {MAX_FUNCTION_LINES} lines", problems)


def test_the_function_lengths_are_read() -> None:
    """Methods and decorated functions are measured from their ``def`` (a reader that missed
    them would pass the check above)."""
    tree = ast.parse(
        "class A:\n    @staticmethod\n    def f():\n        def g():\n            pass\n"
        "        return 1\n"
    )
    found = {name: (f.lineno, f.end_lineno) for name, f in _function_lengths(tree)}
    assert found == {"A.f": (3, 6), "A.f.g": (4, 5)}
    stale = sorted(set(LONG_FUNCTIONS_ALLOWED) - {
        f"{m}:{q}" for m, p in modules().items()
        for q, _ in _function_lengths(ast.parse(p.read_text(encoding="utf-8")))
    })  # fmt: skip
    assert not stale, _report("allowed long functions that no longer exist", stale)


def test_layers_import_one_way() -> None:
    problems = upward_imports()
    assert not problems, _report("imports against the layer order", problems)


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)  # raises for a new top-level package


def test_the_rekognition_table_has_every_handler() -> None:
    """Every ``@operation`` handler of ``api/rekognition`` is in the router's table (a new
    handler module must be named in the router's ``table(...)`` call), and the table builder
    refuses two handlers for one operation."""
    import importlib
    import types

    from faceledger.api.rekognition import dispatch
    from faceledger.api.rekognition.router import OPERATIONS

    marked: dict[str, dispatch.Handler] = {}
    for name in modules():
        if name.startswith("faceledger.api.rekognition."):
            module = importlib.import_module(name)
            marked.update(dispatch.table(module))
    missing = sorted(set(marked) - set(OPERATIONS))
    assert not missing, _report("handlers missing from the router's table", missing)
    assert {"SearchFacesByImage", "DetectLabels", "StartFaceSearch"} <= set(OPERATIONS)

    def search_faces_by_image(ctx: dispatch.Context, p: dict[str, Any]) -> dict[str, Any]:
        return {}

    copy = types.ModuleType("copy_of_operations")
    search_faces_by_image.__module__ = copy.__name__
    copy.search_faces_by_image = dispatch.operation(search_faces_by_image)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="two handlers for SearchFacesByImage"):
        dispatch.table(importlib.import_module("faceledger.api.rekognition.operations"), copy)
