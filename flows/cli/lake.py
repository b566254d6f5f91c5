"""``wwhub lake import|merge|compact|info|migrate|export``: the lake as a whole (docs/lake.md; the export as a
Hugging Face dataset: docs/report.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from ..lake import IMPORTABLE_TABLES, LakeError, lake_path
from ._errors import CliError
from ._output import render_table
from ._progress import progress_bar

LAKE_HELP = "lake folder (default: WWHUB_LAKE or ./wwhub-lake)"


def register(sub) -> None:
    parser = sub.add_parser("lake", help="import, merge, compact, inspect, migrate or export a lake")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    importer = actions.add_parser(
        "import",
        help="add exported rows: TABLE.parquet files or folders of them (same (repo_id, revision) replaces)",
    )
    importer.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="TABLE.parquet (as `wwhub query ... --format parquet` writes), or a folder",
    )
    importer.add_argument(
        "--table", choices=IMPORTABLE_TABLES, help="the table a file holds when its name does not say"
    )
    importer.add_argument("--lake", help=LAKE_HELP)
    importer.set_defaults(run=run_import)
    merger = actions.add_parser("merge", help="add every row of another lake (models in both: OTHER's copy)")
    merger.add_argument("other", metavar="OTHER_LAKE", help="the lake folder whose rows are added")
    merger.add_argument("--lake", help=LAKE_HELP)
    merger.set_defaults(run=run_merge)
    compacter = actions.add_parser("compact", help="rewrite into few large sorted files; drop replaced rows")
    compacter.add_argument("--lake", help=LAKE_HELP)
    compacter.set_defaults(run=run_compact)
    informer = actions.add_parser("info", help="layout, rows, files and sizes per table, last scan")
    informer.add_argument("--lake", help=LAKE_HELP)
    informer.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    informer.set_defaults(run=run_info)
    migrator = actions.add_parser("migrate", help="move a lake written by wwhub <= 0.1 to today's layout")
    migrator.add_argument("--lake", help=LAKE_HELP)
    migrator.set_defaults(run=run_migrate)
    register_export(actions)


def register_export(actions) -> None:
    exporter = actions.add_parser(
        "export", help="write the lake as a Hugging Face dataset folder (Parquet per table + dataset card)"
    )
    exporter.add_argument("out", metavar="DIR", help="the dataset folder (created; its data/ and README.md replaced)")
    exporter.add_argument("--lake", help=LAKE_HELP)
    exporter.add_argument("--latest-only", action="store_true", help="only each repo's latest scan")
    # No default here: the leaderboard's own (flows.leaderboard.render, imported only when the export runs).
    exporter.add_argument("--metric", help="reported metric the leaderboard ranks by (default: accuracy)")
    exporter.add_argument(
        "--max-file-mb", type=int, help="close a Parquet file once it reaches this size (default: 200)"
    )
    exporter.add_argument(
        "--repo-id", default="ORG/NAME", help="where it will be published (fills the card's examples)"
    )
    exporter.add_argument("--title", default="wwhub lake", help="the dataset card's title")
    exporter.set_defaults(run=run_export)


def _refresh_derived(lake: str | None) -> None:
    """Rows came in: the derived ``correlations`` table is recomputed by its producer (never copied)."""
    from ..leaderboard.correlations import refresh_correlations

    refresh_correlations(lake_path(lake))


def _shown_on(bar) -> Callable[[str], None]:
    """A step callback that counts each step on ``bar`` and shows its description."""

    def on_step(description: str) -> None:
        bar.set_postfix_str(description, refresh=False)
        bar.update(1)

    return on_step


def _add_rows(args: argparse.Namespace, desc: str, add: Callable[[Callable[[str], None]], dict[str, int]]):
    """``add(on_step)``'s rows (an import's, a merge's), then ``_refresh_derived``, each step named on a progress
    bar (an import of 20M shuffled rows takes a minute or more)."""
    with progress_bar(total=None, desc=desc, unit="step") as bar:
        on_step = _shown_on(bar)
        try:
            rows = add(on_step)
        except LakeError as err:
            raise CliError(str(err)) from err
        on_step("recomputing the correlations")
        _refresh_derived(args.lake)
    return rows


def _counts(rows: dict[str, int], unit: str = "") -> str:
    """``layers 12, models 3`` then ``unit``, or ``nothing`` (never "nothing rows")."""
    counts = ", ".join(f"{table} {n}" for table, n in rows.items())
    return f"{counts}{unit}" if counts else "nothing"


def run_import(args: argparse.Namespace) -> int:
    from ..lake.transfer import import_paths

    rows = _add_rows(args, "lake import", lambda on_step: import_paths(args.lake, args.paths, args.table, on_step))
    print(f"imported {_counts(rows, ' rows')}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from ..lake.transfer import merge

    rows = _add_rows(args, "lake merge", lambda on_step: merge(args.lake, args.other, on_step))
    print(f"merged {_counts(rows, ' rows')} from {args.other}")
    return 0


def run_compact(args: argparse.Namespace) -> int:
    from ..lake import Lake
    from ..lake.compaction import compact

    with progress_bar(total=None, desc="lake compact", unit="step") as bar:
        try:
            Lake.open(args.lake)
            segments = compact(Lake.for_writing(args.lake), on_step=_shown_on(bar))
        except LakeError as err:
            raise CliError(str(err)) from err
    print("segments per table: " + _counts(segments))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..lake.transfer import info
    from ..leaderboard.correlations import cache_facts

    try:
        facts = info(args.lake)
        facts["correlations_cache"] = cache_facts(args.lake)
    except LakeError as err:
        raise CliError(str(err)) from err
    if args.format == "json":
        print(json.dumps(facts, indent=1))
        return 0
    last = facts["last_scan"]
    print(f"lake {facts['lake']}  layout {facts['layout']}  manifest version {facts['manifest_version']}")
    print(
        f"updated {facts['updated_at'] or '-'}  last scan {last['scan_id'] + ' ' + last['ended_at'] if last else '-'}"
    )

    rows = [dict(table=t, **v) for t, v in facts["tables"].items()]
    sys.stdout.write(render_table(rows))
    if facts["retired_files"]:
        print(f"{facts['retired_files']} replaced file(s) awaiting deletion")
    print(_cache_line(facts["correlations_cache"]))
    return 0


def _cache_line(cache: dict | None) -> str:
    if cache is None:
        return "correlations cache: none (the next refresh reads every model's point)"
    size = f"{cache['bytes'] / 1e6:.1f} MB"
    if cache["current"]:
        return f"correlations cache: {cache['points']} points, {size}, current (a scan refreshes what it changed)"
    return f"correlations cache: {size}, not current (the next refresh reads every model's point and rewrites it)"


def run_migrate(args: argparse.Namespace) -> int:
    from ..lake.transfer import migrate

    try:
        moved = migrate(args.lake)
    except LakeError as err:
        raise CliError(str(err)) from err
    if moved is not None:
        _refresh_derived(args.lake)
    print("already in today's layout" if moved is None else f"migrated: {_counts(moved, ' rows')}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..dataset import ExportOptions, export_dataset
    from ..dataset.tables import DEFAULT_MAX_FILE_MB
    from ..evals.vocabulary import normalize_metric
    from ..lake.sql import QueryError
    from ..leaderboard.render import DEFAULT_METRIC
    from ..sources.base import check_repo_id
    from ._output import check_output_folder

    out = check_output_folder(args.out, "DIR")
    max_file_mb = DEFAULT_MAX_FILE_MB if args.max_file_mb is None else args.max_file_mb
    if max_file_mb < 1:
        raise CliError(f"--max-file-mb {max_file_mb}: give a size of at least 1 (MB)")
    if args.repo_id != "ORG/NAME":
        try:
            check_repo_id(args.repo_id, "--repo-id")
        except ValueError as err:
            raise CliError(str(err)) from err
    options = ExportOptions(
        latest_only=args.latest_only,
        metric=normalize_metric(args.metric or DEFAULT_METRIC),
        max_file_bytes=max_file_mb * 1024 * 1024,
        repo_id=args.repo_id,
        title=args.title,
    )
    try:
        export = export_dataset(args.lake, out, options)
    except (LakeError, QueryError) as err:
        raise CliError(str(err)) from err
    for table in export.tables:
        where = f"{len(table.files)} file(s) under data/{table.config.name}/" if table.files else "no rows: no config"
        print(f"{table.config.name:13} {table.rows:>10} rows  {where}")
    print(f"wrote {out / 'README.md'}; publish with: hf upload {args.repo_id} {out} --repo-type dataset")
    return 0
