"""The tests' own shape: tests/flows/ mirrors the packages of flows/, and no test module imports another (what tests
share lives in helper modules, whose names do not start with ``test_``)."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import ROOT, imports_of, module_files

# The Prefect recipes at the top of flows/: their tests are the only ones directly in tests/flows/.
RECIPES = {"flows.scan", "flows.nightly", "flows.deployments"}


def is_test_module(name: str) -> bool:
    return name.rpartition(".")[2].startswith("test_")


def modules_of_tests() -> dict[str, Path]:
    return {name: path for name, path in module_files(("tests",)).items() if is_test_module(name)}


def subpackages(root: Path) -> set[str]:
    """The folders directly under ``root`` that are packages (hold an ``__init__.py``)."""
    return {path.parent.name for path in root.glob("*/__init__.py")}


def test_no_test_module_imports_another():
    modules = module_files(("tests",))
    found = {
        name: sorted(imported for imported in imports_of(name, path, modules) if is_test_module(imported))
        for name, path in modules_of_tests().items()
    }
    offenders = {name: imported for name, imported in found.items() if imported}
    assert offenders == {}, "move what tests share into a helper module (not named test_*)"


def test_the_import_check_sees_a_test_module_imported(tmp_path):
    modules = {"tests.a.test_x": Path("x.py"), "tests.a.helpers": Path("h.py"), "tests.b.test_y": Path("y.py")}
    path = tmp_path / "test_y.py"
    path.write_text("from tests.a import test_x\n\n\ndef test_y():\n    from ..a.helpers import f\n")
    imported = imports_of("tests.b.test_y", path, modules)
    assert imported == {"tests.a.test_x", "tests.a.helpers"}
    assert [name for name in imported if is_test_module(name)] == ["tests.a.test_x"]


def test_tests_flows_mirrors_the_packages_of_flows():
    packages, tested = subpackages(ROOT / "flows"), subpackages(ROOT / "tests" / "flows")
    assert tested <= packages, "a folder of tests/flows/ is named after no package of flows/"
    # Every package of flows/ has tests today; a new one brings its folder of tests with it.
    untested = sorted(packages - tested)
    assert untested == [], "each package of flows/ has its tests in tests/flows/<package>/"


def test_tests_directly_in_tests_flows_are_of_the_prefect_recipes():
    modules = module_files(("flows",))
    loose = {name: path for name, path in modules_of_tests().items() if name.rpartition(".")[0] == "tests.flows"}
    assert loose, "tests/flows/ holds the Prefect recipes' tests"
    for name, path in loose.items():
        assert imports_of(name, path, modules) & RECIPES, f"{name} tests no Prefect recipe: move it to its package"
