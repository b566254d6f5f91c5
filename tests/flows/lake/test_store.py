"""The lake's storage contract: keyed replacement, atomic commits seen whole by concurrent readers, writers that
do not lose each other's entries, folding and compaction that keep every row, and kills that lose nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.lake import MANIFEST, Lake, compaction, store
from flows.lake.compaction import compact
from flows.lake.schema import to_arrow
from flows.lake.sql import run_query
from tests.flows.lake.synth import fill, model_tables, rows

ROOT = Path(__file__).resolve().parents[3]
LAYER_ROWS = "SELECT repo_id, revision, layer_id, alpha FROM layers ORDER BY ALL"


def python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_key_committed_again_replaces_its_rows_and_other_revisions_stay(tmp_path):
    lake = Lake.for_writing(tmp_path / "lake")
    lake.commit_model("org/a", "r1", model_tables("org/a", layers=5, seed=1))
    second = model_tables("org/a", layers=3, seed=2)
    lake.commit_model("org/a", "r1", second)  # a --force rescan with fewer layers
    lake.commit_model("org/a", "r2", model_tables("org/a", revision="r2", layers=4, seed=3))
    counts = run_query(lake.root, "SELECT revision, count(*) AS n FROM layers GROUP BY 1 ORDER BY 1")
    assert counts == [{"revision": "r1", "n": 3}, {"revision": "r2", "n": 4}]
    alphas = [r["alpha"] for r in run_query(lake.root, "SELECT alpha FROM layers WHERE revision = 'r1' ORDER BY 1")]
    assert alphas == sorted(r["alpha"] for r in second["layers"])  # the second commit's values, exactly
    assert run_query(lake.root, "SELECT count(*) AS n FROM models") == [{"n": 2}]
    assert lake.has_model("org/a", "r1") and not lake.has_model("org/a", "r9")


def test_a_segment_whose_rows_are_all_replaced_leaves_the_manifest(tmp_path):
    """Each --force rescan of a model hides its previous scan's rows: the segments holding nothing else are retired
    (their files kept for the grace period) instead of being read, and filtered to nothing, by every later query.
    A segment that still holds a visible row stays."""
    lake = Lake.for_writing(tmp_path / "lake")
    lake.commit(
        {"layers": model_tables("org/a", layers=2, seed=1)["layers"] + model_tables("org/b", layers=2)["layers"]}
    )
    for seed in (2, 3, 4):
        lake.commit_model("org/a", "r1", model_tables("org/a", layers=3, seed=seed))
    snapshot = lake.snapshot()
    assert len(snapshot.tables["models"]) == 1 and len(snapshot.tables["layers"]) == 2  # org/b's first segment stays
    retired = {r["file"] for r in snapshot.retired}
    assert all((lake.root / f).exists() for f in retired) and len(retired) == 2 * len(
        [t for t, r in model_tables("org/a").items() if r]
    )
    assert run_query(lake.root, "SELECT repo_id, count(*) AS n FROM layers GROUP BY 1 ORDER BY 1") == [
        {"repo_id": "org/a", "n": 3},
        {"repo_id": "org/b", "n": 2},
    ]
    fourth = sorted(r["alpha"] for r in model_tables("org/a", layers=3, seed=4)["layers"])
    assert [
        r["alpha"] for r in run_query(lake.root, "SELECT alpha FROM layers WHERE repo_id = 'org/a' ORDER BY 1")
    ] == fourth


def test_failed_rescan_replaces_every_table_of_the_model(tmp_path):
    lake = Lake.for_writing(tmp_path / "lake")
    lake.commit_model("org/a", "r1", model_tables("org/a", layers=5))
    lake.commit_model("org/a", "r1", {"models": [dict(repo_id="org/a", revision="r1", family="fam", status="failed")]})
    assert run_query(lake.root, "SELECT count(*) AS n FROM layers") == [{"n": 0}]
    assert run_query(lake.root, "SELECT status FROM models") == [{"status": "failed"}]


def test_an_import_is_replaced_whole_by_its_origin_and_older_segments_are_read_by_name(tmp_path):
    lake = Lake.for_writing(tmp_path / "lake")
    lake.commit_model("org/a", "r1", model_tables("org/a", layers=2))
    # A segment written before evals had import_id: read by name, its import_id null, never hidden by another key.
    row = dict(repo_id="org/a", family="fam", source="import:csv:old", metric="accuracy", value=0.1)
    old = to_arrow("evals", [row])
    (lake.root / "data" / "evals").mkdir(parents=True, exist_ok=True)
    pq.write_table(old.drop_columns(["import_id"]), lake.root / "data/evals/old.parquet")
    segment = store.Segment("data/evals/old.parquet", 1, 1, "org/a", "org/a", schema="older")
    lake.commit_staged({"evals": [segment]}, {})

    def imported(repo_id: str, value: float) -> dict:
        return dict(repo_id=repo_id, family="fam", source="import:csv:x", metric="accuracy", value=value, import_id="x")

    lake.commit({"evals": [imported("org/a", 0.5), imported("org/b", 0.6)]})
    lake.commit({"evals": [imported("org/a", 0.7)]})  # the same origin again, without org/b: both rows replaced
    imports = "SELECT repo_id, source, value, import_id FROM evals WHERE revision IS NULL ORDER BY ALL"
    assert rows(lake.root, imports) == [("org/a", "import:csv:old", 0.1, None), ("org/a", "import:csv:x", 0.7, "x")]
    assert rows(lake.root, "SELECT count(*) FROM evals WHERE revision = 'r1'") == [(1,)]  # the card's, untouched


def test_no_absolute_path_inside_the_lake(tmp_path):
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 3)
    for name in (MANIFEST, "views.sql"):
        text = (lake.root / name).read_text()
        assert str(tmp_path) not in text and "'/" not in text, name


WRITER = """
import sys
from flows.lake import Lake
from tests.flows.lake.synth import model_tables
lake = Lake.for_writing(sys.argv[1])
for round in range(3):
    for i in range(12):
        repo = f"org/m{i:03d}"
        lake.commit_model(repo, "r1", model_tables(repo, layers=50, seed=100 * round + i))
