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
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import ww_core
from ww_core import FIT_OK

from . import __version__
from .analyze import ModelAnalysis, default_layer_workers, usable_cores
from .correlations import families_with_reported_values, refresh_correlations
from .describe import plan_layers
from .distance import BaseModels, DistanceOptions
from .families import admission_warnings
from .lake import Lake
from .lake.esd import DEFAULT_ESD, esd_row
from .ledger import Ledger
from .selection import LayerSelection, SelectionError
from .sources import HUB_GATED, HUB_UNAVAILABLE, CacheSource, HubError, HubSettings, HubSource, LocalSource, ModelRef
from .sources.transport import rate_limiter
from .status import FAILED, GOOD, PROBLEMS, Status
from .weights import MatrixStream, ModelPlan, Shard, UnsupportedWeights, WeightsError, merge_plans
from .workdirs import new_workdir, remove_dead_workdirs

logger = logging.getLogger(__name__)

# An adapter's family, by default: its inferred or given family name with this suffix (README: adapters).
ADAPTER_FAMILY_SUFFIX = "-adapters"
# The family name of models listed without one (explicit repos, a bare query): each takes its inferred family.
INFERRED_FAMILY = "*"


@dataclass(frozen=True)
class SourceSpec:
    """How to reach a source, as plain values (so a Dask worker can rebuild it)."""

    kind: str = "hub"  # hub | local | cache
    location: str | None = None  # endpoint URL, local folder, or cache folder
    allow_pickle: bool = True
    hub: HubSettings | None = None  # timeouts and retries (None: WWHUB_HUB_* variables, else defaults)
    # A local base checkpoint that adapters are merged into (--merge-base): W + ΔW instead of ΔW alone.
    merge_base: str | None = None
    gguf_file: str | None = None  # the file to analyze in GGUF-only repos (--gguf-file); None: gguf_plan picks

    def open(self):
        if self.kind == "hub":
            return HubSource(
                endpoint=self.location, settings=self.hub, allow_pickle=self.allow_pickle, gguf_file=self.gguf_file
            )
        if self.kind == "local":
            return LocalSource(self.location, self.gguf_file, self.allow_pickle)
        if self.kind == "cache":
            return CacheSource(self.location, self.gguf_file, self.allow_pickle)
        raise ValueError(f"source kind {self.kind!r}: expected hub, local or cache")


class NothingListed(ValueError):
    """The families list no models at all."""


# What a scan computes unless told otherwise. float32: as exact as the fits need (alphas within ~1e-5 of float64 on
# real layers, family ranks unchanged) and faster; `wwhub analyze` stays float64 (README "Precision").
SCAN_DEFAULTS = {"precision": "float32"}


@dataclass(frozen=True)
class ScanOptions:
    """Everything a scan is asked to do besides where models come from and where they go (plain values: they travel
    to Prefect tasks and Dask workers). ``analysis``: ww_core's options (``SCAN_DEFAULTS`` under them); ``esd``: what
    of the eigenvalues is kept (flows/lake/esd.py); ``layers``: the ``--layers`` selection ('' = all); ``base``: the
    base every model is compared with (None: the base_model its card names), unless not ``distances``;
    ``workers``: models scanned side by side on the local runner; ``layer_workers``: layers at once per model (None:
    the cores the models leave over); ``membership``: record each family's listing (families.yaml, named queries)."""

    analysis: dict = field(default_factory=dict)
    force: bool = False
    esd: str = DEFAULT_ESD
    layers: str = ""
    base: str | None = None
    distances: bool = True
    workers: int = 1
    layer_workers: int | None = None
    membership: bool = True

    @property
    def analysis_options(self) -> dict:
        return {**SCAN_DEFAULTS, **self.analysis}


@dataclass
class ModelOutcome:
    repo_id: str
    revision: str
    family: str
    status: Status
    reason: str = ""
    num_layers: int = 0
    num_shards: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    scan_id: str = ""
    error_kind: str = ""  # for a failure before any weight was read: HubError.kind (not_found, gated, ...)
    committed: bool = False  # a models row was written (else a failure is recorded as an attempt)

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision[:12]}"


