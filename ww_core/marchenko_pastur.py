"""Marchenko-Pastur (MP) fits of the bulk of an ESD, and the random-matrix edge used for correlation traps.

For an N x M matrix (N >= M, Q = N / M) with i.i.d. entries of variance sigma^2 / N, the eigenvalues of
X = W^T W follow the Marchenko-Pastur law (Marchenko & Pastur 1967)

    rho(x) = Q / (2 pi sigma^2 x) sqrt((lambda_+ - x)(x - lambda_-)),  lambda_+- = sigma^2 (1 +- 1/sqrt(Q))^2.

:func:`marchenko_pastur_fit` reproduces WeightWatcher 0.7.7's ``mp_fit``: the ESD is rescaled to unit mean, smoothed
with a linear-kernel density estimate (bandwidth 0.1) on 1000 points, and sigma is the least-squares match of the MP
density to it (a grid of 195 values followed by a Nelder-Mead polish). Spikes are eigenvalues right of
``lambda_+ + sqrt(TW)``, with WeightWatcher's Tracy-Widom width ``TW = Q^-1/2 lambda_+^2/3 M^-2/3``. For Q = 1 the
fit is the quarter-circle law on singular values. WeightWatcher evaluates a scikit-learn KDE for each of the 195
grid points; the density does not depend on sigma, so we compute it once, which is where our speed comes from.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

_KDE_BANDWIDTH = 0.1
_KDE_POINTS = 1000
_DENSITY_FLOOR = 0.01
_PENALTY = 1000.0


@dataclass(frozen=True)
class MarchenkoPasturFit:
    num_spikes: int
    sigma_mp: float
    mp_softrank: float
    bulk_min: float
    bulk_max: float
    scale: float


def _linear_kde(samples: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Triangular-kernel density ``mean_i max(0, 1 - |x - s_i| / h) / h`` at ``grid`` (scikit-learn's 'linear').

    Evaluated exactly with prefix sums over the sorted samples: O((n + g) log n) instead of O(n g).
    """
    s = np.sort(samples)
    prefix = np.concatenate(([0.0], np.cumsum(s)))
    lo_left = np.searchsorted(s, grid - bandwidth, side="right")
    mid = np.searchsorted(s, grid, side="right")
    hi_right = np.searchsorted(s, grid + bandwidth, side="left")
    # Left neighbours (x - h < s <= x): sum of (h - x + s); right neighbours (x < s < x + h): sum of (h + x - s).
    count_left = mid - lo_left
    sum_left = prefix[mid] - prefix[lo_left]
    count_right = hi_right - mid
    sum_right = prefix[hi_right] - prefix[mid]
    kernel_sum = (bandwidth - grid) * count_left + sum_left + (bandwidth + grid) * count_right - sum_right
    return np.maximum(kernel_sum, 0.0) / (s.size * bandwidth * bandwidth)


