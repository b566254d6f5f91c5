"""Analyze one model shard by shard: the plain functions behind ``wwhub analyze`` and the scan's inner loop.

A :class:`ModelAnalysis` streams a planned model through the decoding pipeline (:mod:`flows.weights.matrices`) and
``ww_core``: each shard is opened (memory-mapped), the matrices it completes are decoded one at a time and
analyzed, and the arrays a later shard still needs are kept. Every matrix of the plan ends as exactly one row (or
one per Conv2D slice): ``ok``, ``failed`` with the reason (unreadable shard, decoding error, missing tensor) or
``skipped`` (a format that cannot be decoded honestly).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ww_core
from ww_core import FIT_FAILED, FIT_SKIPPED, LayerMetrics

from ..sources import HubError
from ..weights import (
    MatrixSpec,
    MatrixStream,
    ModelPlan,
    UndecodableWeights,
    WeightsError,
    open_shard,
    plan_local,
    plan_merged,
    skip_counts,
    spec_columns,
)
from .describe import layer_info
from .selection import LayerSelection

logger = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_layer_workers() -> int:
    # Beyond ~4 threads one model's layers rarely keep more cores busy (reading and small layers serialize).
    return min(4, usable_cores())


@dataclass
class ShardRows:
    shard: str
    rows: list[LayerMetrics]
    error: str | None = None


def _check_matrix(spec: MatrixSpec, matrix) -> None:
    from ww_core.analysis import is_layer_tensor  # the analysis is imported when a model is analyzed, not before

    # ww_core gives no row for a 0-D or 1-D array (a bias, not a layer): every matrix of the plan must end as a row.
    if not is_layer_tensor(matrix):
        shape = tuple(getattr(matrix, "shape", ()))
        raise WeightsError(f"{spec.name}: decodes to a {len(shape)}-D array {shape}, not a weight matrix")


class ModelAnalysis:
    """One planned model, analyzed shard by shard (``workers`` layers at once). Call :meth:`analyze_shard` (or
    :meth:`shard_failure` when a shard could not be fetched) for every shard in order, then :meth:`finish`."""

    def __init__(
        self,
        plan: ModelPlan,
        options: dict,
        workers: int = 1,
        on_layer: Callable[[str], None] | None = None,
        model: str = "",
        selection: LayerSelection | None = None,
    ):
        self.plan = plan
        self.options = options
        self.workers = workers
        self.on_layer = on_layer
        self.model = model
        self.selection = selection
        self.stream = MatrixStream(plan)
        self.rows: list[LayerMetrics] = []
        self.decoded: set[str] = set()  # quantized matrices whose dequantization succeeded
        self.undecodable: list[str] = []  # reasons of the matrices skipped when their stored values were read
        self.unselected: set[str] = set()
        self._drop_unselected()

    def _drop_unselected(self) -> None:
        """Matrices ``--layers`` leaves out count as done: no row, and no failed row when their shard fails."""
        if self.selection is None or self.selection.is_all:
            return
        ids = self.decoding.layer_ids
        for spec in self.decoding.specs:
            if not self.selection.matches(layer_info(ids[spec.name], spec)):
                self.unselected.add(spec.name)
        self.stream.done.update(self.unselected)

    @property
    def decoding(self):
        return self.stream.decoding

    def total_layers(self) -> int | None:
        """Rows expected (for progress bars); None when pickles are still to be opened."""
        unknown = any(self.stream.unknown(shard) for shard in self.plan.shards)
        return None if unknown else len(self.decoding.specs) - len(self.unselected)

    def _row(self, spec: MatrixSpec, status: str, reason: str) -> LayerMetrics:
        row = LayerMetrics(
            layer_id=self.decoding.layer_ids.get(spec.name, -1),
            name=spec.name,
            layer_type=spec.layer_type or "",
            fit_status=status,
            reason=reason,
        )
        self.stream.done.add(spec.name)
        return row

    def _emit(self, rows: list[LayerMetrics], row: LayerMetrics) -> None:
        rows.append(row)
        self.rows.append(row)
        if self.on_layer is not None:
            self.on_layer(row.name)

    def analyze_shard(self, index: int, path: Path, prefix: str = "") -> ShardRows:
        """Analyze the matrices shard ``index`` (on disk at ``path``) completes. Never raises: a shard that cannot
        be read gives failed rows with the reason (``prefix`` + what went wrong)."""
        shard = self.plan.shards[index]
        rows: list[LayerMetrics] = []
        try:
            reader = open_shard(path, self.plan.shard_format(shard))
            try:
                if self.stream.unknown(shard):
                    self.stream.reveal(index, reader.infos())
                    self._drop_unselected()
                self._analyze_ready(index, reader, rows)
                self.stream.end_shard(index, reader)
            finally:
                reader.close()
        except Exception as err:  # noqa: BLE001 - one bad shard never stops the model: recorded with its reason
            return self.shard_failure(index, err, prefix, rows)
        return ShardRows(shard.filename, rows)

    def _analyze_ready(self, index: int, reader, rows: list[LayerMetrics]) -> None:
        ready = self.stream.ready(index)
        by_name = {spec.name: spec for spec in ready}
        failures: list[LayerMetrics] = []

        def matrices():
            for spec in ready:
                if spec.skip_reason is not None:
                    self._emit(rows, self._row(spec, FIT_SKIPPED, spec.skip_reason))
                    continue
                missing = self.plan.missing_tensor(spec.sources)
                if missing is not None:
                    failures.append(self._row(spec, FIT_FAILED, missing))
                    continue
                try:
                    matrix = spec.decode(self.stream.arrays(spec, reader))
                    _check_matrix(spec, matrix)
                except UndecodableWeights as err:  # what the plan could not see: skipped, as a skip_reason is
                    self.undecodable.append(str(err))
                    self._emit(rows, self._row(spec, FIT_SKIPPED, str(err)))
                    continue
                except Exception as err:  # noqa: BLE001 - one matrix that cannot be decoded fails alone
                    failures.append(self._row(spec, FIT_FAILED, self._reason(err, f"cannot decode {spec.name}")))
                    continue
                if spec.quantization:
                    self.decoded.add(spec.name)
                yield spec.name, matrix

        options = dict(self.options)
        for row in ww_core.analyze_model(
            matrices(), layer_ids=self.decoding.layer_ids, workers=self.workers, **options
        ):
            spec = by_name[row.name]
            if spec.layer_type:
                row.layer_type = spec.layer_type
            self.stream.done.add(row.name)
            self._emit(rows, row)
            for source in spec.sources:
                reader.evict(source)
            while failures:
                self._emit(rows, failures.pop(0))
        for row in failures:
            self._emit(rows, row)

    def _reason(self, err: Exception, context: str) -> str:
        """The user-facing reason of an error; one that is not about the input (a bug) is logged with its trace."""
        if isinstance(err, HubError | WeightsError | OSError | ValueError):
            return str(err)
        if isinstance(err, MemoryError):
            return f"{context}: out of memory"
        logger.exception("%s: %s: unexpected error", self.model, context)
        return f"unexpected {err.__class__.__name__}: {err}"

    def shard_failure(self, index: int, err: Exception, prefix: str = "", rows: list | None = None) -> ShardRows:
        """A shard that could not be fetched, read or analyzed in full: the rows it gave, then a ``failed`` row for
        each matrix it did not deliver (those that needed one of its tensors), all with the reason (``prefix`` +
        what went wrong). The one place that turns a shard's error into rows, for ``wwhub analyze`` and scans."""
        shard = self.plan.shards[index]
        error = prefix + self._reason(err, f"shard {shard.filename}")
        rows = list(rows or [])
        for spec in self.stream.pending(index):
            self._emit(rows, self._row(spec, FIT_FAILED, error))
        return ShardRows(shard.filename, rows, error)

    def finish(self) -> ShardRows | None:
        """After the last shard: a failed row for every matrix whose stored tensors never arrived, and every row's
        ``layer_id`` set from the final plan (pickles are planned only when opened)."""
        rows: list[LayerMetrics] = []
        for spec in self.decoding.specs:
            if spec.name in self.stream.done:
                continue
            known = set(self.plan.tensor_names)
            missing = [name for name in spec.sources if name not in known]
            if missing:
                reason = f"stored tensor {missing[0]!r} is in no shard of the model"
            else:
                logger.error("%s: %s was decoded but ww_core gave it no row", self.model, spec.name)
                reason = f"{spec.name}: analyzed, but no row came back (a bug in wwhub)"
            self._emit(rows, self._row(spec, FIT_FAILED, reason))
        ids = self.decoding.layer_ids
        for row in self.rows:
            row.layer_id = ids.get(row.name, row.layer_id)
        return ShardRows("", rows, "tensors missing from the model's files") if rows else None

    def columns(self, name: str) -> dict:
        """The per-layer decoding columns (expert, quantization, source_tensors) of a row."""
        return spec_columns(self.decoding.by_name.get(name))

    def facts(self) -> dict:
        """The models table's decoding columns."""
        skipped = [row.reason for row in self.rows if row.fit_status == FIT_SKIPPED]
        return dict(
            model_kind=self.decoding.model_kind,
            quantization=self.decoding.quantization,
            num_dequantized=len(self.decoded),
            num_params=self.decoding.num_params,
            skip_reasons=skip_counts(skipped),
        )

    def decoding_reasons(self) -> list[str]:
        """Why matrices were skipped by decoding (formats that cannot be analyzed), as 'N layers skipped: why'."""
        reasons = [spec.skip_reason for spec in self.decoding.specs if spec.skip_reason] + self.undecodable
        counts: dict[str, int] = {}
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
        return [f"{count} layer{'s' if count > 1 else ''} skipped: {reason}" for reason, count in counts.items()]