@dataclass
class ScanReport:
    """What one scan did: every listed model's outcome, and what its families listed. Every summary (the CLI's,
    the Prefect log and artifacts, the ``scans`` row) is derived from :meth:`counts` and :meth:`problems`."""

    scan_id: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    outcomes: list[ModelOutcome] = field(default_factory=list)
    list_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    listings: dict[str, list[ModelRef]] = field(default_factory=dict)  # family → refs in listing order

    @property
    def listed(self) -> int:
        return sum(len(refs) for refs in self.listings.values())

    def count(self, *statuses: Status) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        """listed, scanned (scanned or partial), skipped (already in the lake), unsupported, gated, failed (failed
        or unavailable, and families that could not be listed)."""
        return {
            "listed": self.listed,
            "scanned": self.count(*GOOD),
            "skipped": self.count(Status.SKIPPED),
            "unsupported": self.count(Status.UNSUPPORTED),
            "gated": self.count(Status.GATED),
            "failed": self.count(*FAILED) + len(self.list_errors),
        }

    def problems(self) -> list[str]:
        """One line per family that could not be listed and per model that was not scanned whole, with why."""
        lines = [f"family {error}" for error in self.list_errors]
        for o in self.outcomes:
            if o.status in PROBLEMS or o.status == Status.UNSUPPORTED:
                reason = o.reason if o.reason.startswith(o.repo_id) else f"{o.label}: {o.reason}"
                lines.append(f"{o.status}: {reason}")
        if self.interrupted:
            lines.append(f"interrupted after {len(self.outcomes)} of {self.listed} models")
        return lines

    @property
    def exit_code(self) -> int:
        # A model skipped as asked (e.g. --no-pickle) is recorded with its reason but is not a failure.
        return 1 if self.count(*PROBLEMS) or self.list_errors else 0

    @property
    def touched_families(self) -> set[str]:
        """Families of the models this scan wrote to the lake."""
        return {o.family for o in self.outcomes if o.committed}


def list_models(spec: SourceSpec, query: dict, family: str | None) -> list[ModelRef]:
    return spec.open().list_family(query, family)


def _evals_rows(ref: ModelRef, evals) -> list[dict]:
    return [dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family, **asdict(e)) for e in evals]


def _model_row(
    ref: ModelRef,
    outcome: ModelOutcome,
    source: str,
    options: dict,
    facts: dict,
    card_status: str,
    summary: ww_core.ModelSummary | None,
) -> dict:
    row = dict(
        repo_id=ref.repo_id,
        revision=ref.revision,
        family=ref.family,
        status=str(outcome.status),
        reason=outcome.reason,
        scanned_at=dt.datetime.now(dt.UTC),
        scan_id=outcome.scan_id,
        wwhub_version=__version__,
        source=source,
        options=json.dumps(options, sort_keys=True),
        num_shards=outcome.num_shards,
        bytes_read=outcome.bytes_read,
        seconds=outcome.seconds,
        card_status=card_status,
        **facts,
    )
    if summary is not None:
        row.update(summary.as_dict())
    return row


@dataclass(frozen=True)
class ModelJob:
    """One scan's per-model work as plain values: what an executor (threads, a Prefect task, a Dask worker) needs
    to scan one model of the scan."""

    spec: SourceSpec
    lake_root: str
    options: ScanOptions
    scan_id: str

    def run(self, ref: ModelRef, on_shard: Callable[[str, str], None] | None = None) -> ModelOutcome:
        return scan_model(self, ref, on_shard)

    def begin(self) -> None:
        """Count this scan's rate-limit waits afresh in this process (a no-op once begun: workers call it too)."""
        if self.spec.kind == "hub":
            source = self.spec.open()
            rate_limiter(source.endpoint, source.settings).begin(self.scan_id)


class ModelExecutor(Protocol):
    """How a scan's models run: :class:`ThreadExecutor` here, Prefect tasks in flows/scan.py."""

    def run(self, job: ModelJob, refs: list[ModelRef]) -> Iterator[tuple[ModelRef, ModelOutcome | Exception]]:
        """Each ref with its outcome (or the exception a bug raised), in any order, as they complete."""
        ...


def scan_model(job: ModelJob, ref: ModelRef, on_shard: Callable[[str, str], None] | None = None) -> ModelOutcome:
    """Scan one model into the lake, streaming one shard at a time (plus one prefetched), deleting each shard after
    it is analyzed. Never raises for a bad model: the outcome says why, and it is recorded in the lake (a models
    row when the commit's files were the problem; an ``attempts`` row, written by :func:`record_scan`, when the
    hub was). Everything the model writes is one lake commit.

    A model whose card names a ``base_model`` (or every model but the options' ``base`` itself) also gets its
    per-layer distances to that base in the ``distances`` table; a base that cannot be had is noted in the model's
    reason and the scan goes on."""
    started = time.perf_counter()
    job.begin()
    source = job.spec.open()
    lake = Lake(job.lake_root)
    try:
        ref = source.resolve(ref)
        selection = LayerSelection.parse(job.options.layers).text
        if not job.options.force and lake.has_model(ref.repo_id, ref.revision, selection):
            return ModelOutcome(
                ref.repo_id, ref.revision, ref.family, Status.SKIPPED, "already in the lake", scan_id=job.scan_id
            )
        description = source.describe(ref)
    except Exception as err:  # noqa: BLE001 - a model that cannot be described is recorded, never ends the scan
        return _undescribed(job, lake, ref, err, time.perf_counter() - started)
    return _scan_described(job, lake, source, description, started, on_shard)


def _undescribed(job: ModelJob, lake: Lake, ref: ModelRef, err: Exception, seconds: float) -> ModelOutcome:
    """The outcome of a model that could not be described. A hub error (gated, gone, unavailable) is an attempt:
    nothing is written to ``models``, so it never shadows the model's last good scan; a commit whose files are the
    problem (no weights, unsupported, a bad index) gets its models row, so it is not retried every night."""
    if isinstance(err, HubError):
        status = {HUB_GATED: Status.GATED, HUB_UNAVAILABLE: Status.UNAVAILABLE}.get(err.kind, Status.FAILED)
        return ModelOutcome(
            ref.repo_id,
            ref.revision,
            ref.family,
            status,
            str(err),
            seconds=seconds,
            scan_id=job.scan_id,
            error_kind=err.kind,
        )
    status = Status.UNSUPPORTED if isinstance(err, UnsupportedWeights) else Status.FAILED
    reason = str(err)
    if not isinstance(err, WeightsError):
        logger.exception("%s@%s: unexpected error", ref.repo_id, ref.revision)
        reason = f"unexpected {err.__class__.__name__}: {err}"
    outcome = ModelOutcome(ref.repo_id, ref.revision, ref.family, status, reason, seconds=seconds, scan_id=job.scan_id)
    return _commit_failure(job, lake, ref, outcome, {}, "unknown")


def _commit_failure(
    job: ModelJob, lake: Lake, ref: ModelRef, outcome: ModelOutcome, facts: dict, card_status: str
) -> ModelOutcome:
    """Write the models row of a model whose commit could not be analyzed (no layers), and return the outcome."""
    row = _model_row(ref, outcome, job.spec.kind, job.options.analysis_options, facts, card_status, None)
    lake.commit_model(ref.repo_id, ref.revision, {"models": [row]})
    outcome.committed = True
    return outcome


def _plan_analysis(job: ModelJob, description, label: str) -> tuple[ModelPlan, ModelAnalysis]:
    """The plan to stream (an adapter merged into its base with --merge-base) and its analysis, with the layers
    ``--layers`` selects. Raises SelectionError when nothing is left to analyze."""
    plan = description.plan
    if job.spec.merge_base and plan.config.adapter_config is not None:
        plan = merge_plans(plan, Path(job.spec.merge_base))
    selection = LayerSelection.parse(job.options.layers)
    if not any(MatrixStream.unknown(shard) for shard in plan.shards):
        selection.select(layer for layer, _ in plan_layers(plan))
    options = dict(job.options.analysis_options, keep_evals=job.options.esd != "none")
    layer_workers = job.options.layer_workers or 1
    return plan, ModelAnalysis(plan, options, layer_workers, model=label, selection=selection)


