"""The lake seen from the command line: read-only commands change nothing (file hashes before and after), writes
and reads outside the lake are refused with one line and exit 2, a read-only or moved lake still answers, two
scans at once and the duckdb command-line tool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from flows.lake import Lake
from flows.leaderboard.correlations import refresh_correlations
from tests.fakehub import model_index, write_model
from tests.flows.lake.synth import fill, rows, tree_hashes

ROOT = Path(__file__).resolve().parents[3]
QUERY = "SELECT repo_id, revision, layer_id, alpha FROM layers ORDER BY ALL"


@pytest.fixture
def lake(tmp_path) -> Path:
    lake = Lake.for_writing(tmp_path / "lake")
    fill(lake, 6, layers=4, family_of=lambda i: "even" if i % 2 == 0 else "odd")
    return lake.root


def wwhub(*args: str, prefix: tuple[str, ...] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    """``wwhub ARGS`` as its own process, started through ``prefix`` (see :func:`cannot_write`)."""
    environment = dict(os.environ, HOME="/tmp", MPLCONFIGDIR="/tmp/wwhub-mpl", **(env or {}))
    return subprocess.run(
        [*prefix, sys.executable, "-m", "flows", *args], cwd=ROOT, capture_output=True, text=True, env=environment
    )


def cannot_write(folder: Path) -> tuple[str, ...]:
    """A command prefix under which a process cannot write ``folder``, whose files are 0444 and folders 0555 (as
    a lake on read-only media or shared by another user is), wherever the checkout lies and whoever may read it.
    An ordinary user is bound by those modes: no prefix. Root ignores them, so its process gets a private mount
    namespace where ``folder`` is a read-only bind mount (writes fail with EROFS, chmod too); where namespaces are
    not allowed (a container without CAP_SYS_ADMIN), it runs without capabilities, which binds root to the modes."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        return ("unshare", "-m", "sh", "-c", remount, str(folder))
    return ("setpriv", "--inh-caps=-all", "--bounding-set=-all")


@pytest.mark.parametrize(
    "command",
    [
        ["query", "SELECT count(*) FROM layers"],
        ["query", "leaderboard"],
        ["leaderboard", "--family", "even"],
        ["plot", "--out", "{out}"],
        ["lake", "info"],
    ],
)
def test_reads_change_nothing(lake, tmp_path, command, capsys):
    before = tree_hashes(lake)
    args = [a.replace("{out}", str(tmp_path / "plots")) for a in command]
    assert main([*args, "--lake", str(lake)]) == 0
    assert tree_hashes(lake) == before


