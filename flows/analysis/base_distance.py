"""Model against model: per-layer distances of a model from its base, both streamed shard by shard.

Layers are the logical matrices of the decoding pipeline (:func:`flows.analysis.describe.plan_layers`: fused experts
split,
quantized weights dequantized), aligned by name, so a fused checkpoint compares with an unfused one and a quantized
fine-tune with its float base. The model's shards are read in order, one at a time (:class:`MatrixStream`); each
matrix's twin is decoded from the base shards that hold its stored tensors (kept on disk a few at a time, or, in a
scan, all of a base for all of its fine-tunes). Memory holds one matrix of each plus the update ``dW``
(:func:`ww_core.distances.layer_distance`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ww_core import FIT_FAILED, FIT_SKIPPED
from ww_core.distances import LayerDistance, layer_distance, not_compared_note

from ..sources import HubError
from ..weights import MatrixSpec, MatrixStream, UndecodableWeights, WeightsError, open_shard
from .describe import plan_layers, reveal_local
from .named_model import OpenedModel, ShardFiles
from .selection import LayerSelection, SelectionError

# Mismatched layers named in an architecture error, at most.
_SHOWN_MISMATCHES = 5


class ArchitectureMismatch(WeightsError):
    """Two models whose layers do not correspond (different shapes, or too few names in common)."""


@dataclass
class DistanceOptions:
    method: str = "euclidean"
    spectrum: bool = True
    min_evals: int = 8
    max_evals: int | None = None
    precision: str = "float64"


@dataclass
class Alignment:
    """Which model layers have a twin in the base (name → (layer id, base spec)), and what has none."""

    pairs: dict[str, tuple[int, MatrixSpec]]
    only_in_model: list[str] = field(default_factory=list)
    only_in_base: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        pairs = ((self.only_in_model, "the model"), (self.only_in_base, "the base"))
        return [not_compared_note(names, where) for names, where in pairs if names]


def align(model: OpenedModel, base: OpenedModel, selection: LayerSelection | None = None) -> Alignment:
    """Pair the selected layers of ``model`` with the base's by name. Raises :class:`ArchitectureMismatch` (naming
    the first mismatched layers) when a shared name has another shape or is a tensor the base's index promises and
    its shard lacks, or fewer than half of the selected layers exist in the base; layers only in one model (a new
    classification head) are listed, not fatal. The layers of a model shard whose header cannot be read are paired
    by the base's names (they fail when compared)."""
    selection = selection or LayerSelection()
    for opened in (model, base):
        if opened.folder is not None:
            reveal_local(opened.folder, opened.plan)
        elif any(MatrixStream.unknown(s) and opened.plan.shard_format(s) != "safetensors" for s in opened.plan.shards):
            raise WeightsError(f"{opened.label}: pickled .bin weights on the hub cannot be aligned before download")
    model_layers = plan_layers(model.plan)
    chosen = selection.select(layer for layer, _ in model_layers)
    specs = {spec.name: spec for _, spec in model_layers}
    base_layers = {spec.name: (layer, spec) for layer, spec in plan_layers(base.plan)}
    unreadable = {t.name for shard in model.plan.shards if MatrixStream.unknown(shard) for t in shard.tensors}
    mismatched, missing, pairs = [], [], {}
    for layer in chosen:
        twin = base_layers.get(layer.name)
        shape_unknown = set(specs[layer.name].sources) <= unreadable
        lacks = None if twin is None else base.plan.missing_tensor(twin[1].sources)
        if twin is None:
            missing.append(layer.name)
        elif lacks is not None:
            # Planned by name only (shape ()): the base's index promises the tensor and its shard lacks it.
            mismatched.append(f"{layer.name}: not in the base ({lacks})")
        elif tuple(twin[1].shape) != tuple(specs[layer.name].shape) and not shape_unknown:
            mismatched.append(f"{layer.name}: {list(specs[layer.name].shape)} vs base {list(twin[1].shape)}")
        else:
            pairs[layer.name] = (layer.layer_id, twin[1])
    for name, (layer, spec) in base_layers.items():
        if name not in pairs and spec.sources and set(spec.sources) <= unreadable and selection.matches(layer):
            pairs[name] = (layer.layer_id, spec)
    if mismatched or len(pairs) < len(chosen) / 2 or not pairs:
        problems = mismatched + [f"{name}: not in the base" for name in missing]
        raise ArchitectureMismatch(
            f"{model.label} and {base.label} differ in architecture: {len(problems)} of {len(chosen)} layers "
            f"do not match; first: {'; '.join(problems[:_SHOWN_MISMATCHES])}"
        )
    names = {layer.name for layer in chosen}
    only_in_base = [n for n, (layer, _) in base_layers.items() if n not in pairs and selection.matches(layer)]
    return Alignment(pairs, [n for n in missing if n in names], only_in_base)


