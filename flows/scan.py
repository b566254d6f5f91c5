"""Prefect flows: thin recipes over the plain functions of ``flows/pipeline.py``.

``scan_family`` and ``scan_models`` list a family (or take repo ids), submit one task per model (retried with
backoff on transient hub errors, concurrency bounded by the task runner), then record the scan and rebuild the
DuckDB catalog. Importing this module imports Prefect; the CLI's default path does not.
"""

from __future__ import annotations

import datetime as dt
import os

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from .hub import ModelRef
from .pipeline import ModelOutcome, ScanReport, SourceSpec, list_models, new_scan_id, record_scan, scan_model

# Models scanned at once by the default runner: one per core, each eigensolve on one BLAS thread.
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def model_task_key(context, parameters) -> str:
    ref = parameters["ref"]
    return f"{ref.repo_id}@{ref.revision}"


@task(name="list-family", retries=3, retry_delay_seconds=[2, 10, 30], cache_policy=NO_CACHE)
def list_family_task(spec: SourceSpec, query: dict, family: str | None) -> list[ModelRef]:
    return list_models(spec, query, family)


@task(
    name="scan-model",
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NO_CACHE,
    task_run_name="scan {ref.repo_id}@{ref.revision:.12}",
)
def scan_model_task(
    spec: SourceSpec, ref: ModelRef, lake: str, options: dict, force: bool, scan_id: str
) -> ModelOutcome:
    # The lake is the ledger: scan_model skips a commit already there, so a retried or repeated task is harmless.
    return scan_model(spec, ref, lake, options, force=force, scan_id=scan_id)


@task(name="record-scan", cache_policy=NO_CACHE)
def record_scan_task(lake: str, report: ScanReport, families: list[str], source: str) -> None:
    record_scan(lake, report, families, source)


def _scan(spec: SourceSpec, families: dict[str, dict], lake: str, options: dict, force: bool) -> ScanReport:
    logger = get_run_logger()
    report = ScanReport(new_scan_id(), dt.datetime.now(dt.UTC))
    refs: list[ModelRef] = []
    for family, query in families.items():
        try:
            refs.extend(list_family_task(spec, query, None if family == "*" else family))
        except Exception as err:  # noqa: BLE001 - a family that cannot be listed is recorded, the rest go on
            report.list_errors.append(f"family {family}: {err}")
    report.listed = len(refs)
    logger.info("listed %d models in %d families", len(refs), len(families))
    futures = [scan_model_task.submit(spec, ref, lake, options, force, report.scan_id) for ref in refs]
    for ref, future in zip(refs, futures, strict=True):
        try:
            report.outcomes.append(future.result())
        except Exception as err:  # noqa: BLE001 - retries exhausted: recorded as failed, the scan completes
            report.outcomes.append(ModelOutcome(ref.repo_id, ref.revision, ref.family, "failed", str(err)))
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
