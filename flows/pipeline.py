"""The scan, as plain functions: list → plan → stream shards through ww_core → lake.

Prefect's flows (``flows/scan.py``) and the CLI both call these; nothing here imports Prefect, so a one-off
``wwhub scan`` never pays for a Prefect server. Each function takes and returns plain values.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ww_core
from ww_core import FIT_OK

from . import __version__
from .analyze import ModelAnalysis, default_layer_workers, usable_cores
from .correlations import refresh_correlations
from .describe import plan_layers
from .distance import BaseModels, DistanceOptions
from .lake import Lake
from .lake.esd import DEFAULT_ESD, esd_row
from .selection import LayerSelection, SelectionError
from .sources import HUB_GATED, HUB_UNAVAILABLE, CacheSource, HubError, HubSettings, HubSource, LocalSource, ModelRef
from .weights import MatrixStream, ModelPlan, Shard, UnsupportedWeights, WeightsError, merge_plans
from .workdirs import new_workdir, remove_dead_workdirs

logger = logging.getLogger(__name__)

STATUS_SCANNED = "scanned"
STATUS_PARTIAL = "partial"
STATUS_SKIPPED = "skipped"  # already in the lake at this commit
STATUS_FAILED = "failed"
STATUS_UNSUPPORTED = "unsupported"  # nothing analyzable (e.g. only pickles and --no-pickle)
STATUS_GATED = "gated"  # the hub wants the license accepted and a token with access (the reason says so)
# The hub did not answer (after each request's bounded retries) before any weight was read: a passing outage, so
# the next scan tries the model again instead of skipping it as done.
STATUS_UNAVAILABLE = "unavailable"
# What counts as a failure of the scan (exit code 1, the `failed` count); `partial` is one as well.
FAILED_STATUSES = (STATUS_FAILED, STATUS_GATED, STATUS_UNAVAILABLE)
# An adapter's family, by default: its inferred or given family name with this suffix (README: adapters).
ADAPTER_FAMILY_SUFFIX = "-adapters"


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


@dataclass
class ModelOutcome:
    repo_id: str
    revision: str
    family: str
    status: str
    reason: str = ""
    num_layers: int = 0
    num_shards: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    scan_id: str = ""
    error_kind: str = ""  # for a failure before any weight was read: HubError.kind (not_found, gated, ...)


@dataclass
class ScanReport:
    scan_id: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    listed: int = 0
    outcomes: list[ModelOutcome] = field(default_factory=list)
    list_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    listed_by_family: dict[str, int] = field(default_factory=dict)

    def count(self, *statuses: str) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        # A model skipped as asked (e.g. --no-pickle) is recorded with its reason but is not a failure.
        bad = self.count(*FAILED_STATUSES, STATUS_PARTIAL) + len(self.list_errors)
        return 1 if bad else 0


def list_models(spec: SourceSpec, query: dict, family: str | None) -> list[ModelRef]:
    return spec.open().list_family(query, family)


def _evals_rows(ref: ModelRef, evals) -> list[dict]:
    return [dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family, **asdict(e)) for e in evals]


def _model_row(
    ref: ModelRef,
    outcome: ModelOutcome,
    scan_id: str,
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
        status=outcome.status,
        reason=outcome.reason,
        scanned_at=dt.datetime.now(dt.UTC),
        scan_id=scan_id,
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


# What a scan computes unless told otherwise. float32: as exact as the fits need (alphas within ~1e-5 of float64 on
# real layers, family ranks unchanged) and faster; `wwhub analyze` stays float64 (README "Precision").
SCAN_DEFAULTS = {"precision": "float32"}


def scan_model(
    spec: SourceSpec,
    ref: ModelRef,
    lake_root: str,
    options: dict,
    force: bool = False,
    scan_id: str = "",
    on_shard: Callable[[str, str], None] | None = None,
    esd: str = DEFAULT_ESD,
    layer_workers: int = 1,
    layers: str = "",
    bases: BaseModels | None = None,
    base: str | None = None,
) -> ModelOutcome:
    """Scan one model into the lake, streaming one shard at a time (plus one prefetched), deleting each shard
    after it is analyzed, ``layer_workers`` layers at once, only the layers ``layers`` selects (``--layers``);
    ``esd`` says what of the eigenvalues is kept (flows/lake/esd.py). Never raises for a bad model: the outcome
    (and the lake's models row) says why. The outcome carries ``scan_id``, so a caller can tell a fresh result
    from one cached by an earlier run. Everything the model writes is one lake commit.

    With ``bases``, a model whose card names a ``base_model`` (or every model but ``base`` itself, when ``base``
    is given) also gets its per-layer distances to that base in the ``distances`` table; a base that cannot be
    had is noted in the model's reason and the scan goes on."""
    started = time.perf_counter()
    options = {**SCAN_DEFAULTS, **options}
    source = spec.open()
    lake = Lake(lake_root)
    selection = LayerSelection.parse(layers)
    try:
        ref = source.resolve(ref)
        if lake.has_model(ref.repo_id, ref.revision, selection.text) and not force:
            return ModelOutcome(
                ref.repo_id, ref.revision, ref.family, STATUS_SKIPPED, "already in the lake", scan_id=scan_id
            )
        description = source.describe(ref)
    except Exception as err:  # noqa: BLE001 - a model that cannot be described is recorded, never ends the scan
        status = STATUS_UNSUPPORTED if isinstance(err, UnsupportedWeights) else STATUS_FAILED
        kind = err.kind if isinstance(err, HubError) else ""
        if kind == HUB_GATED:
            status = STATUS_GATED
        elif kind == HUB_UNAVAILABLE:
            status = STATUS_UNAVAILABLE
        reason = str(err)
        if not isinstance(err, HubError | WeightsError):
            logger.exception("%s@%s: unexpected error", ref.repo_id, ref.revision)
            reason = f"unexpected {err.__class__.__name__}: {err}"
        outcome = ModelOutcome(
            ref.repo_id,
            ref.revision,
            ref.family,
            status,
            reason,
            seconds=time.perf_counter() - started,
            scan_id=scan_id,
            error_kind=kind,
        )
        lake.commit_model(
            ref.repo_id,
            ref.revision,
            {"models": [_model_row(ref, outcome, scan_id, spec.kind, options, {}, "unknown", None)]},
        )
        return outcome
    ref = description.ref
    plan = description.plan
    facts = {k: v for k, v in description.facts.items() if v is not None}
    label = f"{ref.repo_id}@{ref.revision[:12]}"
    facts["layer_selection"] = selection.text
    try:
        if spec.merge_base and plan.config.adapter_config is not None:
            plan = merge_plans(plan, Path(spec.merge_base))
        if not any(MatrixStream.unknown(shard) for shard in plan.shards):
            selection.select(layer for layer, _ in plan_layers(plan))
        analysis = ModelAnalysis(
            plan, dict(options, keep_evals=esd != "none"), layer_workers, model=label, selection=selection
        )
    except SelectionError as err:
        # Nothing to analyze as asked (like --no-pickle on a pickle-only repo): recorded, rescanned by a later run.
        outcome = ModelOutcome(ref.repo_id, ref.revision, ref.family, STATUS_UNSUPPORTED, str(err), scan_id=scan_id)
        row = _model_row(ref, outcome, scan_id, spec.kind, options, facts, description.card_status, None)
        lake.commit_model(ref.repo_id, ref.revision, {"models": [row]})
        return outcome
    except Exception as err:  # noqa: BLE001 - a model that cannot be planned is recorded, the scan goes on
        if not isinstance(err, WeightsError | ValueError):
            logger.exception("%s: unexpected error planning the model", label)
        outcome = ModelOutcome(
            ref.repo_id, ref.revision, ref.family, STATUS_FAILED, f"{err.__class__.__name__}: {err}", scan_id=scan_id
        )
        row = _model_row(ref, outcome, scan_id, spec.kind, options, facts, description.card_status, None)
        lake.commit_model(ref.repo_id, ref.revision, {"models": [row]})
        return outcome
    ref, facts = _adapter_identity(ref, plan, facts)
    comparison, base_note = None, ""
    # An adapter's rows are updates, not weights: only a merged adapter (W + dW) is compared with its base.
    if bases is not None and (plan.config.adapter_config is None or plan.merge):
        comparison, base_note = bases.comparison(ref, plan, base or facts.get("base_model"), selection)
    key = dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family)
    distance_rows: list = []
    shard_rows: list[tuple[str, ww_core.LayerMetrics]] = []
    esd_rows: list[tuple[ww_core.LayerMetrics, dict]] = []
    shard_errors: list[str] = []
    bytes_read = 0
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
                prefix = f"shard {shard.filename}: "
                path = None
                try:
                    path = future.result()
                    bytes_read += path.stat().st_size
                    result = analysis.analyze_shard(index, path, prefix)
                    if comparison is not None:
                        distance_rows += comparison.compare_shard(index, path)
                except Exception as err:  # noqa: BLE001 - one bad shard never stops the model, nor the scan
                    result = analysis.shard_failure(index, err, prefix)
                finally:
                    if path is not None and shard.location is None and source.deletes_shards:
                        source.release_shard(path)
                if result.error:
                    shard_errors.append(result.error)
                for row in result.rows:
                    shard_rows.append((shard.filename, row))
                    if (stored := esd_row(key, row, esd)) is not None:
                        esd_rows.append((row, stored))
                    row.evals = row.rand_evals = None
                if on_shard is not None:
                    on_shard(ref.repo_id, shard.filename)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    leftover = analysis.finish()  # also sets every row's final layer_id
    if leftover is not None:
        shard_errors.append(leftover.error)
        shard_rows += [("", row) for row in leftover.rows]
    metrics = [row for _, row in shard_rows]

    ok = sum(m.fit_status == FIT_OK for m in metrics)
    status = STATUS_SCANNED if not shard_errors else STATUS_PARTIAL
    if shard_errors and ok == 0:
        status = STATUS_FAILED
    reasons = list(shard_errors) + analysis.decoding_reasons() + [note for note in (plan.note, base_note) if note]
    if plan.merge:
        reasons.append(f"adapter merged into the base checkpoint {spec.merge_base}")
    if description.card_status != "ok" and description.card_status != "missing":
        reasons.append(f"card {description.card_status}")
    outcome = ModelOutcome(
        ref.repo_id,
        ref.revision,
        ref.family,
        status,
        "; ".join(reasons),
        num_layers=len(metrics),
        num_shards=len(plan.shards),
        bytes_read=bytes_read,
        seconds=time.perf_counter() - started,
        scan_id=scan_id,
    )
    layers = [dict(key, shard=shard, **row.as_row(), **analysis.columns(row.name)) for shard, row in shard_rows]
    for row, stored in esd_rows:
        stored["layer_id"] = row.layer_id  # final only once every shard is in (depth order)
    facts.update(analysis.facts())
    model_row = _model_row(
        ref, outcome, scan_id, spec.kind, options, facts, description.card_status, ww_core.summarize(metrics)
    )
    # One atomic commit: readers see the whole model (layers, esd, evals, distances, models row) or none of it.
    lake.commit_model(
        ref.repo_id,
        ref.revision,
        {
            "layers": layers,
            "esd": [stored for _, stored in esd_rows],
            "evals": _evals_rows(ref, description.evals),
            "distances": comparison.lake_rows(ref, distance_rows) if comparison is not None else [],
            "models": [model_row],
        },
    )
    return outcome


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


