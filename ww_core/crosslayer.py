"""Analyses across layers: WeightWatcher's ``intra`` (products of consecutive layers) and ``stacked`` (every layer in
one matrix) options, as matrices whose ESD :func:`ww_core.analysis.analyze_layer` then analyzes.

* ``intra``: for consecutive layers W0, W1 (each oriented so that they share a dimension d: W0 is ``a x d``, W1
  ``d x b``), ``X = W0 W1 / (||W0||_F ||W1||_F)``, or with ``sparsify`` (WeightWatcher's default, a stand-in for
  the ReLUs between layers) ``X = W0 S W1 / (||W0||_F ||W1||_F + sqrt(||S||_F))`` with S a random 0/1 ``d x d``
  matrix (seeded here). The ESD is the singular values of X, not their squares, as WeightWatcher fits them.
  Layers that share no dimension are not paired.
* ``stacked``: every layer's matrix (a Conv2D's kernel slices side by side), each standardized robustly,
  ``(W - median(W)) / MAD`` (each column's MAD), zero-padded on the right to the widest and stacked vertically;
  the ESD is that of
  the stacked matrix (all of it: WeightWatcher 0.7.7 keeps only as many eigenvalues as its first layer has).
  Only the Gram matrix is accumulated (the padding adds nothing to it), never the stacked matrix itself.
"""

from __future__ import annotations

import math

import numpy as np

from .matrices import kernel_slices, to_numpy_float


def _shared_dimension(a: np.ndarray, b: np.ndarray) -> int | None:
    """The largest size that occurs at least twice among the four dimensions (WeightWatcher's alignment)."""
    sizes = [a.shape[0], a.shape[1], b.shape[0], b.shape[1]]
    repeated = [size for size in set(sizes) if sizes.count(size) > 1]
    return max(repeated) if repeated else None


def intra_product(W0, W1, sparsify: bool = True, rng: np.random.Generator | None = None) -> np.ndarray | None:
    """WeightWatcher's intra-layer matrix of two consecutive 2-D layers, or None when they share no dimension."""
    a, b = to_numpy_float(W0, np.float64), to_numpy_float(W1, np.float64)
    shared = _shared_dimension(a, b)
    if shared is None:
        return None
    if a.shape[1] != shared:
        a = a.T
    if b.shape[0] != shared:
        b = b.T
    if a.shape[1] != b.shape[0]:
        return None
    norm = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    if not sparsify:
        return (a @ b) / norm
    mask = (rng or np.random.default_rng(0)).integers(0, 2, size=(shared, shared)).astype(np.float64)
    return (a @ mask @ b) / (norm + math.sqrt(float(np.linalg.norm(mask))))


def robust_standardize(matrix: np.ndarray) -> np.ndarray:
    """``(W - median(W)) / MAD_j(W)``: the median over all of W, and each column's median absolute deviation from
    its own median (``scipy.stats.median_abs_deviation``'s default axis, unscaled), as weightwatcher computes it."""
    median = float(np.median(matrix))
    column_mad = np.median(np.abs(matrix - np.median(matrix, axis=0)), axis=0)
    return (matrix - median) / column_mad


def stacked_matrix_rows(tensor, channels: str | None = None) -> np.ndarray:
    """One layer's block of the stacked matrix before padding: the 2-D weight as stored, or a Conv kernel's slices
    side by side, robustly standardized."""
    array = to_numpy_float(tensor, np.float64)
    if array.ndim > 2:
        array = np.hstack(kernel_slices(array, channels))
    return robust_standardize(array)


class StackedGram:
    """Accumulates ``G = sum_l B_l^T B_l`` over the padded blocks B_l (the padding only adds zero rows/columns)."""

    def __init__(self) -> None:
        self.gram = np.zeros((0, 0))
        self.rows = 0

    def add(self, block: np.ndarray) -> None:
        width = block.shape[1]
        if width > self.gram.shape[0]:
            grown = np.zeros((width, width))
            grown[: self.gram.shape[0], : self.gram.shape[0]] = self.gram
            self.gram = grown
        self.gram[:width, :width] += block.T @ block
        self.rows += block.shape[0]

    def result(self) -> tuple[np.ndarray, int, int]:
        """(Gram matrix of the columns, N, M) of the stacked matrix, N >= M. When the stack is wider than tall, its
        M = rows nonzero eigenvalues are the largest of this Gram matrix's."""
        width = self.gram.shape[0]
        return self.gram, max(self.rows, width), min(self.rows, width)
