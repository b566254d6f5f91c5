"""``wwhub scan``: scan repos or families from the hub, a local folder of repos, or the HF cache into the lake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ww_core

from ..analyze import usable_cores
from ..lake import lake_path
from ..pipeline import SCAN_DEFAULTS, STATUS_SKIPPED, SourceSpec, load_families, run_scan
from ..sources import HubError
from ._errors import CliError
from ._options import add_analysis_arguments, analysis_options
from ._progress import progress_bar


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        nargs="+",
        metavar=("hub|local|cache", "DIR"),
        default=["hub"],
        help="hub (default), 'local DIR' (ROOT/org/name folders) or 'cache [DIR]' (HF cache)",
    )
    parser.add_argument("--endpoint", help="Hub endpoint URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--no-pickle", action="store_true", help="never load pytorch_model*.bin pickles")
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")


def source_spec(args: argparse.Namespace) -> SourceSpec:
    """The source from ``--source hub | local DIR | cache [DIR]``.

    ``--source`` takes several values, so repo ids written after it land there too; they are handed back to
    ``args.repos`` (for ``cache``, a first value that is not an existing folder is a repo id)."""
    kind, *rest = args.source
    if kind not in ("hub", "local", "cache"):
        raise CliError(f"--source {kind!r}: expected hub, local DIR or cache [DIR]")
    location = None
    if kind == "local":
        if not rest:
            raise CliError("--source local needs a folder: --source local DIR")
        location, *rest = rest
    elif kind == "cache" and rest and Path(rest[0]).is_dir():
        location, *rest = rest
    args.repos = list(args.repos) + rest
    if kind == "hub":
        location = args.endpoint
    return SourceSpec(kind, location, allow_pickle=not args.no_pickle)


def families_from_args(args: argparse.Namespace, everything_allowed: bool) -> dict[str, dict]:
    """The families to scan. A local folder or cache with no query means every model in it."""
    if args.families:
        try:
            families = load_families(args.families)
        except ValueError as err:
            raise CliError(str(err)) from err
        if args.family:
            if args.family not in families:
                raise CliError(f"family {args.family!r} is not in {args.families}; known: {', '.join(families)}")
            families = {args.family: families[args.family]}
        return families
    query = {
        k: v
        for k, v in dict(
            author=args.author, search=args.search, filter=args.filter or None, sort=args.sort, limit=args.limit
        ).items()
        if v is not None
    }
    if args.repos:
        query = {"repos": args.repos}
    if not query and not everything_allowed:
        raise CliError("nothing to scan: give REPO_ID..., --families FILE, or a query (--author/--search/--filter)")
    # Without --family, each model's family is inferred from its name ("*").
    return {args.family or "*": query}


def register(sub) -> None:
    parser = sub.add_parser(
        "scan",
        help="scan models into the lake (hub, local folder or HF cache)",
        description="Scan models shard by shard into the lake. A model already in the lake "
        "at the same commit is skipped unless --force.",
    )
    parser.add_argument("repos", nargs="*", metavar="REPO_ID", help="org/name[@revision]")
    parser.add_argument("--family", help="family name for the models (or pick one from --families)")
    parser.add_argument("--families", help="families.yaml")
    parser.add_argument("--author")
    parser.add_argument("--search")
    parser.add_argument("--filter", action="append", help="tag, e.g. base_model:org/name (repeatable)")
    parser.add_argument("--sort")
    parser.add_argument("--limit", type=int)
    add_source_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, usable_cores()),
        help="models scanned at once (default: min(2, cores))",
    )
    parser.add_argument(
        "--task-runner",
        choices=["threads", "dask"],
        default="threads",
        help="threads (default, no Prefect server) or dask: a Prefect flow on an existing cluster",
    )
    parser.add_argument("--dask-address", help="tcp://HOST:PORT of the Dask scheduler (with --task-runner dask)")
    parser.add_argument("--force", action="store_true", help="rescan models already in the lake")
    parser.add_argument("--no-esd", action="store_true", help="do not store eigenvalues (smaller lake)")
    add_analysis_arguments(parser, precision=SCAN_DEFAULTS["precision"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = source_spec(args)
    families = families_from_args(args, everything_allowed=spec.kind != "hub")
    options = analysis_options(args)
    try:
        ww_core.AnalysisOptions.from_kwargs(**options)
        spec.open()
    except (TypeError, ValueError, HubError) as err:
        raise CliError(str(err)) from err
    lake = str(lake_path(args.lake))
    models_bar = progress_bar(total=None, desc="models", unit="model")
    shards_bar = progress_bar(total=None, desc="shards", unit="shard")

    def on_model(outcome):
        models_bar.update(1)
        models_bar.set_postfix_str(f"{outcome.repo_id}: {outcome.status}")

    if args.task_runner == "dask":
        report = _run_on_dask(args, spec, families, lake, options)
        models_bar.close()
        shards_bar.close()
    else:
        with models_bar, shards_bar:
            report = run_scan(
                spec,
                families,
                lake,
                options,
                force=args.force,
                workers=args.workers,
                on_listed=lambda n: models_bar.reset(total=n),
                on_model=on_model,
                on_shard=lambda repo, shard: shards_bar.update(1),
                keep_esd=not args.no_esd,
            )
    scanned = report.count("scanned", "partial")
    print(
        f"scan {report.scan_id}: listed {report.listed}, scanned {scanned}, "
        f"skipped {report.count(STATUS_SKIPPED)} (already in the lake), unsupported {report.count('unsupported')}, "
        f"failed {report.count('failed') + len(report.list_errors)}  → lake {lake}"
    )
    for error in report.list_errors:
        print(f"  failed: {error}")
    for o in report.outcomes:
        if o.status in ("failed", "partial", "unsupported"):
            print(f"  {o.status}: {o.repo_id}@{o.revision[:12]}: {o.reason}")
    sys.stdout.flush()
    return report.exit_code


def _run_on_dask(args, spec, families, lake, options):
    """The same scan as a Prefect flow whose per-model tasks run on an existing Dask cluster (prefect-dask)."""
    if not args.dask_address:
        raise CliError("--task-runner dask needs --dask-address tcp://HOST:PORT (an existing Dask scheduler)")
    from ..scan import make_task_runner, scan_families

    runner = make_task_runner("dask", args.dask_address)
    return scan_families.with_options(task_runner=runner)(
        families, lake, spec, options, args.force, keep_esd=not args.no_esd
    )
