"""Prefect flows: thin recipes over the plain functions of ``flows/pipeline.py``.

``scan_family`` and ``scan_models`` list a family (or take repo ids), submit one task per model (retried with
backoff on transient hub errors, concurrency bounded by the task runner), then record the scan. Each model is
committed to the lake by the task that scanned it, in one atomic step. Importing this module imports Prefect; the
CLI's default path does not.
"""

from __future__ import annotations

import datetime as dt
import re

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from . import __version__
from .analyze import usable_cores
from .families import load_families
from .lake import Lake
from .lake.esd import DEFAULT_ESD
from .nightly import changes_markdown, compare_snapshots, lake_snapshot, refresh_exports
from .pipeline import (
    STATUS_SKIPPED,
    ModelOutcome,
    ScanReport,
    SourceSpec,
    base_models,
    list_models,
    new_scan_id,
    record_scan,
    scan_model,
)
from .report import leaderboard_data, metric_of, value_names
from .selection import LayerSelection
from .sources import ModelRef
from .workdirs import remove_dead_workdirs

_SHA = re.compile(r"^[0-9a-f]{40}$")

# Models scanned at once by the default runner: one per core, each eigensolve on one BLAS thread.
DEFAULT_WORKERS = min(4, usable_cores())


def model_task_key(context, parameters) -> str | None:
    """Prefect's cache key for a model scan: ``repo_id@commit`` (a second guard behind the lake ledger).

    Only a pinned commit sha is a key (a branch name moves), the lake path is part of it so that two lakes do not
    share results, and ``force`` disables the cache."""
    ref, lake = parameters["ref"], parameters["lake"]
    if parameters.get("force") or not _SHA.match(ref.revision):
        return None
    selection = LayerSelection.parse(parameters.get("layers")).text
    # Only a commit the ledger holds is cached: a wiped or new lake must never be answered from Prefect's cache.
    if not Lake(lake).has_model(ref.repo_id, ref.revision, selection):
        return None
    return f"{ref.repo_id}@{ref.revision}:{lake}:{selection}"


@task(name="list-family", retries=3, retry_delay_seconds=[2, 10, 30], cache_policy=NO_CACHE)
def list_family_task(spec: SourceSpec, query: dict, family: str | None) -> list[ModelRef]:
    return list_models(spec, query, family)


@task(
    name="scan-model",
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_key_fn=model_task_key,
    persist_result=True,
    task_run_name="scan {ref.repo_id}@{ref.revision:.12}",
)
def scan_model_task(
    spec: SourceSpec,
    ref: ModelRef,
    lake: str,
    options: dict,
    force: bool,
    scan_id: str,
    esd: str = DEFAULT_ESD,
    layers: str = "",
    base: str | None = None,
    distances: bool = True,
) -> ModelOutcome:
    # The lake is the ledger: scan_model skips a commit already there, so a retried or repeated task is harmless.
    # Tasks may run on other machines and share no files: each fetches the base its model names (the threads path
    # shares one download per base among the models of a scan).
    bases = base_models(spec, options) if distances else None
    try:
        return scan_model(
            spec, ref, lake, options, force=force, scan_id=scan_id, esd=esd, layers=layers, bases=bases, base=base
        )
    finally:
        if bases is not None:
            bases.close()


@task(name="record-scan", cache_policy=NO_CACHE)
def record_scan_task(lake: str, report: ScanReport, families: list[str], source: str) -> None:
    record_scan(lake, report, families, source)


def _scan(
    spec: SourceSpec,
    families: dict[str, dict],
    lake: str,
    options: dict,
    force: bool,
    progress: bool = False,
    esd: str = DEFAULT_ESD,
    layers: str = "",
    base: str | None = None,
    distances: bool = True,
) -> ScanReport:
    logger = get_run_logger()
    Lake.for_writing(lake)  # a read-only or misplaced lake fails here, before any task runs
    report = ScanReport(new_scan_id(), dt.datetime.now(dt.UTC))
    remove_dead_workdirs()
    refs: list[ModelRef] = []
    for family, query in families.items():
        try:
            refs.extend(list_family_task(spec, query, None if family == "*" else family))
        except Exception as err:  # noqa: BLE001 - a family that cannot be listed is recorded, the rest go on
            report.list_errors.append(f"family {family}: {err}")
    report.listed = len(refs)
    logger.info("listed %d models in %d families", len(refs), len(families))
    progress_id = (
        create_progress_artifact(0.0, key="wwhub-scan-progress", description=f"models scanned of {len(refs)}")
        if progress
        else None
    )
    futures = [
        scan_model_task.submit(spec, ref, lake, options, force, report.scan_id, esd, layers, base, distances)
        for ref in refs
    ]
    for done, (ref, future) in enumerate(zip(refs, futures, strict=True), start=1):
        try:
            outcome = future.result()
            if outcome.scan_id and outcome.scan_id != report.scan_id:
                # A Prefect cache hit: an earlier run scanned this commit; nothing was done now.
                outcome.status, outcome.reason = STATUS_SKIPPED, f"cached result of scan {outcome.scan_id}"
            report.outcomes.append(outcome)
        except Exception as err:  # noqa: BLE001 - retries exhausted: recorded as failed, the scan completes
            report.outcomes.append(ModelOutcome(ref.repo_id, ref.revision, ref.family, "failed", str(err)))
        if progress_id is not None:
            update_progress_artifact(progress_id, 100.0 * done / len(refs))
    record_scan_task(lake, report, list(families), spec.kind)
    logger.info(
        "scanned %d, skipped %d, failed %d",
        report.count("scanned", "partial"),
        report.count("skipped"),
        report.count("failed", "unsupported") + len(report.list_errors),
    )
    return report


