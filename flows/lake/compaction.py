"""Folding small segments into larger ones, and tidying what killed writers left.

Every rewrite works the same way: read the chosen segments through their view (hidden rows dropped), write one
sorted segment, then under the writer lock swap it in, provided the inputs are all still there. Keys hidden in an
input while the rewrite ran are hidden in the output too, so a concurrent commit is never undone. The inputs are
retired (deleted after a grace period); a rewrite killed before the swap leaves only an unreferenced file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .files import durable_mkdir, durable_replace
from .manifest import DATA, ROW_GROUP_ROWS, Segment, Snapshot, new_segment_file, schema_fingerprint
from .parquet import write_segment_file
from .schema import DERIVED_TABLES, SCHEMAS, quoted, sort_clause
from .views import empty_table_sql, sql_literal, table_sql

if TYPE_CHECKING:
    from .store import Lake

# An unreferenced file younger than this may be a write in flight; older ones were left by a killed writer.
ORPHAN_AGE_SECONDS = 3600
# Size-tiered folding: a segment's tier is floor(log16(rows)); sixteen segments of one tier become one of the next,
# so each row is rewritten about log16(rows in the lake) times, and a commit never rewrites a large segment.
FOLD_FANOUT = 16
FOLD_MAX_ROWS = 1 << 18
# A segment hiding more keys than this is rewritten without them, so that view filters stay short; but only up to
# FOLD_MAX_ROWS rows: no commit rewrites a larger segment (a 20M-row import would take a minute and gigabytes),
# its hidden keys stay filtered by the views until `wwhub lake compact` rewrites it.
MAX_HIDDEN_KEYS = 64

# Memory DuckDB may use while rewriting (it spills to LAKE/.tmp past that): a share of the machine, which is shared.
REWRITE_MEMORY_SHARE = 4
REWRITE_MEMORY_MIN = 2 << 30
# A container's memory limit (cgroup v2), when smaller than the machine's.
CGROUP_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory.max")


def rewrite_memory() -> str:
    """DuckDB's memory limit while rewriting: a quarter of the memory this process may use (the physical memory, or
    a smaller cgroup limit), at least 2 GB. A 4M-row range of layer rows (what an import sorts at once) then sorts
    without spilling on a 23 GB machine; at 2 GB it spilled and took ~1.6x as long."""
    available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = CGROUP_MEMORY_LIMIT.read_text().strip()
        if limit.isdigit():
            available = min(available, int(limit))
    except OSError:
        pass
    return f"{max(REWRITE_MEMORY_MIN, available // REWRITE_MEMORY_SHARE) >> 20}MiB"


def _tier(segment: Segment) -> int:
    return int(math.log(max(segment.rows, 1), FOLD_FANOUT))


def _fold_candidates(segments: list[Segment]) -> list[Segment]:
    """FOLD_FANOUT segments of the smallest crowded tier, or one of at most FOLD_MAX_ROWS rows hiding too many keys
    (rewritten alone). Never a segment of more than FOLD_MAX_ROWS rows: what a commit rewrites is bounded."""
    crowded = [s for s in segments if len(s.hidden) > MAX_HIDDEN_KEYS and s.rows <= FOLD_MAX_ROWS]
    if crowded:
        return crowded[:1]
    tiers: dict[int, list[Segment]] = {}
    for segment in segments:
        if segment.rows < FOLD_MAX_ROWS:
            tiers.setdefault(_tier(segment), []).append(segment)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= FOLD_FANOUT:
            return tiers[tier][:FOLD_FANOUT]
    return []


def fold_small_segments(lake: Lake, tables: tuple[str, ...], snapshot: Snapshot | None = None) -> int:
    """Fold crowded tiers of ``tables`` (called after each commit; skipped while another process compacts).
    ``snapshot``: the manifest the caller just published, to look for crowded tiers in without reading it again
    (a commit then parses the manifest once: ~2 ms each in a lake of a few hundred segments); it is read again after
    each rewrite. A snapshot that is no longer current only delays a fold: ``rewrite`` checks its inputs under the
    writer lock. Returns the number of rewrites done."""
    done = 0
    with lake.compaction_lock(wait=False) as acquired:
        if not acquired:
            return 0
        snapshot = snapshot or lake.snapshot()
        for table in tables:
            if table in DERIVED_TABLES:
                continue
            while inputs := _fold_candidates(snapshot.tables[table]):
                if not rewrite(lake, table, inputs):
                    break
                done += 1
                snapshot = lake.snapshot()
    return done


def no_step(description: str) -> None:
    """The ``on_step`` of a caller that shows no progress (compact, import, merge tell theirs each step)."""


def compact(lake: Lake, target_rows: int = 4_000_000, on_step: Callable[[str], None] = no_step) -> dict[str, int]:
    """``wwhub lake compact``: every table rewritten into sorted segments of up to ``target_rows`` rows with no
    hidden rows, then files no manifest references (left by killed writers) removed. Returns segments per table.
    ``on_step``: told of each rewrite (a progress bar's text)."""
    result = {}
    with lake.compaction_lock():
        for table in SCHEMAS:
            segments = lake.snapshot().tables[table]
            if len(segments) > 1 or any(s.hidden for s in segments) or _outdated(table, segments):
                batches: list[list[Segment]] = [[]]
                for segment in sorted(segments, key=lambda s: (s.repo_min or "", s.file)):
                    if batches[-1] and sum(s.rows for s in batches[-1]) + segment.rows > target_rows:
                        batches.append([])
                    batches[-1].append(segment)
                for number, batch in enumerate(batches, 1):
                    if len(batch) > 1 or any(s.hidden for s in batch) or _outdated(table, batch):
                        rows = sum(s.rows for s in batch)
                        on_step(f"rewriting {table}, part {number} of {len(batches)} ({rows:,} rows)")
                        rewrite(lake, table, batch)
            result[table] = len(lake.snapshot().tables[table])
        remove_orphans(lake)
    return result


def _outdated(table: str, segments: list[Segment]) -> bool:
    current = schema_fingerprint(table)
    return any(s.schema != current for s in segments)


def write_segment(lake: Lake, table: str, source_sql: str, constants: dict[str, object] | None = None) -> Segment:
    """Write the rows of ``source_sql`` (in today's columns of ``table``, sorted) as a new segment file, not yet
    part of the lake. DuckDB reads, casts and sorts within ``rewrite_memory()``; the shared writer encodes.
    ``constants``: columns known to hold one value in every row (see ``transfer.constant_columns``), left out of the
    sort and written as that value."""
    import duckdb

    relative = new_segment_file(table)
    path = lake.root / relative
    durable_mkdir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    columns = ", ".join(
        f"CAST({quoted(name)} AS {kind}) AS {quoted(name)}"
        for name, kind in SCHEMAS[table]
        if name not in (constants or {})
    )
    con = duckdb.connect(":memory:", config={"memory_limit": rewrite_memory()})
    try:
        (lake.root / ".tmp").mkdir(exist_ok=True)
        con.execute(f"SET temp_directory = {sql_literal(str(lake.root / '.tmp'))}")
        sorted_rows = con.sql(
            f"SELECT {columns} FROM ({empty_table_sql(table)} UNION ALL BY NAME SELECT * FROM ({source_sql})) "
            f"{sort_clause(table)}"
        )
        rows, low, high = write_segment_file(tmp, table, sorted_rows.to_arrow_reader(ROW_GROUP_ROWS), constants)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    try:
        durable_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Segment(relative, rows, path.stat().st_size, low, high, schema_fingerprint(table))


def rewrite(lake: Lake, table: str, inputs: list[Segment]) -> bool:
    """Replace ``inputs`` by one sorted segment of their visible rows (in today's columns). False when another
    writer changed the inputs meanwhile (nothing is lost: the output is dropped and the inputs stay)."""
    output = write_segment(lake, table, table_sql(table, inputs, prefix=str(lake.root) + "/"))
    path = lake.root / output.file
    with lake.writer_lock():
        snapshot = lake.snapshot()
        current = {s.file: s for s in snapshot.tables[table]}
        if any(s.file not in current for s in inputs):
            path.unlink(missing_ok=True)
            return False
        before = {s.file: len(s.hidden) for s in inputs}
        # Keys hidden in an input after the rewrite read it: hide them in the output as well.
        for segment in inputs:
            output.hidden += [k for k in current[segment.file].hidden[before[segment.file] :] if k not in output.hidden]
        files = {s.file for s in inputs}
        position = min(i for i, s in enumerate(snapshot.tables[table]) if s.file in files)
        kept = [s for s in snapshot.tables[table] if s.file not in files]
        snapshot.tables[table] = kept[:position] + ([output] if output.rows else []) + kept[position:]
        if not output.rows:
            path.unlink(missing_ok=True)
        lake.retire(snapshot, inputs)
        lake.publish(snapshot)
    return True


def remove_orphans(lake: Lake) -> list[Path]:
    """Delete data files no manifest references and temporary files, once older than any write in flight."""
    snapshot = lake.snapshot()
    referenced = {s.file for segs in snapshot.tables.values() for s in segs} | {r["file"] for r in snapshot.retired}
    removed = []
    now = time.time()
    for path in (
        list((lake.root / DATA).glob("*/*")) + list((lake.root / ".tmp").glob("*")) + list(lake.root.glob(".*.tmp"))
    ):
        relative = path.relative_to(lake.root).as_posix()
        if relative in referenced or not path.is_file():
            continue
        try:
            if now - path.stat().st_mtime > ORPHAN_AGE_SECONDS:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed
