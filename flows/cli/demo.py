"""``wwhub demo``: the embedded default. Scans the demo families shipped in the package into a local lake (no hub,
no server), prints the leaderboard and the correlation table, and writes the lake's static site (flows/site)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..lake import Lake, LakeError, lake_path
from ..leaderboard.render import leaderboard_data
from ..scanning.families import load_families
from ..scanning.loop import run_scan
from ..scanning.options import ScanOptions, SourceSpec
from ..scanning.status import Status
from ..site import build_site
from ._errors import EXIT_OK, CliError
from ._output import check_output_folder
from ._progress import progress_bar
from .leaderboard import export

DEMO_ROOT = Path(__file__).resolve().parents[1] / "demo"
DEMO_OPTIONS = {"mp_fit": True, "randomize": True, "seed": 0}
# The demo's own lake, so its models never enter the pooled correlations of the user's lake.
DEMO_LAKE = "wwhub-demo-lake"


def register(sub) -> None:
    parser = sub.add_parser("demo", help="scan the bundled demo families and show the leaderboard (no setup)")
    parser.add_argument("--lake", default=DEMO_LAKE, help=f"lake folder (default: ./{DEMO_LAKE}, apart from yours)")
    parser.add_argument(
        "--out",
        default="wwhub-report",
        help="the site: index.html, a page per family and model (default: ./wwhub-report)",
    )
    parser.add_argument("--force", action="store_true", help="rescan even if the demo models are in the lake")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = check_output_folder(args.out)
    lake = str(lake_path(args.lake))
    try:
        Lake.check_writable(lake)
    except LakeError as err:
        raise CliError(str(err)) from err
    families = load_families(DEMO_ROOT / "families.yaml")
    spec = SourceSpec("local", str(DEMO_ROOT / "repos"))
    with progress_bar(total=None, desc="demo models", unit="model") as bar:
        report = run_scan(
            spec,
            families,
            lake,
            ScanOptions(analysis=DEMO_OPTIONS, force=args.force, workers=2),
            on_listed=lambda n: bar.reset(total=n),
            on_model=lambda outcome: bar.update(1),
        )
    if report.exit_code != EXIT_OK:
        raise CliError(f"the demo scan failed: {[o.reason for o in report.outcomes if o.reason]}", exit_code=1)
    board, correlations = leaderboard_data(lake)
    print(
        f"wwhub demo: {report.listed} models in {len(families)} families "
        f"(scanned {report.count(Status.SCANNED)}, already in the lake {report.count(Status.SKIPPED)}) → {lake}\n"
    )
    sys.stdout.write(export(board, correlations, "table"))
    site = build_site(lake, out, title="wwhub demo: digits MLP families")
    print(f"\nsite:  {site.index}  (a page per family and per model; open it in a browser, no server needed)")
    print(f'query: wwhub query "SELECT * FROM layer_outliers" --lake {lake}')
    print(f"done in {time.perf_counter() - started:.1f} s")
    return EXIT_OK
