"""The shape of the code: no import cycle among the modules of flows/ and ww_core/, and no function over 100 lines.

Imports are read with ast, not by importing: every ``import`` and ``from ... import`` of a module counts, those
inside functions included (they are imports all the same, only deferred), with relative imports resolved;
``from pkg import name`` is an import of ``pkg.name`` when that is a module, else of ``pkg`` itself. Imports under
``if TYPE_CHECKING:`` never run, so they are left out: they are how an annotation names a type without a cycle.
A computed import (``importlib.import_module(name)``) is invisible here; flows/ uses one, in flows/sources/__init__.py,
for names of its own subpackage.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "ww_core")
MAX_FUNCTION_LINES = 100

# Cycles being removed right now by another branch; the lead empties this list as those branches merge. A cycle is
# tolerated only when every module in it is listed here.
ALLOWED_CYCLES: list[frozenset[str]] = []
# Functions over MAX_FUNCTION_LINES today ("module:qualified name"); the lead's scan-loop rewrite (#18 items 1, 3)
# splits them.
ALLOWED_LONG_FUNCTIONS: set[str] = set()


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(nodes):
    """Every Import/ImportFrom node under ``nodes``, at any depth, except in the body of ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _import_nodes(node.orelse)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (at ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes([ast.parse(path.read_text(), str(path))]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if submodule in modules:
                found.add(submodule)
            elif target in modules:
                found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, lines) of every function in ``tree``, methods and nested functions included."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            qualified = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield qualified, child.end_lineno - child.lineno + 1
            yield from functions(child, qualified + ".")
        else:
            yield from functions(child, prefix)


def long_functions() -> dict[str, int]:
    """``module:qualified name`` → lines, for every function of more than MAX_FUNCTION_LINES lines."""
    return {
        f"{name}:{qualified}": lines
        for name, path in module_files().items()
        for qualified, lines in functions(ast.parse(path.read_text(), str(path)))
        if lines > MAX_FUNCTION_LINES
    }


def test_the_graph_sees_function_local_relative_and_package_imports():
    graph = import_graph()
    assert "flows.sources.base" in graph["flows.sources"]  # ``from .base import ...`` in a package's __init__
    # ``from ..weights import X`` is an import of the package flows.weights; ``from . import powerlaw`` of a module.
    assert "flows.weights" in graph["flows.sources.hub"]
    assert "ww_core.powerlaw" in graph["ww_core.analysis"]
    # flows.weights.decode imports the GGUF decoder inside a method, only when a tensor may be GGUF's.
    assert "flows.weights.gguf_decoder" in graph["flows.weights.decode"]


def test_cycles_finds_a_cycle_through_any_number_of_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles_among_flows_and_ww_core_modules():
    found = cycles(import_graph())
    unexpected = [sorted(c) for c in found if not any(c <= allowed for allowed in ALLOWED_CYCLES)]
    assert unexpected == [], "import cycles: give the shared types a leaf module both sides import"
    stale = [sorted(a) for a in ALLOWED_CYCLES if not any(c <= a for c in found)]
    assert stale == [], "no longer a cycle: remove it from ALLOWED_CYCLES"


def test_no_function_over_100_lines():
    found = long_functions()
    over = {name: lines for name, lines in found.items() if name not in ALLOWED_LONG_FUNCTIONS}
    assert over == {}, f"functions over {MAX_FUNCTION_LINES} lines: split them"
    stale = sorted(ALLOWED_LONG_FUNCTIONS - set(found))
    assert stale == [], "no longer over the limit: remove from ALLOWED_LONG_FUNCTIONS"
