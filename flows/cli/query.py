"""``wwhub query "SQL" | NAME``: one read-only SQL statement over the lake's views (NAME: a file of queries/ or a
view); ``--list`` shows the named queries."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from ..lake import LakeError
from ..lake.manifest import ROW_GROUP_ROWS
from ..lake.sql import QueryError, named_queries, query_columns_and_rows, stream_query
from ._errors import CliError
from ._output import FORMATS, check_output_file, parquet_write_error, render_table, unwritable_parquet, write_rows


def register(sub) -> None:
    parser = sub.add_parser("query", help="run SQL (or a named query from queries/) against the lake")
    parser.add_argument(
        "sql", nargs="?", help="one SELECT statement, or the name of a query or table (leaderboard, correlations, ...)"
    )
    parser.add_argument("--list", action="store_true", help="list the named queries and what each answers")
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (parquet needs --out)")
    parser.add_argument("--out", help="write to FILE instead of stdout (its folder must exist)")
    parser.set_defaults(run=run)


def write_parquet(batches, out: str) -> None:
    """Arrow record batches to ``out`` as one zstd Parquet file, a row group per batch, in DuckDB's own column types
    (not Python values) so that `wwhub lake import` takes it back. Written beside ``out`` and renamed onto it at the
    end: a failed export leaves no half file."""
    import pyarrow.parquet as pq

    refused = unwritable_parquet(batches.schema)
    if refused:
        raise refused
    target = Path(out)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with pq.ParquetWriter(partial, batches.schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
        partial.replace(target)
    except OSError as err:
        raise parquet_write_error(err, out) from None
    finally:
        partial.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    if args.list:
        rows = [{"query": name, "answers": about} for name, about in named_queries().items()]
        sys.stdout.write(render_table(rows))
        return 0
    if args.sql is None:
        raise CliError("give a SELECT statement or a query name (see `wwhub query --list`)")
    check_output_file(args.out)
    if args.format == "parquet" and not args.out:
        raise CliError("--format parquet needs --out FILE")
    try:
        if args.format == "parquet":
            # Streamed a row group at a time: an export of 20M layer rows never holds more than one batch in memory.
            export = functools.partial(write_parquet, out=args.out)
            stream_query(args.lake, args.sql, export, batch_rows=ROW_GROUP_ROWS, user=True)
            return 0
        columns, rows = query_columns_and_rows(args.lake, args.sql, user=True)
    except (QueryError, LakeError) as err:
        raise CliError(str(err)) from err
    write_rows(rows, args.format, args.out, csv_columns=columns)
    return 0