"""


def test_a_reader_during_writes_sees_whole_models_only(tmp_path):
    """A writer commits 12 models three times over (replacing them, folding segments as it goes) while this
    process queries: every answer holds exactly 50 layers per visible model and no model twice."""
    lake_root = tmp_path / "lake"
    Lake.for_writing(lake_root)
    writer = python(WRITER, str(lake_root))
    seen = set()
    sql = (
        "SELECT (SELECT count(*) FROM models) AS models, (SELECT count(*) FROM layers) AS layers, "
        "(SELECT count(*) FROM (SELECT repo_id FROM layers GROUP BY repo_id HAVING count(*) <> 50)) AS odd"
    )
    while writer.poll() is None:
        answer = run_query(lake_root, sql)[0]
        assert answer["layers"] == 50 * answer["models"] and answer["odd"] == 0, answer
        seen.add(answer["models"])
    assert writer.returncode == 0, writer.stderr.read()
    assert len(seen) >= 3  # the reader really ran while the lake changed
    final = run_query(lake_root, sql)[0]
    assert final == {"models": 12, "layers": 600, "odd": 0}


COMMITTER = """
import sys
from flows.lake import Lake
from tests.flows.lake.synth import model_tables
lake = Lake.for_writing(sys.argv[1])
for i in range(30):
    repo = f"{sys.argv[2]}/m{i:03d}"
    lake.commit_model(repo, "r1", model_tables(repo, layers=5, seed=i))
