"""``wwhub query "SQL" | NAME``: SQL over the lake's DuckDB views (NAME: a file of queries/ or a view)."""

from __future__ import annotations

import argparse

from ..lake import build_catalog, lake_path
from ..query import run_query
from ._errors import CliError
from ._output import check_output_file, write_rows


def register(sub) -> None:
    parser = sub.add_parser("query", help="run SQL (or a named query from queries/) against the lake")
    parser.add_argument("sql", help="a SELECT statement, or the name of a query (leaderboard, correlations, ...)")
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    parser.add_argument("--out", help="write to FILE instead of stdout (its folder must exist)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output_file(args.out)
    root = lake_path(args.lake)
    if not (root / "models").is_dir():
        raise CliError(f"no lake at {root}: run `wwhub scan` (or `wwhub demo`) first, or pass --lake")
    build_catalog(root)
    try:
        rows = run_query(root, args.sql)
    except ValueError as err:
        raise CliError(str(err)) from err
    write_rows(rows, args.format, args.out)
    return 0
