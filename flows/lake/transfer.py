"""Rows in and out of a lake as a whole: import of exported Parquet files, merge of another lake, migration of
the layout-1 lake (one file per table, repo and commit), and ``info``.

Every import is one commit: validated first, staged as sorted segments, then adopted atomically, replacing the
keys it brings (a model imported twice, or present in both merged lakes, is there once: the imported copy).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Callable, Collection
from pathlib import Path

from ..evals.vocabulary import EvalValueError, check_row
from .compaction import no_step, remove_orphans, write_segment
from .files import durable_mkdir, durable_replace
from .layout1 import V1_TABLES, migrate_v1, v1_snapshot, v1_source
from .manifest import MANIFEST, ROW_GROUP_ROWS, LakeError, Segment, new_segment_file, schema_fingerprint
from .schema import (
    DERIVED_TABLES,
    IMPORTABLE_TABLES,
    ROW_KEYS,
    SCHEMAS,
    SORT_KEYS,
    TABLES,
    arrow_schema,
    column_names,
    key_source_columns,
    quoted,
    required_columns,
    row_key,
)
from .sql import first_line
from .store import Lake, distinct_keys
from .views import connect, sql_literal, table_sql


def migrate(root) -> dict[str, int] | None:
    """``wwhub lake migrate``: the rows per table moved, or None when the lake already has the current layout."""
    lake = Lake.open(root)
    if lake.layout() != 1:
        return None
    before = {t: _count(lake, t) for t in V1_TABLES}
    Lake.for_writing(root)
    after = {t: _count(lake, t) for t in V1_TABLES}
    if before != after:
        raise LakeError(f"migration of {lake.root} changed row counts: {before} -> {after}")
    return after


def _count(lake: Lake, table: str) -> int:
    con = connect(lake)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


# ----- import and merge --------------------------------------------------------------------------------------

# An import (or merge) of more rows than this is split by repo_id range and each range sorted alone: DuckDB sorts
# one range within its memory limit instead of spilling gigabytes to sort everything at once. Measured on 20M
# shuffled layer rows (2 cores, 2 GB limit): ranges of 4M rows 94 s, nothing spilled; one sort 93 s, 8.3 GB
# spilled; ranges of 7M rows 77 s, 2 GB spilled.
RANGE_ROWS = 4_000_000


def _table_of(path: Path, table: str | None) -> str:
    name = table or path.stem
    if name not in IMPORTABLE_TABLES:
        known = ", ".join(IMPORTABLE_TABLES)
        raise LakeError(f"{path}: cannot tell which table it holds (name it TABLE.parquet or pass --table; {known})")
    return name


def unreadable(path: Path, err: Exception) -> LakeError:
    """``path`` cannot be decoded (not Parquet, or a valid footer over corrupt pages), in one line."""
    return LakeError(f"{path}: not a readable Parquet file ({first_line(err)})")


def _validate(con, path: Path, table: str) -> tuple[bool, Grouped]:
    """Columns known, required values present, values convertible, no row twice, evals values in range, repo ids
    a scan accepts: checked before anything is written. Returns whether the file holds exactly today's columns and
    types, in order (then it can be adopted as it is), and its rows grouped by key (``_grouped``), which the
    import reuses."""
    source = f"read_parquet({sql_literal(str(path))})"
    try:
        described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    except Exception as err:  # noqa: BLE001 - any reader error is the file's fault, reported in one line
        raise unreadable(path, err) from None
    columns = dict(described)
    unknown = sorted(set(columns) - set(column_names(table)))
    if unknown:
        raise LakeError(f"{path}: columns not in the {table} table: {', '.join(unknown)}")
    required = required_columns(table)
    missing = [c for c in required if c not in columns]
    if missing:
        raise LakeError(f"{path}: missing column(s) {', '.join(missing)}, which every {table} row needs")
    declared = dict(SCHEMAS[table])
    retyped = [name for name, kind in columns.items() if kind != declared[name]]
    # A cast to BIGINT rounds (3.5 becomes 4): a value that is not whole is refused, not changed.
    whole = [c for c in retyped if declared[c] == "BIGINT"]
    checks = (
        [f"count(*) FILTER (WHERE {quoted(c)} IS NULL)" for c in required]
        + [
            f"count(*) FILTER (WHERE {quoted(c)} IS NOT NULL AND TRY_CAST({quoted(c)} AS {declared[c]}) IS NULL)"
            for c in retyped
        ]
        + [f"count(*) FILTER (WHERE TRY_CAST({quoted(c)} AS BIGINT) <> TRY_CAST({quoted(c)} AS DOUBLE))" for c in whole]
    )
    counts = con.execute(f"SELECT {', '.join(checks)} FROM {source}").fetchall()[0]
    for column, nulls in zip(required, counts, strict=False):
        if nulls:
            raise LakeError(f"{path}: {nulls} row(s) with no {column}")
    wrong = [f"{c} ({n} rows)" for c, n in zip(retyped, counts[len(required) :], strict=False) if n]
    if wrong:
        raise LakeError(f"{path}: values that do not fit the {table} schema in {', '.join(wrong)}")
    rounded = [f"{c} ({n} rows)" for c, n in zip(whole, counts[len(required) + len(retyped) :], strict=True) if n]
    if rounded:
        raise LakeError(
            f"{path}: values that are not whole numbers in {', '.join(rounded)}, which the {table} table holds as "
            "BIGINT (an import would round them)"
        )
    if "family" in columns:
        _validate_families(con, path, source)
    grouped = _grouped(con, table, f"SELECT * FROM {source}", columns)
    _validate_repo_ids(path, grouped)
    if table == "evals":
        _validate_evals(con, path, source, columns)
    _refuse_repeated_rows(con, path, table, source, columns)
    return described == SCHEMAS[table], grouped


def _validate_families(con, path: Path, source: str) -> None:
    """Every family a name a scan accepts (``check_family_name``): a family ``(all)`` would be counted among the
    leaderboard's pooled rows."""
    from ..scanning.families import check_family_name  # imported here: pydantic, only for an import

    for (family,) in con.execute(f"SELECT DISTINCT family FROM {source}").fetchall():
        try:
            check_family_name(family)
        except ValueError as err:
            raise LakeError(f"{path}: family {family!r}: {err}") from None