def _scan_described(
    job: ModelJob, lake: Lake, source, description, started: float, on_shard: Callable[[str, str], None] | None
) -> ModelOutcome:
    ref = description.ref
    facts = {k: v for k, v in description.facts.items() if v is not None}
    label = f"{ref.repo_id}@{ref.revision[:12]}"
    facts["layer_selection"] = LayerSelection.parse(job.options.layers).text
    try:
        plan, analysis = _plan_analysis(job, description, label)
    except SelectionError as err:
        # Nothing to analyze as asked (like --no-pickle on a pickle-only repo): recorded, rescanned by a later run.
        outcome = ModelOutcome(ref.repo_id, ref.revision, ref.family, Status.UNSUPPORTED, str(err), scan_id=job.scan_id)
        return _commit_failure(job, lake, ref, outcome, facts, description.card_status)
    except Exception as err:  # noqa: BLE001 - a model that cannot be planned is recorded, the scan goes on
        if not isinstance(err, WeightsError | ValueError):
            logger.exception("%s: unexpected error planning the model", label)
        reason = f"{err.__class__.__name__}: {err}"
        outcome = ModelOutcome(ref.repo_id, ref.revision, ref.family, Status.FAILED, reason, scan_id=job.scan_id)
        return _commit_failure(job, lake, ref, outcome, facts, description.card_status)
    ref, facts = _adapter_identity(ref, plan, facts)
    comparison, base_note = None, ""
    # An adapter's rows are updates, not weights: only a merged adapter (W + dW) is compared with its base.
    if job.options.distances and (plan.config.adapter_config is None or plan.merge):
        bases = scan_bases(job)
        base = job.options.base or facts.get("base_model")
        comparison, base_note = bases.comparison(ref, plan, base, analysis.selection)
    streamed = _stream_shards(job, source, ref, plan, analysis, comparison, on_shard)
    reasons = streamed.errors + analysis.decoding_reasons() + [note for note in (plan.note, base_note) if note]
    if plan.merge:
        reasons.append(f"adapter merged into the base checkpoint {job.spec.merge_base}")
    if description.card_status not in ("ok", "missing"):
        reasons.append(f"card {description.card_status}")
    metrics = [row for _, row in streamed.rows]
    ok = sum(m.fit_status == FIT_OK for m in metrics)
    status = Status.FAILED if streamed.errors and ok == 0 else Status.PARTIAL if streamed.errors else Status.SCANNED
    outcome = ModelOutcome(
        ref.repo_id,
        ref.revision,
        ref.family,
        status,
        "; ".join(reasons),
        num_layers=len(metrics),
        num_shards=len(plan.shards),
        bytes_read=streamed.bytes_read,
        seconds=time.perf_counter() - started,
        scan_id=job.scan_id,
        committed=True,
    )
    facts.update(analysis.facts())
    key = dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family)
    model_row = _model_row(
        ref,
        outcome,
        job.spec.kind,
        job.options.analysis_options,
        facts,
        description.card_status,
        ww_core.summarize(metrics),
    )
    # One atomic commit: readers see the whole model (layers, esd, evals, distances, models row) or none of it.
    lake.commit_model(
        ref.repo_id,
        ref.revision,
        {
            "layers": [
                dict(key, shard=shard, **row.as_row(), **analysis.columns(row.name)) for shard, row in streamed.rows
            ],
            "esd": streamed.esd,
            "evals": _evals_rows(ref, description.evals),
            "distances": comparison.lake_rows(ref, streamed.distances) if comparison is not None else [],
            "models": [model_row],
        },
    )
    return outcome


@dataclass
class _Streamed:
    rows: list[tuple[str, ww_core.LayerMetrics]] = field(default_factory=list)  # (shard file, row)
    esd: list[dict] = field(default_factory=list)
    distances: list = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes_read: int = 0


def _stream_shards(job: ModelJob, source, ref: ModelRef, plan: ModelPlan, analysis, comparison, on_shard):
    """Fetch (the next shard prefetched), analyze, compare with the base, delete: shard by shard, at most two on
    disk. A shard that cannot be fetched or read fails its matrices alone."""
    streamed = _Streamed()
    esd_layers: list[tuple[ww_core.LayerMetrics, dict]] = []
    key = dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family)
    workdir = new_workdir()

    def fetch(shard: Shard) -> Path:
        # A base checkpoint's shard (--merge-base) is read where it lies; the model's own come from the source.
        return shard.location or source.fetch_shard(ref, shard, workdir)

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wwhub-prefetch") as prefetch:
            pending = prefetch.submit(fetch, plan.shards[0]) if plan.shards else None
            for index, shard in enumerate(plan.shards):
                future, pending = pending, None
                if index + 1 < len(plan.shards):
                    # Overlap the next download with this shard's eigensolves: at most two shards on disk.
                    pending = prefetch.submit(fetch, plan.shards[index + 1])
                result = _analyze_fetched(source, shard, index, future, analysis, comparison, streamed)
                if result.error:
                    streamed.errors.append(result.error)
                for row in result.rows:
                    streamed.rows.append((shard.filename, row))
                    if (stored := esd_row(key, row, job.options.esd)) is not None:
                        esd_layers.append((row, stored))
                    row.evals = row.rand_evals = None
                if on_shard is not None:
                    on_shard(ref.repo_id, shard.filename)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    leftover = analysis.finish()  # also sets every row's final layer_id
    if leftover is not None:
        streamed.errors.append(leftover.error)
        streamed.rows += [("", row) for row in leftover.rows]
    for row, stored in esd_layers:
        stored["layer_id"] = row.layer_id  # final only once every shard is in (depth order)
    streamed.esd = [stored for _, stored in esd_layers]
    return streamed


