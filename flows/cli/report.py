"""``wwhub report``: the lake as a static site: index.html (leaderboard, families), a page per family and per model."""

from __future__ import annotations

import argparse

from ..lake import LakeError
from ..leaderboard.render import DEFAULT_METRIC
from ._errors import CliError
from ._output import check_output_folder


def register(sub) -> None:
    parser = sub.add_parser("report", help="write the lake's static site: leaderboard, a page per family and per model")
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")
    parser.add_argument("--out", default="wwhub-site", help="output folder (default: ./wwhub-site)")
    parser.add_argument(
        "--metric", default=DEFAULT_METRIC, help=f"reported metric to rank by (default: {DEFAULT_METRIC})"
    )
    parser.add_argument("--title", default="wwhub report", help="the site's title (default: wwhub report)")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="render every model page (by default a page whose inputs did not change is kept from the site in --out)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evals.vocabulary import normalize_metric
    from ..lake.sql import QueryError
    from ..site import NothingToReport, build_site

    out = check_output_folder(args.out)
    try:
        site = build_site(args.lake, out, normalize_metric(args.metric), args.title, reuse_previous=not args.rebuild)
    except (LakeError, QueryError, NothingToReport) as err:
        raise CliError(str(err)) from err
    sizes = site.bytes
    print(
        f"wrote {site.index}: {site.models} model pages ({site.rendered} rendered, {site.models - site.rendered} "
        f"unchanged since the last build), {site.families} family pages in {site.seconds:.1f} s "
        f"(index {sizes['index.html'] / 1024:.0f} KB + leaderboard data {sizes['data/leaderboard.js'] / 1024:.0f} KB, "
        f"model pages {sizes['models'] / 1024 / 1024:.1f} MB); open it in a browser, no server needed"
    )
    return 0