_REPO_ID_COLUMNS = ("repo_id", "base_repo_id")


def _validate_repo_ids(path: Path, grouped: Grouped) -> None:
    """Every repo id one a scan and ``wwhub evals import`` accept (``check_repo_id``, ~0.5 us an id), checked on the
    distinct ids of the grouped rows; the first refused one, in sorted order, is named."""
    from ..sources.base import check_repo_id

    for column in (c for c in _REPO_ID_COLUMNS if c in grouped.columns):
        for repo_id in sorted({str(v) for v in grouped.values(column) if v is not None}):
            try:
                check_repo_id(repo_id, column)
            except ValueError as err:
                raise LakeError(f"{path}: {err}") from None


def _validate_evals(con, path: Path, source: str, columns: dict[str, str]) -> None:
    """Each evals row keyed (by its revision, or its import) and its values as ``wwhub evals import`` accepts them
    (``check_row``: finite, in the metric's range on its scale, stderr and n_shot not negative)."""
    # Imported evals (no revision) are keyed by their import: without one they could never be replaced.
    no_revision = "revision IS NULL" if "revision" in columns else "true"
    no_import = "import_id IS NULL" if "import_id" in columns else "true"
    unkeyed = con.execute(f"SELECT count(*) FROM {source} WHERE {no_revision} AND {no_import}").fetchall()[0][0]
    if unkeyed:
        raise LakeError(f"{path}: {unkeyed} evals row(s) with neither a revision nor an import_id")
    declared = dict(SCHEMAS["evals"])
    values = [
        f"CAST({quoted(c)} AS {declared[c]})" if c in columns else "NULL"
        for c in ("repo_id", "metric", "value", "scale", "stderr", "n_shot")
    ]
    for repo_id, metric, value, scale, stderr, n_shot in con.execute(
        f"SELECT {', '.join(values)} FROM {source}"
    ).fetchall():
        try:
            check_row(metric, value, scale, stderr, n_shot)
        except EvalValueError as err:
            raise LakeError(f"{path}: evals row of {repo_id}: {err}") from None