class _Residual:
    """Sum of squared differences between the MP (or quarter-circle) density and the smoothed ESD."""

    def __init__(self, to_fit: np.ndarray, q: float):
        self.q = q
        grid = np.linspace(0.0, float(np.max(to_fit)) + 0.5, _KDE_POINTS)
        density = _linear_kde(to_fit, grid, _KDE_BANDWIDTH)
        keep = density > _DENSITY_FLOOR
        self.x = grid[keep]
        self.density = density[keep]
        self.x_at_peak = self.x[int(np.argmax(self.density))] if self.x.size else 0.0
        self.x_last = self.x[-1] if self.x.size else 0.0

    def __call__(self, sigma) -> float:
        return float(self.on_grid(np.atleast_1d(np.asarray(sigma, dtype=np.float64))[:1])[0])

    def on_grid(self, sigmas: np.ndarray) -> np.ndarray:
        """The residual for many sigmas at once (one row of the density matrix per sigma)."""
        s = sigmas[:, None]
        x = self.x[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.q == 1.0:
                model = np.nan_to_num(1 / (np.pi * s * s) * np.sqrt(4 - x**2))
                return np.sum((model - self.density[None, :]) ** 2, axis=1)
            lam_plus = (sigmas * (1 + 1 / math.sqrt(self.q))) ** 2
            lam_minus = (sigmas * (1 - 1 / math.sqrt(self.q))) ** 2
            model = np.nan_to_num(
                self.q / (2 * np.pi * s * s * x) * np.sqrt((lam_plus[:, None] - x) * (x - lam_minus[:, None]))
            )
        residual = np.sum((model - self.density[None, :]) ** 2, axis=1)
        # An MP edge left of the ESD's peak, or right of all its mass, is not a fit of the bulk.
        outside = (lam_plus < self.x_at_peak) | (lam_plus > self.x_last) | (lam_minus > self.x_at_peak)
        return np.where(outside, _PENALTY * _PENALTY * self.x.size, residual)


def marchenko_pastur_fit(evals: np.ndarray, N: int, M: int) -> MarchenkoPasturFit:
    """Fit the MP bulk to eigenvalues of an N x M layer (M = the smaller dimension; pooled ESDs may hold more)."""
    from scipy import optimize  # imported here: only --mp-fit needs it, and scipy costs ~0.3 s to import

    evals = np.asarray(evals, dtype=np.float64)
    q = N / M
    scale_sq = evals.size / float(np.sum(evals))
    scaled = evals * scale_sq
    to_fit = np.sqrt(scaled) if q == 1.0 else scaled
    residual = _Residual(to_fit, q)

    # WeightWatcher's search range: 0.05 .. 2 times the sigma that puts lambda_+ on the largest eigenvalue.
    sigma_at_max = math.sqrt(float(np.max(scaled)) / (1 + 1 / math.sqrt(q)) ** 2)
    grid = np.arange(0.05 * sigma_at_max, 2.0 * sigma_at_max, 0.01 * sigma_at_max)
    values = residual.on_grid(grid)
    start = grid[int(np.argmin(values))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sigma = float(optimize.fmin(residual, [start], disp=False)[0])

    lam_plus = (sigma * (1 + 1 / math.sqrt(q))) ** 2
    lam_minus = (sigma * (1 - 1 / math.sqrt(q))) ** 2
    tracy_widom = 1 / math.sqrt(q) * lam_plus ** (2 / 3) * M ** (-2 / 3)
    num_spikes = int(np.count_nonzero(scaled > lam_plus + math.sqrt(tracy_widom)))
    return MarchenkoPasturFit(
        num_spikes=num_spikes,
        sigma_mp=sigma,
        mp_softrank=lam_plus / float(np.max(scaled)),
        bulk_min=lam_minus / scale_sq,
        bulk_max=lam_plus / scale_sq,
        scale=math.sqrt(scale_sq),
    )


def random_matrix_edge(element_variance: float, N: int, M: int) -> tuple[float, float]:
    """MP edge ``lambda_+ = v (sqrt N + sqrt M)^2`` of W^T W for i.i.d. entries of variance v, and its
    Tracy-Widom fluctuation scale ``v (sqrt N + sqrt M) (1/sqrt N + 1/sqrt M)^(1/3)`` (Johnstone 2001)."""
    root_sum = math.sqrt(N) + math.sqrt(M)
    edge = element_variance * root_sum**2
    width = element_variance * root_sum * (1 / math.sqrt(N) + 1 / math.sqrt(M)) ** (1 / 3)
    return edge, width


def marchenko_pastur_density(x: np.ndarray, q: float, sigma: float) -> np.ndarray:
    """The MP density ``Q / (2 pi sigma^2 x) sqrt((lambda_+ - x)(x - lambda_-))`` on ``[lambda_-, lambda_+]``
    (0 outside) for aspect ratio ``Q = N / M``; the fit's own scale (eigenvalues times ``W_scale^2``)."""
    x = np.asarray(x, dtype=np.float64)
    lam_plus = (sigma * (1 + 1 / math.sqrt(q))) ** 2
    lam_minus = (sigma * (1 - 1 / math.sqrt(q))) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        density = q / (2 * np.pi * sigma * sigma * x) * np.sqrt((lam_plus - x) * (x - lam_minus))
    return np.where((x > lam_minus) & (x < lam_plus), np.nan_to_num(density), 0.0)