@pytest.mark.parametrize("command", [["query", "SELECT 1"], ["leaderboard"], ["plot", "--out", "{out}"]])
def test_read_of_a_missing_lake_is_exit_2_and_creates_nothing(tmp_path, command, capsys):
    missing = tmp_path / "nowhere" / "lake"
    args = [a.replace("{out}", str(tmp_path / "plots")) for a in command]
    assert main([*args, "--lake", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("command", [["query", "SELECT 1"], ["leaderboard"], ["scan", "org/x"], ["lake", "info"]])
def test_lake_naming_a_file_is_a_clear_error(tmp_path, command, capsys):
    not_a_folder = tmp_path / "lake.txt"
    not_a_folder.write_text("x")
    assert main([*command, "--lake", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert "is a file, expected the lake folder" in err and len(err.strip().splitlines()) == 1
    assert not_a_folder.read_text() == "x"


@pytest.mark.parametrize(
    "sql, refused",
    [
        ("DROP VIEW layers", "DROP"),
        ("COPY (SELECT 1) TO 'planted.csv'", "COPY"),
        ("COPY (SELECT * FROM layers) TO '{lake}/data/layers/planted.parquet'", "COPY"),
        ("ATTACH 'other.duckdb'", "ATTACH"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("SET enable_external_access = true", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("SELECT 1; COPY (SELECT 1) TO 'planted.csv'", "2 statements"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
        ("SELECT * FROM read_text('{lake}/../outside.txt')", "disabled by configuration"),
    ],
)
def test_query_refuses_writes_and_reads_outside_the_lake(lake, tmp_path, monkeypatch, sql, refused, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outside.txt").write_text("secret")
    before = tree_hashes(tmp_path)
    assert main(["query", sql.replace("{lake}", str(lake)), "--lake", str(lake)]) == 2
    err = capsys.readouterr().err.strip()
    assert refused in err and len(err.splitlines()) == 1, err
    assert tree_hashes(tmp_path) == before  # nothing planted, nothing changed
    assert not (Path.home() / ".duckdb" / "extensions" / "httpfs").exists() or "INSTALL" not in sql


def test_query_empty_list_and_parquet_export(lake, tmp_path, capsys):
    assert main(["query", "", "--lake", str(lake)]) == 2
    assert "empty query" in capsys.readouterr().err
    assert main(["query", "--list"]) == 0
    listing = capsys.readouterr().out
    for name in ("leaderboard", "correlations", "layer_outliers", "drift"):
        assert name in listing
    assert "per family, each model's weight-metric averages" in listing  # the header line of leaderboard.sql
    out = tmp_path / "layers.parquet"
    assert main(["query", "SELECT * FROM layers", "--lake", str(lake), "--format", "parquet", "--out", str(out)]) == 0
    import pyarrow.parquet as pq

    exported = pq.read_table(out)
    assert exported.num_rows == 24 and exported.schema.field("alpha").type == "double"
    assert main(["query", "SELECT 1", "--lake", str(lake), "--format", "parquet"]) == 2


def test_a_parquet_export_streams_a_row_group_at_a_time(lake, tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    import flows.cli.query

    monkeypatch.setattr(flows.cli.query, "ROW_GROUP_ROWS", 5)
    out = tmp_path / "layers.parquet"
    sql = "SELECT * FROM layers ORDER BY repo_id, layer_id"
    assert main(["query", sql, "--lake", str(lake), "--format", "parquet", "--out", str(out)]) == 0
    exported = pq.ParquetFile(out)
    assert exported.metadata.num_rows == 24 and exported.metadata.num_row_groups == 5  # one per batch of <= 5 rows
    assert [tuple(r.values()) for r in exported.read().to_pylist()] == rows(lake, sql)

    failed = tmp_path / "failed.parquet"
    args = ["query", "SELECT error('boom') FROM layers", "--lake", str(lake), "--format", "parquet"]
    assert main([*args, "--out", str(failed)]) == 2
    assert "boom" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if "failed" in p.name) == []  # no half file, no partial


def test_a_moved_and_a_read_only_lake_query_identically(lake, tmp_path):
    expected = rows(lake, QUERY)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(lake, moved)
    shutil.rmtree(lake)
    (tmp_path / "repos").mkdir()
    try:
        assert rows(moved, QUERY) == expected
        board = wwhub("leaderboard", "--format", "csv", "--lake", str(moved))
        assert board.returncode == 0, board.stderr
        for path in [moved, *moved.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        before = tree_hashes(moved)
        read_only = cannot_write(moved)
        result = wwhub("query", QUERY, "--format", "csv", "--lake", str(moved), prefix=read_only)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == len(expected) + 1
        readonly_board = wwhub("leaderboard", "--format", "csv", "--lake", str(moved), prefix=read_only)
        assert readonly_board.stdout == board.stdout
        scan = wwhub("scan", "--source", "local", str(tmp_path / "repos"), "--lake", str(moved), prefix=read_only)
        assert scan.returncode == 2, scan.stderr
        assert scan.stderr.strip().count("\n") == 0 and "read-only" in scan.stderr and "Traceback" not in scan.stderr
        assert scan.stdout == ""  # failed at once, before listing or analyzing anything
        assert tree_hashes(moved) == before
    finally:
        for path in [moved, *moved.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_the_read_only_prefix_really_forbids_writing(tmp_path):
    """What the test above relies on: under cannot_write(), a process can neither create a file in the folder nor
    change one, and its mount (if any) is private: the folder stays writable for everyone else."""
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    for path in (folder / "manifest.json", folder):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:

        def python(code: str) -> int:
            command = [*cannot_write(folder), sys.executable, "-c", code, str(folder)]
            return subprocess.run(command, capture_output=True).returncode

        assert python("import sys; open(sys.argv[1] + '/new', 'w')") != 0 and not (folder / "new").exists()
        assert python("import sys; open(sys.argv[1] + '/manifest.json', 'a').write('x')") != 0
        assert (folder / "manifest.json").read_text() == "{}"
    finally:
        for path in (folder, folder / "manifest.json"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    (folder / "new").write_text("the mount was private")


def test_views_sql_opens_in_the_duckdb_command_line_tool(lake):
    # The dev extra installs the command-line tool (duckdb-cli) beside the interpreter, as README says.
    cli = str(Path(sys.executable).parent / "duckdb")
    refresh_correlations(lake)  # as a scan does: the derived table is read like any other
    sql = (
        "SELECT (SELECT count(*) FROM layers) AS n, (SELECT count(DISTINCT family) FROM layers) AS f, "
        "(SELECT count(*) FROM correlations WHERE reported_metric = 'accuracy' AND metric = 'alpha') AS c"
    )
    result = subprocess.run([cli, "-init", "views.sql", "-csv", "-c", sql], cwd=lake, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # 6 models of 4 layers in two families; alpha against accuracy per family and pooled.
    assert result.stdout.strip().splitlines()[-2:] == ["n,f,c", "24,2,3"]


def test_failing_import_leaves_the_lake_unchanged(lake, tmp_path, capsys):
    before = tree_hashes(lake)
    bad = tmp_path / "layers.parquet"
    bad.write_bytes(b"not parquet")
    assert main(["lake", "import", str(bad), "--lake", str(lake)]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"repo_id": ["a/b"], "revision": ["r"], "bogus": [1]}), bad)
    assert main(["lake", "import", str(bad), "--lake", str(lake)]) == 2
    assert "columns not in the layers table: bogus" in capsys.readouterr().err
    pq.write_table(pa.table({"repo_id": ["a/b"], "revision": ["r"], "family": ["f"], "alpha": ["high"]}), bad)
    assert main(["lake", "import", str(bad), "--lake", str(lake)]) == 2
    assert "do not fit the layers schema in alpha (1 rows)" in capsys.readouterr().err
    assert main(["lake", "import", str(tmp_path / "missing.parquet"), "--lake", str(lake)]) == 2
    unkeyed = tmp_path / "evals.parquet"  # imported values (no revision) that name no import: never replaceable
    evals = {"repo_id": ["a/b"], "family": ["f"], "source": ["s"], "metric": ["accuracy"], "value": [0.5]}
    pq.write_table(pa.table(evals), unkeyed)
    assert main(["lake", "import", str(unkeyed), "--lake", str(lake)]) == 2
    assert "1 evals row(s) with neither a revision nor an import_id" in capsys.readouterr().err
    assert tree_hashes(lake) == before


def test_demo_writes_into_its_own_lake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WWHUB_LAKE", str(tmp_path / "users-lake"))
    assert main(["demo", "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "wwhub-demo-lake" / "manifest.json").exists()
    assert not (tmp_path / "users-lake").exists()


def test_two_scans_at_once_leave_every_model_once(fake_hub, tmp_path):
    rng = np.random.default_rng(5)
    repos = []
    for i in range(6):
        tensors = {f"l{k}.weight": rng.standard_t(3, (120, 60)).astype(np.float32) for k in range(3)}
        folder = write_model(tmp_path / f"r{i}", tensors, shards=1, card={"model-index": model_index(f"r{i}", 0.5)})
        fake_hub.add_folder(f"acme/twice-{i}m", folder)
        repos.append(f"acme/twice-{i}m")
    lake = tmp_path / "lake"
    command = [sys.executable, "-m", "flows", "scan", "--endpoint", fake_hub.endpoint, "--lake", str(lake)]
    first = subprocess.Popen([*command, *repos[:4]], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen([*command, *repos[2:]], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0, (first.stderr.read(), second.stderr.read())
    per_model = rows(lake, "SELECT repo_id, count(*) FROM layers GROUP BY 1 ORDER BY 1")
    assert per_model == [(repo, 3) for repo in repos]  # both scanned the overlap: one copy each, complete
    assert rows(lake, "SELECT count(*), count(DISTINCT repo_id) FROM models") == [(6, 6)]
    assert rows(lake, "SELECT count(*) FROM evals") == [(6,)]


def test_leaderboard_of_one_family_reads_only_it_and_ranks_as_the_full_board(lake):
    from flows.leaderboard.render import leaderboard_data

    full, _ = leaderboard_data(lake)
    board, correlations = leaderboard_data(lake, "even")
    assert board == [r for r in full if r["family"] == "even"] and len(board) == 3
    assert {c["family"] for c in correlations} == {"even"}


def test_a_write_into_a_folder_that_is_not_a_lake_is_refused_untouched(tmp_path, capsys):
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    before = tree_hashes(folder)
    assert main(["lake", "import", str(tmp_path / "nothing.parquet"), "--lake", str(folder)]) == 2
    assert main(["scan", "--source", "local", str(tmp_path), "--lake", str(folder)]) == 2
    assert "not empty and not a wwhub lake" in capsys.readouterr().err
    assert tree_hashes(folder) == before and sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