def base_models(spec: SourceSpec, options: dict) -> BaseModels:
    """Where a scan's fine-tunes find their bases: each base fetched once and shared by the models that name it
    (``close()`` deletes the downloads). Distances are computed in the scan's precision."""
    options = {**SCAN_DEFAULTS, **options}
    return BaseModels(spec.open, DistanceOptions(max_evals=options.get("max_evals"), precision=options["precision"]))


def record_scan(lake_root: str, report: ScanReport, families: list[str], source: str) -> None:
    """One ``scans`` row per run, then the derived ``correlations`` table."""
    report.ended_at = report.ended_at or dt.datetime.now(dt.UTC)
    errors = list(report.list_errors) + [
        f"{o.repo_id}@{o.revision[:12]}: {o.status}: {o.reason}"
        for o in report.outcomes
        if o.status in (*FAILED_STATUSES, STATUS_PARTIAL, STATUS_UNSUPPORTED)
    ]
    if report.interrupted:
        errors.append(f"interrupted after {len(report.outcomes)} of {report.listed} models")
    lake = Lake(lake_root)
    lake.write_scan(
        dict(
            scan_id=report.scan_id,
            started_at=report.started_at,
            ended_at=report.ended_at,
            families=",".join(families),
            source=source,
            listed=report.listed,
            scanned=report.count(STATUS_SCANNED, STATUS_PARTIAL),
            skipped=report.count(STATUS_SKIPPED, STATUS_UNSUPPORTED),
            failed=report.count(*FAILED_STATUSES) + len(report.list_errors),
            errors=json.dumps(errors),
            wwhub_version=__version__,
            seconds=(report.ended_at - report.started_at).total_seconds(),
        )
    )
    refresh_correlations(lake_root)


