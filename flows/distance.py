"""Model against model: per-layer distances of a model from its base, both streamed shard by shard.

The model's shards are read in order, one at a time; each layer's twin is read from the base shard that holds it
(kept on disk a few at a time, or, in a scan, all of a base for all of its fine-tunes). Memory holds one tensor of
each model plus the update ``dW`` (:func:`ww_core.distances.layer_distance`). Layers are aligned by name through
:func:`flows.describe.plan_layers`, the same layers ``analyze`` sees.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ww_core import FIT_FAILED
from ww_core.distances import LayerDistance, layer_distance

from .describe import plan_layers
from .models import OpenedModel, ShardFiles
from .selection import LayerSelection, SelectionError
from .sources import HubError
from .weights import Shard, WeightsError, iter_shard_tensors

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
    """Which model layers have a twin in the base (name → (layer id, base shard)), and what has none."""

    pairs: dict[str, tuple[int, Shard]]
    only_in_model: list[str] = field(default_factory=list)
    only_in_base: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        notes = []
        for names, where in ((self.only_in_model, "the model"), (self.only_in_base, "the base")):
            if names:
                shown = ", ".join(names[:_SHOWN_MISMATCHES]) + (", ..." if len(names) > _SHOWN_MISMATCHES else "")
                notes.append(f"{len(names)} layers only in {where}, not compared: {shown}")
        return notes


def align(model: OpenedModel, base: OpenedModel, selection: LayerSelection | None = None) -> Alignment:
    """Pair the selected layers of ``model`` with the base's by name. Raises :class:`ArchitectureMismatch` (naming
    the first mismatched layers) when a shared name has another shape, or fewer than half of the selected layers
    exist in the base; layers only in one model (a new classification head) are listed, not fatal."""
    for opened in (model, base):
        if opened.plan.fmt != "safetensors":
            raise WeightsError(f"{opened.label}: distances need safetensors checkpoints (this one is pickled .bin)")
    selection = selection or LayerSelection()
    model_layers = selection.select(layer for layer, _ in plan_layers(model.plan))
    shapes = {info.name: info.shape for _, info in plan_layers(model.plan)}
    base_infos = {info.name: info for _, info in plan_layers(base.plan)}
    base_shards = base.shard_by_tensor()
    mismatched, missing, pairs = [], [], {}
    for layer in model_layers:
        twin = base_infos.get(layer.name)
        if twin is None:
            missing.append(layer.name)
        elif tuple(twin.shape) != tuple(shapes[layer.name]):
            mismatched.append(f"{layer.name}: {list(shapes[layer.name])} vs base {list(twin.shape)}")
        else:
            pairs[layer.name] = (layer.layer_id, base_shards[layer.name])
    if mismatched or len(pairs) < len(model_layers) / 2 or not pairs:
        problems = mismatched + [f"{name}: not in the base" for name in missing]
        raise ArchitectureMismatch(
            f"{model.label} and {base.label} differ in architecture: {len(problems)} of {len(model_layers)} layers "
            f"do not match; first: {'; '.join(problems[:_SHOWN_MISMATCHES])}"
        )
    # A model shard whose header cannot be read has tensors of unknown shape: compared, they fail with the reason.
    base_layers = {layer.name: layer for layer, _ in plan_layers(base.plan)}
    for shard in model.plan.shards:
        for info in shard.tensors:
            twin = base_layers.get(info.name)
            if not info.shape and twin is not None and info.name not in pairs and selection.matches(twin):
                pairs[info.name] = (twin.layer_id, base_shards[info.name])
    chosen = {layer.name for layer in model_layers}
    only_in_base = [name for name in base_infos if name not in pairs and (selection.is_all or name in chosen)]
    return Alignment(pairs, missing, only_in_base)


def _read_tensor(path: Path, name: str):
    for _, tensor in iter_shard_tensors(path, [name]):
        return tensor
    raise WeightsError(f"{path}: tensor {name} is not in this shard")


class BaseComparison:
    """Compares the shards of one model with its base as they arrive (from ``wwhub distance`` or a scan)."""

    def __init__(self, alignment: Alignment, base_files: ShardFiles, options: DistanceOptions):
        self.alignment = alignment
        self.base_files = base_files
        self.options = options

    def lake_rows(self, ref, rows: list[LayerDistance]) -> list[dict]:
        """``distances`` table rows: keyed by the model's and the base's commits."""
        base = self.base_files.model
        keys = dict(repo_id=ref.repo_id, revision=ref.revision, family=ref.family)
        return [dict(keys, base_repo_id=base.repo_id, base_revision=base.revision, **row.as_row()) for row in rows]

    def compare_shard(self, path: Path, shard: Shard, on_layer: Callable[[str], None] | None = None) -> list:
        """Rows for the aligned layers in one local model shard; a shard that cannot be read gives ``failed`` rows
        for the layers it did not deliver, never raises for bad input."""
        names = [t.name for t in shard.tensors if t.name in self.alignment.pairs]
        rows: list[LayerDistance] = []
        if not names:
            return rows
        try:
            for name, tensor in iter_shard_tensors(path, names):
                layer_id, base_shard = self.alignment.pairs[name]
                base_tensor = _read_tensor(self.base_files.path(base_shard), name)
                rows.append(
                    layer_distance(
                        tensor,
                        base_tensor,
                        name,
                        layer_id,
                        self.options.method,
                        self.options.spectrum,
                        self.options.min_evals,
                        self.options.max_evals,
                        self.options.precision,
                    )
                )
                del tensor, base_tensor
                if on_layer is not None:
                    on_layer(name)
        except (WeightsError, HubError, OSError, MemoryError) as err:
            done = {row.name for row in rows}
            rows += [
                LayerDistance(self.alignment.pairs[n][0], n, fit_status=FIT_FAILED, reason=str(err))
                for n in names
                if n not in done
            ]
        return rows


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
        comparison = BaseComparison(alignment, base_files, options)
        for shard in _shards_with_pairs(model, alignment):
            try:
                path = model_files.path(shard)
            except (WeightsError, HubError, OSError) as err:
                rows += [
                    LayerDistance(alignment.pairs[t.name][0], t.name, fit_status=FIT_FAILED, reason=str(err))
                    for t in shard.tensors
                    if t.name in alignment.pairs
                ]
                continue
            rows += comparison.compare_shard(path, shard, on_layer)
    rows.sort(key=lambda row: row.layer_id)
    return DistanceReport(rows, alignment.notes())


def _shards_with_pairs(model: OpenedModel, alignment: Alignment) -> Iterator[Shard]:
    for shard in model.plan.shards:
        if any(t.name in alignment.pairs for t in shard.tensors):
            yield shard


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
        from .sources import ModelRef

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
        return BaseComparison(alignment, base_files, self.options), ""

    def close(self) -> None:
        for entry in self._bases.values():
            if not isinstance(entry, Exception):
                entry[1].close()
