"""The scan, as plain functions: list → consult the ledger → scan what changed → record. One loop for every path.

``run_scan`` is the loop behind ``wwhub scan``, the demo, and the Prefect flows (``flows/scan.py``), which hand it a
:class:`ModelExecutor` that runs each model as a Prefect task (threads or Dask) instead of on a local thread pool.
Nothing here imports Prefect, so a one-off ``wwhub scan`` never pays for a Prefect server. Each function takes and
returns plain values.

The listing is the ledger's input: a hub family's listing names every repo with its commit sha (``expand``), and
the lake's ``models`` table, read once, says which commits are already scanned; those are skipped before any
per-repo request, task or lake lookup, so a night where nothing changed costs the listing pages.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from .. import __version__
from ..analysis.model_analysis import default_layer_workers, usable_cores
from ..analysis.selection import LayerSelection
from ..lake import Lake
from ..leaderboard.correlations import refresh_correlations
from ..sources import HubError, ModelRef
from ..weights import WeightsError
from .families import admission_warnings
from .ledger import Ledger
from .model_scan import ModelJob, release_bases
from .options import INFERRED_FAMILY, ScanOptions, SourceSpec
from .outcomes import ModelOutcome, ScanReport
from .status import Status
from .workdirs import remove_dead_workdirs

logger = logging.getLogger(__name__)


class NothingListed(ValueError):
    """The families list no models at all."""


def list_models(spec: SourceSpec, query: dict, family: str | None) -> list[ModelRef]:
    return spec.open().list_family(query, family)


class ModelExecutor(Protocol):
    """How a scan's models run: :class:`ThreadExecutor` here, Prefect tasks in flows/scan.py."""

    def run(self, job: ModelJob, refs: list[ModelRef]) -> Iterator[tuple[ModelRef, ModelOutcome | Exception]]:
        """Each ref with its outcome (or the exception a bug raised), in any order, as they complete."""
        ...


def record_scan(lake_root: str, report: ScanReport, families: list[str], source: str, membership: bool) -> None:
    """One commit: the ``scans`` row, an ``attempts`` row per model the scan could not scan (and did not record in
    ``models``), and, with ``membership``, what each named family listed; then the derived ``correlations`` of the
    families it wrote models with reported values of."""
    report.ended_at = report.ended_at or dt.datetime.now(dt.UTC)
    counts = report.counts()
    scans_row = dict(
        scan_id=report.scan_id,
        started_at=report.started_at,
        ended_at=report.ended_at,
        families=",".join(families),
        source=source,
        errors=json.dumps(report.problems()),
        wwhub_version=__version__,
        seconds=(report.ended_at - report.started_at).total_seconds(),
        **counts,
    )
    attempts = [
        dict(
            repo_id=o.repo_id,
            revision=o.revision,
            family=o.family,
            scan_id=report.scan_id,
            attempted_at=report.ended_at,
            status=str(o.status),
            reason=o.reason,
            error_kind=o.error_kind,
        )
        for o in report.outcomes
        if not o.committed and o.status != Status.SKIPPED
    ]
    memberships = [
        dict(
            scan_id=report.scan_id,
            family=family,
            repo_id=ref.repo_id,
            revision=ref.revision,
            rank=rank,
            listed_at=report.started_at,
        )
        for family, refs in report.listings.items()
        if membership and family != INFERRED_FAMILY
        for rank, ref in enumerate(refs, start=1)
    ]
    Lake(lake_root).commit({"scans": [scans_row], "attempts": attempts, "memberships": memberships})
    written = {o.repo_id for o in report.outcomes if o.committed}
    if written:
        refresh_correlations(lake_root, written)  # commits nothing when no point changed


