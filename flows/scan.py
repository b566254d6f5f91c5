"""Prefect flows: thin recipes over the scan loop of ``flows/scanning/loop.py`` (list → ledger → scan models → record).

The flows run ``run_scan`` itself, the loop ``wwhub scan`` runs, with an executor that submits one Prefect task per
model that needs scanning (retried with backoff, concurrency bounded by the task runner: threads, or prefect-dask
on an existing cluster). Models the lake already holds at their listed commit never become tasks. Each model is
committed to the lake by the task that scanned it, in one atomic step. Importing this module imports Prefect; the
CLI's default path does not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from .analysis.model_analysis import usable_cores
from .scanning.loop import run_scan
from .scanning.model_scan import ModelJob
from .scanning.options import ScanOptions, SourceSpec
from .scanning.outcomes import ModelOutcome, ScanReport
from .sources import ModelRef

# Models scanned at once by the default runner: one per core, each eigensolve on one BLAS thread.
DEFAULT_WORKERS = min(4, usable_cores())
# The progress artifact is updated at most this often (each update is a request to the Prefect API).
PROGRESS_EVERY_SECONDS = 2.0


@task(
    name="scan-model",
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NO_CACHE,  # the lake is the ledger: a model already scanned never becomes a task
    task_run_name="scan {ref.repo_id}@{ref.revision:.12}",
)
def scan_model_task(job: ModelJob, ref: ModelRef) -> ModelOutcome:
    # scan_model skips a commit already in the lake, so a retried or rescheduled task is harmless. Its bases are
    # fetched once per scan per process (each Dask worker fetches the ones its models need).
    return job.run(ref)


class PrefectExecutor:
    """Each model a Prefect task, on the flow's task runner (a thread pool, or Dask workers)."""

    def run(self, job: ModelJob, refs: list[ModelRef]) -> Iterator[tuple[ModelRef, ModelOutcome | Exception]]:
        futures = [scan_model_task.submit(job, ref) for ref in refs]
        for ref, future in zip(refs, futures, strict=True):
            try:
                yield ref, future.result()
            except Exception as err:  # noqa: BLE001 - retries exhausted: recorded as failed, the scan completes
                yield ref, err


def _scan(source: SourceSpec, families: dict[str, dict], lake: str, options: ScanOptions, progress: bool) -> ScanReport:
    logger = get_run_logger()
    on_listed, on_model = _progress_artifact() if progress else (None, None)
    report = run_scan(
        source, families, lake, options, executor=PrefectExecutor(), on_listed=on_listed, on_model=on_model
    )
    counts = report.counts()
    logger.info(", ".join(f"{name} {count}" for name, count in counts.items()))
    for problem in report.problems():
        logger.warning("%s", problem)
    return report


def _progress_artifact(
    every_seconds: float = PROGRESS_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic
) -> tuple[Callable[[int], None], Callable[[ModelOutcome], None]]:
    """Callbacks that keep a progress artifact: models done of models listed. Each update is a request to the
    Prefect API, so it is sent at most every ``every_seconds`` and once at the end: the thousands of unchanged
    models of a quiet night, decided in a burst, cost one or two requests, not one each."""
    state = {"id": None, "total": 0, "done": 0, "sent": -math.inf}

    def on_listed(total: int) -> None:
        state["total"] = total
        description = f"models done of {total}"
        state["id"] = create_progress_artifact(0.0, key="wwhub-scan-progress", description=description)

    def on_model(outcome: ModelOutcome) -> None:
        state["done"] += 1
        now = clock()
        if state["done"] >= state["total"] or now - state["sent"] >= every_seconds:
            state["sent"] = now
            update_progress_artifact(state["id"], 100.0 * state["done"] / max(1, state["total"]))

    return on_listed, on_model


@flow(name="scan-family", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))
def scan_family(
    family: str,
    query: dict,
    lake: str,
    source: SourceSpec | None = None,
    options: ScanOptions | None = None,
) -> ScanReport:
    """Scan one family (a hub query: author, search, filter, sort, limit, or explicit repos) into the lake."""
    return _scan(source or SourceSpec(), {family: query}, lake, options or ScanOptions(), progress=False)


@flow(name="scan-models", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS))
def scan_models(
    repos: list[str], lake: str, source: SourceSpec | None = None, options: ScanOptions | None = None
) -> ScanReport:
    """Scan explicit repo ids (``org/name[@revision]``); families are inferred from the names."""
    return _scan(source or SourceSpec(), {"*": {"repos": repos}}, lake, options or ScanOptions(), progress=False)


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
    options: ScanOptions | None = None,
    progress: bool = True,
) -> ScanReport:
    """Scan several families in one run (the runner is chosen by the caller with ``with_options``)."""
    return _scan(source or SourceSpec(), families, lake, options or ScanOptions(), progress=progress)
