"""What the lake keeps of a layer's eigenvalues (``--esd full|tail|none``).

Every eigenvalue of every layer of the Hub is hundreds of GB, and plots and refits need less:

- ``tail`` (default): the eigenvalues the power-law fit used (λ ≥ xmin), exactly, the largest ``TAIL_CAP`` of
  them, plus ``SKETCH_POINTS`` quantiles of the rest (``bulk_quantiles``, at probabilities 0, 1/(K-1), ..., 1 of
  the remaining eigenvalues, numpy's linear interpolation): a fixed size per layer whatever its dimensions. A
  refit of the tail from ``evals`` gives the stored alpha exactly. The shuffled matrix keeps its sketch only
  (its largest eigenvalue, the correlation-trap marker, is the last quantile).
- ``full``: every eigenvalue, as WeightWatcher's ``get_ESD`` returns them.
- ``none``: no row.
"""

from __future__ import annotations

import math

import numpy as np

ESD_MODES = ("tail", "full", "none")
DEFAULT_ESD = "tail"
TAIL_CAP = 1024
SKETCH_POINTS = 65


def _split(evals: np.ndarray, xmin: float | None, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """(the fitted tail, at most ``cap`` of its largest values; everything else), both ascending."""
    ordered = np.sort(np.asarray(evals, dtype=np.float64))
    in_tail = 0 if xmin is None or not math.isfinite(xmin) else int(ordered.size - np.searchsorted(ordered, xmin))
    keep = min(in_tail, cap)
    return ordered[ordered.size - keep :], ordered[: ordered.size - keep]


def quantile_sketch(values: np.ndarray, points: int = SKETCH_POINTS) -> list[float] | None:
    if values.size == 0:
        return None
    return np.quantile(values, np.linspace(0.0, 1.0, points)).tolist()


def esd_row(key: dict, layer, mode: str = DEFAULT_ESD) -> dict | None:
    """The ``esd`` row of one analyzed layer (``layer``: ww_core's LayerMetrics with its eigenvalues kept), or
    None when nothing is stored (mode ``none``, or no eigenvalues)."""
    if mode not in ESD_MODES:
        raise ValueError(f"esd storage {mode!r}: expected one of {', '.join(ESD_MODES)}")
    if mode == "none" or layer.evals is None:
        return None
    evals = np.asarray(layer.evals, dtype=np.float64)
    rand = None if layer.rand_evals is None else np.asarray(layer.rand_evals, dtype=np.float64)
    row = dict(
        key,
        layer_id=layer.layer_id,
        name=layer.name,
        slice_id=layer.slice_id,
        storage=mode,
        num_evals=int(evals.size),
        rand_num_evals=None if rand is None else int(rand.size),
    )
    if mode == "full":
        return dict(row, evals=evals.tolist(), rand_evals=None if rand is None else rand.tolist())
    tail, bulk = _split(evals, layer.xmin, TAIL_CAP)
    return dict(
        row,
        evals=tail.tolist(),
        bulk_quantiles=quantile_sketch(bulk),
        rand_bulk_quantiles=None if rand is None else quantile_sketch(rand),
    )


def _from_sketch(quantiles, count: int) -> np.ndarray:
    """``count`` values spread over the sketch as the original ones were: evenly in probability."""
    if not quantiles or count <= 0:
        return np.empty(0)
    probabilities = np.linspace(0.0, 1.0, len(quantiles))
    return np.interp(np.linspace(0.0, 1.0, count), probabilities, np.asarray(quantiles, dtype=np.float64))


def eigenvalues(row: dict) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(eigenvalues, shuffled eigenvalues or None, a note saying how they were stored) from an ``esd`` row of
    either storage: the exact values, or the exact tail with the bulk spread over its quantile sketch."""
    evals = np.asarray(row.get("evals") or [], dtype=np.float64)
    storage = row.get("storage") or "full"
    if storage == "full":
        rand = row.get("rand_evals")
        return evals, None if rand is None else np.asarray(rand, dtype=np.float64), "full ESD"
    total = row.get("num_evals") or evals.size
    bulk = _from_sketch(row.get("bulk_quantiles"), total - evals.size)
    rand = row.get("rand_bulk_quantiles")
    rand_values = None if not rand else _from_sketch(rand, row.get("rand_num_evals") or len(rand))
    note = f"tail exact ({evals.size} of {total}), bulk from {len(row.get('bulk_quantiles') or [])} quantiles"
    return np.concatenate([bulk, evals]), rand_values, note
