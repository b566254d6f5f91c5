"""Run SQL against the lake's views (read-only), by text or by the name of a ``queries/*.sql`` file.

Nothing here writes: each query runs in an in-memory DuckDB connection holding views over the current manifest,
sandboxed to reading inside the lake. A user's SQL must also be one SELECT (or EXPLAIN) statement.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import QUERIES_DIR, Lake, connect
from .views import with_views

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_READ_ONLY = ("SELECT", "EXPLAIN")
# A reader that loaded the manifest just before a compaction retired a file may find it gone once the grace
# period is over: the query is retried on the newer manifest.
_RETRIES = 2


class QueryError(ValueError):
    """A query that cannot run (refused, unknown name, SQL error), in one line."""


def named_queries(queries_dir: Path | None = None) -> dict[str, str]:
    """Each ``queries/NAME.sql`` and the first line of its header comment (what it answers)."""
    out = {}
    for path in sorted((queries_dir or QUERIES_DIR).glob("*.sql")):
        first = next((line for line in path.read_text().splitlines() if line.strip()), "")
        out[path.stem] = first.lstrip("-").strip().removeprefix(f"{path.stem}:").strip()
    return out


def check_read_only(sql: str) -> None:
    """Refuse anything but one SELECT/EXPLAIN statement (COPY, ATTACH, INSTALL, CREATE, SET, PRAGMA, two
    statements ...), naming what was refused."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as err:
        raise QueryError(f"query failed: {first_line(err)}") from None
    if not statements:
        raise QueryError("empty query: give a SELECT statement or a query name (see `wwhub query --list`)")
    if len(statements) > 1:
        raise QueryError(f"refused: {len(statements)} statements; wwhub query runs one SELECT statement at a time")
    kind = statements[0].type.name
    if kind not in _READ_ONLY:
        raise QueryError(f"refused: {kind} statement; wwhub query only reads (one SELECT statement)")


def resolve(sql_or_name: str) -> str:
    """The SQL of ``sql_or_name``: a bare name runs ``queries/NAME.sql``, or reads the view NAME (a table such as
    ``layers`` or the derived ``correlations``)."""
    text = sql_or_name.strip()
    if not text:
        raise QueryError("empty query: give a SELECT statement or a query name (see `wwhub query --list`)")
    if _NAME.match(text):
        path = QUERIES_DIR / f"{text}.sql"
        return path.read_text() if path.exists() else f"SELECT * FROM {text}"
    return sql_or_name


def first_line(err: Exception) -> str:
    """An error's message in one line (its first), or its type when it has none: what a one-line error quotes."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def unique_names(names: list[str]) -> list[str]:
    """``names`` with each repeat renamed ``NAME_1``, ``NAME_2`` ... (the first free suffix), much as DuckDB names the
    columns of a subquery: ``SELECT m.repo_id, e.repo_id`` gives ``repo_id, repo_id_1``, so no column is lost in
    rows keyed by name (JSON, CSV) or made ambiguous in a Parquet file."""
    taken = set(names)
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            suffix = 1
            while f"{name}_{suffix}" in taken:
                suffix += 1
            name = f"{name}_{suffix}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


def _unique_reader(reader):
    """``reader`` (Arrow record batches) with ``unique_names`` columns."""
    import pyarrow as pa

    names = unique_names(reader.schema.names)
    if names == reader.schema.names:
        return reader
    schema = pa.schema([field.with_name(name) for field, name in zip(reader.schema, names, strict=True)])
    return pa.RecordBatchReader.from_batches(
        schema, (pa.RecordBatch.from_arrays(batch.columns, schema=schema) for batch in reader)
    )


def _execute(
    lake: Lake,
    sql_or_name: str,
    variables: dict | None,
    fetch,
    parameters=None,
    user: bool = False,
    repos: list[str] | None = None,
):
    """``fetch(connection, sql, parameters)`` on a fresh connection over the current manifest (over ``repos``'
    rows only, when given: see ``connect``)."""
    import duckdb

    for attempt in range(_RETRIES):
        snapshot = lake.snapshot()
        sql = resolve(sql_or_name)
        if user:
            check_read_only(sql)
        # wwhub's own SQL carries the views it reads (``with_views``); a user's runs over created views.
        con = connect(lake, snapshot, reading=sql, repos=repos, views=user)
        try:
            for name, value in (variables or {}).items():
                con.execute(f"SET VARIABLE {name} = ?", [value])
            statement = sql if user else with_views(snapshot, sql, str(lake.root) + "/", repos)
            return fetch(con, statement, parameters)
        except duckdb.IOException as err:
            if attempt + 1 == _RETRIES:
                raise QueryError(f"query failed: {first_line(err)}") from None
        except duckdb.Error as err:
            raise QueryError(f"query failed: {first_line(err)}") from None
        finally:
            con.close()
    raise AssertionError("unreachable")


def run_query(
    lake_root, sql_or_name: str, variables: dict | None = None, user: bool = False, parameters: list | None = None
) -> list[dict]:
    """Rows (dicts) of a query (``?`` placeholders bound to ``parameters``). ``user``: the SQL came from a user
    and must be one read-only statement."""
    return query_columns_and_rows(lake_root, sql_or_name, variables, user, parameters)[1]


def query_columns_and_rows(
    lake_root, sql_or_name: str, variables: dict | None = None, user: bool = False, parameters: list | None = None
) -> tuple[list[str], list[dict]]:
    """A query's column names (``unique_names``) and its rows, as ``run_query``: the columns are known when there
    are no rows (a CSV header)."""

    def fetch(con, sql, parameters):
        cursor = con.execute(sql, parameters)
        columns = unique_names([d[0] for d in cursor.description])
        return columns, [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    return _execute(Lake.open(lake_root), sql_or_name, variables, fetch, parameters, user)


def query_arrow(lake_root, sql_or_name: str, variables: dict | None = None, repos: list[str] | None = None):
    """A query's rows as one ``pyarrow.Table`` (DuckDB's column types); with ``repos``, run over those models'
    rows only (exact for a query that works per repo; it reads only the segments that may hold them)."""

    def fetch(con, sql, _):
        table = con.sql(sql).to_arrow_table()
        return table.rename_columns(unique_names(table.column_names))

    return _execute(Lake.open(lake_root), sql_or_name, variables, fetch, repos=repos)


def stream_query(
    lake_root,
    sql_or_name: str,
    consume,
    variables: dict | None = None,
    batch_rows: int = 100_000,
    user: bool = False,
):
    """``consume(reader)`` over a query's rows as Arrow record batches (a ``pyarrow.RecordBatchReader`` of about
    ``batch_rows`` rows each, DuckDB's column types) while its connection is open: a table larger than memory passes
    through in pieces. ``consume`` runs again from the start if the read is retried (a compaction retired a file
    under it). ``user``: as for ``run_query``."""
    return _execute(
        Lake.open(lake_root),
        sql_or_name,
        variables,
        lambda con, sql, _: consume(_unique_reader(con.sql(sql).to_arrow_reader(batch_rows))),
        user=user,
    )
