"""The layout-1 lake (one Parquet file per table, repo and commit, before the manifest): read in place, and
migrated to segments under a manifest by the first writer (``Lake.for_writing``) or ``wwhub lake migrate``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .compaction import write_segment
from .manifest import LakeError, Segment, Snapshot
from .schema import TABLES
from .views import sql_literal, table_sql

if TYPE_CHECKING:
    from .store import Lake

V1_TABLES = ("layers", "esd", "evals", "models", "scans", "distances")
# Layout 1's derived table: not carried over; its producer (flows/leaderboard/correlations.py) rewrites it after
# the move.
V1_DERIVED = ("correlations",)
V1_CATALOG = "wwhub.duckdb"
V1_IMPORT_PREFIX = "import__"


def v1_snapshot(root: Path) -> Snapshot:
    """A layout-1 lake read in place: each file a segment (its name was its key, so nothing is duplicated)."""
    tables: dict[str, list[Segment]] = {t: [] for t in TABLES}
    for table in V1_TABLES:
        for path in sorted((root / table).glob("*.parquet")):
            tables[table].append(Segment(f"{table}/{path.name}", 0, path.stat().st_size))
    return Snapshot(root, 0, tables, layout=1)


def v1_source(lake: Lake, table: str, segments: list[Segment]) -> str:
    prefix = str(lake.root) + "/"
    if table == "evals":
        # Layout 1 kept each evals import in its own file, evals/import__<import id>.parquet: the name is the key.
        imports = [s for s in segments if Path(s.file).name.startswith(V1_IMPORT_PREFIX)]
        parts = [table_sql(table, [s for s in segments if s not in imports], prefix)] + [
            f"SELECT * REPLACE (coalesce(import_id, {sql_literal(Path(s.file).stem.removeprefix(V1_IMPORT_PREFIX))})"
            f" AS import_id) FROM ({table_sql(table, [s], prefix)})"
            for s in imports
        ]
        return "\nUNION ALL BY NAME\n".join(parts)
    source = table_sql(table, segments, prefix)
    if table == "esd":
        # Layout 1 kept every eigenvalue: the rows are full ESDs.
        return (
            f"SELECT * REPLACE (coalesce(storage, 'full') AS storage, "
            f"coalesce(num_evals, len(evals)) AS num_evals, "
            f"coalesce(rand_num_evals, len(rand_evals)) AS rand_num_evals) FROM ({source})"
        )
    return source


def migrate_v1(lake: Lake) -> dict[str, int]:
    """Rewrite a layout-1 lake as segments under a manifest (the caller holds the writer lock), check that every
    row arrived, then remove the old files. Killed before the manifest lands, the old layout is untouched."""
    import duckdb

    old = v1_snapshot(lake.root)
    snapshot = Snapshot(lake.root, 0, {t: [] for t in TABLES})
    counts = {}
    con = duckdb.connect(":memory:")
    try:
        for table in V1_TABLES:
            segments = old.tables[table]
            if not segments:
                continue
            source = v1_source(lake, table, segments)
            expected = con.execute(f"SELECT count(*) FROM ({source})").fetchall()[0][0]
            segment = write_segment(lake, table, source)
            if segment.rows != expected:
                (lake.root / segment.file).unlink(missing_ok=True)
                raise LakeError(f"migrating {lake.root}: {table} has {expected} rows but {segment.rows} were written")
            if segment.rows:
                snapshot.tables[table].append(segment)
            counts[table] = segment.rows
    finally:
        con.close()
    lake.publish(snapshot)
    for table in V1_TABLES + V1_DERIVED:
        shutil.rmtree(lake.root / table, ignore_errors=True)
    (lake.root / V1_CATALOG).unlink(missing_ok=True)
    return counts