# Key hashes two rows share, checked on the key columns themselves (a repeated row shares its hash with its twin; two
# distinct keys share a 64-bit hash about once in 10^5 imports of 20M rows). At this many, every row is checked.
HASHES_CHECKED = 1000


def _refuse_repeated_rows(con, path: Path, table: str, source: str, columns: dict[str, str]) -> None:
    """A file holding one row twice (the same ``ROW_KEYS`` values) would put it in the lake twice: refused, naming
    one such row. Columns the file lacks are null in every row, so they cannot tell rows apart."""
    present = [c for c in ROW_KEYS.get(table, ()) if c in columns]
    if not present:
        return
    names = ", ".join(map(quoted, present))
    # Rows grouped by one 64-bit hash of their key first: half the time of grouping the key columns themselves
    # (text) on 20M layer rows, 2.5 s against 5 s. Only a hash two rows share is checked on the columns.
    shared = con.execute(
        f"SELECT h FROM (SELECT hash({names}) AS h FROM {source}) GROUP BY h HAVING count(*) > 1 LIMIT {HASHES_CHECKED}"
    ).fetchall()
    if not shared:
        return
    # So many shared hashes are repeated rows, not collisions: then every row is checked, as without the hashes.
    among = "true" if len(shared) >= HASHES_CHECKED else f"list_contains(?, hash({names}))"
    parameters = [] if len(shared) >= HASHES_CHECKED else [[h for (h,) in shared]]
    repeated = con.execute(
        f"SELECT {names}, count(*) FROM {source} WHERE {among} GROUP BY {names} HAVING count(*) > 1 LIMIT 1",
        parameters,
    ).fetchall()
    if repeated:
        *values, count = repeated[0]
        example = ", ".join(f"{c}={v!r}" for c, v in zip(present, values, strict=True))
        raise LakeError(f"{path}: {count} rows with the same key ({example}); a {table} file holds each row once")


