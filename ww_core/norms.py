"""Norm-based metrics of an ESD, the SETOL/ERG detX condition, and the distance between two ESDs."""

from __future__ import annotations

import math

import numpy as np

_ENTROPY_EPSILON = 1e-10
_FLOAT64_EPS = float(np.finfo(np.float64).eps)


def matrix_rank(evals: np.ndarray, N: int, eps: float = _FLOAT64_EPS) -> int:
    """Number of eigenvalues above ``lambda_max * N * eps``, ``eps`` that of the precision they were computed in.

    WeightWatcher (like ``numpy.linalg.matrix_rank``) thresholds singular values at ``sigma_max N eps``. Our
    eigenvalues come from the Gram matrix, whose rounding error is ~eps lambda_max, so the equivalent test on
    singular values would count rounding noise as rank; thresholding eigenvalues at ``lambda_max N eps`` is the
    consistent choice. Both agree on every full-rank layer. In float32 the rounding noise is ~1e-7 lambda_max: with
    float64's eps a rank-50 layer of 100 columns counted 75.
    """
    if evals.size == 0:
        return 0
    return int(np.count_nonzero(evals > float(evals[-1]) * N * eps))


def matrix_entropy(evals: np.ndarray, rank: int) -> float:
    """Normalized spectral entropy ``-sum p ln p / ln(rank)`` with ``p = lambda / sum(lambda)`` (WeightWatcher's)."""
    p = evals / np.sum(evals) + _ENTROPY_EPSILON
    return float(-np.sum(p * np.log(p)) / math.log(rank + _ENTROPY_EPSILON))


def detx_condition(evals: np.ndarray) -> tuple[int, float]:
    """SETOL's detX = 1 condition (Martin & Hinrichs 2025): the smallest tail whose eigenvalues multiply to >= 1.

    Eigenvalues are first rescaled to unit mean (``lambda * n / sum(lambda)``); scanning from the top, the tail
    grows until ``prod(tail) < 1``. Returns the tail size and its smallest eigenvalue on the original scale.
    Products are summed in log space, which cannot overflow (WeightWatcher multiplies directly).
    """
    n = evals.size
    if n < 2 or not evals[0] < evals[-1]:
        return 0, float(evals[0]) if n else math.nan
    rescaled = evals * (n / float(np.sum(evals)))
    with np.errstate(divide="ignore"):
        suffix_log_product = np.cumsum(np.log(rescaled[::-1]))[::-1]
    # Candidate tail starts 1..n-1, largest first, as WeightWatcher scans them.
    below_one = np.nonzero(suffix_log_product[1:] < 0.0)[0]
    if below_one.size == 0:
        # WeightWatcher's scan ends at index 1 without a hit and reports the whole spectrum.
        return n, float(evals[1])
    idx = int(below_one[-1]) + 1
    return n - idx, float(evals[idx])


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """sqrt of the Jensen-Shannon divergence between two equally long sorted spectra, each normalized to sum 1.

    This is WeightWatcher's ``rand_distance``: it treats the sorted eigenvalue vectors themselves as distributions.
    """
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def level_spacings(evals: np.ndarray) -> np.ndarray:
    """WeightWatcher's ``deltas``: the gaps ``lambda_{i+1} - lambda_i`` between consecutive sorted eigenvalues
    (level statistics; Wigner 1955)."""
    return np.diff(np.sort(np.asarray(evals, dtype=np.float64)))
