"""One model of a scan: describe it, stream its shards through the analysis (one shard on disk, one prefetched),
compare it with its base, and commit everything it produced to the lake as one commit. Never raises for a bad
model: the outcome says why."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ww_core
from ww_core import FIT_OK

from .. import __version__
from ..analysis.base_distance import BaseModels, DistanceOptions
from ..analysis.describe import plan_layers
from ..analysis.model_analysis import ModelAnalysis
from ..analysis.selection import LayerSelection, SelectionError
from ..lake import Lake
from ..lake.esd import esd_row
from ..sources import HUB_GATED, HUB_UNAVAILABLE, HubError, ModelRef
from ..sources.transport import rate_limiter
from ..weights import MatrixStream, ModelPlan, Shard, UnsupportedWeights, WeightsError, merge_plans
from .options import ADAPTER_FAMILY_SUFFIX, ScanOptions, SourceSpec
from .outcomes import ModelOutcome
from .status import Status
from .workdirs import new_workdir

logger = logging.getLogger(__name__)

# Hub errors that say nothing of the commit's files (the hub did not answer, or wants a token): the model is an
# attempt, retried by the next scan, whenever they happen, before or while its shards download.
_PASSING = {HUB_GATED: Status.GATED, HUB_UNAVAILABLE: Status.UNAVAILABLE}


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


def _hub_attempt(job: ModelJob, ref: ModelRef, err: HubError, seconds: float) -> ModelOutcome:
    """The outcome of a model the hub kept from being scanned: an attempt (``record_scan`` writes its ``attempts``
    row), nothing in ``models``, so it never shadows nor replaces the model's last good scan."""
    status = _PASSING.get(err.kind, Status.FAILED)
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


def _undescribed(job: ModelJob, lake: Lake, ref: ModelRef, err: Exception, seconds: float) -> ModelOutcome:
    """The outcome of a model that could not be described. A hub error (gated, gone, unavailable) is an attempt
    (:func:`_hub_attempt`); a commit whose files are the problem (no weights, unsupported, a bad index) gets its
    models row, so it is not retried every night."""
    if isinstance(err, HubError):
        return _hub_attempt(job, ref, err, seconds)
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
    try:
        streamed = _stream_shards(job, source, ref, plan, analysis, comparison, on_shard)
    except HubError as err:  # only a passing one leaves _analyze_fetched: nothing of the model is committed
        return _hub_attempt(job, ref, err, time.perf_counter() - started)
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
    disk. A shard that cannot be read fails its matrices alone; one the hub cannot deliver now (unavailable, gated)
    raises its HubError, as the model's rows without it would stand for the commit until it changes."""
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
        if isinstance(err, HubError) and err.kind in _PASSING:
            raise
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
