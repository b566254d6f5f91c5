"""The lake on disk: immutable Parquet segments listed by one manifest, replaced atomically under a writer lock.

Layout (``LAKE`` defaults to ``./wwhub-lake``)::

    LAKE/manifest.json             the current snapshot: every table's segments and the keys hidden in each
    LAKE/views.sql                 the same snapshot as DuckDB views with relative paths (``duckdb -init views.sql``)
    LAKE/data/<table>/<id>.parquet immutable segments (zstd); small ones are folded into larger ones as they pile up
    LAKE/.lock, LAKE/.compact.lock writer locks (fcntl); readers never take them
    LAKE/.correlations.lock        held by one producer of the derived table at a time
    LAKE/cache/                    what a producer may keep to update a derived table incrementally (the points
                                   behind ``correlations`` and the segments they reflect): never a source of rows,
                                   ignored when out of date

A write stages its segment files first (written under a temporary name, flushed and renamed, so never half a file
and never lost once listed), then, holding the writer lock for a few milliseconds, reads the manifest, records
which older segments hold rows with the keys it replaces (those rows are hidden from then on), adds its segments
and renames a new, flushed manifest into place (flows/lake/files.py: a command that returned has its rows on disk).
Readers load the manifest once per query and never wait: they see the snapshot before a commit or after it, never
half a model. A killed writer leaves unreferenced files, which a later compaction removes; segments a compaction
replaced are deleted only after a grace period, so a reader holding an older manifest can finish its query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..scanning.status import RETRIED
from .compaction import fold_small_segments
from .files import durable_mkdir, durable_replace, durable_write_bytes
from .layout1 import migrate_v1, v1_snapshot
from .manifest import (
    COMPACTION_LOCK,
    LAYOUT_VERSION,
    MANIFEST,
    VIEWS_SQL,
    WRITER_LOCK,
    LakeError,
    Segment,
    Snapshot,
    new_segment_file,
    schema_fingerprint,
)
from .parquet import write_segment_file
from .schema import DERIVED_TABLES, MODEL_TABLES, TABLES, key_source_columns, row_key, to_arrow
from .views import views_sql

DEFAULT_LAKE = "wwhub-lake"

# Segments a compaction replaced stay on disk this long, for readers that loaded the manifest before it.
RETIRED_GRACE_SECONDS = 600

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def stands_for_scan(status: str, stored_selection: str | None, selection: str) -> bool:
    """Whether a ``models`` row makes a scan of its commit with the ``--layers`` ``selection`` ('' = all layers)
    unnecessary: its status is not one a later run retries (flows/scanning/status.py ``RETRIED``), and it covers all
    layers or the same selection (a scan of a subset does not stand for a full scan, a full scan stands for any
    subset)."""
    return status not in RETRIED and (stored_selection or "") in ("", selection)


def lake_path(lake: str | os.PathLike | None = None) -> Path:
    """The lake folder: the argument, else ``WWHUB_LAKE``, else ``./wwhub-lake``."""
    return Path(lake or os.environ.get("WWHUB_LAKE") or DEFAULT_LAKE).resolve()


def batch_keys(table: str, arrow) -> list[dict]:
    """The distinct keys of ``table`` in an Arrow table of its rows."""
    columns = list(key_source_columns(table))
    if not columns or arrow.num_rows == 0:
        return []
    distinct = arrow.select(columns).group_by(columns).aggregate([]).to_pylist()
    return distinct_keys(row_key(table, row) for row in distinct)


def distinct_keys(keys) -> list[dict]:
    return [dict(t) for t in dict.fromkeys(tuple(k.items()) for k in keys)]


def _matches(key: dict, row: dict) -> bool:
    return all(row.get(c) == v for c, v in key.items())


def _key_tuple(key: dict) -> tuple:
    return tuple(sorted(key.items(), key=lambda item: item[0]))


class Lake:
    """One lake folder. Reading needs nothing but the files; every write goes through :meth:`commit`."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = lake_path(root)

    # ----- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike | None = None) -> Lake:
        """An existing lake, for reading; never creates or changes anything."""
        lake = cls(root)
        if not lake.root.exists():
            raise LakeError(f"no lake at {lake.root}: run `wwhub scan` (or `wwhub demo`) first, or pass --lake")
        if not lake.root.is_dir():
            raise LakeError(f"--lake {lake.root}: is a file, expected the lake folder")
        if lake.layout() is None:
            raise LakeError(f"{lake.root} is not a wwhub lake (no {MANIFEST}): pass the folder `wwhub scan` wrote")
        return lake

    @classmethod
    def check_writable(cls, root: str | os.PathLike | None = None) -> Lake:
        """The lake a write would go to, checked without creating or changing anything (so a command can fail in
        one line before it lists or downloads anything): not a file, not a folder holding something else, and the
        folder, or the nearest existing one above it, writable by this process."""
        lake = cls(root)
        if lake.root.exists() and not lake.root.is_dir():
            raise LakeError(f"--lake {lake.root}: is a file, expected the lake folder")
        lake._refuse_foreign_folder()
        existing = next(p for p in (lake.root, *lake.root.parents) if p.exists())
        if not existing.is_dir():
            raise LakeError(f"--lake {lake.root}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK):
            raise LakeError(
                f"lake {lake.root} is read-only ({existing} is not writable): queries work, scans and imports need "
                "write access"
            )
        return lake

    @classmethod
    def for_writing(cls, root: str | os.PathLike | None = None) -> Lake:
        """The lake, created if missing and migrated from layout 1 if needed; fails at once (one line) when the
        folder cannot be written, before any work is done."""
        lake = cls.check_writable(root)
        try:
            durable_mkdir(lake.root)
            with lake.writer_lock():
                if lake.layout() == 1:
                    migrate_v1(lake)
                if lake.layout() is None:
                    lake._refuse_foreign_folder()  # again, now that no other writer can be creating it
                    lake.publish(Snapshot(lake.root, 0, {t: [] for t in TABLES}))
        except OSError as err:
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise LakeError(
                    f"lake {lake.root} is read-only ({err.strerror}): queries work, scans and imports need write access"
                ) from None
            raise
        return lake

    def _refuse_foreign_folder(self) -> None:
        """A folder that holds anything but a lake (or the lock and temporary files of one being created) is not
        ours to fill."""
        if self.root.is_dir() and self.layout() is None:
            ours = (WRITER_LOCK, COMPACTION_LOCK)
            if any(p.name not in ours and not p.name.endswith(".tmp") for p in self.root.iterdir()):
                raise LakeError(f"{self.root} is not empty and not a wwhub lake: pick another --lake folder")

    def layout(self) -> int | None:
        """2 for a manifest lake, 1 for the one-file-per-model layout wwhub wrote before, None for neither."""
        if (self.root / MANIFEST).exists():
            return LAYOUT_VERSION
        if (self.root / "models").is_dir() and (self.root / "layers").is_dir():
            return 1
        return None

    # ----- reading -------------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current manifest (a layout-1 lake is read in place: one segment per file, nothing hidden)."""
        if self.layout() == 1:
            return v1_snapshot(self.root)
        try:
            data = json.loads((self.root / MANIFEST).read_text())
        except FileNotFoundError:
            raise LakeError(f"no lake at {self.root}: {MANIFEST} is missing") from None
        except json.JSONDecodeError as err:
            raise LakeError(f"{self.root / MANIFEST} is not valid JSON ({err})") from None
        if data.get("layout") != LAYOUT_VERSION:
            raise LakeError(f"{self.root} has lake layout {data.get('layout')}; this wwhub reads {LAYOUT_VERSION}")
        return Snapshot.from_json(self.root, data)

    def has_model(self, repo_id: str, revision: str, layer_selection: str = "") -> bool:
        """True when this commit was scanned, with all its layers or with the same ``--layers`` selection
        (``layer_selection``, '' = all): a scan of a subset does not stand for a full scan, a full scan stands for
        any subset. A model recorded as ``unsupported`` (nothing analyzable with the options of that run, e.g.
        --no-pickle), ``gated`` (no access yet) or ``unavailable`` (the hub did not answer) does not count: a later
        run with other options, a token, or a hub that answers scans it."""
        if self.layout() is None:
            return False
        rows = self.visible_rows("models", {"repo_id": repo_id, "revision": revision})
        return any(stands_for_scan(r["status"], r.get("layer_selection"), layer_selection) for r in rows)

    def visible_rows(self, table: str, key: dict, columns: list[str] | None = None) -> list[dict]:
        """Rows of ``table`` whose key columns equal ``key`` (a lookup by repo touches only segments that may hold
        it, and in them only the row groups whose statistics do)."""
        import pyarrow.parquet as pq

        found = []
        for segment in self.snapshot().tables[table]:
            if not segment.may_hold(key.get("repo_id")):
                continue
            filters = [(c, "=", v) for c, v in key.items() if v is not None] or None
            rows = pq.read_table(self.root / segment.file, columns=columns, filters=filters).to_pylist()
            found += [r for r in rows if _matches(key, r) and not any(_matches(h, r) for h in segment.hidden)]
        return found

    # ----- writing -------------------------------------------------------------------------------------------

    def commit(
        self,
        tables: dict,
        replace: dict[str, list[dict]] | None = None,
        replace_all: tuple[str, ...] = (),
        fold: bool = True,
    ) -> int:
        """Add rows to tables in one atomic step and return the new manifest version.

        ``tables`` maps a table to its new rows (dicts or an Arrow table in any column order). Older rows whose
        key is in ``replace[table]`` (by default: the keys of the new rows) are hidden by the same step, so the
        lake never holds a key twice; ``replace_all`` empties those tables first (derived tables)."""
        arrows = {t: to_arrow(t, rows) for t, rows in tables.items()}
        keys = dict(replace or {})
        for table, arrow in arrows.items():
            if table not in keys:
                keys[table] = batch_keys(table, arrow)
        staged = {t: [self._stage(t, a)] for t, a in arrows.items() if a.num_rows}
        return self.commit_staged(staged, keys, replace_all, fold)

    def commit_staged(
        self,
        staged: dict[str, list[Segment]],
        keys: dict[str, list[dict]],
        replace_all: tuple[str, ...] = (),
        fold: bool = True,
    ) -> int:
        """Adopt segment files already written into LAKE/data (by :meth:`_stage` or an import) in one atomic
        step, hiding older rows with ``keys[table]``. On any error the staged files are removed, the lake
        unchanged."""
        try:
            with self.writer_lock():
                snapshot = self._writable_snapshot()
                for table in replace_all:
                    self.retire(snapshot, snapshot.tables[table])
                    snapshot.tables[table] = []
                for table, table_keys in keys.items():
                    self._hide(snapshot, table, table_keys)
                for table, segments in staged.items():
                    snapshot.tables[table] += segments
                self.publish(snapshot)
        except BaseException:
            for segments in staged.values():
                for segment in segments:
                    (self.root / segment.file).unlink(missing_ok=True)
            raise
        if fold:
            fold_small_segments(self, tuple(set(staged) | set(keys)), snapshot)
        return snapshot.version

    def commit_model(self, repo_id: str, revision: str, tables: dict[str, list[dict]]) -> int:
        """One scanned model's rows (every table of MODEL_TABLES), replacing whatever the lake held for this
        (repo_id, revision) in all of them, in one atomic step: readers see the whole model or none of it."""
        key = {"repo_id": repo_id, "revision": revision}
        return self.commit({t: tables.get(t, []) for t in MODEL_TABLES}, replace={t: [key] for t in MODEL_TABLES})

    def write_scan(self, row: dict) -> int:
        """The ``scans`` row of one run (a run recorded again replaces its row)."""
        return self.commit({"scans": [row]})

    def replace_derived(self, table: str, rows) -> str:
        """Replace a derived table (e.g. ``correlations``) whole, atomically; readers see the old or the new one.
        Returns the segment file now holding it ('' when it has no rows), which names this version of it."""
        if table not in DERIVED_TABLES:
            raise ValueError(f"{table!r} is not a derived table ({', '.join(DERIVED_TABLES)})")
        arrow = to_arrow(table, rows)
        staged = {table: [self._stage(table, arrow)]} if arrow.num_rows else {}
        self.commit_staged(staged, {table: []}, replace_all=(table,), fold=False)
        return staged[table][0].file if staged else ""

    def derived_segment(self, table: str, snapshot: Snapshot | None = None) -> Segment | None:
        """The segment holding derived ``table`` now (None when it has no rows); its file is what
        ``replace_derived`` returned when it wrote this version."""
        segments = (snapshot or self.snapshot()).tables[table]
        return segments[0] if len(segments) == 1 else None

    def _stage(self, table: str, arrow) -> Segment:
        """Write one segment file durably (temporary name, fsync, rename, fsync of its folder) and describe it;
        not yet part of the lake."""
        relative = new_segment_file(table)
        path = self.root / relative
        durable_mkdir(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            rows, repo_min, repo_max = write_segment_file(tmp, table, arrow.to_batches())
            durable_replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Segment(relative, rows, path.stat().st_size, repo_min, repo_max, schema_fingerprint(table))

    def _hide(self, snapshot: Snapshot, table: str, keys: list[dict]) -> None:
        """Record, on every segment that holds rows with one of ``keys``, that those rows are hidden; a segment
        left with no visible row is retired (a model rescanned again leaves its previous scan's segments so: kept,
        each would cost every later query a file to bind and a filter to run). A lookup reads only the key columns,
        and only the row groups whose repo_id statistics may hold a key."""
        import pyarrow.parquet as pq

        if not keys:
            return
        current = schema_fingerprint(table)
        emptied: dict[str, Segment] = {}  # by file: a segment's file names it
        for segment in snapshot.tables[table]:
            hidden = {_key_tuple(h) for h in segment.hidden}
            by_columns: dict[tuple[str, ...], list[dict]] = {}
            for key in keys:
                if segment.may_hold(key.get("repo_id")) and _key_tuple(key) not in hidden:
                    by_columns.setdefault(tuple(key), []).append(key)
            # A segment written before a key column existed holds only nulls in it (views read it by name).
            stored = None if segment.schema == current else set(pq.read_schema(self.root / segment.file).names)
            for columns, candidates in by_columns.items():
                if stored is not None and not set(columns) <= stored:
                    candidates = [k for k in candidates if all(k[c] is None for c in columns if c not in stored)]
                    columns = tuple(c for c in columns if c in stored)
                    if not candidates or not columns:
                        continue
                repos = sorted({k["repo_id"] for k in candidates if k.get("repo_id") is not None})
                filters = [("repo_id", "in", repos)] if "repo_id" in columns and repos else None
                present = pq.read_table(self.root / segment.file, columns=list(columns), filters=filters)
                distinct = present.group_by(list(columns)).aggregate([]).to_pylist()
                held = {tuple(row[c] for c in columns) for row in distinct}
                segment.hidden += [k for k in candidates if tuple(k[c] for c in columns) in held]
                if present.num_rows == segment.rows and stored is None:  # every row of the segment was read
                    hidden_now = {tuple(h.get(c) for c in columns) for h in segment.hidden if set(h) == set(columns)}
                    if held <= hidden_now:
                        emptied[segment.file] = segment
        if emptied:
            self.retire(snapshot, list(emptied.values()))
            snapshot.tables[table] = [s for s in snapshot.tables[table] if s.file not in emptied]

    def _writable_snapshot(self) -> Snapshot:
        if not (self.root / MANIFEST).exists():
            return Snapshot(self.root, 0, {t: [] for t in TABLES})
        return self.snapshot()

    def publish(self, snapshot: Snapshot) -> None:
        """Rename a new manifest (and views.sql) into place: the one moment a write becomes visible. The caller
        holds the writer lock, and every segment the snapshot lists is already on the disk (written durably), so
        the manifest, flushed before its rename and its folder after, never names data a power cut could lose."""
        snapshot.version += 1
        snapshot.updated_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        views = views_sql(snapshot)
        self._drop_expired(snapshot)
        durable_write_bytes(self.root / MANIFEST, json.dumps(snapshot.to_json(), separators=(",", ":")).encode())
        durable_write_bytes(self.root / VIEWS_SQL, views.encode())

    def retire(self, snapshot: Snapshot, segments: list[Segment]) -> None:
        """Drop ``segments`` from readers' future snapshots but keep their files for RETIRED_GRACE_SECONDS."""
        now = time.time()
        snapshot.retired += [{"file": s.file, "at": now} for s in segments]

    def _drop_expired(self, snapshot: Snapshot) -> None:
        now = time.time()
        keep = []
        for entry in snapshot.retired:
            if now - entry["at"] > RETIRED_GRACE_SECONDS:
                (self.root / entry["file"]).unlink(missing_ok=True)
            else:
                keep.append(entry)
        snapshot.retired = keep

    def writer_lock(self) -> contextlib.AbstractContextManager[bool]:
        """The lock every change of the manifest holds (a commit holds it for milliseconds); waits for it."""
        return self._lock(WRITER_LOCK, wait=True)

    def compaction_lock(self, wait: bool = True) -> contextlib.AbstractContextManager[bool]:
        """The lock of one folding or compacting process at a time; yields False when ``wait`` is off and another
        process holds it."""
        return self._lock(COMPACTION_LOCK, wait=wait)

    def derived_lock(self, table: str) -> contextlib.AbstractContextManager[bool]:
        """The lock of one producer of derived ``table`` at a time (held from reading what it starts from to
        writing the result), so that two scans finishing together each build on the other's table; waits."""
        return self._lock(f".{table}.lock", wait=True)

    @contextlib.contextmanager
    def _lock(self, name: str, wait: bool) -> Iterator[bool]:
        """Held by one holder at a time, across processes (fcntl, released by the kernel if the holder dies) and
        across threads of one process. Yields False when ``wait`` is off and someone else holds it."""
        key = f"{self.root}/{name}"
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
        if not thread_lock.acquire(blocking=wait):
            yield False
            return
        try:
            fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)  # closing the file releases the lock
        finally:
            thread_lock.release()
