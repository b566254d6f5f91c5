"""``wwhub leaderboard``: models ranked per family with their reported value, and the correlation tables."""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

from ..leaderboard.render import (
    BOARD_COLUMNS,
    CORRELATION_HEADERS,
    DEFAULT_METRIC,
    POOLED_HEADERS,
    board_csv,
    board_view,
    correlation_cells,
    explanations,
    leaderboard_data,
    metric_of,
    render_html,
    render_markdown,
    value_names,
    write_plots,
)
from ..leaderboard.stats import POOLED
from ._errors import CliError
from ._output import check_output_file, render_json, render_table

FORMATS = ("table", "csv", "json", "md", "html")
# A terminal is narrower than a page: fewer columns than the HTML tables.
TERMINAL_BOARD_COLUMNS = [c for c in BOARD_COLUMNS if c != "log_alpha_norm"]
TERMINAL_CORRELATION_COLUMNS = [
    "family",
    "metric",
    "n",
    "pearson",
    "pearson_p",
    "pearson_p_adjusted",
    "spearman",
    "kendall",
    "verdict",
]


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", help="one family (default: all)")
    parser.add_argument(
        "--metric",
        help=f"reported metric to rank by and correlate with (default: {DEFAULT_METRIC}; names are normalised: "
        "acc = accuracy)",
    )
    parser.add_argument("--dataset", help="only values reported on this dataset (default: by source precedence)")
    parser.add_argument("--prefer-import", action="store_true", help="imported values win over the card's")
    parser.add_argument(
        "--all-members",
        action="store_true",
        help="every model a family ever held (default: the models its latest listing holds)",
    )
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")


def board_request(args: argparse.Namespace) -> dict:
    """leaderboard_data's arguments from the shared options: an explicit --metric or --dataset must exist."""
    return dict(
        family=args.family,
        metric=args.metric or DEFAULT_METRIC,
        prefer_import=args.prefer_import,
        dataset=args.dataset,
        require_metric=args.metric is not None or args.dataset is not None,
        all_members=args.all_members,
    )


def register(sub) -> None:
    parser = sub.add_parser("leaderboard", help="rank models per family against their reported accuracy")
    add_board_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--out", help="write to FILE (required for html; its folder must exist)")
    parser.set_defaults(run=run)


def render_terminal(board: list[dict], correlations: list[dict]) -> str:
    """The leaderboard, the correlation table and the pooled comparison, each with its explanation."""
    metric = metric_of(board)
    view = board_view(board, metric)
    names = value_names(metric)
    notes = explanations(board)
    columns = [names.get(c, c) for c in TERMINAL_BOARD_COLUMNS]
    cells = [correlation_cells(r) for r in correlations]
    family_cells = [c for c in cells if c["family"] != POOLED]
    pooled_cells = [c for c in cells if c["family"] == POOLED]
    out = [render_table(view, columns), _wrap(notes["board"]), ""]
    out.append(f"correlations with {metric}")
    out.append(_cells_table(family_cells, TERMINAL_CORRELATION_COLUMNS, CORRELATION_HEADERS))
    out.append(_wrap(notes["correlations"]))
    if pooled_cells:
        out += ["", "pooled across families", _cells_table(pooled_cells, list(POOLED_HEADERS), POOLED_HEADERS)]
        out.append(_wrap(notes["pooled"]))
    return "\n".join(out) + "\n"


def _cells_table(cells: list[dict], columns: list[str], headers: dict[str, str]) -> str:
    return render_table([{headers[c]: row[c] for c in columns} for row in cells], [headers[c] for c in columns])


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width))


def export(board: list[dict], correlations: list[dict], fmt: str, plots: list[Path] | None = None) -> str:
    if fmt == "table":
        return render_terminal(board, correlations)
    if fmt == "csv":
        return board_csv(board_view(board, metric_of(board)))
    if fmt == "json":
        return render_json(board_view(board, metric_of(board)))
    if fmt == "md":
        return render_markdown(board, correlations)
    return render_html(board, correlations, plots or [])


def run(args: argparse.Namespace) -> int:
    check_output_file(args.out)
    if args.format == "html" and not args.out:
        raise CliError("--format html needs --out FILE")
    request = board_request(args)
    try:
        board, correlations = leaderboard_data(args.lake, **request)
    except (LookupError, ValueError, OSError) as err:
        raise CliError(str(err)) from err
    if not board:
        raise CliError("no scanned models in the lake")
    plots: list[Path] = []
    if args.format == "html":
        folder = Path(tempfile.mkdtemp(prefix="wwhub-plots-"))
        plots = write_plots(args.lake, folder, args.family, data=(board, correlations))
    text = export(board, correlations, args.format, plots)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
