"""Eigenvector localization: WeightWatcher's ``vectors`` option, ``analyze_vectors()`` and ``vector_metrics()``.

For a unit vector v of length n (Martin & Mahoney 2021, JMLR 22(165), sec. 8; localization after
Bell & Dean 1970 and the review arXiv:1810.01075):

* ``localization_ratio = ||v||_1 / ||v||_inf``: n for a delocalized vector (all ``|v_i|`` equal), 1 for a vector
  on one coordinate;
* ``participation_ratio = ||v||_2 / ||v||_4``: ``n^(1/4)`` delocalized, 1 on one coordinate;
* ``vec_entropy``, WeightWatcher's ``discrete_entropy``: the Shannon entropy ``-sum p ln p`` of the 100-bin histogram
  density of ``|v| - mean|v|``, with ``p = (h + 1e-10) / sum(h + 1e-10)`` (the +1e-10 keeps empty bins finite);
* ``vector_entropy(v) = exp(-||v||_2 / 2) / sqrt(2 pi)``, the function ``vector_metrics()`` reports as ``entropy``
  (WeightWatcher's Porter-Thomas helper, kept as it defines it).

A layer's eigenvectors are those of its M x M Gram matrix (one set per Conv2D kernel position, pooled); the
``bulk`` are those whose eigenvalue lies below the power-law fit's ``xmin``, the ``tail`` the rest, and each of the
three metrics is summarized by its mean and variance over both: WeightWatcher's 12 ``bulk_/tail_mean/var_`` columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from .eigen import gram_matrix
from .records import VECTOR_COLUMNS

ENTROPY_BINS = 100
_EPSILON = 1e-10
METRIC_NAMES = ("vec_entropy", "loc_ratio", "part_ratio")


def localization_ratio(vectors: np.ndarray) -> np.ndarray:
    """``||v||_1 / ||v||_inf`` of each column (a 1-D array is one vector)."""
    v = np.abs(np.asarray(vectors, dtype=np.float64))
    return v.sum(axis=0) / v.max(axis=0)


def participation_ratio(vectors: np.ndarray) -> np.ndarray:
    """``||v||_2 / ||v||_4`` of each column."""
    v = np.asarray(vectors, dtype=np.float64)
    squares = v * v
    return np.sqrt(squares.sum(axis=0)) / np.sqrt(np.sqrt((squares * squares).sum(axis=0)))


def discrete_entropy(vectors: np.ndarray, bins: int = ENTROPY_BINS) -> np.ndarray:
    """WeightWatcher's ``discrete_entropy`` of each column (see the module docstring), all columns at once.

    Bins follow ``numpy.histogram``: ``bins`` equal bins over ``[min, max]`` (the last one closed), or over
    ``[x - 0.5, x + 0.5]`` when every value is the same.
    """
    v = np.abs(np.asarray(vectors, dtype=np.float64))
    if v.ndim == 1:
        v = v[:, None]
    a = v - v.mean(axis=0)
    n, k = a.shape
    low, high = a.min(axis=0), a.max(axis=0)
    flat = high == low
    low = np.where(flat, low - 0.5, low)
    high = np.where(flat, high + 0.5, high)
    width = (high - low) / bins
    index = np.minimum(((a - low) * (bins / (high - low))).astype(np.int64), bins - 1)
    # numpy.histogram's correction for values that floating point puts in a neighbouring bin.
    edges = np.linspace(low, high, bins + 1, axis=0)
    columns = np.broadcast_to(np.arange(k), (n, k))
    index -= a < edges[index, columns]
    index += (a >= edges[index + 1, columns]) & (index != bins - 1)
    counts = np.zeros((k, bins))
    np.add.at(counts, (columns, index), 1.0)
    # numpy's density divides by the total count and the bin width.
    density = counts / (n * width[:, None]) + _EPSILON
    p = density / density.sum(axis=1, keepdims=True)
    return -np.sum(p * np.log(p), axis=1)


def vector_entropy(vector: np.ndarray) -> float:
    """WeightWatcher's ``vector_entropy``: ``exp(-||v||_2 / 2) / sqrt(2 pi)``."""
    return float(math.exp(-float(np.linalg.norm(vector)) / 2.0) / math.sqrt(2.0 * math.pi))


def eigenvector_metrics(matrices: Sequence[np.ndarray], scale: float = 1.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Eigenvalues (ascending, of ``(scale W)^T (scale W)``, all matrices pooled) and each eigenvector's three metrics
    in the same order. float64 eigendecomposition (``eigh``) of each M x M Gram matrix."""
    all_evals, metrics = [], {name: [] for name in METRIC_NAMES}
    for matrix in matrices:
        # WeightWatcher's X is W W^T unless W is taller than wide: a square W's eigenvectors are its left singular
        # vectors (gram_matrix forms W^T W for a square W, so it gets W^T).
        oriented = matrix.T if matrix.shape[0] == matrix.shape[1] else matrix
        evals, vectors = np.linalg.eigh(gram_matrix(oriented, np.float64))
        all_evals.append(evals * scale * scale)
        metrics["vec_entropy"].append(discrete_entropy(vectors))
        metrics["loc_ratio"].append(localization_ratio(vectors))
        metrics["part_ratio"].append(participation_ratio(vectors))
    evals = np.concatenate(all_evals)
    order = np.argsort(evals, kind="stable")
    return evals[order], {name: np.concatenate(parts)[order] for name, parts in metrics.items()}


def bulk_tail_statistics(metrics: dict[str, np.ndarray], num_tail: int) -> dict[str, float]:
    """WeightWatcher's 12 columns: mean and variance of each metric over the bulk (all but the ``num_tail``
    largest eigenvalues) and the tail. An empty part gives NaN."""
    out = {}
    for name in METRIC_NAMES:
        values = metrics[name]
        split = values.size - num_tail
        for part, data in (("bulk", values[:split]), ("tail", values[split:])):
            out[f"{part}_mean_{name}"] = float(np.mean(data)) if data.size else math.nan
            out[f"{part}_var_{name}"] = float(np.var(data)) if data.size else math.nan
    assert set(out) == set(VECTOR_COLUMNS)
    return out


def iterate_vectors(vectors) -> Iterable[np.ndarray]:
    """WeightWatcher's accepted inputs: one vector, a list of vectors, or a 2-D array of row vectors."""
    if isinstance(vectors, np.ndarray) and vectors.ndim > 1:
        return list(vectors)
    if isinstance(vectors, list | tuple):
        return [np.asarray(v) for v in vectors]
    return [np.asarray(vectors)]


def vector_metric_rows(vectors) -> list[dict]:
    """One row per vector: ``length, entropy, discrete_entropy, localization_ratio, participation_ratio``."""
    rows = []
    for vector in iterate_vectors(vectors):
        v = np.asarray(vector, dtype=np.float64).ravel()
        if v.size == 0:
            raise ValueError("vector_metrics: an empty vector has no metrics")
        rows.append(
            dict(
                length=int(v.size),
                entropy=vector_entropy(v),
                discrete_entropy=float(discrete_entropy(v)[0]),
                localization_ratio=float(localization_ratio(v)),
                participation_ratio=float(participation_ratio(v)),
            )
        )
    return rows
