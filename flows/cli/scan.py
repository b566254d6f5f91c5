"""``wwhub scan``: scan repos or families from the hub, a local folder of repos, or the HF cache into the lake."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..analysis.model_analysis import usable_cores
from ..lake import Lake, LakeError, lake_path
from ..lake.esd import DEFAULT_ESD, ESD_MODES
from ..scanning.families import FamiliesError, check_family_name, load_families, validate_query
from ..scanning.loop import NothingListed, run_scan
from ..scanning.options import INFERRED_FAMILY, SCAN_DEFAULTS, ScanOptions, SourceSpec
from ..scanning.outcomes import ScanReport
from ..scanning.status import Status
from ..sources import HUB_INVALID, HUB_NOT_FOUND, HubError, HubSettings
from ..sources.base import check_repo_id
from ._errors import EXIT_BAD_INPUT, CliError
from ._options import (
    add_analysis_arguments,
    add_layers_argument,
    analysis_options,
    layer_selection,
    positive_int,
    positive_seconds,
)
from ._progress import progress_bar

# The query options of `wwhub scan`, by the key they fill in a family query (for messages in the user's words).
QUERY_OPTIONS = {
    "repos": "REPO_ID",
    "author": "--author",
    "search": "--search",
    "filter": "--filter",
    "sort": "--sort",
    "limit": "--limit",
}
# A Dask scheduler that does not accept a connection in this time is not there.
DASK_CONNECT_SECONDS = 5.0


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
    parser.add_argument(
        "--merge-base",
        metavar="BASE",
        help="merge PEFT adapters into this local base checkpoint and analyze W + ΔW (default: ΔW alone)",
    )
    parser.add_argument(
        "--gguf-file",
        metavar="NAME",
        help="in a GGUF-only repo, analyze this file (default: the largest non-split file of at most 8 bits)",
    )
    parser.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")
    hub = parser.add_argument_group("hub connection (each request; also WWHUB_HUB_TIMEOUT/_RETRIES/_BACKOFF)")
    hub.add_argument(
        "--hub-timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="give up on a connection that sends nothing for this long (default 30)",
    )
    hub.add_argument(
        "--hub-retries",
        type=int,
        metavar="N",
        help="retries of a request after a timeout, a dropped connection or a 5xx (the hub's 429s are waited out "
        "and do not count); a download that breaks off goes on from where it was within the same count (default 3)",
    )
    hub.add_argument(
        "--hub-backoff",
        type=float,
        metavar="SECONDS",
        help="first wait before a retry, doubled each time; Retry-After wins, up to 30 s (default 0.5)",
    )
    hub.add_argument(
        "--hub-rate-limit-wait",
        type=positive_seconds,
        metavar="SECONDS",
        help="the most time the scan waits for the hub's rate-limit windows in all; past it, models are retried by "
        "the next scan (default 21600: 6 h; also WWHUB_HUB_RATE_LIMIT_WAIT)",
    )


def source_spec(args: argparse.Namespace) -> SourceSpec:
    """The source from ``--source hub | local DIR | cache [DIR]``.

    ``--source`` takes several values, so repo ids written after it land there too; they are handed back to
    ``args.repos``. For ``cache``, a first value that is an existing folder is the cache, one that is a repo id is a
    repo, and anything else is a folder that does not exist (a typo), not a repo id."""
    kind, *rest = args.source
    if kind not in ("hub", "local", "cache"):
        raise CliError(f"--source {kind!r}: expected hub, local DIR or cache [DIR]")
    location = None
    if kind == "local":
        if not rest:
            raise CliError("--source local needs a folder: --source local DIR")
        location, *rest = rest
        if not Path(location).is_dir():
            raise CliError(f"--source local {location}: not a folder (expected DIR/ORG/NAME model folders)")
    elif kind == "cache" and rest:
        if Path(rest[0]).is_dir():
            location, *rest = rest
        elif not _is_repo_spec(rest[0]):
            raise CliError(
                f"--source cache {rest[0]}: not a folder (give the HF cache folder, or none for the default)"
            )
    elif kind == "hub" and rest:
        raise CliError(f"--source hub takes no folder (got {' '.join(rest)}); put repo ids before --source")
    args.repos = list(args.repos) + rest
    if kind != "hub" and args.endpoint:
        raise CliError(f"--endpoint applies to --source hub only, not to --source {kind}")
    settings = None
    if kind == "hub":
        location = args.endpoint
        try:
            settings = HubSettings.from_env(
                timeout=args.hub_timeout,
                retries=args.hub_retries,
                backoff=args.hub_backoff,
                rate_limit_wait=getattr(args, "hub_rate_limit_wait", None),
            )
        except ValueError as err:
            raise CliError(str(err).replace("hub ", "--hub-", 1)) from None
    merge_base = getattr(args, "merge_base", None)
    if merge_base and not Path(merge_base).exists():
        raise CliError(f"--merge-base {merge_base}: no such file or directory")
    merge_base = str(Path(merge_base).resolve()) if merge_base else None  # workers may run elsewhere
    return SourceSpec(
        kind,
        location,
        allow_pickle=not args.no_pickle,
        hub=settings,
        merge_base=merge_base,
        gguf_file=getattr(args, "gguf_file", None),
    )


def _is_repo_spec(text: str) -> bool:
    try:
        check_repo_id(text.partition("@")[0])
    except ValueError:
        return False
    return True


def families_from_args(args: argparse.Namespace, everything_allowed: bool) -> dict[str, dict]:
    """The families to scan, validated. A local folder or cache with no query means every model in it."""
    if args.families:
        try:
            families = load_families(args.families)
        except FamiliesError as err:
            raise CliError(str(err)) from err
        if args.family:
            if args.family not in families:
                raise CliError(f"family {args.family!r} is not in {args.families}; known: {', '.join(families)}")
            families = {args.family: families[args.family]}
        if args.repos or any(getattr(args, k) is not None for k in ("author", "search", "filter", "sort", "limit")):
            raise CliError("--families names the models; do not combine it with REPO_ID or query options")
        return families
    query = {
        k: v
        for k, v in dict(
            repos=args.repos or None,
            author=args.author,
            search=args.search,
            filter=args.filter or None,
            sort=args.sort,
            limit=args.limit,
        ).items()
        if v is not None
    }
    try:
        query = validate_query(query, QUERY_OPTIONS)
    except FamiliesError as err:
        raise CliError(str(err)) from None
    if not any(k in query for k in ("repos", "author", "search", "filter")) and not everything_allowed:
        raise CliError("nothing to scan: give REPO_ID..., --families FILE, or a query (--author/--search/--filter)")
    if args.family is not None:
        try:
            check_family_name(args.family)
        except ValueError as err:
            raise CliError(f"--family {args.family!r}: {err}") from None
    # Without --family, each model's family is inferred from its name ("*").
    return {args.family or INFERRED_FAMILY: query}


def records_membership(args: argparse.Namespace) -> bool:
    """A family's listing is its membership when the family is defined by a query: a families file, or a named
    query (``--family`` with ``--author``/``--search``/``--filter``); repo ids typed on the command line are not."""
    return bool(args.families) or bool(args.family and not args.repos)


def register(sub) -> None:
    parser = sub.add_parser(
        "scan",
        help="scan models into the lake (hub, local folder or HF cache)",
        description="Scan models shard by shard into the lake. A model already in the lake "
        "at the same commit is skipped unless --force.",
    )
    parser.add_argument("repos", nargs="*", metavar="REPO_ID", help="org/name[@revision]")
    parser.add_argument("--family", help="family name for the models (or pick one from --families)")
    parser.add_argument("--families", help="families.yaml (named queries; see docs/scan.md)")
    parser.add_argument("--author", help="models of this user or organization")
    parser.add_argument("--search", help="models whose id contains this text")
    parser.add_argument("--filter", action="append", help="tag, e.g. base_model:org/name (repeatable)")
    parser.add_argument("--sort", help="order before --limit: downloads, likes, created_at, last_modified, ...")
    parser.add_argument("--limit", type=int, help="at most this many models per family (at least 1)")
    add_source_arguments(parser)
    parser.add_argument(
        "--workers",
        type=positive_int,
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
    parser.add_argument(
        "--esd",
        choices=ESD_MODES,
        default=DEFAULT_ESD,
        help="eigenvalues kept per layer: tail (default: the fitted tail exactly + a quantile sketch of the bulk), "
        "full (every eigenvalue), none",
    )
    add_layers_argument(parser)
    parser.add_argument(
        "--base",
        metavar="REPO",
        help="compare every model with this base (default: the base_model its card names), into the distances table",
    )
    parser.add_argument("--no-distances", action="store_true", help="do not compare models with their base")
    add_analysis_arguments(parser, precision=SCAN_DEFAULTS["precision"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = source_spec(args)
    families = families_from_args(args, everything_allowed=spec.kind != "hub")
    selection = layer_selection(args)
    options = ScanOptions(
        analysis=analysis_options(args),
        force=args.force,
        esd=args.esd,
        layers=selection.text,
        base=args.base,
        distances=not args.no_distances,
        workers=args.workers,
        membership=records_membership(args),
    )
    lake = lake_path(args.lake)
    try:
        Lake.check_writable(lake)  # a file, a read-only or a foreign folder: one line, before anything is listed
    except LakeError as err:
        raise CliError(str(err)) from err
    if args.dask_address and args.task_runner != "dask":
        raise CliError("--dask-address needs --task-runner dask")
    try:
        source = spec.open()
        if spec.kind == "hub":
            # One request first: a wrong or unreachable endpoint is one message, not one failure per model.
            source.check_reachable()
    except HubError as err:
        hint = "" if err.kind == HUB_INVALID else " (check --endpoint or HF_ENDPOINT, and the network)"
        raise CliError(f"{err}{hint}") from None
    if args.task_runner == "dask":
        address = check_dask_scheduler(args.dask_address)
    models_bar = progress_bar(total=None, desc="models", unit="model")
    shards_bar = progress_bar(total=None, desc="shards", unit="shard")

    def on_model(outcome):
        models_bar.update(1)
        models_bar.set_postfix_str(f"{outcome.repo_id}: {outcome.status}")

    try:
        with models_bar, shards_bar:
            if args.task_runner == "dask":
                report = _run_on_dask(address, spec, families, str(lake), options)
            else:
                report = run_scan(
                    spec,
                    families,
                    str(lake),
                    options,
                    on_listed=lambda n: models_bar.reset(total=n),
                    on_model=on_model,
                    on_shard=lambda repo, shard: shards_bar.update(1),
                    require_models=True,
                )
    except NothingListed:
        if spec.kind == "local":
            raise CliError(
                f"nothing to scan: the local source {spec.location} has no model folders for "
                f"{_describe(families)} (expected DIR/ORG/NAME folders with weights)"
            ) from None
        raise CliError(f"nothing to scan: the {spec.kind} source lists no models for {_describe(families)}") from None
    except LakeError as err:
        raise CliError(str(err)) from err
    return report_scan(report, families, lake, selection.text if not selection.is_all else None)


def report_scan(report: ScanReport, families: dict[str, dict], lake: Path, layers: str | None = None) -> int:
    """The summary on stdout, one line per problem on stderr, and the exit code."""
    counts = report.counts()
    print(
        f"scan {report.scan_id}: listed {counts['listed']}, scanned {counts['scanned']}, "
        f"skipped {counts['skipped']} (already in the lake), unsupported {counts['unsupported']}, "
        f"gated {counts['gated']}, failed {counts['failed']}"
        f"  → lake {lake}"
    )
    if layers:
        print(f"  summaries cover layers {layers!r} only (models.layer_selection)")
    for o in report.outcomes:
        if o.status in (Status.SCANNED, Status.SKIPPED) and "no distances to base" in o.reason:
            print(f"  {o.label}: {o.reason}")
    sys.stdout.flush()
    for family, refs in report.listings.items():
        if not refs and len(families) > 1:
            print(
                f"wwhub scan: warning: family {family} lists no models ({_describe({'*': families[family]})})",
                file=sys.stderr,
            )
    for problem in report.problems():
        print(f"wwhub scan: {problem}", file=sys.stderr)
    missing = [o for o in report.outcomes if o.status == Status.FAILED]
    if missing and len(missing) == len(report.outcomes) and all(o.error_kind == HUB_NOT_FOUND for o in missing):
        # Every repo asked for is missing: a typo, not a partial scan.
        return EXIT_BAD_INPUT
    return report.exit_code


def _describe(families: dict[str, dict]) -> str:
    parts = []
    for name, query in families.items():
        keys = ", ".join(f"{k}={v}" for k, v in query.items()) or "everything"
        parts.append(keys if name == "*" else f"family {name} ({keys})")
    return "; ".join(parts)


def check_dask_scheduler(address: str | None) -> str:
    """The scheduler's address, after a TCP connection to it succeeded (so a missing scheduler is one line in
    seconds, not a Prefect flow that times out)."""
    if not address:
        raise CliError("--task-runner dask needs --dask-address tcp://HOST:PORT (an existing Dask scheduler)")
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise CliError(f"--dask-address {address!r}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((parts.hostname, port), timeout=DASK_CONNECT_SECONDS).close()
    except OSError as err:
        reason = err.strerror or err.__class__.__name__
        raise CliError(
            f"--dask-address {address}: no Dask scheduler answers ({reason}); start one (`dask scheduler`) "
            "or fix the address"
        ) from None
    return address


def _run_on_dask(address: str, spec: SourceSpec, families: dict[str, dict], lake: str, options: ScanOptions):
    """The same scan loop as a Prefect flow whose per-model tasks run on an existing Dask cluster (prefect-dask)."""
    from ..scan import make_task_runner, scan_families

    runner = make_task_runner("dask", address)
    return scan_families.with_options(task_runner=runner)(families, lake, spec, options)
