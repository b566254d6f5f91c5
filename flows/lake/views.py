"""DuckDB views over one snapshot of the lake, built from the manifest in microseconds: no catalog file to rebuild.

The same view bodies serve three ways: as common table expressions of wwhub's own SQL (``with_views``), and as
views created in a sandboxed in-memory connection for a user's SQL (reads inside the lake only, configuration
locked), both with absolute paths; and as ``LAKE/views.sql`` with paths relative to the lake, which any ``duckdb``
command-line version runs from the lake folder (``cd LAKE && duckdb -init views.sql``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .manifest import Segment, Snapshot, schema_fingerprint
from .schema import SCHEMAS, TABLES, column_names, quoted

if TYPE_CHECKING:
    from .store import Lake

# Each repo's newest good scan (scanned or partial: flows/scanning/status.py GOOD), else its newest row: what
# leaderboards
# rank. A later attempt that failed (an `attempts` row, or a models row that is not good) never hides it; it is
# named in last_attempt_* and flagged by last_attempt_failed.
MODELS_LATEST = """WITH tried AS (
    SELECT repo_id, attempted_at, status, reason FROM attempts
    UNION ALL
    SELECT repo_id, scanned_at, status, reason FROM models WHERE status NOT IN ('scanned', 'partial')
), last_try AS (
    SELECT repo_id, max(attempted_at) AS last_attempt_at, arg_max(status, attempted_at) AS last_attempt_status,
           arg_max(reason, attempted_at) AS last_attempt_reason
    FROM tried GROUP BY repo_id
), shown AS (
    SELECT * FROM models
    QUALIFY row_number() OVER (
        PARTITION BY repo_id ORDER BY status IN ('scanned', 'partial') DESC, scanned_at DESC) = 1
)
SELECT shown.*, last_try.last_attempt_at, last_try.last_attempt_status, last_try.last_attempt_reason,
       coalesce(last_try.last_attempt_at > shown.scanned_at, false) AS last_attempt_failed