def new_scan_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def run_scan(
    spec: SourceSpec,
    families: dict[str, dict],
    lake_root: str,
    options: dict,
    force: bool = False,
    workers: int = 1,
    on_listed: Callable[[int], None] | None = None,
    on_model: Callable[[ModelOutcome], None] | None = None,
    on_shard: Callable[[str, str], None] | None = None,
    esd: str = DEFAULT_ESD,
    layer_workers: int | None = None,
    require_models: bool = False,
    layers: str = "",
    base: str | None = None,
    distances: bool = True,
) -> ScanReport:
    """Scan families with a bounded thread pool (BLAS pinned to one thread per eigensolve, so workers ≤ cores
    keeps the machine busy without oversubscription). The plain path behind ``wwhub scan``.

    ``workers`` models are scanned side by side, each with ``layer_workers`` layers at once; by default the
    cores the models leave over go to their layers (a single model gets them all). With ``require_models``, a
    listing that finds nothing (and failed nowhere) raises NothingListed before anything is written (the lake is
    created, or migrated, only after that; LakeError when it cannot be written). With
    ``distances``, models whose card names a base model (or all, given ``base``) are compared with it; each base
    is fetched once."""
    report = ScanReport(new_scan_id(), dt.datetime.now(dt.UTC))
    for folder in remove_dead_workdirs():
        logger.info("removed %s, left behind by a scan that was killed", folder)
    refs: list[ModelRef] = []
    for family, query in families.items():
        try:
            listed = list_models(spec, query, family if family != "*" else None)
        except (HubError, WeightsError) as err:
            report.list_errors.append(f"family {family}: {err}")
            continue
        report.listed_by_family[family] = len(listed)
        refs.extend(listed)
    report.listed = len(refs)
    if require_models and not refs and not report.list_errors:
        raise NothingListed(f"no models: {', '.join(f'family {f}' if f != '*' else 'the query' for f in families)}")
    Lake.for_writing(lake_root)  # a read-only or misplaced lake fails here, before anything is analyzed
    if on_listed is not None:
        on_listed(len(refs))
    model_workers = max(1, min(workers, len(refs)))
    # Cores left over by the models scanned side by side go to their layers (one model alone gets them all).
    if layer_workers is None:
        layer_workers = max(1, min(default_layer_workers(), usable_cores() // model_workers))
    interrupted = threading.Event()

    def shard_done(repo_id: str, shard: str) -> None:
        # After Ctrl-C, a model still running stops at its next shard; nothing of it is written.
        if interrupted.is_set():
            raise KeyboardInterrupt
        if on_shard is not None:
            on_shard(repo_id, shard)

    bases = base_models(spec, options) if distances else None
    pool = ThreadPoolExecutor(max_workers=model_workers, thread_name_prefix="wwhub-model")
    futures = [
        pool.submit(
            scan_model,
            spec,
            ref,
            lake_root,
            options,
            force,
            report.scan_id,
            shard_done,
            esd,
            layer_workers,
            layers,
            bases,
            base,
        )
        for ref in refs
    ]
    try:
        for ref, future in zip(refs, futures, strict=True):
            try:
                outcome = future.result()
            except Exception as err:  # noqa: BLE001 - a bug in one model's scan is recorded, the others go on
                logger.error("%s: unexpected %s: %s", ref.repo_id, err.__class__.__name__, err)
                outcome = ModelOutcome(
                    ref.repo_id, ref.revision, ref.family, STATUS_FAILED, f"unexpected {err.__class__.__name__}: {err}"
                )
            report.outcomes.append(outcome)
            if on_model is not None:
                on_model(outcome)
    except KeyboardInterrupt:
        # Ctrl-C: queued models are dropped, running ones stop at their next shard, completed ones stay in the
        # lake (each model is one commit), and the scans row says what happened.
        interrupted.set()
        pool.shutdown(wait=False, cancel_futures=True)
        report.interrupted = True
        record_scan(lake_root, report, list(families), spec.kind)
        raise
    pool.shutdown(wait=True)
    if bases is not None:
        bases.close()
    record_scan(lake_root, report, list(families), spec.kind)
    return report