"""


def test_two_writers_at_once_lose_no_entry(tmp_path):
    lake_root = tmp_path / "lake"
    Lake.for_writing(lake_root)
    writers = [python(COMMITTER, str(lake_root), org) for org in ("a", "b")]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    assert run_query(lake_root, "SELECT count(*) AS n, count(DISTINCT repo_id) AS repos FROM models") == [
        {"n": 60, "repos": 60}
    ]
    assert run_query(lake_root, "SELECT count(*) AS n FROM layers") == [{"n": 300}]


def test_small_segments_fold_and_compaction_keeps_every_row(tmp_path, monkeypatch):
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 70, layers=3)
    fill(lake, 10, layers=3, seed=500)  # rescans of the first ten: their old rows become hidden
    snapshot = lake.snapshot()
    # 80 commits of one segment each fold into a handful (eight of a tier become one of the next).
    assert len(snapshot.tables["layers"]) < 12
    before = rows(lake.root, LAYER_ROWS)
    assert len(before) == 70 * 3
    monkeypatch.setattr(store, "RETIRED_GRACE_SECONDS", 0)
    assert compact(lake)["layers"] == 1
    assert rows(lake.root, LAYER_ROWS) == before
    after = lake.snapshot()
    assert not any(s.hidden for s in after.tables["layers"])
    referenced = {s.file for segments in after.tables.values() for s in segments}
    on_disk = {p.relative_to(lake.root).as_posix() for p in (lake.root / "data").glob("*/*")}
    assert on_disk == referenced  # retired inputs deleted once the grace period is over


def test_a_commit_reads_the_manifest_once_and_folds_from_what_it_published(tmp_path, monkeypatch):
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 14, layers=3)
    reads = []
    monkeypatch.setattr(Lake, "snapshot", lambda self, read=Lake.snapshot: reads.append(1) or read(self))
    lake.commit_model("org/m9000", "r1", model_tables("org/m9000", layers=3, seed=7))
    assert len(reads) == 1  # nothing to fold: the commit's own read, under the writer lock, is the only one
    assert len(lake.snapshot().tables["layers"]) == 15
    reads.clear()
    rewrites = []
    monkeypatch.setattr(compaction, "rewrite", lambda *a, done=compaction.rewrite: rewrites.append(a[1]) or done(*a))
    # The sixteenth segment of each model table fills a tier: it is folded, found in what the commit published.
    lake.commit_model("org/m9001", "r1", model_tables("org/m9001", layers=3, seed=8))
    # Besides the commit's read: per fold, the rewrite's read under the writer lock and one to look again.
    assert len(reads) - 1 == 2 * len(rewrites)
    assert {"layers", "models"} <= set(rewrites)
    after = lake.snapshot()
    assert len(after.tables["layers"]) == len(after.tables["models"]) == 1
    assert rows(lake.root, "SELECT count(*), count(DISTINCT repo_id) FROM layers") == [(16 * 3, 16)]


def test_replaced_segments_stay_readable_for_the_grace_period(tmp_path):
    """A reader that loaded the manifest before a compaction can still open every file it names."""
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 5, fold=False)
    old = lake.snapshot()
    compact(lake)
    assert all((lake.root / s.file).exists() for segments in old.tables.values() for s in segments)


COMPACTER = """
import sys
from flows.lake import Lake
from flows.lake.compaction import compact
compact(Lake.for_writing(sys.argv[1]))
"""


@pytest.mark.slow
def test_sigkill_during_compaction_loses_nothing(tmp_path):
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 60, layers=200, fold=False)
    fill(lake, 10, layers=200, seed=900, fold=False)  # hidden rows for the compaction to drop
    before = rows(lake.root, LAYER_ROWS)
    versions = set()
    for delay in (0.05, 0.2, 0.4, 0.7, 1.0, 1.5, 30):
        proc = python(COMPACTER, str(lake.root))
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        versions.add(lake.snapshot().version)
        assert rows(lake.root, LAYER_ROWS) == before, delay  # opens, and holds exactly the same rows
        if proc.returncode == 0:
            break
    assert proc.returncode == 0
    assert len(lake.snapshot().tables["layers"]) == 1
    assert len(versions) >= 2  # some kills landed before the swap, the last run completed


@pytest.mark.slow
def test_sigkill_during_import_leaves_the_old_or_the_new_lake(tmp_path):
    source = Lake.for_writing(tmp_path / "source")
    fill(source, 150, layers=200, prefix="new/m", seed=7)
    export = tmp_path / "export"
    export.mkdir()
    from flows.cli import main

    for table in ("layers", "models", "evals"):
        sql = f"SELECT * FROM {table}"
        args = [
            "query",
            sql,
            "--lake",
            str(source.root),
            "--format",
            "parquet",
            "--out",
            str(export / f"{table}.parquet"),
        ]
        assert main(args) == 0
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 5, layers=10)
    old = rows(lake.root, LAYER_ROWS)
    complete = sorted(old + rows(source.root, LAYER_ROWS))
    outcomes = set()
    for delay in (0.1, 0.3, 0.6, 1.0, 2.0, 60):
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows", "lake", "import", str(export), "--lake", str(lake.root)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        now = rows(lake.root, LAYER_ROWS)
        assert now in (old, complete), delay
        outcomes.add(now == complete)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0  # the last run was left to finish
    assert rows(lake.root, LAYER_ROWS) == complete
    # Importing the same rows again replaces them: still exactly once.
    assert main(["lake", "import", str(export), "--lake", str(lake.root)]) == 0
    assert rows(lake.root, LAYER_ROWS) == complete


def test_manifest_is_replaced_never_rewritten_in_place(tmp_path):
    """Each commit renames a new manifest into place: an open handle on the old one still reads it whole."""
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 1)
    with open(lake.root / MANIFEST) as handle:
        fill(lake, 1, prefix="org/x")
        old = json.loads(handle.read())
    assert old["version"] < json.loads((lake.root / MANIFEST).read_text())["version"]
    assert os.stat(lake.root / MANIFEST).st_nlink == 1


def test_a_query_over_some_repos_sees_their_rows_as_the_whole_lake_does(tmp_path):
    """``query_arrow(..., repos=)`` reads only the segments that may hold those repos, and per-repo views
    (``models_latest``: the last good scan, the last attempt) give the rows the whole lake gives them."""
    import datetime as dt

    from flows.lake.sql import query_arrow

    lake = Lake.for_writing(tmp_path / "lake")
    repos = fill(lake, 12, layers=2, fold=False)
    failed = dict(repo_id=repos[3], revision="r2", family="fam", status="failed", scanned_at=dt.datetime(2030, 1, 1))
    lake.commit_model(repos[3], "r2", {"models": [failed]})
    wanted = [repos[3], repos[7], "org/not-in-the-lake"]
    sql = "SELECT repo_id, revision, status, last_attempt_failed FROM models_latest ORDER BY ALL"
    whole = [r for r in run_query(lake.root, sql) if r["repo_id"] in wanted]
    assert query_arrow(lake.root, sql, repos=wanted).to_pylist() == whole
    assert [r["repo_id"] for r in whole] == [repos[3], repos[7]] and whole[0]["last_attempt_failed"]
    assert query_arrow(lake.root, "SELECT count(*) AS n FROM layers", repos=[]).to_pylist() == [{"n": 0}]


def test_a_rewrite_keeps_every_value_of_every_table(tmp_path, monkeypatch):
    """Rewrites go through DuckDB (read, cast, sort) and the shared pyarrow writer: timestamps with their zone, lists
    of eigenvalues, booleans, NULLs and NaN come back as they went in, in every table."""
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 6, layers=3)
    fill(lake, 2, layers=3, seed=500)  # rescans: hidden rows are dropped by the rewrite
    tables = [t for t, segments in lake.snapshot().tables.items() if segments]
    assert {"layers", "esd", "models", "evals"} <= set(tables)
    before = {t: rows(lake.root, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    assert any(isinstance(value, list) and value for row in before["esd"] for value in row)
    assert any(isinstance(value, dt.datetime) and value.tzinfo for row in before["models"] for value in row)
    monkeypatch.setattr(store, "RETIRED_GRACE_SECONDS", 0)
    compact(lake)
    assert all(len(lake.snapshot().tables[t]) == 1 for t in tables if t != "correlations")
    for table in tables:
        assert rows(lake.root, f"SELECT * FROM {table} ORDER BY ALL") == before[table], table
