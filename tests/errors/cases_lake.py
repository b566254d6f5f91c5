"""The lake (issues #9 and #10, branch lake): read-only commands refuse writes and reads outside the lake, and
commands never create or change a lake they only read; writes refuse folders that are not lakes."""

from __future__ import annotations

from tests.errors.framework import Ctx, ErrorCase

REFUSED = "wwhub query: error: refused: {kind} statement; wwhub query only reads (one SELECT statement)"


def query(ctx: Ctx, sql: str) -> list[str]:
    return ["query", sql, "--lake", str(ctx.lake)]


def home_folder(ctx: Ctx) -> str:
    """A folder of the user's own files, not a lake."""
    folder = ctx.root / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    return str(folder)


def exported_models(ctx: Ctx, repo_id: str) -> str:
    """The lake's models table written as models.parquet (as `wwhub query --out` exports it), its repo id replaced."""
    from flows.cli import main

    sql = f"SELECT * REPLACE ('{repo_id}' AS repo_id) FROM models"
    assert main(["query", sql, "--lake", str(ctx.lake), "--format", "parquet", "--out", "models.parquet"]) == 0
    return "models.parquet"


CASES = [
    # ---- wwhub query only reads --------------------------------------------------------------------------------------
    ErrorCase(
        "query-copy",
        "`wwhub query` with a statement that writes a file (`COPY ... TO`)",
        2,
        REFUSED.format(kind="COPY"),
        lambda ctx: query(ctx, "COPY layers TO 'layers.csv'"),
    ),
    ErrorCase(
        "query-attach",
        "`wwhub query` attaching another database",
        2,
        REFUSED.format(kind="ATTACH"),
        lambda ctx: query(ctx, "ATTACH 'other.duckdb'"),
    ),
    ErrorCase(
        "query-install",
        "`wwhub query` installing an extension (DuckDB calls INSTALL a LOAD statement)",
        2,
        REFUSED.format(kind="LOAD"),
        lambda ctx: query(ctx, "INSTALL httpfs"),
    ),
    ErrorCase(
        "query-create",
        "`wwhub query` creating a table or view",
        2,
        REFUSED.format(kind="CREATE"),
        lambda ctx: query(ctx, "CREATE TABLE t AS SELECT 1"),
    ),
    ErrorCase(
        "query-two-statements",
        "`wwhub query` with more than one statement",
        2,
        "wwhub query: error: refused: 2 statements; wwhub query runs one SELECT statement at a time",
        lambda ctx: query(ctx, "SELECT 1; DROP VIEW layers"),
    ),
    ErrorCase(
        "query-file-outside-the-lake",
        "`wwhub query` reading a file outside the lake",
        2,
        'wwhub query: error: query failed: Permission Error: Cannot access file "<path>" - file system operations are '
        "disabled by configuration",
        lambda ctx: query(ctx, f"SELECT * FROM read_csv('{home_folder(ctx)}/notes.txt')"),
    ),
    # ---- reading a lake that is not there ------------------------------------------------------------------------
    ErrorCase(
        "query-no-lake",
        "a read (`query`, `leaderboard`, `plot`, `lake info`) of a lake that does not exist (nothing is created)",
        2,
        "wwhub leaderboard: error: no lake at <path>: run `wwhub scan` (or `wwhub demo`) first, or pass --lake",
        lambda ctx: ["leaderboard", "--lake", "no-such-lake"],
    ),
    ErrorCase(
        "query-not-a-lake",
        "a read of a folder that is not a lake",
        2,
        "wwhub query: error: <path> is not a wwhub lake (no manifest.json): pass the folder `wwhub scan` wrote",
        lambda ctx: ["query", "SELECT 1", "--lake", home_folder(ctx)],
    ),
    # ---- writing into a folder that is not a lake ----------------------------------------------------------------
    ErrorCase(
        "scan-into-a-foreign-folder",
        "a scan or import into a folder that holds other files (left untouched)",
        2,
        "wwhub scan: error: <path> is not empty and not a wwhub lake: pick another --lake folder",
        lambda ctx: ["scan", "--source", "local", str(ctx.root), "--lake", home_folder(ctx)],
    ),
    ErrorCase(
        "lake-import-not-parquet",
        "`wwhub lake import` of a file that is not Parquet (the lake unchanged)",
        2,
        "wwhub lake: error: layers.parquet: not a readable Parquet file (<reason>)",
        lambda ctx: (
            (ctx.root / "layers.parquet").write_bytes(b"not parquet"),
            ["lake", "import", "layers.parquet", "--lake", str(ctx.lake)],
        )[1],
    ),
    ErrorCase(
        "lake-import-derived-table",
        "`wwhub lake import --table correlations`: a derived table is recomputed, never imported",
        2,
        "wwhub lake import: error: argument --table: invalid choice: 'correlations' (choose from 'layers', 'esd', "
        "'evals', 'models', 'scans', 'attempts', 'memberships', 'distances') (usage: wwhub lake import --help)",
        lambda ctx: (
            (ctx.root / "export.parquet").write_bytes(b"PAR1"),
            ["lake", "import", "export.parquet", "--table", "correlations", "--lake", str(ctx.lake)],
        )[1],
    ),
    ErrorCase(
        "lake-import-unknown-table",
        "`wwhub lake import` of a file whose name is no table",
        2,
        "wwhub lake: error: export.parquet: cannot tell which table it holds (name it TABLE.parquet or pass --table; "
        "layers, esd, evals, models, scans, attempts, memberships, distances)",
        lambda ctx: (
            (ctx.root / "export.parquet").write_bytes(b"PAR1"),
            ["lake", "import", "export.parquet", "--lake", str(ctx.lake)],
        )[1],
    ),
    ErrorCase(
        "lake-import-bad-repo-id",
        "`wwhub lake import` of rows whose repo id a scan would refuse (`repo_id` or `base_repo_id`; the lake "
        "unchanged)",
        2,
        "wwhub lake: error: models.parquet: repo_id 'models/acme/tiny-1m' is not a Hub repo id: expected org/name "
        "(letters, digits, '-', '_', '.')",
        lambda ctx: ["lake", "import", exported_models(ctx, "models/acme/tiny-1m"), "--lake", str(ctx.lake)],
    ),
    ErrorCase(
        "lake-merge-into-itself",
        "`wwhub lake merge` of a lake into itself",
        2,
        "wwhub lake: error: cannot merge <path> into itself",
        lambda ctx: ["lake", "merge", str(ctx.lake), "--lake", str(ctx.lake)],
    ),
]