class BaseComparison:
    """Compares one model with its base shard by shard, as the model's shards arrive (from ``wwhub distance`` or
    inside a scan, where the same shard files are analyzed too)."""

    def __init__(self, model: OpenedModel, alignment: Alignment, base_files: ShardFiles, options: DistanceOptions):
        self.stream = MatrixStream(model.plan)
        self.alignment = alignment
        self.base_files = base_files
        self.options = options
        self.done: set[str] = set()

    def lake_rows(self, ref, rows: list[LayerDistance]) -> list[dict]:
        """``distances`` table rows: keyed by the model's and the base's commits."""
        base = self.base_files.model
        keys = dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family)
        return [dict(keys, base_repo_id=base.repo_id, base_revision=base.revision, **row.as_row()) for row in rows]

    def _row(self, name: str, status: str, reason: str) -> LayerDistance:
        self.done.add(name)
        return LayerDistance(self.alignment.pairs[name][0], name, fit_status=status, reason=reason)

    def _base_matrix(self, spec: MatrixSpec):
        """The base's twin, decoded from the base shards holding its stored tensors (usually one)."""
        where = self.base_files.model.shard_by_tensor()
        readers = {}
        try:
            arrays = {}
            for source in spec.sources:
                shard = where[source]
                if shard.filename not in readers:
                    path = shard.location or self.base_files.path(shard)
                    readers[shard.filename] = open_shard(path, self.base_files.model.plan.shard_format(shard))
                arrays[source] = readers[shard.filename].array(source)
            return spec.decode(arrays)
        finally:
            for reader in readers.values():
                reader.close()

    def compare_shard(self, index: int, path: Path, on_layer: Callable[[str], None] | None = None) -> list:
        """Rows for the paired matrices model shard ``index`` (on disk at ``path``) completes. Never raises for bad
        input: a shard that cannot be read gives ``failed`` rows for the paired matrices that needed it."""
        pairs = self.alignment.pairs
        rows: list[LayerDistance] = []
        shard = self.stream.plan.shards[index]
        try:
            reader = open_shard(path, self.stream.plan.shard_format(shard))
            try:
                for spec in self.stream.ready(index):
                    if spec.name not in pairs:
                        continue
                    rows.append(self._compare(spec, reader))
                    self.stream.done.add(spec.name)
                    for source in spec.sources:
                        reader.evict(source)
                    if on_layer is not None:
                        on_layer(spec.name)
                self.stream.end_shard(index, reader)
            finally:
                reader.close()
        except (WeightsError, HubError, OSError, MemoryError) as err:
            rows += self.shard_lost(index, err)
        return rows

    def shard_lost(self, index: int, err: Exception) -> list[LayerDistance]:
        """``failed`` rows for the paired matrices not done yet that needed shard ``index`` (which could not be
        fetched or read); a shard whose header was unreadable is matched by the base's tensor names."""
        shard = self.stream.plan.shards[index]
        names = {t.name for t in shard.tensors}
        lost = {spec.name for spec in self.stream.pending(index)}
        lost |= {n for n, (_, base_spec) in self.alignment.pairs.items() if names & set(base_spec.sources)}
        lost = [n for n in lost if n in self.alignment.pairs and n not in self.done]
        self.stream.done.update(lost)
        return [self._row(name, FIT_FAILED, f"shard {shard.filename}: {err}") for name in sorted(lost)]

    def _compare(self, spec: MatrixSpec, reader) -> LayerDistance:
        layer_id, base_spec = self.alignment.pairs[spec.name]
        reason = spec.skip_reason or base_spec.skip_reason
        if reason is not None:
            return self._row(spec.name, FIT_SKIPPED, reason)
        missing = self.stream.plan.missing_tensor(spec.sources)
        if missing is not None:  # as the analysis fails it (a base that lacks one does not align)
            return self._row(spec.name, FIT_FAILED, missing)
        try:
            matrix = spec.decode(self.stream.arrays(spec, reader))
            base_matrix = self._base_matrix(base_spec)
        except UndecodableWeights as err:  # what the plan could not see: skipped, as a skip_reason is
            return self._row(spec.name, FIT_SKIPPED, str(err))
        except (WeightsError, HubError, OSError, ValueError, KeyError, MemoryError) as err:
            return self._row(spec.name, FIT_FAILED, f"cannot decode {spec.name}: {err}")
        self.done.add(spec.name)
        options = self.options
        return layer_distance(
            matrix,
            base_matrix,
            spec.name,
            layer_id,
            options.method,
            options.spectrum,
            options.min_evals,
            options.max_evals,
            options.precision,
        )


