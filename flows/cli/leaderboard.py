"""``wwhub leaderboard``: models ranked per family with their reported accuracy, and the correlation table."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..report import (
    BOARD_COLUMNS,
    CORRELATION_COLUMNS,
    board_csv,
    leaderboard_data,
    render_html,
    render_markdown,
    write_plots,
)
from ._errors import CliError
from ._output import check_output_file, render_json, render_table

FORMATS = ("table", "csv", "json", "md", "html")


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", help="one family (default: all)")
    parser.add_argument("--metric", default="accuracy", help="reported metric to rank by (default: accuracy)")
    parser.add_argument("--prefer-import", action="store_true", help="imported accuracies win over the card's")
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")


def register(sub) -> None:
    parser = sub.add_parser("leaderboard", help="rank models per family against their reported accuracy")
    add_board_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--out", help="write to FILE (required for html; its folder must exist)")
    parser.set_defaults(run=run)


def export(board: list[dict], correlations: list[dict], fmt: str, plots: list[Path] | None = None) -> str:
    if fmt == "table":
        return (
            render_table(board, BOARD_COLUMNS)
            + "\ncorrelations with the reported metric\n"
            + render_table(correlations, CORRELATION_COLUMNS)
        )
    if fmt == "csv":
        return board_csv(board)
    if fmt == "json":
        return render_json(board)
    if fmt == "md":
        return render_markdown(board, correlations)
    return render_html(board, correlations, plots or [])


def run(args: argparse.Namespace) -> int:
    check_output_file(args.out)
    if args.format == "html" and not args.out:
        raise CliError("--format html needs --out FILE")
    try:
        board, correlations = leaderboard_data(args.lake, args.family, args.metric, args.prefer_import)
    except (ValueError, OSError) as err:
        raise CliError(str(err)) from err
    if not board:
        raise CliError("no scanned models in the lake" + (f" for family {args.family!r}" if args.family else ""))
    plots: list[Path] = []
    if args.format == "html":
        plots = write_plots(
            args.lake, Path(tempfile.mkdtemp(prefix="wwhub-plots-")), args.family, args.metric, args.prefer_import
        )
    text = export(board, correlations, args.format, plots)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
