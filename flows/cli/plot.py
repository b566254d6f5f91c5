"""``wwhub plot``: family trend plots and correlation flow (PNG + SVG), or one layer's ESD with ``--esd``."""

from __future__ import annotations

import argparse

from ..leaderboard.render import leaderboard_data, write_esd_plot, write_plots
from ._errors import CliError
from ._output import check_output_folder
from .leaderboard import add_board_arguments, board_request


def register(sub) -> None:
    parser = sub.add_parser("plot", help="family trend plots, correlation flow, or a layer's ESD (--esd)")
    add_board_arguments(parser)
    parser.add_argument("--out", default="wwhub-plots", help="output folder (default: ./wwhub-plots)")
    parser.add_argument(
        "--esd",
        nargs=2,
        metavar=("REPO", "LAYER"),
        help="plot one layer's ESD (tensor name or layer_id) from the lake, no download",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(args.out)
    try:
        if args.esd:
            paths = write_esd_plot(args.lake, args.esd[0], args.esd[1], out)
        else:
            data = leaderboard_data(args.lake, **board_request(args))
            if not data[0]:
                raise CliError("no scanned models in the lake")
            paths = write_plots(args.lake, out, args.family, data=data)
    except (LookupError, ValueError, OSError) as err:
        raise CliError(str(err)) from err
    for path in paths:
        print(path)
    return 0