@dataclass
class DistanceReport:
    rows: list[LayerDistance]
    notes: list[str]


def compare_models(
    model: OpenedModel,
    base: OpenedModel,
    options: DistanceOptions,
    selection: LayerSelection | None = None,
    on_layer: Callable[[str], None] | None = None,
) -> DistanceReport:
    """Distances of every aligned layer of ``model`` from ``base``, shard by shard (hub shards fetched one at a time
    and deleted after use). Raises :class:`ArchitectureMismatch` before reading any weight when they do not match."""
    alignment = align(model, base, selection)
    rows: list[LayerDistance] = []
    with ShardFiles(model, keep=1) as model_files, ShardFiles(base, keep=2) as base_files:
        comparison = BaseComparison(model, alignment, base_files, options)
        for index, shard in enumerate(model.plan.shards):
            try:
                path = shard.location or model_files.path(shard)
            except (WeightsError, HubError, OSError) as err:
                rows += comparison.shard_lost(index, err)
                continue
            rows += comparison.compare_shard(index, path, on_layer)
    rows.sort(key=lambda row: row.layer_id)
    return DistanceReport(rows, alignment.notes())


class BaseModels:
    """The base models of one scan: each one resolved, planned and downloaded once, then shared by all of its
    fine-tunes (scanned side by side on threads) until :meth:`close`. A base that cannot be had is remembered with
    its error, so it is asked for once."""

    def __init__(self, open_source: Callable[[], object], options: DistanceOptions, workdir: Path | None = None):
        self.open_source = open_source
        self.options = options
        self.workdir = workdir
        self._bases: dict[str, tuple[OpenedModel, ShardFiles] | Exception] = {}
        self._lock = threading.Lock()

    def get(self, base_id: str) -> tuple[OpenedModel, ShardFiles]:
        """The base (planned) and its shard files; raises the :class:`HubError` / :class:`WeightsError` that
        resolving or planning it gave."""
        with self._lock:
            if base_id not in self._bases:
                self._bases[base_id] = self._open(base_id)
            entry = self._bases[base_id]
        if isinstance(entry, Exception):
            raise entry
        return entry

    def _open(self, base_id: str) -> tuple[OpenedModel, ShardFiles] | Exception:
        from ..sources import ModelRef

        repo_id, _, revision = base_id.partition("@")
        try:
            source = self.open_source()
            pinned = source.resolve(ModelRef(repo_id, revision or "main", ""))
            description = source.describe(pinned)
        except (HubError, WeightsError) as err:
            return err
        base = OpenedModel(base_id, description.plan, source=source, ref=description.ref)
        return base, ShardFiles(base, keep=None, workdir=self.workdir)

    def comparison(self, ref, plan, base_id: str | None, selection: LayerSelection):
        """(comparison, "") for a model whose base is ``base_id``; (None, note for its reason) when the base
        cannot be had or does not match; (None, "") when there is no base (or the model is its own)."""
        if not base_id or base_id.partition("@")[0] == ref.repo_id:
            return None, ""
        try:
            base, base_files = self.get(base_id)
            alignment = align(OpenedModel(ref.repo_id, plan), base, selection)
        except (HubError, WeightsError, SelectionError) as err:
            return None, f"no distances to base {base_id}: {err}"
        return BaseComparison(OpenedModel(ref.repo_id, plan), alignment, base_files, self.options), ""

    def close(self) -> None:
        for entry in self._bases.values():
            if not isinstance(entry, Exception):
                entry[1].close()