FROM shown LEFT JOIN last_try USING (repo_id)"""


def _queries_dir() -> Path:
    """queries/ of the checkout (editable installs, CI), else the copy a wheel installs under share/wwhub."""
    checkout = Path(__file__).resolve().parents[2] / "queries"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "wwhub" / "queries"


QUERIES_DIR = _queries_dir()


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def empty_table_sql(table: str) -> str:
    columns = ", ".join(f"CAST(NULL AS {kind}) AS {quoted(name)}" for name, kind in SCHEMAS[table])
    return f"SELECT {columns} WHERE false"


def _key_predicate(key: dict) -> str:
    terms = [f"{quoted(c)} IS NULL" if v is None else f"{quoted(c)} = {sql_literal(str(v))}" for c, v in key.items()]
    return "(" + " AND ".join(terms) + ")"


def _paths(segments: list[Segment], prefix: str) -> str:
    return "[" + ", ".join(sql_literal(prefix + s.file) for s in segments) + "]"


def table_sql(table: str, segments: list[Segment], prefix: str = "") -> str:
    """One table as a SELECT over its segments, hidden keys filtered out. Segments written with today's columns
    are read as one list (DuckDB reads the first file's schema); older ones by name, with the missing columns null.
    """
    if not segments:
        return empty_table_sql(table)
    current = schema_fingerprint(table)
    uniform = all(s.schema == current for s in segments)
    by_name = "" if uniform else ", union_by_name = true"
    clean = [s for s in segments if not s.hidden]
    parts = [] if uniform else [empty_table_sql(table)]
    if clean:
        parts.append(f"SELECT * FROM read_parquet({_paths(clean, prefix)}{by_name})")
    for segment in segments:
        if segment.hidden:
            hidden = " OR ".join(_key_predicate(k) for k in segment.hidden)
            parts.append(f"SELECT * FROM read_parquet({_paths([segment], prefix)}{by_name}) WHERE NOT ({hidden})")
    return parts[0] if len(parts) == 1 else "\nUNION ALL BY NAME\n".join(parts)


def _table_body(table: str, segments: list[Segment], prefix: str, repos: list[str] | None) -> str:
    """``table_sql``, or with ``repos`` the table as if it held only their rows: only the segments whose repo_id
    range may hold one of them are read, and their other rows filtered out."""
    if repos is None or "repo_id" not in column_names(table):
        return table_sql(table, segments, prefix)
    chosen = [s for s in segments if any(s.may_hold(r) for r in repos)]
    wanted = ", ".join(map(sql_literal, repos)) or "NULL"
    return f"SELECT * FROM ({table_sql(table, chosen, prefix)}) WHERE repo_id IN ({wanted})"


def query_files(queries_dir: Path | None = None) -> dict[str, str]:
    """``queries/NAME.sql`` texts by NAME, without a trailing semicolon."""
    folder = queries_dir or QUERIES_DIR
    return {path.stem: path.read_text().strip().rstrip(";") for path in sorted(folder.glob("*.sql"))}


def _code(sql: str) -> str:
    """SQL without its comments and string literals (``'import:open-llm-leaderboard%'`` reads no view)."""
    return re.sub(r"'(?:[^']|'')*'", "''", re.sub(r"--[^\n]*", "", sql))


def _in_dependency_order(queries: dict[str, str]) -> list[str]:
    """Query names ordered so that each comes after the queries it reads (a view must exist before another
    view that reads it is created, in DuckDB versions that bind views at creation, and ``with_views``' expressions
    may read only those before them). Each query's words are found once: a lake writes views.sql at every commit."""
    ordered: list[str] = []
    pending = dict(queries)
    reads = {name: _words(sql) - {name.lower()} for name, sql in queries.items()}
    while pending:
        waiting = {name.lower() for name in pending}
        ready = [name for name in pending if not reads[name] & waiting]
        if not ready:
            raise ValueError(f"queries that read each other in a cycle: {', '.join(sorted(pending))}")
        for name in ready:
            ordered.append(name)
            del pending[name]
    return ordered


def _words(sql: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", _code(sql))}


def _needed_views(
    snapshot: Snapshot,
    prefix: str = "",
    queries_dir: Path | None = None,
    reading: str | None = None,
    repos: list[str] | None = None,
) -> list[tuple[str, str, bool]]:
    """(name, body, whether it is a query file's) of each view, in an order where every view comes after those it
    reads: one per table, ``models_latest``, and one per query file (a query file may not take a table's name).
    With ``reading`` (a SQL text), only the views it reads, directly or through other views."""
    queries = query_files(queries_dir)
    clashes = sorted(set(queries) & {*TABLES, "models_latest"})
    if clashes:
        raise ValueError(f"query files named like lake tables: {', '.join(f'queries/{n}.sql' for n in clashes)}")
    bodies = {t: _table_body(t, snapshot.tables[t], prefix, repos) for t in TABLES}
    bodies["models_latest"] = MODELS_LATEST
    order = list(bodies) + _in_dependency_order(queries)
    bodies.update(queries)
    if reading is not None:
        needed, pending = set(), _words(reading) & set(bodies)
        while pending:
            name = pending.pop()
            needed.add(name)
            if name in queries or name == "models_latest":
                pending |= (_words(bodies[name]) & set(bodies)) - needed
        order = [name for name in order if name in needed]
    return [(name, bodies[name], name in queries) for name in order]


def view_statements(
    snapshot: Snapshot,
    prefix: str = "",
    queries_dir: Path | None = None,
    reading: str | None = None,
    repos: list[str] | None = None,
) -> list[str]:
    """CREATE VIEW statements: one per table, ``models_latest``, and one per query file. With ``reading`` (a SQL
    text), only the views it reads, directly or through other views: binding a view costs a look at its files."""
    return [
        (f"-- queries/{name}.sql\n" if from_file else "") + f"CREATE OR REPLACE VIEW {name} AS\n{body};"
        for name, body, from_file in _needed_views(snapshot, prefix, queries_dir, reading, repos)
    ]


# A statement's leading comments and its WITH (RECURSIVE) keyword, to which the views' expressions are prepended.
_LEADING_WITH = re.compile(r"^(?:\s|--[^\n]*(?:\n|$))*WITH(\s+RECURSIVE)?\s", re.IGNORECASE)


def with_views(
    snapshot: Snapshot,
    sql: str,
    prefix: str = "",
    repos: list[str] | None = None,
    queries_dir: Path | None = None,
) -> str:
    """``sql`` (one SELECT, or WITH … SELECT, of wwhub's own) with the views it reads as its first common table
    expressions, each NOT MATERIALIZED: expanded where it is read, as a view is, so filters still reach the files.
    The same rows as over ``connect``'s views, without creating them: DuckDB binds a view once when it is created
    and again in each query: one model's correlation points in a 100 000-model lake took 105-108 ms over created
    views, 66-77 ms inlined (docs/lake.md). A user's SQL keeps the views: it may be an EXPLAIN, or name its own
    expression after a table."""
    needed = _needed_views(snapshot, prefix, queries_dir, reading=sql, repos=repos)
    if not needed:
        return sql
    expressions = ",\n".join(f"{name} AS NOT MATERIALIZED (\n{body}\n)" for name, body, _ in needed)
    leading = _LEADING_WITH.match(sql)
    if leading:
        return f"WITH{leading.group(1) or ''} {expressions},\n{sql[leading.end() :]}"
    return f"WITH {expressions}\n{sql}"


def views_sql(snapshot: Snapshot) -> str:
    """``LAKE/views.sql``: the snapshot's views with paths relative to the lake folder."""
    header = (
        f"-- wwhub lake, manifest version {snapshot.version}: the tables and named queries as DuckDB views.\n"
        "-- Paths are relative to the lake folder: cd LAKE && duckdb -init views.sql\n"
        "-- (or, from elsewhere: duckdb -c \"SET file_search_path='LAKE'\" -c '.read LAKE/views.sql')\n"
    )
    return header + "\n\n".join(view_statements(snapshot)) + "\n"


def connect(
    lake: Lake,
    snapshot: Snapshot | None = None,
    sandbox: bool = True,
    reading: str | None = None,
    repos: list[str] | None = None,
    views: bool = True,
):
    """An in-memory DuckDB connection holding the lake's views (at ``snapshot``, default: now; with ``reading``,
    only those that SQL reads; with ``repos``, over those models' rows only, which is exact for any query that
    works per repo, such as ``models_latest`` and ``reported_values``; without ``views``, none: the SQL it runs
    carries them, ``with_views``). With ``sandbox``, the connection can read files inside the lake only, write none
    outside it, load no extension, and its configuration is locked, so a user's SQL cannot reach past the lake."""
    import duckdb

    snapshot = snapshot or lake.snapshot()
    con = duckdb.connect(":memory:")
    try:
        prefix = str(lake.root) + "/"
        for statement in view_statements(snapshot, prefix, reading=reading, repos=repos) if views else []:
            con.execute(statement)
        if sandbox:
            con.execute(f"SET allowed_directories = [{sql_literal(prefix)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con
