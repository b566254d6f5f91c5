"""The scan, as plain functions: list → plan → stream shards through ww_core → lake.

Prefect's flows (``flows/scan.py``) and the CLI both call these; nothing here imports Prefect, so a one-off
``wwhub scan`` never pays for a Prefect server. Each function takes and returns plain values.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

import ww_core
from ww_core import FIT_OK

from . import __version__
from .analyze import default_layer_workers, shard_failure, usable_cores
from .lake import Lake, build_catalog
from .sources import QUERY_KEYS, CacheSource, HubError, HubSource, LocalSource, ModelRef
from .weights import UnsupportedWeights, WeightsError, iter_shard_tensors, quantized_reason

STATUS_SCANNED = "scanned"
STATUS_PARTIAL = "partial"
STATUS_SKIPPED = "skipped"  # already in the lake at this commit
STATUS_FAILED = "failed"
STATUS_UNSUPPORTED = "unsupported"  # nothing analyzable (e.g. only pickles and --no-pickle)


@dataclass(frozen=True)
class SourceSpec:
    """How to reach a source, as plain values (so a Dask worker can rebuild it)."""

    kind: str = "hub"  # hub | local | cache
    location: str | None = None  # endpoint URL, local folder, or cache folder
    allow_pickle: bool = True

    def open(self):
        if self.kind == "hub":
            return HubSource(endpoint=self.location, allow_pickle=self.allow_pickle)
        if self.kind == "local":
            return LocalSource(self.location)
        if self.kind == "cache":
            return CacheSource(self.location)
        raise ValueError(f"source kind {self.kind!r}: expected hub, local or cache")


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


@dataclass
class ScanReport:
    scan_id: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    listed: int = 0
    outcomes: list[ModelOutcome] = field(default_factory=list)
    list_errors: list[str] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        # A model skipped as asked (e.g. --no-pickle) is recorded with its reason but is not a failure.
        bad = self.count(STATUS_FAILED, STATUS_PARTIAL) + len(self.list_errors)
        return 1 if bad else 0


def load_families(path: str | Path) -> dict[str, dict]:
    """``families.yaml``: ``{families: {name: {repos|author|search|filter|sort|limit: ...}}}``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the families file ({err})") from err
    families = (data or {}).get("families") if isinstance(data, dict) else None
    if not isinstance(families, dict) or not families:
        raise ValueError(f"{path}: expected a mapping 'families: {{name: {{author: ..., search: ...}}}}'")
    for name, query in families.items():
        if not isinstance(query, dict):
            raise ValueError(f"{path}: family {name!r} must be a mapping of {', '.join(QUERY_KEYS)}")
        unknown = set(query) - set(QUERY_KEYS)
        if unknown:
            raise ValueError(f"{path}: family {name!r} has unknown keys {sorted(unknown)}; known: {QUERY_KEYS}")
    return families


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
    keep_esd: bool = True,
    layer_workers: int = 1,
) -> ModelOutcome:
    """Scan one model into the lake, streaming one shard at a time (plus one prefetched), deleting each shard
    after it is analyzed, ``layer_workers`` layers at once. Never raises for a bad model: the outcome (and the
    lake's models row) says why. The outcome carries ``scan_id``, so a caller can tell a fresh result from one
    cached by an earlier run."""
    started = time.perf_counter()
    options = {**SCAN_DEFAULTS, **options}
    source = spec.open()
    lake = Lake(lake_root)
    try:
        ref = source.resolve(ref)
        if lake.has_model(ref.repo_id, ref.revision) and not force:
            return ModelOutcome(
                ref.repo_id, ref.revision, ref.family, STATUS_SKIPPED, "already in the lake", scan_id=scan_id
            )
        description = source.describe(ref)
    except (HubError, WeightsError) as err:
        status = STATUS_UNSUPPORTED if isinstance(err, UnsupportedWeights) else STATUS_FAILED
        outcome = ModelOutcome(
            ref.repo_id,
            ref.revision,
            ref.family,
            status,
            str(err),
            seconds=time.perf_counter() - started,
            scan_id=scan_id,
        )
        lake.write_rows(
            "models",
            ref.repo_id,
            ref.revision,
            [_model_row(ref, outcome, scan_id, spec.kind, options, {}, "unknown", None)],
        )
        return outcome
    ref = description.ref
    plan = description.plan
    facts = {k: v for k, v in description.facts.items() if v is not None}
    # Quantized blocks become skipped rows (with their reason); float tensors beside them are still analyzed.
    quantized = quantized_reason(plan)
    layer_ids = plan.layer_ids()
    analysis = dict(options, keep_evals=keep_esd)
    layers: list[dict] = []
    esd: list[dict] = []
    metrics: list[ww_core.LayerMetrics] = []
    shard_errors: list[str] = []
    bytes_read = 0
    workdir = Path(tempfile.mkdtemp(prefix="wwhub-shards-", dir=os.environ.get("WWHUB_WORKDIR")))
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wwhub-prefetch") as prefetch:
            pending = prefetch.submit(source.fetch_shard, ref, plan.shards[0], workdir) if plan.shards else None
            for index, shard in enumerate(plan.shards):
                future, pending = pending, None
                if index + 1 < len(plan.shards):
                    # Overlap the next download with this shard's eigensolves: at most two shards on disk.
                    pending = prefetch.submit(source.fetch_shard, ref, plan.shards[index + 1], workdir)
                rows: list[ww_core.LayerMetrics] = []
                path = None
                try:
                    path = future.result()
                    bytes_read += path.stat().st_size
                    names = [t.name for t in shard.tensors] or None
                    tensors = iter_shard_tensors(path, names, plan.fmt)
                    for row in ww_core.analyze_model(
                        tensors, layer_ids=layer_ids or None, workers=layer_workers, **analysis
                    ):
                        rows.append(row)
                except Exception as err:  # noqa: BLE001 - one bad shard never stops the model, nor the scan
                    model = f"{ref.repo_id}@{ref.revision[:12]}"
                    failure = shard_failure(shard, rows, layer_ids, err, f"shard {shard.filename}: ", model)
                    shard_errors.append(failure.error)
                    rows = failure.rows
                finally:
                    if path is not None and source.deletes_shards:
                        source.release_shard(path)
                for row in rows:
                    layers.append(
                        dict(
                            repo_id=ref.repo_id,
                            revision=ref.revision,
                            family=ref.family,
                            shard=shard.filename,
                            **row.as_row(),
                        )
                    )
                    if keep_esd and row.evals is not None:
                        esd.append(
                            dict(
                                repo_id=ref.repo_id,
                                revision=ref.revision,
                                family=ref.family,
                                layer_id=row.layer_id,
                                name=row.name,
                                slice_id=row.slice_id,
                                evals=row.evals.tolist(),
                                rand_evals=None if row.rand_evals is None else row.rand_evals.tolist(),
                            )
                        )
                    row.evals = row.rand_evals = None
                metrics.extend(rows)
                if on_shard is not None:
                    on_shard(ref.repo_id, shard.filename)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ok = sum(m.fit_status == FIT_OK for m in metrics)
    status = STATUS_SCANNED if not shard_errors else STATUS_PARTIAL
    if shard_errors and ok == 0:
        status = STATUS_FAILED
    reasons = list(shard_errors) + ([quantized] if quantized else [])
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
    # Order matters: the models file is the commit marker, so it is written last.
    lake.write_rows("layers", ref.repo_id, ref.revision, layers)
    lake.write_rows("esd", ref.repo_id, ref.revision, esd)
    lake.write_rows("evals", ref.repo_id, ref.revision, _evals_rows(ref, description.evals))
    lake.write_rows(
        "models",
        ref.repo_id,
        ref.revision,
        [
            _model_row(
                ref, outcome, scan_id, spec.kind, options, facts, description.card_status, ww_core.summarize(metrics)
            )
        ],
    )
    return outcome