@flow(name="scan-family", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))
def scan_family(
    family: str,
    query: dict,
    lake: str,
    source: SourceSpec | None = None,
    options: dict | None = None,
    force: bool = False,
) -> ScanReport:
    """Scan one family (a hub query: author, search, filter, sort, limit, or explicit repos) into the lake."""
    return _scan(source or SourceSpec(), {family: query}, lake, options or {}, force)


@flow(name="scan-models", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))
def scan_models(
    repos: list[str], lake: str, source: SourceSpec | None = None, options: dict | None = None, force: bool = False
) -> ScanReport:
    """Scan explicit repo ids (``org/name[@revision]``); families are inferred from the names."""
    return _scan(source or SourceSpec(), {"*": {"repos": repos}}, lake, options or {}, force)


def make_task_runner(task_runner: str = "threads", dask_address: str | None = None, workers: int = DEFAULT_WORKERS):
    """``threads`` (bounded ThreadPoolTaskRunner) or ``dask`` (prefect-dask against an existing cluster)."""
    if task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=max(1, workers))
    if task_runner == "dask":
        if not dask_address:
            raise ValueError("task_runner='dask' needs dask_address (tcp://HOST:PORT of an existing scheduler)")
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    raise ValueError(f"task_runner={task_runner!r}: expected 'threads' or 'dask'")


@flow(name="scan-families")
def scan_families(
    families: dict[str, dict],
    lake: str,
    source: SourceSpec | None = None,
    options: dict | None = None,
    force: bool = False,
    progress: bool = True,
    esd: str = DEFAULT_ESD,
    layers: str = "",
    base: str | None = None,
    distances: bool = True,
) -> ScanReport:
    """Scan several families in one run (the runner is chosen by the caller with ``with_options``): ``layers``
    selects layers, models are compared with ``base`` (default: the base_model their card names) unless not
    ``distances``."""
    return _scan(
        source or SourceSpec(),
        families,
        lake,
        options or {},
        force,
        progress=progress,
        esd=esd,
        layers=layers,
        base=base,
        distances=distances,
    )


@flow(name="nightly-scan", log_prints=True)
def nightly_scan(
    families_file: str = "families.yaml",
    lake: str = "wwhub-lake",
    metric: str = "accuracy",
    source: str = "hub",
    endpoint: str | None = None,
    task_runner: str = "threads",
    dask_address: str | None = None,
    workers: int = DEFAULT_WORKERS,
    force: bool = False,
    options: dict | None = None,
) -> dict:
    """Every night: scan new commits of every family in ``families_file``, refresh the leaderboard exports and
    plots in LAKE/reports, and publish artifacts (progress, leaderboard table, what changed since last night)."""
    families = load_families(families_file)
    spec = SourceSpec(source, endpoint)
    before = lake_snapshot(lake)
    runner = make_task_runner(task_runner, dask_address, workers)
    report = scan_families.with_options(task_runner=runner)(families, lake, spec, options or {}, force)
    after = lake_snapshot(lake)
    changes = compare_snapshots(before, after)
    exports = refresh_exports(lake, metric)
    board, _ = leaderboard_data(lake, metric=metric)
    names = value_names(metric_of(board, metric))
    columns = ["family", "repo_id", "value", "source", "rank_by_value", "alpha", "alpha_weighted", "num_traps"]
    create_table_artifact(
        [{names.get(c, c): row.get(c) for c in columns} for row in board],
        key="wwhub-leaderboard",
        description=f"family leaderboards ({metric})",
    )
    failed = [
        f"{o.repo_id}: {o.status}: {o.reason}"
        for o in report.outcomes
        if o.status in ("failed", "partial", "unsupported")
    ] + report.list_errors
    create_markdown_artifact(
        changes_markdown(changes, report.count("scanned", "partial"), report.count(STATUS_SKIPPED), failed),
        key="wwhub-nightly-changes",
        description="what changed since the previous night",
    )
    return {
        "scan_id": report.scan_id,
        "listed": report.listed,
        "scanned": report.count("scanned", "partial"),
        "skipped": report.count(STATUS_SKIPPED),
        "failed": len(failed),
        "changed": changes.scanned_repos,
        "exports": [str(p) for p in exports],
        "wwhub_version": __version__,
    }
