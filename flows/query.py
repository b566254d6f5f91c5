"""Run SQL against the lake's DuckDB catalog (read-only), by text or by the name of a ``queries/*.sql`` file."""

from __future__ import annotations

import re
from pathlib import Path

from .lake import CATALOG, QUERIES_DIR

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def run_query(lake_root: Path, sql_or_name: str, variables: dict | None = None) -> list[dict]:
    """Rows (dicts) of a query. A bare name runs ``queries/NAME.sql`` (or the view NAME)."""
    import duckdb

    sql = sql_or_name
    if _NAME.match(sql_or_name.strip()):
        path = QUERIES_DIR / f"{sql_or_name.strip()}.sql"
        sql = path.read_text() if path.exists() else f"SELECT * FROM {sql_or_name.strip()}"
    con = duckdb.connect(str(Path(lake_root) / CATALOG), read_only=True)
    try:
        for name, value in (variables or {}).items():
            con.execute(f"SET VARIABLE {name} = ?", [value])
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except duckdb.Error as err:
        raise ValueError(f"query failed: {err}") from err
    finally:
        con.close()
