"""Analyze one local model shard by shard: the plain function behind ``wwhub analyze`` (and the scan's inner loop)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import ww_core
from ww_core import FIT_FAILED, LayerMetrics

from .selection import LayerSelection
from .sources import HubError
from .weights import ModelPlan, Shard, WeightsError, iter_shard_tensors, plan_local

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


def failed_shard_rows(shard: Shard, layer_ids: dict[str, int], error: str) -> list[LayerMetrics]:
    """One ``failed`` row per tensor the index promised in a shard that could not be read."""
    rows = []
    for position, info in enumerate(shard.tensors):
        if info.shape and len(info.shape) < 2:
            continue
        rows.append(
            LayerMetrics(
                layer_id=layer_ids.get(info.name, -1 - position), name=info.name, fit_status=FIT_FAILED, reason=error
            )
        )
    return rows


def shard_failure(
    shard: Shard,
    rows: list[LayerMetrics],
    layer_ids: dict[str, int],
    err: Exception,
    prefix: str = "",
    model: str = "",
) -> ShardRows:
    """A shard that could not be fetched, read or analyzed in full: the rows it gave, then a ``failed`` row for
    each tensor it did not deliver, all with the reason (``prefix`` + what went wrong). Call it while handling
    ``err``: an error that is not about the input (a bug, a resource) is named by its type and logged with its
    traceback and ``model``."""
    if isinstance(err, HubError | WeightsError | OSError):
        error = f"{prefix}{err}"
    else:
        logger.exception("%s shard %s: unexpected error", model, shard.filename)
        error = f"{prefix}unexpected {err.__class__.__name__}: {err}"
    done = {r.name for r in rows}
    missing = Shard(shard.filename, [t for t in shard.tensors if t.name not in done])
    return ShardRows(shard.filename, rows + failed_shard_rows(missing, layer_ids, error), error)


def analyze_shards(
    folder: Path,
    plan: ModelPlan,
    options: dict,
    on_layer: Callable[[str], None] | None = None,
    workers: int = 1,
    selection: LayerSelection | None = None,
) -> Iterator[ShardRows]:
    """Analyze a planned model one shard at a time (``workers`` layers at once), only the layers ``selection``
    keeps (all by default). A shard that cannot be read yields failed rows, never raises."""
    layer_ids = plan.layer_ids()
    for shard in plan.shards:
        if selection is not None:
            # A shard that fails reports the selected tensors it did not deliver, not the others.
            shard = Shard(shard.filename, [t for t in shard.tensors if selection.keeps(t, layer_ids)], shard.size)
        path = folder / shard.filename
        names = [t.name for t in shard.tensors] or None
        rows: list[LayerMetrics] = []
        try:
            tensors = iter_shard_tensors(path, names, plan.fmt)
            if selection is not None:
                tensors = selection.filter_tensors(tensors, layer_ids)
            for row in ww_core.analyze_model(tensors, layer_ids=layer_ids or None, workers=workers, **options):
                rows.append(row)
                if on_layer is not None:
                    on_layer(row.name)
        except Exception as err:  # noqa: BLE001 - one bad shard never stops the model: recorded with its reason
            yield shard_failure(shard, rows, layer_ids, err)
            continue
        yield ShardRows(shard.filename, rows)


def analyze_path(
    path: Path,
    options: dict,
    on_layer: Callable[[str], None] | None = None,
    workers: int = 1,
    selection: LayerSelection | None = None,
) -> list[ShardRows]:
    """Plan and analyze a local model (folder or single file). Raises WeightsError if nothing can be planned."""
    folder, plan = plan_local(Path(path))
    return list(analyze_shards(folder, plan, options, on_layer, workers, selection))
