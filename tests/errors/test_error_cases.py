"""Every error case: the exit code, the message on stderr (one line, no traceback), and nothing changed on disk."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from flows.cli import main
from flows.scanning.loop import run_scan
from flows.scanning.options import ScanOptions, SourceSpec
from tests.errors.framework import DOC, Ctx, all_cases, render, snapshot
from tests.fakehub import model_index, write_model

CASES = all_cases()


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory):
    """A lake with one scanned model, built once and copied into each case's work folder."""
    root = tmp_path_factory.mktemp("small-lake")
    rng = np.random.default_rng(0)
    write_model(
        root / "repos" / "acme" / "tiny-1m",
        {"w.weight": rng.standard_t(3, (80, 40)).astype(np.float32)},
        card={"model-index": model_index("acme/tiny-1m", 0.8)},
    )
    report = run_scan(SourceSpec("local", str(root / "repos")), {"tiny": {}}, str(root / "lake"), ScanOptions())
    assert report.count("scanned") == 1
    return root / "lake"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_case(case, small_lake, fake_hub, tmp_path, monkeypatch, capsys):
    root = tmp_path / "work"
    shutil.copytree(small_lake, root / "lake")
    monkeypatch.chdir(root)
    ctx = Ctx(root=root, lake=root / "lake", hub=fake_hub, monkeypatch=monkeypatch)
    argv = case.setup(ctx)
    skip = ctx.lake if case.changes == "lake" else None
    before = snapshot(root, skip)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == case.exit_code, err
    assert case.pattern().search(err), f"expected a line like {case.message!r} on stderr, got:\n{err}"
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == case.lines, f"not {case.lines} line(s):\n{err}"
    assert snapshot(root, skip) == before, "files changed on disk"
    if case.check is not None:
        case.check(ctx)


def test_errors_page_is_generated_from_the_cases():
    assert DOC.read_text() == render(), "docs/errors.md is stale: run .venv/bin/python -m tests.errors.render"


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