def new_scan_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class ThreadExecutor:
    """Models side by side on a bounded local thread pool (BLAS pinned to one thread per eigensolve, so models ≤
    cores keeps the machine busy without oversubscription). Ctrl-C: queued models are dropped and running ones stop
    at their next shard (nothing of them is written)."""

    def __init__(self, workers: int, on_shard: Callable[[str, str], None] | None = None):
        self.workers = workers
        self.on_shard = on_shard

    def run(self, job: ModelJob, refs: list[ModelRef]) -> Iterator[tuple[ModelRef, ModelOutcome | Exception]]:
        interrupted = threading.Event()

        def shard_done(repo_id: str, shard: str) -> None:
            if interrupted.is_set():
                raise KeyboardInterrupt
            if self.on_shard is not None:
                self.on_shard(repo_id, shard)

        pool = ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(refs))), thread_name_prefix="wwhub-model")
        futures = [pool.submit(job.run, ref, shard_done) for ref in refs]
        try:
            for ref, future in zip(refs, futures, strict=True):
                try:
                    yield ref, future.result()
                except Exception as err:  # noqa: BLE001 - a bug in one model's scan is recorded, the others go on
                    yield ref, err
        except BaseException:
            interrupted.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def list_families(spec: SourceSpec, families: dict[str, dict], report: ScanReport) -> list[ModelRef]:
    """Every family's refs (pinned by the listing where the source can), in listing order, each commit once: a
    commit two families list is scanned once, in the family that lists it first (families.yaml's order), while
    each family's membership keeps all it listed. A family that cannot be listed is recorded in the report and the
    others go on."""
    for warning in admission_warnings(families):
        logger.warning("%s", warning)
    refs: dict[tuple[str, str], ModelRef] = {}
    for family, query in families.items():
        try:
            listed = list_models(spec, query, None if family == INFERRED_FAMILY else family)
        except (HubError, WeightsError) as err:
            report.list_errors.append(f"{family}: {err}")
            continue
        report.listings[family] = listed
        for ref in listed:
            first = refs.setdefault((ref.repo_id, ref.revision), ref)
            if first is not ref:
                logger.warning(
                    "family %s: %s listed before, in %s: scanned once, there", family, ref.repo_id, first.family
                )
    return list(refs.values())


def _layer_workers(options: ScanOptions, models: int) -> ScanOptions:
    """Cores left over by the models scanned side by side go to their layers (one model alone gets them all)."""
    if options.layer_workers is not None:
        return options
    model_workers = max(1, min(options.workers, models))
    return replace(options, layer_workers=max(1, min(default_layer_workers(), usable_cores() // model_workers)))


def run_scan(
    spec: SourceSpec,
    families: dict[str, dict],
    lake_root: str,
    options: ScanOptions,
    *,
    executor: ModelExecutor | None = None,
    on_listed: Callable[[int], None] | None = None,
    on_model: Callable[[ModelOutcome], None] | None = None,
    on_shard: Callable[[str, str], None] | None = None,
    require_models: bool = False,
) -> ScanReport:
    """The scan: list the families, skip every listed commit the lake already holds, scan the rest with
    ``executor`` (default: ``options.workers`` local threads), record. With ``require_models``, a listing that finds
    nothing (and failed nowhere) raises NothingListed before anything is written (the lake is created, or
    migrated, only after that; LakeError when it cannot be written)."""
    report = ScanReport(new_scan_id(), dt.datetime.now(dt.UTC))
    for folder in remove_dead_workdirs():
        logger.info("removed %s, left behind by a scan that was killed", folder)
    ModelJob(spec, str(lake_root), options, report.scan_id).begin()
    refs = list_families(spec, families, report)
    if require_models and not refs and not report.list_errors:
        raise NothingListed(f"no models: {', '.join(f'family {f}' if f != '*' else 'the query' for f in families)}")
    Lake.for_writing(lake_root)  # a read-only or misplaced lake fails here, before anything is analyzed
    selection = LayerSelection.parse(options.layers).text
    ledger = Ledger.read(lake_root) if not options.force else Ledger([])
    if on_listed is not None:
        on_listed(len(refs))
    todo = []
    for ref in refs:
        if ledger.has(ref.repo_id, ref.revision, selection):
            _add(
                report,
                ModelOutcome(ref.repo_id, ref.revision, ref.family, Status.SKIPPED, "already in the lake"),
                on_model,
            )
        else:
            todo.append(ref)
    options = _layer_workers(options, len(todo))
    job = ModelJob(spec, str(lake_root), options, report.scan_id)
    executor = executor or ThreadExecutor(options.workers, on_shard)
    try:
        for ref, result in executor.run(job, todo):
            if isinstance(result, Exception):
                logger.error("%s: unexpected %s: %s", ref.repo_id, result.__class__.__name__, result)
                reason = f"unexpected {result.__class__.__name__}: {result}"
                result = ModelOutcome(ref.repo_id, ref.revision, ref.family, Status.FAILED, reason)
            _add(report, result, on_model)
    except KeyboardInterrupt:
        # Queued models are dropped, running ones stop at their next shard, completed ones stay in the lake (each
        # model is one commit), and the scans row says what happened.
        report.interrupted = True
        record_scan(lake_root, report, list(families), spec.kind, options.membership)
        raise
    finally:
        release_bases(report.scan_id)
    record_scan(lake_root, report, list(families), spec.kind, options.membership)
    return report


def _add(report: ScanReport, outcome: ModelOutcome, on_model: Callable[[ModelOutcome], None] | None) -> None:
    report.outcomes.append(outcome)
    if on_model is not None:
        on_model(outcome)