def record_scan(lake_root: str, report: ScanReport, families: list[str], source: str) -> None:
    """One ``scans`` row per run, then the DuckDB catalog (the single writer of the .duckdb file)."""
    report.ended_at = report.ended_at or dt.datetime.now(dt.UTC)
    errors = list(report.list_errors) + [
        f"{o.repo_id}@{o.revision[:12]}: {o.status}: {o.reason}"
        for o in report.outcomes
        if o.status in (STATUS_FAILED, STATUS_PARTIAL, STATUS_UNSUPPORTED)
    ]
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
            failed=report.count(STATUS_FAILED) + len(report.list_errors),
            errors=json.dumps(errors),
            wwhub_version=__version__,
            seconds=(report.ended_at - report.started_at).total_seconds(),
        )
    )
    build_catalog(lake_root)


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
    keep_esd: bool = True,
    layer_workers: int | None = None,
) -> ScanReport:
    """Scan families with a bounded thread pool (BLAS pinned to one thread per eigensolve, so workers ≤ cores
    keeps the machine busy without oversubscription). The plain path behind ``wwhub scan``.

    ``workers`` models are scanned side by side, each with ``layer_workers`` layers at once; by default the
    cores the models leave over go to their layers (a single model gets them all)."""
    report = ScanReport(new_scan_id(), dt.datetime.now(dt.UTC))
    refs: list[ModelRef] = []
    for family, query in families.items():
        try:
            refs.extend(list_models(spec, query, family if family != "*" else None))
        except (HubError, WeightsError) as err:
            report.list_errors.append(f"family {family}: {err}")
    report.listed = len(refs)
    if on_listed is not None:
        on_listed(len(refs))
    model_workers = max(1, min(workers, len(refs)))
    # Cores left over by the models scanned side by side go to their layers (one model alone gets them all).
    if layer_workers is None:
        layer_workers = max(1, min(default_layer_workers(), usable_cores() // model_workers))
    with ThreadPoolExecutor(max_workers=model_workers, thread_name_prefix="wwhub-model") as pool:
        futures = [
            pool.submit(
                scan_model, spec, ref, lake_root, options, force, report.scan_id, on_shard, keep_esd, layer_workers
            )
            for ref in refs
        ]
        for future in futures:
            outcome = future.result()
            report.outcomes.append(outcome)
            if on_model is not None:
                on_model(outcome)
    record_scan(lake_root, report, list(families), spec.kind)
    return report