@dataclass
class AnalyzedModel:
    analysis: ModelAnalysis
    shards: list[ShardRows]

    def records(self) -> list[dict]:
        """One dict per row, in depth order: shard, ww_core's columns, expert, quantization, source_tensors."""
        records = [
            {"shard": shard.shard, **row.as_row(), **self.analysis.columns(row.name)}
            for shard in self.shards
            for row in shard.rows
        ]
        return sorted(records, key=lambda r: (r["layer_id"], r["slice_id"]))

    @property
    def rows(self) -> list[LayerMetrics]:
        return [row for shard in self.shards for row in shard.rows]


def plan_path(path: Path, merge_base: Path | None = None) -> tuple[Path, ModelPlan]:
    """Plan a local model (folder or file), or an adapter merged into a local base checkpoint."""
    return plan_merged(Path(path), Path(merge_base)) if merge_base else plan_local(Path(path))


def analyze_path(
    path: Path,
    options: dict,
    on_layer: Callable[[str], None] | None = None,
    workers: int = 1,
    merge_base: Path | None = None,
    planned: tuple[Path, ModelPlan] | None = None,
    on_planned: Callable[[int | None], None] | None = None,
    selection: LayerSelection | None = None,
) -> AnalyzedModel:
    """Plan and analyze a local model (folder or single file; an adapter with ``merge_base``), only the layers
    ``selection`` keeps (all by default). Raises WeightsError if nothing can be planned. ``on_planned`` receives
    the number of rows to expect (None when unknown)."""
    folder, plan = planned or plan_path(path, merge_base)
    analysis = ModelAnalysis(plan, options, workers, on_layer, model=str(path), selection=selection)
    if on_planned is not None:
        on_planned(analysis.total_layers())
    shards = [
        analysis.analyze_shard(index, shard.location or folder / shard.filename)
        for index, shard in enumerate(plan.shards)
    ]
    leftover = analysis.finish()
    return AnalyzedModel(analysis, shards + ([leftover] if leftover else []))
