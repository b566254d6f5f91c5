"""ww_core is a pure library: no module of it imports flows (the arrow points one way: flows -> ww_core)."""

import ast
from pathlib import Path

import ww_core

PACKAGE = Path(ww_core.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_ww_core_module_imports_flows():
    offenders = {
        path.name: sorted(n for n in imported_modules(path) if n == "flows" or n.startswith("flows."))
        for path in PACKAGE.glob("*.py")
    }
    assert not {name: mods for name, mods in offenders.items() if mods}
    assert len(offenders) >= 15  # every module was read
