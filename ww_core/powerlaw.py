"""Power-law fits of the tail of an empirical spectral density (ESD).

The method is Clauset, Shalizi & Newman (2009), "Power-law distributions in empirical data", SIAM Review 51:661,
as WeightWatcher 0.7.7 implements it for continuous data:

* for each candidate ``xmin`` among the sorted eigenvalues, the MLE of the exponent on the tail ``x >= xmin`` is
  ``alpha = 1 + n / sum(ln(x_i / xmin))``;
* the Kolmogorov-Smirnov distance ``D = max |F_emp(x) - F_fit(x)|`` with ``F_fit(x) = 1 - (x / xmin)^(1 - alpha)``
  and ``F_emp`` the step CDF ``0, 1/n, ..., (n-1)/n``;
* the fit is the candidate with the smallest ``D``; ``sigma = (alpha - 1) / sqrt(n)`` is the standard error.

All candidates are evaluated at once (blocks of a lower-triangular matrix), not in a Python loop.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# WeightWatcher's threshold below which an eigenvalue counts as zero before the fit.
EVALS_THRESHOLD = 1e-5
# Below this many eigenvalues WeightWatcher 0.7.7 switches to a bias-corrected, tail-size-encouraging objective.
SMALL_N_CUTOFF = 20
_SMALL_N_MIN_TAIL = 8
# Candidates x tail elements evaluated per block: 2 MB per temporary, so a block stays in cache. Measured on a
# 2048-eigenvalue fit here: 3x faster than 4M-element blocks, and two fits on two threads no longer contend.
_BLOCK_ELEMENTS = 262_144


class PowerLawFitError(ValueError):
    """The eigenvalues cannot be fitted (too few, degenerate, or non-finite)."""


@dataclass(frozen=True)
class PowerLawFit:
    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    n_tail: int
    Lambda: float = math.nan
    num_fingers: int = 0
    raw_alpha: float = math.nan


def _candidate_statistics(x: np.ndarray, small_n: bool) -> tuple[np.ndarray, np.ndarray]:
    """alpha and KS distance D for every candidate xmin = x[i], i < n - 1 (x sorted ascending, positive)."""
    n = x.size
    log_x = np.log(x)
    # suffix_log_sum[i] = sum(log_x[i:])
    suffix_log_sum = np.cumsum(log_x[::-1])[::-1]
    candidates = np.arange(n - 1)
    tail_sizes = (n - candidates).astype(np.float64)
    log_ratio_sum = suffix_log_sum[:-1] - tail_sizes * log_x[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        numerator = tail_sizes - 1.0 if small_n else tail_sizes
        alphas = 1.0 + numerator / log_ratio_sum
    alphas = np.where(log_ratio_sum > (1e-12 if small_n else 0.0), alphas, np.inf if not small_n else 0.0)

    distances = np.ones(n - 1)
    valid = np.isfinite(alphas) & (alphas > 1.0)
    if small_n:
        valid &= tail_sizes >= _SMALL_N_MIN_TAIL
    rows_per_block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n - 1, rows_per_block):
        stop = min(n - 1, start + rows_per_block)
        rows = np.arange(start, stop)
        # Tail element j >= i, indexed from the block start so all rows share one column range. The block is
        # computed in place in one buffer: the O(n^2) pass is bound by memory traffic, not arithmetic.
        rank_in_tail = (np.arange(start, n)[None, :] - rows[:, None]).astype(np.float64)
        outside_tail = rank_in_tail < 0
        gap = log_x[None, start:] - log_x[rows, None]
        with np.errstate(over="ignore", invalid="ignore"):
            gap *= 1.0 - alphas[rows, None]
            np.exp(gap, out=gap)
            np.subtract(1.0, gap, out=gap)  # the fitted CDF
            rank_in_tail /= tail_sizes[rows, None]  # the empirical CDF
            gap -= rank_in_tail
            np.abs(gap, out=gap)
        np.copyto(gap, 0.0, where=outside_tail)
        block_d = gap.max(axis=1)
        distances[start:stop] = np.where(valid[start:stop], block_d, 1.0)
    return alphas, distances


def fit_power_law(evals: np.ndarray) -> PowerLawFit:
    """Fit ``p(x) ~ x^-alpha`` on ``x >= xmin`` to positive eigenvalues, xmin by minimum KS distance.

    ``evals`` must be positive and finite (callers drop eigenvalues below :data:`EVALS_THRESHOLD`).
    With fewer than 20 eigenvalues, as in WeightWatcher 0.7.7, the exponent is the bias-corrected MLE
    ``1 + (n - 1) / sum(ln(x / xmin))`` and only tails of at least 8 eigenvalues are candidates (fewer than 8: the
    whole spectrum is the tail). (WeightWatcher's
    small-sample code also computes an objective ``D - 0.868 / sqrt(n)``, but its caller then overrides the choice
    with the minimum-D candidate; we reproduce what it computes, not the unused objective.)
    """
    x = np.sort(np.asarray(evals, dtype=np.float64))
    n = x.size
    if n < 2:
        raise PowerLawFitError(f"a power-law fit needs at least 2 positive eigenvalues, got {n}")
    small_n = n < SMALL_N_CUTOFF
    alphas, distances = _candidate_statistics(x, small_n)
    tail_sizes = n - np.arange(n - 1)
    if small_n:
        valid = np.isfinite(alphas) & (alphas > 1.0) & (tail_sizes >= _SMALL_N_MIN_TAIL)
        if not valid.any():
            return _whole_spectrum_fit(x)
        best = int(np.argmin(np.where(valid, distances, np.inf)))
    else:
        if not (np.isfinite(alphas) & (alphas > 1.0)).any():
            raise PowerLawFitError("all eigenvalues are equal: the tail has no power law")
        best = int(np.argmin(distances))
    alpha = float(alphas[best])
    if not math.isfinite(alpha) or alpha <= 1.0:
        raise PowerLawFitError(f"the best KS candidate has no finite exponent (alpha={alpha})")
    return PowerLawFit(
        alpha=alpha,
        xmin=float(x[best]),
        xmax=float(x[-1]),
        D=float(distances[best]),
        sigma=float((alpha - 1.0) / math.sqrt(tail_sizes[best])),
        n_tail=int(tail_sizes[best]),
    )


def _whole_spectrum_fit(x: np.ndarray) -> PowerLawFit:
    """WeightWatcher's small-sample fallback when no tail of 8 eigenvalues has a finite exponent: the whole spectrum
    as the tail, ``alpha = 1 + (n - 1) / sum(ln(x / x_1))``."""
    n = x.size
    log_ratio_sum = float(np.sum(np.log(x / x[0])))
    if log_ratio_sum <= 1e-12:
        raise PowerLawFitError("all eigenvalues are equal: the tail has no power law")
    alpha = 1.0 + (n - 1.0) / log_ratio_sum
    fitted = 1.0 - (x / x[0]) ** (1.0 - alpha)
    D = float(np.max(np.abs(np.arange(n) / n - fitted)))
    return PowerLawFit(alpha, float(x[0]), float(x[-1]), D, (alpha - 1.0) / math.sqrt(n), n)


def fit_power_law_clip_xmax(
    evals: np.ndarray,
    max_fingers: int = 10,
    finger_thresh: float = 1.0,
    min_alpha: float = 2.0,
    fitter: Callable[[np.ndarray], PowerLawFit] | None = None,
) -> PowerLawFit:
    """WeightWatcher's ``fix_fingers='clip_xmax'``: drop the largest eigenvalues ("fingers") one more at a time.

    Starting from 2 clipped eigenvalues, the first clipped fit whose alpha is smaller than the unclipped alpha by more
    than ``finger_thresh`` is kept; clipping stops when alpha falls to ``min_alpha`` or ``max_fingers`` is reached.
    ``num_fingers`` is WeightWatcher's count: one less than the eigenvalues removed (``n_tail`` counts what is left
    of the tail). ``fitter`` fits
    each clipped spectrum (default :func:`fit_power_law`).
    """
    fit_power_law_ = fitter or fit_power_law
    x = np.sort(np.asarray(evals, dtype=np.float64))
    first = fit_power_law_(x)
    for clipped in range(2, max_fingers):
        if x.size - clipped < 2:
            break
        fit = fit_power_law_(x[:-clipped])
        if fit.alpha + finger_thresh < first.alpha:
            return PowerLawFit(
                alpha=fit.alpha,
                xmin=fit.xmin,
                xmax=fit.xmax,
                D=fit.D,
                sigma=fit.sigma,
                n_tail=fit.n_tail,
                num_fingers=clipped - 1,
                raw_alpha=first.alpha,
            )
        if fit.alpha <= min_alpha:
            break
    return PowerLawFit(
        alpha=first.alpha,
        xmin=first.xmin,
        xmax=first.xmax,
        D=first.D,
        sigma=first.sigma,
        n_tail=first.n_tail,
        num_fingers=0,
        raw_alpha=first.alpha,
    )


def esd_peak(evals: np.ndarray, bins: int = 100) -> float:
    """The mode of the ESD on a log scale: left edge of the fullest of ``bins`` log10-spaced histogram bins."""
    counts, edges = np.histogram(np.log10(evals), bins=bins)
    return float(10.0 ** edges[int(np.argmax(counts))])


def fit_power_law_xmin_peak(evals: np.ndarray, xmin_max: float | None = None) -> PowerLawFit:
    """``fix_fingers='xmin_peak'``: restrict xmin to ``[0.95 peak, xmin_max]`` with peak = :func:`esd_peak`.

    ``xmin_max`` defaults to 1.5 x peak, as in WeightWatcher. WeightWatcher 0.7.7 cannot run this option with its
    default fitter (it passes a range where its fitter expects a number, and mixes a log10 bound with a linear one);
    we apply the range the documentation describes.
    """
    x = np.sort(np.asarray(evals, dtype=np.float64))
    peak = esd_peak(x)
    upper = 1.5 * peak if xmin_max is None else float(xmin_max)
    lower = 0.95 * peak
    if upper < lower:
        raise PowerLawFitError(f"xmin_max={upper:g} is below 0.95 x the ESD peak ({lower:g})")
    n = x.size
    if n < 2:
        raise PowerLawFitError(f"a power-law fit needs at least 2 positive eigenvalues, got {n}")
    alphas, distances = _candidate_statistics(x, small_n=False)
    in_range = (x[:-1] >= lower) & (x[:-1] <= upper) & np.isfinite(alphas) & (alphas > 1.0)
    if not in_range.any():
        raise PowerLawFitError(f"no eigenvalue lies in the xmin range [{lower:g}, {upper:g}]")
    best = int(np.argmin(np.where(in_range, distances, np.inf)))
    tail = n - best
    alpha = float(alphas[best])
    return PowerLawFit(
        alpha=alpha,
        xmin=float(x[best]),
        xmax=float(x[-1]),
        D=float(distances[best]),
        sigma=float((alpha - 1.0) / math.sqrt(tail)),
        n_tail=int(tail),
    )


def _upper_incomplete_gamma(s: float, z: float) -> float:
    """Gamma(s, z) for any real s and z > 0, by upward-stable recurrence from a positive order.

    ``Gamma(s, z) = (Gamma(s + 1, z) - z^s e^-z) / s``; scipy's ``gammaincc`` only covers s > 0.
    """
    from scipy import special  # imported here: only the TPL fit needs it, and scipy costs ~0.3 s to import

    if s > 0:
        return float(special.gammaincc(s, z) * special.gamma(s))
    if abs(s - round(s)) < 1e-12:
        order, value = 0.0, float(special.exp1(z))
    else:
        order = s + math.floor(-s) + 1.0
        value = float(special.gammaincc(order, z) * special.gamma(order))
    while order - s > 0.5:
        order -= 1.0
        value = (value - z**order * math.exp(-z)) / order
    return value


def fit_truncated_power_law(evals: np.ndarray, start: PowerLawFit | None = None) -> PowerLawFit:
    """Truncated power law ``p(x) ~ x^-alpha exp(-Lambda x)`` on the tail ``x >= xmin``.

    xmin is the power-law fit's (minimum KS distance), or ``start``'s (``fit='E_TPL'``: the ``xmin_peak`` fit's, as
    WeightWatcher's E_TPL restricts xmin to the ESD peak); ``alpha`` and ``Lambda >= 0`` maximize the likelihood with
    normalization ``integral_xmin^inf x^-alpha e^(-Lambda x) dx = Lambda^(alpha-1) Gamma(1 - alpha, Lambda xmin)``.
    WeightWatcher 0.7.7 delegates this to the ``powerlaw`` package, whose 2.0 release breaks it; this is our own MLE.
    Eigenvalues are scaled by xmin so that the optimizer works on ``x / xmin >= 1``.
    """
    from scipy import optimize

    pl = start or fit_power_law(evals)
    x = np.sort(np.asarray(evals, dtype=np.float64))
    tail = x[x >= pl.xmin] / pl.xmin
    n = tail.size
    sum_log = float(np.sum(np.log(tail)))
    sum_x = float(np.sum(tail))

    def negative_log_likelihood(params: np.ndarray) -> float:
        alpha, log_lambda = params
        lam = math.exp(log_lambda)
        normalization = lam ** (alpha - 1.0) * _upper_incomplete_gamma(1.0 - alpha, lam)
        if not math.isfinite(normalization) or normalization <= 0.0:
            return 1e300
        return alpha * sum_log + lam * sum_x + n * math.log(normalization)

    start = np.array([max(pl.alpha, 1.05), math.log(1.0 / max(sum_x / n, 1.0) + 1e-3)])
    result = optimize.minimize(
        negative_log_likelihood,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    if not result.success or not np.all(np.isfinite(result.x)):
        raise PowerLawFitError(f"truncated power-law likelihood did not converge: {result.message}")
    alpha, log_lambda = (float(v) for v in result.x)
    return PowerLawFit(
        alpha=alpha,
        xmin=pl.xmin,
        xmax=pl.xmax,
        D=pl.D,
        sigma=pl.sigma,
        n_tail=n,
        Lambda=math.exp(log_lambda) / pl.xmin,
    )


def _standard_error(fit) -> float:
    # powerlaw 2.0 renamed the MLE's standard error `standard_err` (the old `sigma` warns, and goes in 2.1).
    law = fit.power_law
    return law.standard_err if hasattr(type(law), "standard_err") else law.sigma


def _package_fit(x: np.ndarray, truncated: bool, xmin, force_xmax: bool) -> PowerLawFit:
    import powerlaw  # the PyPI package (wwhub[powerlaw]), imported only when pl_package='powerlaw' asks for it

    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        # xmin by the power law's KS distance (the package's default) for either distribution: searching it with
        # the truncated law's (weightwatcher's xmin_distribution=distribution) fits a TPL per candidate, ~100x slower.
        fit = powerlaw.Fit(x, xmin=xmin, xmax=float(x[-1]) if force_xmax else None, verbose=False)
        alpha, Lambda = float(fit.alpha), math.nan
        if truncated:
            alpha, Lambda = float(fit.truncated_power_law.alpha), float(fit.truncated_power_law.Lambda)
        standard_error = _standard_error(fit)
    if not math.isfinite(alpha):
        raise PowerLawFitError(f"the powerlaw package found no finite exponent (alpha={alpha})")
    n_tail = int(np.count_nonzero(x >= fit.xmin))
    return PowerLawFit(
        alpha=alpha,
        xmin=float(fit.xmin),
        xmax=float(fit.xmax) if fit.xmax is not None else float(x[-1]),
        D=float(fit.D),
        sigma=float(standard_error),
        n_tail=n_tail,
        Lambda=Lambda,
    )


def fit_with_powerlaw_package(
    evals: np.ndarray,
    truncated: bool = False,
    xmin_peak: bool = False,
    xmin_max: float | None = None,
    force_xmax: bool = False,
    clip_xmax: bool = False,
    max_fingers: int = 10,
    finger_thresh: float = 1.0,
) -> PowerLawFit:
    """WeightWatcher's ``pl_package='powerlaw'``: the same fits through the ``powerlaw`` package (Alstott, Bullmore
    & Plenz 2014), ``powerlaw.Fit(evals, xmin, xmax)``: xmin by minimum KS distance of the power law over the
    candidates (``truncated``: then the truncated power law's alpha and Lambda at that xmin), xmin searched
    in ``[0.95 peak, xmin_max]`` with ``xmin_peak`` (default ``xmin_max`` 1.5 peak; WeightWatcher 0.7.7 passes
    ``log10(0.95 peak)`` as the lower end), the largest eigenvalue as xmax with ``force_xmax`` (``xmax='force'``).
    """
    x = np.sort(np.asarray(evals, dtype=np.float64))
    if x.size < 2:
        raise PowerLawFitError(f"a power-law fit needs at least 2 positive eigenvalues, got {x.size}")
    xmin = None
    if xmin_peak:
        peak = esd_peak(x)
        xmin = (0.95 * peak, 1.5 * peak if xmin_max is None else float(xmin_max))
    if clip_xmax:
        return fit_power_law_clip_xmax(
            x, max_fingers, finger_thresh, fitter=lambda y: _package_fit(y, truncated, xmin, force_xmax)
        )
    return _package_fit(x, truncated, xmin, force_xmax)


def power_law_pdf(x: np.ndarray, alpha: float, xmin: float) -> np.ndarray:
    """The fitted density ``(alpha - 1) / xmin (x / xmin)^-alpha`` on ``x >= xmin`` (0 below)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= xmin, (alpha - 1.0) / xmin * (x / xmin) ** (-alpha), 0.0)