def _clustered_by_repo(path: Path) -> tuple[int, str | None, str | None] | None:
    """(rows, first repo_id, last repo_id) when the file's row groups hold increasing repo_id ranges (as an export
    of a compacted lake does): lookups by repo then skip row groups without a rewrite. None otherwise."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    if metadata.num_rows == 0:
        return None
    index = metadata.schema.names.index("repo_id") if "repo_id" in metadata.schema.names else None
    if index is None:
        return (metadata.num_rows, None, None)
    bounds = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            return None
        bounds.append((stats.min, stats.max))
    if any(bounds[i][1] > bounds[i + 1][0] for i in range(len(bounds) - 1)):
        return None
    return (metadata.num_rows, bounds[0][0], bounds[-1][1])


def _adopt_file(lake: Lake, con, table: str, path: Path, on_step: Callable[[str], None]) -> Segment | None:
    """The file itself as a segment (copied into the lake, not rewritten), when it is in today's columns and
    clustered by repo; None when it must be rewritten."""
    clustered = _clustered_by_repo(path)
    if clustered is None:
        return None
    on_step(f"copying {table} (clustered by repo)")
    # Every page decoded once (a hash of all columns), as a rewrite would: a valid footer over corrupt pages passes
    # validation, which reads only some columns, and a copied file is never decoded before a query hits it.
    every_column = ", ".join(map(quoted, column_names(table)))
    con.execute(f"SELECT bit_xor(hash({every_column})) FROM read_parquet({sql_literal(str(path))})").fetchall()
    rows, low, high = clustered
    relative = new_segment_file(table)
    target = lake.root / relative
    durable_mkdir(target.parent)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(path, tmp)
        durable_replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Segment(relative, rows, target.stat().st_size, low, high, schema_fingerprint(table))


@dataclasses.dataclass
class Grouped:
    """The rows of an import grouped by what identifies them: one tuple per distinct combination of ``columns`` (the
    table's key columns, and every repo id column), then its row count. One read of those columns gives the keys
    the import replaces, its rows per repo (how it is split for sorting) and its repo ids (checked)."""

    columns: tuple[str, ...]
    groups: list[tuple]

    def values(self, column: str) -> list:
        at = self.columns.index(column)
        return [group[at] for group in self.groups]


def _grouped(con, table: str, source_sql: str, present: dict[str, str] | None = None) -> Grouped:
    """``source_sql``'s rows grouped by the key columns of ``table`` and its repo id columns; a column the file
    lacks (``present``: the columns it has) is null in every row."""
    columns = tuple(
        dict.fromkeys([*key_source_columns(table), *(c for c in _REPO_ID_COLUMNS if c in column_names(table))])
    )
    selected = [quoted(c) if present is None or c in present else f"NULL AS {quoted(c)}" for c in columns]
    groups = con.execute(f"SELECT {', '.join(selected)}, count(*) FROM ({source_sql}) GROUP BY ALL").fetchall()
    return Grouped(columns, groups)


def _keys(table: str, grouped: Grouped) -> list[dict]:
    columns = key_source_columns(table)
    at = [grouped.columns.index(c) for c in columns]
    return distinct_keys(
        row_key(table, {c: group[i] for c, i in zip(columns, at, strict=True)}) for group in grouped.groups
    )


def _repo_ranges(grouped: Grouped, most_rows: int | None = None) -> list[tuple[str, str]]:
    """Consecutive (first, last) repo_id ranges of at most ``most_rows`` rows each (default ``RANGE_ROWS``; a larger
    repo alone), from the rows per repo_id: as few as that allows, of about even sizes (each range is one more
    filtered read of the source, so 20M rows in ranges of at most 8M are three ranges of 6.7M, not 8 + 8 + 4)."""
    most_rows = most_rows or RANGE_ROWS
    per_repo: dict[str, int] = {}
    at = grouped.columns.index("repo_id")
    for group in grouped.groups:
        if group[at] is not None:
            per_repo[group[at]] = per_repo.get(group[at], 0) + group[-1]
    left = sum(per_repo.values())
    ranges: list[list] = []
    rows = share = 0
    for repo in sorted(per_repo):
        if not ranges or rows + per_repo[repo] > most_rows or rows >= share:
            ranges.append([repo, repo])
            share = left / -(-left // most_rows)  # the rows not yet placed, evenly over the ranges they need
            rows = 0
        ranges[-1][1] = repo
        rows += per_repo[repo]
        left -= per_repo[repo]
    return [tuple(r) for r in ranges]


# A column's share of a row in DuckDB's sort, to size repo ranges by what they hold: text about four numbers.
_SORTED_BYTES = {"VARCHAR": 32}
# The declared types a column holding one value may have (a list or a timestamp is always sorted).
_PLAIN_KINDS = ("VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN")


def _sorted_bytes(table: str, left_out: Collection[str] = ()) -> int:
    return sum(_SORTED_BYTES.get(kind, 8) for name, kind in SCHEMAS[table] if name not in left_out)


def constant_columns(table: str, path: Path) -> dict[str, object]:
    """The columns of ``table`` holding one value in every row of the Parquet file ``path``: NULL in every row
    (value None), or one value in every row, NaN included. A default scan leaves the MP-fit, randomization, detX,
    ERG and eigenvector columns NaN or NULL in every layer, about half of the layers table. Row-group statistics
    rule out the columns they show two values in without reading them; the others are read once. 0.0 and -0.0
    compare equal, so a column holding both is not one value (their sign bits are compared too). Sort keys are
    never counted: the sort reads them."""
    import duckdb
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    declared = dict(SCHEMAS[table])
    keys = set(SORT_KEYS[table])
    candidates, constants = [], {}
    for index in range(metadata.num_columns):
        name = metadata.schema.column(index).name
        if declared.get(name) not in _PLAIN_KINDS or name in keys:
            continue
        groups = [metadata.row_group(g).column(index).statistics for g in range(metadata.num_row_groups)]
        if any(stats is None for stats in groups):
            candidates.append(name)
            continue
        if all(stats.null_count == metadata.row_group(g).num_rows for g, stats in enumerate(groups)):
            constants[name] = None  # NULL in every row, as the statistics count them
            continue
        seen = {value for stats in groups if stats.has_min_max for value in (stats.min, stats.max)}
        if len(seen) <= 1:  # perhaps one value (the statistics leave NaN out, and 0.0 equals -0.0): read
            candidates.append(name)
    if not candidates:
        return constants
    stored, wanted = metadata.schema.to_arrow_schema(), arrow_schema(table)
    # A CAST only where the file's type differs: DuckDB answers min and max of a plain column from its statistics.
    values = {
        name: quoted(name) if stored.field(name).type == wanted.field(name).type else f"CAST({quoted(name)} AS {kind})"
        for name, kind in declared.items()
        if name in candidates
    }
    source = f"read_parquet({sql_literal(str(path))})"
    con = duckdb.connect(":memory:")
    try:
        # The first rows rule out most columns (a measured value differs from row to row); only the others are read
        # whole: 10 columns of 20M measured values took 3.5 s to read.
        sample = f"(SELECT {', '.join(map(quoted, candidates))} FROM {source} LIMIT {ROW_GROUP_ROWS})"
        for name in _one_value(con, sample, {n: quoted(n) for n in candidates}, declared):
            # One query a column: DuckDB answers a lone column's count, min and max from the statistics it can use
            # (7 constant columns of 20M rows: 0.03 s each alone, 1.15 s in one query).
            constants.update(_one_value(con, source, {name: values[name]}, declared))
    finally:
        con.close()
    return constants


def _one_value(con, source: str, values: dict[str, str], declared: dict[str, str]) -> dict[str, object]:
    """Of the columns ``values`` (name: the SQL expression of its value), those holding one value in every row of
    ``source``, with that value (None: NULL in every row)."""
    terms = ["count(*)"]
    for name, value in values.items():
        terms += [f"count({value})", f"min({value})", f"max({value})"]
        if declared[name] == "DOUBLE":
            terms += [f"min(signbit({value})::INT)", f"max(signbit({value})::INT)"]
    found = list(con.execute(f"SELECT {', '.join(terms)} FROM {source}").fetchall()[0])
    total, at, constants = found[0], 1, {}
    for name in values:
        width = 5 if declared[name] == "DOUBLE" else 3
        count, low, high, *signs = found[at : at + width]
        at += width
        same = low == high or (isinstance(low, float) and math.isnan(low) and math.isnan(high))
        if count == 0:
            constants[name] = None
        elif count == total and same and len(set(signs)) <= 1:
            constants[name] = low
    return constants


def write_sorted_segments(
    lake: Lake,
    table: str,
    source_sql: str,
    grouped: Grouped,
    on_step: Callable[[str], None] = no_step,
    source_file: Path | None = None,
) -> list[Segment]:
    """The rows of ``source_sql`` as segments sorted by the table's keys, however they arrive, in bounded memory:
    up to RANGE_ROWS rows, one sort; above, one sorted segment per repo_id range, each read from the source by a
    filter on repo_id (Parquet skips what is outside the range cheaply: the filter column is read first) and sorted
    alone within DuckDB's memory limit, so nothing spills and no temporary copy is written. ``source_file``: the
    Parquet file the rows come from; its columns holding one value (``constant_columns``) are left out of the sorts
    and written as that value, and the ranges grow as the sorted rows narrow (RANGE_ROWS rows of every column
    each). Segments with no rows are dropped. ``on_step`` is told of each sort."""
    ranges = _repo_ranges(grouped) if "repo_id" in grouped.columns else []
    constants: dict[str, object] = {}
    if len(ranges) > 1 and source_file is not None:
        constants = constant_columns(table, source_file)
        ranges = _repo_ranges(grouped, RANGE_ROWS * _sorted_bytes(table) // _sorted_bytes(table, constants))
    if len(ranges) <= 1:
        on_step(f"sorting {table}")
        segments = [write_segment(lake, table, source_sql, constants)]
    else:
        segments = []
        try:
            for number, (first, last) in enumerate(ranges, 1):
                on_step(f"sorting {table}, repo range {number} of {len(ranges)}")
                bounds = f"repo_id BETWEEN {sql_literal(first)} AND {sql_literal(last)}"
                segments.append(write_segment(lake, table, f"SELECT * FROM ({source_sql}) WHERE {bounds}", constants))
        except BaseException:
            for segment in segments:
                (lake.root / segment.file).unlink(missing_ok=True)
            raise
    for segment in segments:
        if not segment.rows:
            (lake.root / segment.file).unlink(missing_ok=True)
    return [s for s in segments if s.rows]


def _adopt(
    lake: Lake,
    sources: dict[str, str | Path],
    files: dict[str, Path] | None = None,
    grouped: dict[str, Grouped] | None = None,
    on_step: Callable[[str], None] = no_step,
) -> dict[str, int]:
    """Stage each table's rows (a SELECT, or a file already in today's columns) and commit them all at once;
    the rows per table. ``files``: the imported file each table's rows are read from, named when it cannot be
    decoded (a valid footer over corrupt pages passes validation, which reads only some columns). ``grouped``:
    each table's rows grouped by key where validation already read them (else read here). ``on_step``: told what
    is being done, step by step (a progress bar's text)."""
    import duckdb

    staged: dict[str, list[Segment]] = {}
    keys: dict[str, list[dict]] = {}
    con = duckdb.connect(":memory:")
    try:
        for table, source in sources.items():
            select = f"SELECT * FROM read_parquet({sql_literal(str(source))})" if isinstance(source, Path) else source
            try:
                groups = grouped[table] if grouped and table in grouped else _grouped(con, table, select)
                keys[table] = _keys(table, groups)
                segment = _adopt_file(lake, con, table, source, on_step) if isinstance(source, Path) else None
                file = files.get(table) if files else None
                staged[table] = (
                    [segment] if segment else write_sorted_segments(lake, table, select, groups, on_step, file)
                )
            except (duckdb.OutOfMemoryException, duckdb.InterruptException):
                raise
            except duckdb.Error as err:
                if not files or table not in files:
                    raise
                raise unreadable(files[table], err) from None
    except BaseException:
        for segments in staged.values():
            for segment in segments:
                (lake.root / segment.file).unlink(missing_ok=True)
        raise
    finally:
        con.close()
    on_step("committing")
    lake.commit_staged(staged, keys)
    return {t: sum(s.rows for s in segs) for t, segs in staged.items()}


def import_paths(
    root, paths: list[str | Path], table: str | None = None, on_step: Callable[[str], None] = no_step
) -> dict[str, int]:
    """``wwhub lake import PATH…``: each PATH a Parquet file (TABLE.parquet, or any name with ``table``) or a
    folder of them, in the columns ``wwhub query … --format parquet`` exports. All paths are validated before
    anything is written; each path is then one commit (a later path replaces keys an earlier one brought).
    ``on_step``: told what is being done, step by step (a file checked, a table sorted, a commit)."""
    import duckdb

    plans: list[dict[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = {p.stem: p for p in sorted(path.glob("*.parquet")) if p.stem in SCHEMAS}
            if not files:
                raise LakeError(f"{path}: no TABLE.parquet files in it ({', '.join(TABLES)})")
            plans.append(files)
        elif path.is_file():
            plans.append({_table_of(path, table): path})
        else:
            raise LakeError(f"{path}: no such file or folder")
    exact: dict[Path, bool] = {}
    grouped: dict[Path, Grouped] = {}
    con = duckdb.connect(":memory:")
    try:
        for plan in plans:
            for name, file in plan.items():
                _table_of(file, name)
                on_step(f"checking {file.name}")
                try:
                    exact[file], grouped[file] = _validate(con, file, name)
                except (duckdb.OutOfMemoryException, duckdb.InterruptException):
                    raise
                except duckdb.Error as err:  # the checks decode some columns: a corrupt page fails them
                    raise unreadable(file, err) from None
    finally:
        con.close()
    lake = Lake.for_writing(root)
    totals: dict[str, int] = {}
    for plan in plans:
        # A file in today's exact columns may be adopted as it is; any other is rewritten in them.
        sources = {
            name: file if exact[file] else f"SELECT * FROM read_parquet({sql_literal(str(file))})"
            for name, file in plan.items()
        }
        grouped_here = {name: grouped[file] for name, file in plan.items()}
        added = _adopt(lake, sources, files=dict(plan), grouped=grouped_here, on_step=on_step)
        for name, rows in added.items():
            totals[name] = totals.get(name, 0) + rows
    return totals


def merge(root, other, on_step: Callable[[str], None] = no_step) -> dict[str, int]:
    """``wwhub lake merge OTHER``: every visible row of another lake (either layout), in one commit; models both
    lakes hold end up once, as OTHER has them. Derived tables are recomputed by their producer, not copied.
    ``on_step``: as for ``import_paths``."""
    source_lake = Lake.open(other)
    target = Lake.for_writing(root)
    if source_lake.root == target.root:
        raise LakeError(f"cannot merge {target.root} into itself")
    snapshot = source_lake.snapshot()
    prefix = str(source_lake.root) + "/"
    sources = {}
    for table in TABLES:
        if table in DERIVED_TABLES or not snapshot.tables[table]:
            continue
        sources[table] = (
            v1_source(source_lake, table, snapshot.tables[table])
            if snapshot.layout == 1
            else table_sql(table, snapshot.tables[table], prefix)
        )
    return _adopt(target, sources, on_step=on_step)


# ----- info --------------------------------------------------------------------------------------------------


def info(root) -> dict:
    """Layout, manifest version, per table visible rows, segments and bytes, the last scan, files awaiting
    deletion."""
    lake = Lake.open(root)
    snapshot = lake.snapshot()
    con = connect(lake, snapshot)
    try:
        tables = {}
        for table in TABLES:
            segments = snapshot.tables[table]
            rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] if segments else 0
            size = sum((lake.root / s.file).stat().st_size for s in segments if (lake.root / s.file).exists())
            tables[table] = {
                "rows": rows,
                "segments": len(segments),
                "bytes": size,
                "hidden_keys": sum(len(s.hidden) for s in segments),
                "outdated_segments": sum(s.schema != schema_fingerprint(table) for s in segments),
            }
        last = con.execute("SELECT scan_id, ended_at FROM scans ORDER BY ended_at DESC NULLS LAST LIMIT 1").fetchall()
    finally:
        con.close()
    return {
        "lake": str(lake.root),
        "layout": snapshot.layout,
        "manifest_version": snapshot.version,
        "updated_at": snapshot.updated_at,
        "last_scan": {"scan_id": last[0][0], "ended_at": str(last[0][1])} if last else None,
        "tables": tables,
        "retired_files": len(snapshot.retired),
        "manifest": str(lake.root / MANIFEST) if snapshot.layout != 1 else None,
    }


__all__ = ["import_paths", "merge", "migrate", "migrate_v1", "info", "v1_snapshot", "remove_orphans"]