def _analyze_fetched(source, shard: Shard, index: int, future, analysis, comparison, streamed: _Streamed):
    """One shard's rows (and distances), the shard deleted afterwards when the source downloaded it."""
    prefix = f"shard {shard.filename}: "
    path = None
    try:
        path = future.result()
        streamed.bytes_read += path.stat().st_size
        result = analysis.analyze_shard(index, path, prefix)
        if comparison is not None:
            streamed.distances += comparison.compare_shard(index, path)
    except Exception as err:  # noqa: BLE001 - one bad shard never stops the model, nor the scan
        result = analysis.shard_failure(index, err, prefix)
    finally:
        if path is not None and shard.location is None and source.deletes_shards:
            source.release_shard(path)
    return result


def _adapter_identity(ref: ModelRef, plan: ModelPlan, facts: dict) -> tuple[ModelRef, dict]:
    """An adapter's base model comes from its adapter_config.json, and it joins its family's adapters (family name
    + ``-adapters``), so that adapters never mix silently with full models; merged into a base it is a model."""
    adapter = plan.config.adapter_config
    if adapter is None:
        return ref, facts
    base = adapter.get("base_model_name_or_path")
    if base:
        facts = dict(facts, base_model=str(base))
    if plan.merge or ref.family.endswith(ADAPTER_FAMILY_SUFFIX):
        return ref, facts
    return ModelRef(ref.repo_id, ref.revision, ref.family + ADAPTER_FAMILY_SUFFIX), facts


# The bases of the scan this process works for: each base fetched once per scan and shared by the models that
# name it, on a local thread pool and on each Dask worker alike. A new scan closes the previous scan's bases.
_bases: dict[tuple, BaseModels] = {}
_bases_lock = threading.Lock()


def scan_bases(job: ModelJob) -> BaseModels:
    """Where the models of ``job``'s scan find their bases (distances in the scan's precision)."""
    options = job.options.analysis_options
    key = (job.scan_id, job.spec, options.get("max_evals"), options["precision"])
    with _bases_lock:
        if key not in _bases:
            for stale in [k for k in _bases if k[0] != job.scan_id]:
                _bases.pop(stale).close()
            distance_options = DistanceOptions(max_evals=options.get("max_evals"), precision=options["precision"])
            _bases[key] = BaseModels(job.spec.open, distance_options)
        return _bases[key]


def release_bases(scan_id: str) -> None:
    """Delete the base downloads of a finished scan (in this process)."""
    with _bases_lock:
        for key in [k for k in _bases if k[0] == scan_id]:
            _bases.pop(key).close()


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
    # Only models with reported values are points of the correlations: a scan that wrote none changes nothing.
    written = {o.repo_id: o.family for o in report.outcomes if o.committed}
    families = families_with_reported_values(lake_root, written)
    if families:
        refresh_correlations(lake_root, families)


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
    """Every family's refs (pinned by the listing where the source can), in listing order; a family that cannot be
    listed is recorded in the report and the others go on."""
    for warning in admission_warnings(families):
        logger.warning("%s", warning)
    refs: list[ModelRef] = []
    for family, query in families.items():
        try:
            listed = list_models(spec, query, None if family == INFERRED_FAMILY else family)
        except (HubError, WeightsError) as err:
            report.list_errors.append(f"{family}: {err}")
            continue
        report.listings[family] = listed
        refs.extend(listed)
    return refs


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
