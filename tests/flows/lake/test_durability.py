"""Durable commits: every file a new manifest names is flushed to the disk, renamed into place and its folder
flushed before the manifest's own rename; the manifest is flushed before its rename and the lake folder after it.
Checked on the recorded sequence of fsyncs and renames of one commit, an import, a merge, a compaction and a
migration (os.fsync and os.replace wrapped, so the real calls still happen)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.lake import MANIFEST, Lake
from flows.lake.compaction import compact
from flows.lake.schema import to_arrow
from flows.lake.sql import run_query
from flows.lake.transfer import import_paths, merge, migrate
from tests.flows.lake.synth import model_tables


@pytest.fixture
def events(monkeypatch):
    """[("fsync", path) | ("replace", source, target)] in call order, from here on."""
    recorded: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        recorded.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, target, **kwargs):
        recorded.append(("replace", str(Path(source).resolve()), str(Path(target).resolve())))
        return real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return recorded


def assert_durable(root: Path, recorded: list[tuple], old_files: set[str]) -> None:
    """The order of operations for the manifest now in ``root`` and every new segment it names."""
    root = root.resolve()
    manifest = str(root / MANIFEST)
    renames = [i for i, e in enumerate(recorded) if e[0] == "replace" and e[2] == manifest]
    assert renames, "the manifest was not renamed into place"
    published = renames[-1]
    source = recorded[published][1]
    assert ("fsync", source) in recorded[:published], "the manifest was renamed before it was flushed"
    assert ("fsync", str(root)) in recorded[published + 1 :], "the lake folder was not flushed after the rename"
    snapshot = json.loads((root / MANIFEST).read_text())
    new = [s["file"] for segments in snapshot["tables"].values() for s in segments if s["file"] not in old_files]
    assert new, "nothing new to check"
    for file in new:
        target = str(root / file)
        moved = [i for i, e in enumerate(recorded[:published]) if e[0] == "replace" and e[2] == target]
        assert moved, f"{file} was not renamed into place before the manifest"
        at = moved[-1]
        assert ("fsync", recorded[at][1]) in recorded[:at], f"{file} was renamed before it was flushed"
        assert ("fsync", str(Path(target).parent)) in recorded[at + 1 : published], f"{file}'s folder not flushed"


def files_of(root: Path) -> set[str]:
    if not (root / MANIFEST).exists():
        return set()
    snapshot = json.loads((root / MANIFEST).read_text())
    return {s["file"] for segments in snapshot["tables"].values() for s in segments}


def test_a_commit_flushes_its_segments_then_the_manifest_then_the_folder(tmp_path, events):
    lake = Lake.for_writing(tmp_path / "lake")
    events.clear()
    lake.commit_model("org/a", "r1", model_tables("org/a", layers=3))
    assert_durable(lake.root, events, set())
    assert run_query(lake.root, "SELECT count(*) AS n FROM layers") == [{"n": 3}]


def test_an_import_and_a_merge_are_durable(tmp_path, events):
    source = Lake.for_writing(tmp_path / "source")
    source.commit_model("org/a", "r1", model_tables("org/a", layers=3))
    export = tmp_path / "export"
    export.mkdir()
    for table in ("layers", "models"):
        pq.write_table(to_arrow(table, model_tables("org/b", layers=2)[table]), export / f"{table}.parquet")
    target = tmp_path / "target"
    events.clear()
    import_paths(target, [export])
    assert_durable(target, events, set())
    before = files_of(target)
    events.clear()
    merge(target, source.root)
    assert_durable(target, events, before)


def test_a_compaction_is_durable(tmp_path, events):
    lake = Lake.for_writing(tmp_path / "lake")
    for i in range(3):
        lake.commit_model(f"org/m{i}", "r1", model_tables(f"org/m{i}", layers=2, seed=i))
    before = files_of(lake.root)
    events.clear()
    compact(lake)
    assert_durable(lake.root, events, before)


def test_a_migration_is_durable(tmp_path, events):
    root = tmp_path / "lake"
    for table in ("models", "layers"):
        (root / table).mkdir(parents=True)
        rows = model_tables("org/old", layers=2)[table]
        pq.write_table(to_arrow(table, rows), root / table / "org__old__r1.parquet")
    events.clear()
    migrate(root)
    assert_durable(root, events, set())
    assert run_query(root, "SELECT count(*) AS n FROM layers") == [{"n": 2}]
