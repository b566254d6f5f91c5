"""Error cases: one declaration per situation a user can cause, run as a test and rendered as docs/errors.md.

A case says what the user did (``setup`` returns the ``wwhub`` arguments, after writing any files it needs), the exit
code, and the stderr line the user sees (``<placeholders>`` stand for paths, ports and other values that differ
from run to run). The test runs the command in a fresh work folder holding a copy of a small lake, and asserts the
exit code, that stderr holds that line and no traceback, and no more lines than the case declares (``lines``, one
unless said), and that nothing on disk changed (file hashes before and after), or, for a case whose ``changes`` is
``"lake"``, that nothing outside the lake changed and ``check`` holds.

Each area keeps its cases in its own module, ``tests/errors/cases_<area>.py`` with a ``CASES`` list; docs/errors.md
has one section per module, so branches add rows without touching each other's. Regenerate the page with
``.venv/bin/python -m tests.errors.render`` (a test fails while it is stale).
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "errors.md"
PLACEHOLDER = re.compile(r"<[a-z][a-z0-9_ ]*>")


@dataclass
class Ctx:
    """What a case's setup may use: the work folder (the current directory), the lake copy in it, the fake hub,
    and pytest's monkeypatch (environment variables, functions that simulate a bug)."""

    root: Path
    lake: Path
    hub: object
    monkeypatch: pytest.MonkeyPatch
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorCase:
    id: str
    situation: str
    exit_code: int
    message: str
    setup: Callable[[Ctx], list[str]]
    changes: str = "nothing"  # "nothing" | "lake"
    check: Callable[[Ctx], None] | None = None
    lines: int = 1  # lines on stderr: the message alone (families.yaml errors add one per problem found)

    def pattern(self) -> re.Pattern:
        """The message as a regex: literal text, each <placeholder> any non-empty text on the line."""
        parts = PLACEHOLDER.split(self.message)
        return re.compile(".+?".join(re.escape(p) for p in parts) + "$", re.MULTILINE)


def area_modules() -> list[tuple[str, list[ErrorCase]]]:
    """(area, cases) of every ``tests/errors/cases_*.py``, in name order."""
    import tests.errors as package

    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("cases_"):
            module = importlib.import_module(f"tests.errors.{info.name}")
            found.append((info.name.removeprefix("cases_"), module.CASES))
    return found


def all_cases() -> list[ErrorCase]:
    return [case for _, cases in area_modules() for case in cases]


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """sha256 of every file under ``root`` (except under ``skip``), by relative path."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not (skip is not None and (path == skip or skip in path.parents)):
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """docs/errors.md from the cases."""
    lines = [
        "# Errors: situation → exit code → message",
        "",
        "Generated from `tests/errors/cases_*.py` by `.venv/bin/python -m tests.errors.render`; each row is a test",
        "(`tests/errors/test_error_cases.py`) that runs the command and checks the exit code, this message on stderr",
        "(`<...>` stands for what differs from run to run) and that nothing on disk changed, or only the lake.",
        "",
        "Exit codes: 0 ok · 1 partial (some models failed, each recorded in the lake with its reason) · 2 bad usage or",
        "input · 70 internal error (a bug in wwhub: `--debug` or `WWHUB_DEBUG=1` shows the traceback) · 130 "
        "interrupted (Ctrl-C).",
    ]
    for area, cases in area_modules():
        lines += ["", f"## {area}", "", "| situation | exit | message (stderr) |", "|---|---|---|"]
        for case in cases:
            lines.append(f"| {_cell(case.situation)} | {case.exit_code} | `{_cell(case.message)}` |")
    return "\n".join(lines) + "\n"
