"""Correlations between model-averaged weight metrics and a reported metric, with their uncertainty.

Plain arrays in, rows (dicts) out: no DuckDB, no lake. ``flows/leaderboard/correlations.py`` feeds it from the lake and
stores the rows as the ``correlations`` table. Each statistic equals scipy.stats' (tested), but a refresh of the
table imports no scipy (scipy.stats alone costs 0.65-0.87 s, a third of a one-model scan): numpy computes them, with
``distributions`` for the tails of the normal and of Pearson's r.

* Pearson r, its two-sided p and its 95% Fisher-z interval ``tanh(atanh r ± z₀.₉₇₅/√(n−3))``: the formulas of
  ``scipy.stats.pearsonr`` and its ``confidence_interval()`` (``_pearson``).
* Spearman ρ (average ranks for ties) and its p: Pearson's on the ranks, which is the test of
  ``scipy.stats.spearmanr``.
* Kendall τ-b and its p (exact permutation distribution for small n without ties, normal approximation
  otherwise, as ``scipy.stats.kendalltau(method="auto")`` decides): ranks and Kendall's counts in
  ``rank_tests.py``.
* Benjamini-Hochberg adjusted p-values (``benjamini_hochberg``, as ``scipy.stats.false_discovery_control``).
* The OLS fit of the reported value on the metric, and for plots its confidence band (``ols_band``, with
  ``scipy.stats.linregress``: plots and pages only, never a refresh).

Intervals for ρ and τ are percentile bootstrap intervals from ``BOOTSTRAP_RESAMPLES`` seeded resamples of the
models (``bootstrap_interval``). A resample is a vector of multiplicities (how many times each model was drawn),
so ρ and τ of all resamples are computed at once from those weights (``_weighted_spearman``,
``_weighted_kendall``) instead of re-sorting each resample in a Python loop; they equal scipy's statistics on the
resampled arrays (tested). Above ``BOOTSTRAP_MAX_N`` models the intervals are
Fieller, Hartley & Pearson's (Biometrika 44:470, 1957) Fisher-z intervals with variances 1.06/(n−3) for ρ and
0.437/(n−4) for τ, which are accurate at that size and cost nothing.

The pooled row of a metric (``pooled_rows``, every model of the lake at once) gives the same numbers from sums over
centred values held in four reused buffers, with its ranks and Kendall integers from a ``RankState`` kept up to date
point by point: a scan recomputes it every time, and fresh 100 000-element temporaries cost far more in page faults
than in arithmetic.

Confounders:

* ``partial_r_size``: Pearson r of the residuals of the metric and of the reported value after a least-squares fit
  on log10(parameter count) (with intercept), i.e. the partial correlation controlling for model size.
* ``within_family_r``: the fixed-effects ("within") correlation: metric and reported value centred on their family
  means, then Pearson r over all models. It equals the partial correlation controlling for family membership
  (k − 1 dummies), so its Fisher-z interval uses n − k − 2 degrees of freedom instead of n − 3 (k = families with
  at least two models). Bland & Altman (BMJ 310:446, 1995) call it the correlation within subjects.
"""

from __future__ import annotations

import math
import threading
import warnings
import zlib
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .distributions import pearson_two_sided_p
from .rank_tests import TIE_KINDS, TIE_NAMES, TIE_TERMS, kendall_tau_p, rank_pairs

POOLED = "(all)"
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
MIN_MODELS = 3  # fewer models: no row at all (a correlation of two points is ±1 by construction)
MIN_MODELS_FOR_VERDICT = 5
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_MAX_N = 500
# Fieller, Hartley & Pearson (1957): var(atanh ρ) ≈ 1.06/(n − 3), var(atanh τ) ≈ 0.437/(n − 4).
_FHP_SPEARMAN = (1.06, 3)
_FHP_KENDALL = (0.437, 4)

VERDICT_SIGNIFICANT = "significant"
VERDICT_NOT_SIGNIFICANT = "not significant"
VERDICT_TOO_FEW = "too few models"

_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)


def _finite(value) -> float | None:
    """A Python float, or None for NaN/inf (the table stores NULL, never NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _constant_rows(values: np.ndarray) -> np.ndarray:
    return np.all(values == values[..., :1], axis=-1)


def fisher_interval(r: float | None, dof: float) -> tuple[float | None, float | None]:
    """``tanh(atanh r ± z/√dof)``: the Fisher-z interval of a correlation whose atanh has variance 1/dof."""
    if r is None or dof <= 0 or not math.isfinite(r):
        return None, None
    if abs(r) >= 1:
        return r, r
    z = math.atanh(r)
    half = _Z / math.sqrt(dof)
    return math.tanh(z - half), math.tanh(z + half)


def _batched(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(values as (G, n), weights as (G, B, n), whether the caller passed a single group)."""
    single = values.ndim == 1
    return np.atleast_2d(values), weights[None] if weights.ndim == 2 else weights, single


def _count_matmul(weights: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``weights @ matrix`` for draw counts (summing to n per resample) and a matrix of halves in [−1, 1] (comparisons,
    signs): every product and partial sum is a multiple of ½ of magnitude at most n, exact in float32 below
    n = 2²³, so single precision gives the float64 product bit for bit, about twice as fast."""
    if weights.shape[-1] >= 1 << 23:
        return np.matmul(weights, matrix)
    return np.matmul(weights.astype(np.float32), matrix.astype(np.float32)).astype(np.float64)


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of each value among the drawn values, for every resample: the weight of all smaller values
    plus (the weight of equal values + 1) / 2, which is the average rank scipy.stats.rankdata gives each copy.
    ``values`` (G, n), ``weights`` (G, B, n) → (G, B, n)."""
    below = (values[:, None, :] < values[:, :, None]) + 0.5 * (values[:, None, :] == values[:, :, None])
    return _count_matmul(weights, np.swapaxes(below, 1, 2)) + 0.5


def _weighted_pearson(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r of a and b along the last axis, each element counted ``weights`` times (sums of products: the
    values are ranks, small numbers, so the one-pass formula loses nothing)."""

    # einsum reduces the short last axis several times faster than ndarray.sum(axis=-1).
    def dot(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.einsum("...i,...i->...", left, right)

    weighted_a, weighted_b = weights * a, weights * b
    count = np.einsum("...i->...", weights)
    sum_a, sum_b = np.einsum("...i->...", weighted_a), np.einsum("...i->...", weighted_b)
    covariance = dot(weighted_a, b) - sum_a * sum_b / count
    variance = (dot(weighted_a, a) - sum_a**2 / count) * (dot(weighted_b, b) - sum_b**2 / count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(variance > 1e-12 * count**4, covariance / np.sqrt(variance), np.nan)


def _weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman ρ of each weighted resample: Pearson r of the average ranks, each value counted as often as drawn.
    ``x``, ``y`` (n,) with ``weights`` (B, n), or (G, n) with (G, B, n)."""
    x, weights, single = _batched(x, weights)
    y = np.atleast_2d(y)
    result = _weighted_pearson(_weighted_ranks(x, weights), _weighted_ranks(y, weights), weights)
    return result[0] if single else result


def _weighted_kendall(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall τ-b of each weighted resample: (C − D) / √((P − Tx)(P − Ty)), with P the pairs of draws, Tx and Ty the
    pairs of draws tied in x and in y, and C − D = ½ Σᵢⱼ wᵢ wⱼ sign(xᵢ − xⱼ) sign(yᵢ − yⱼ) (two draws of the same model
    are a tie in both, as when scipy.stats.kendalltau sees the resampled arrays). Shapes as _weighted_spearman."""
    x, weights, single = _batched(x, weights)
    y = np.atleast_2d(y)
    dx = x[:, :, None] - x[:, None, :]
    dy = y[:, :, None] - y[:, None, :]

    def quadratic(matrix: np.ndarray) -> np.ndarray:  # Σᵢⱼ wᵢ wⱼ Mᵢⱼ per resample
        return np.einsum("...i,...i->...", _count_matmul(weights, matrix), weights)

    def tied_pairs(differences: np.ndarray) -> np.ndarray:  # pairs of draws with equal values
        repeats = np.einsum("...i,...i->...", weights, weights - 1) / 2  # two draws of one model
        ties = (differences == 0) & ~np.eye(differences.shape[-1], dtype=bool)
        return repeats + (quadratic(ties.astype(float)) / 2 if ties.any() else 0.0)

    draws = np.einsum("...i->...", weights)
    pairs = draws * (draws - 1) / 2
    tied_x, tied_y = tied_pairs(dx), tied_pairs(dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = quadratic(np.sign(dx) * np.sign(dy)) / 2 / np.sqrt((pairs - tied_x) * (pairs - tied_y))
    return result[0] if single else result


def _resample_weights(n: int, seed: int) -> np.ndarray:
    """(B, n) draw counts of ``BOOTSTRAP_RESAMPLES`` resamples of n models with replacement, from ``seed``."""
    draws = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    offsets = np.arange(BOOTSTRAP_RESAMPLES)[:, None] * n
    counts = np.bincount((draws + offsets).ravel(), minlength=BOOTSTRAP_RESAMPLES * n)
    return counts.reshape(BOOTSTRAP_RESAMPLES, n).astype(float)


def _percentiles(resampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (rows), the 2.5% and 97.5% quantiles (numpy's default linear interpolation) of the finite
    resampled values; NaN when fewer than half of the resamples are defined (every draw the same model)."""
    finite = np.isfinite(resampled)
    count = finite.sum(axis=1)
    ordered = np.sort(np.where(finite, resampled, np.inf), axis=1)
    bounds = []
    for level in ((1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2):
        position = level * np.maximum(count - 1, 0)
        below = np.floor(position).astype(int)
        above = np.minimum(below + 1, np.maximum(count - 1, 0))
        rows = np.arange(resampled.shape[0])
        low_value, high_value = ordered[rows, below], ordered[rows, above]
        with np.errstate(invalid="ignore"):
            value = low_value + (position - below) * (high_value - low_value)
        bounds.append(np.where(count >= BOOTSTRAP_RESAMPLES // 2, np.where(above == below, low_value, value), np.nan))
    return bounds[0], bounds[1]


def bootstrap_intervals(x: np.ndarray, y: np.ndarray, seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """95% percentile bootstrap intervals of Spearman ρ and Kendall τ for G groups of n models at once (Efron &
    Tibshirani 1993, ch. 13; what ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` computes):
    resample each group's n (x, y) pairs ``BOOTSTRAP_RESAMPLES`` times from its seed, take the 2.5% and 97.5%
    quantiles. ρ and τ share the resamples. Percentile rather than BCa: with a handful of models the bootstrap
    distribution is a few atoms, and BCa's adjusted levels then jump to an atom at the far end (ρ = −0.9 from 5
    models got [−1, +1]); both covered the truth equally often in our simulations (n = 5 to 30)."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    groups, n = x.shape
    out = {k: np.full(groups, np.nan) for k in ("rho_low", "rho_high", "tau_low", "tau_high")}
    # Chunks of groups keep the (groups, resamples, n) arrays near 16 MB.
    chunk = max(1, 2_000_000 // (BOOTSTRAP_RESAMPLES * n))

    def intervals(start: int) -> None:
        part = slice(start, start + chunk)
        weights = np.stack([_resample_weights(n, seed) for seed in seeds[part]])
        out["rho_low"][part], out["rho_high"][part] = _percentiles(_weighted_spearman(x[part], y[part], weights))
        out["tau_low"][part], out["tau_high"][part] = _percentiles(_weighted_kendall(x[part], y[part], weights))

    starts = range(0, groups, chunk)
    workers = min(len(starts), _bootstrap_workers()) if len(starts) > 1 else 1
    if workers <= 1:
        for start in starts:
            intervals(start)
    else:
        # NumPy releases the GIL in the matrix products, einsums and sorts that dominate, and every chunk has its
        # own seeds and writes its own slice of ``out``: threads give the same intervals (2 cores: 1.76x faster on
        # 400 groups of 100, as after a lake import of 1 000 families).
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(intervals, starts))
    return out


def _bootstrap_workers() -> int:
    from ..analysis.model_analysis import usable_cores  # imported here: only a large refresh needs it

    return usable_cores()


def ols_band(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The OLS line on ``grid`` and its 95% confidence band for the mean:
    ŷ ± t₀.₉₇₅,ₙ₋₂ · s · √(1/n + (g − x̄)² / Σ(x − x̄)²), s² = Σ residual² / (n − 2). None below 3 points or for a
    constant x."""
    from scipy import stats  # imported here: reading stored correlations needs no scipy

    if x.size < 3 or _constant_rows(x):
        return None
    fit = stats.linregress(x, y)
    line = fit.intercept + fit.slope * grid
    residuals = y - (fit.intercept + fit.slope * x)
    s = math.sqrt(np.sum(residuals**2) / (x.size - 2))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, x.size - 2) * s
    half = half * np.sqrt(1 / x.size + (grid - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    return line, line - half, line + half


def _residuals(values: np.ndarray, control: np.ndarray) -> np.ndarray:
    """Rows of ``values`` minus their least-squares fit on [1, control] (only centred where control is constant)."""
    centred = values - values.mean(axis=-1, keepdims=True)
    control = control - control.mean(axis=-1, keepdims=True)
    spread = (control * control).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(spread > 0, (centred * control).sum(axis=-1, keepdims=True) / spread, 0.0)
    return centred - slope * control


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of two centred arrays. Each row is first divided by its largest magnitude, as
    ``scipy.stats.pearsonr`` does: the squares of reported values beyond ~1e154 overflow (and r would read 0)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = a / np.abs(a).max(axis=-1, keepdims=True)
        b = b / np.abs(b).max(axis=-1, keepdims=True)
        return (a * b).sum(axis=-1) / np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))


def partial_r(x: np.ndarray, y: np.ndarray, control: np.ndarray) -> float | None:
    """Partial correlation of x and y controlling for ``control``: Pearson r of the residuals of x and of y after a
    least-squares fit on [1, control]. Equals (r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²)) when z varies, and r_xy
    when z is constant (the fit then only centres)."""
    return _finite(_row_pearson(_residuals(x, control), _residuals(y, control)))


_NO_WITHIN = dict(within_family_r=None, within_family_ci_low=None, within_family_ci_high=None)


def within_family(x: np.ndarray, y: np.ndarray, families: np.ndarray) -> dict:
    """Fixed-effects correlation: x and y centred on their family means, Pearson r over the models of the k
    families with at least two models, and its Fisher-z interval with n − k − 2 degrees of freedom. ``families``:
    labels, or already integer codes (then nothing is sorted). None when x or y is constant."""
    x, y, inverse = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(families)
    if not np.issubdtype(inverse.dtype, np.integer):
        inverse = np.unique(inverse, return_inverse=True)[1]
    counts = np.bincount(inverse)
    keep = counts[inverse] >= 2
    if not keep.any():
        return _NO_WITHIN
    if not keep.all():
        x, y, inverse = x[keep], y[keep], inverse[keep]
    # Undefined when x or y is constant (the centred values are then rounding noise, any r).
    if x.min() == x.max() or y.min() == y.max():
        return _NO_WITHIN
    k = int(np.count_nonzero(counts >= 2))
    members = np.bincount(inverse)
    with np.errstate(invalid="ignore", divide="ignore"):  # families with no model left: 0/0, never read
        centred_x = x - (np.bincount(inverse, x) / members)[inverse]
        centred_y = y - (np.bincount(inverse, y) / members)[inverse]
    r = _finite(_row_pearson(centred_x, centred_y))
    if r is None:
        return _NO_WITHIN
    low, high = fisher_interval(r, y.size - k - 2)
    return dict(within_family_r=r, within_family_ci_low=low, within_family_ci_high=high)


def _seed(seed: int, *labels: str) -> int:
    """A per-row seed: the same row gets the same resamples whatever else is in the lake."""
    return (seed + zlib.crc32("\x1f".join(labels).encode())) % 2**32


def _rank_statistics(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """The average ranks of each row of x and y and Kendall's (τ-b, p) of each row (NaN for a constant row), as
    ``scipy.stats.rankdata`` and ``kendalltau`` give them (``rank_tests``)."""
    ranked = rank_pairs(x, y)
    kendall = [kendall_tau_p(x.shape[1], *ranked.counts_of(g)) for g in range(len(x))]
    return ranked.rank_x, ranked.rank_y, kendall


def _pearson(centred_a: np.ndarray, centred_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Pearson r of each row of two centred (G, n) arrays, its two-sided p and 95% Fisher-z interval, by the
    formulas of ``scipy.stats.pearsonr`` and its ``confidence_interval()`` (``_pearson_p_interval``). Not pearsonr
    itself: it re-centres and re-normalises both arrays. Equal to it to a few ulp (tested)."""
    r = np.clip(_row_pearson(centred_a, centred_b), -1.0, 1.0)
    return r, *_pearson_p_interval(r, centred_a.shape[-1])


def _pearson_p_interval(r: np.ndarray, n: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The two-sided p of correlations r of n points and their 95% Fisher-z intervals, as ``scipy.stats.pearsonr``
    computes them: p from the beta distribution of r under independence, ``2·betaincc(n/2 − 1, n/2 − 1,
    (|r| + 1)/2)`` (``distributions.pearson_two_sided_p``); interval ``tanh(atanh r ± z₀.₉₇₅/√(n − 3))``, (−1, 1)
    for n ≤ 3."""
    r = np.asarray(r, dtype=float)
    p = pearson_two_sided_p(r, n)
    if n <= 3:
        return p, (np.full_like(r, -1.0), np.full_like(r, 1.0))
    with np.errstate(divide="ignore"):
        z = np.arctanh(r)
    spread = _Z * math.sqrt(1 / (n - 3))
    return p, (np.tanh(z - spread), np.tanh(z + spread))


def correlate_many(
    x: np.ndarray,
    y: np.ndarray,
    seeds: Sequence[int],
    log_size: np.ndarray | None = None,
    x_names: Sequence[str] | None = None,
) -> list[dict]:
    """Every statistic of G groups of n models at once (rows of the (G, n) arrays ``x``, ``y``, ``log_size``):
    n; Pearson r, p and Fisher interval (``scipy.stats.pearsonr``'s formulas over the rows); Spearman ρ and p
    (Pearson r of the average ranks: the same t-test as ``scipy.stats.spearmanr``, tested); Kendall τ-b and p
    (``scipy.stats.kendalltau``'s, from ``rank_tests``: exact for small untied samples); their bootstrap (or,
    above BOOTSTRAP_MAX_N models, Fieller-Hartley-Pearson) intervals; the OLS fit (slope = Sxy/Sxx, as
    ``scipy.stats.linregress``), R², RMSE; partial r given log size (None when a size is unknown); and ``notes``
    saying why a value is missing. Batched because a lake has thousands of small families (the pooled rows, over up to
    every model, are ``pooled_rows``')."""
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
    groups, n = x.shape
    if log_size is not None:
        log_size = np.atleast_2d(np.asarray(log_size, dtype=float))
    constant_x, constant_y = _constant_rows(x), _constant_rows(y)
    defined = ~(constant_x | constant_y)
    centred_x = x - x.mean(axis=1, keepdims=True)
    centred_y = y - y.mean(axis=1, keepdims=True)
    with warnings.catch_warnings():
        # Constant or tiny samples make numpy warn about what the None values and the notes already say.
        warnings.simplefilter("ignore", RuntimeWarning)
        pearson_r, pearson_p, interval = _pearson(centred_x, centred_y)
        rank_x, rank_y, kendall = _rank_statistics(x, y)
        middle = (n + 1) / 2  # the mean of average ranks, exactly
        spearman_rho, spearman_p, _ = _pearson(rank_x - middle, rank_y - middle)
    if n <= BOOTSTRAP_MAX_N:
        intervals = bootstrap_intervals(x, y, seeds)
    else:
        intervals = _fhp_intervals(spearman_rho, [tau for tau, _ in kendall], n)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (centred_x * centred_y).sum(axis=1) / (centred_x * centred_x).sum(axis=1)
    intercept = y.mean(axis=1) - slope * x.mean(axis=1)
    residuals = y - intercept[:, None] - slope[:, None] * x
    with np.errstate(invalid="ignore", divide="ignore"):  # scaled as in _row_pearson: squares of 1e200 overflow
        spread = np.abs(residuals).max(axis=1)
        rmse = np.where(spread > 0, spread * np.sqrt(np.mean((residuals / spread[:, None]) ** 2, axis=1)), 0.0)
    sizes_known = None if log_size is None else np.all(np.isfinite(log_size), axis=1)
    partial = None if log_size is None else _row_pearson(*(_residuals(v, log_size) for v in (x, y)))
    rows = []
    for g in range(groups):
        ok = bool(defined[g])
        notes = []
        if constant_x[g]:
            notes.append(f"{x_names[g] if x_names else 'the metric'} is the same for every model")
        if constant_y[g]:
            notes.append("the reported value is the same for every model")
        if ok and n > BOOTSTRAP_MAX_N:
            notes.append(f"rho/tau intervals: Fisher z (Fieller-Hartley-Pearson), n > {BOOTSTRAP_MAX_N}")
        row = dict(
            n=n,
            pearson_r=_finite(pearson_r[g]) if ok else None,
            pearson_p=_finite(pearson_p[g]) if ok else None,
            pearson_ci_low=_finite(interval[0][g]) if ok else None,
            pearson_ci_high=_finite(interval[1][g]) if ok else None,
            spearman_rho=_finite(spearman_rho[g]) if ok else None,
            spearman_p=_finite(spearman_p[g]) if ok else None,
            spearman_ci_low=_finite(intervals["rho_low"][g]) if ok else None,
            spearman_ci_high=_finite(intervals["rho_high"][g]) if ok else None,
            kendall_tau=_finite(kendall[g][0]) if ok else None,
            kendall_p=_finite(kendall[g][1]) if ok else None,
            kendall_ci_low=_finite(intervals["tau_low"][g]) if ok else None,
            kendall_ci_high=_finite(intervals["tau_high"][g]) if ok else None,
            slope=None if constant_x[g] else _finite(slope[g]),
            intercept=None if constant_x[g] else _finite(intercept[g]),
            r_squared=_finite(pearson_r[g] ** 2) if ok else (0.0 if constant_y[g] and not constant_x[g] else None),
            rmse=None if constant_x[g] else _finite(rmse[g]),
            partial_r_size=None,
        )
        if sizes_known is None or not sizes_known[g]:
            missing = n if log_size is None else int(np.sum(~np.isfinite(log_size[g])))
            notes.append(f"partial_r_size: parameter count unknown for {missing} of {n} models")
        elif n >= 4 and ok:  # undefined when x or y is constant (their residuals are rounding noise)
            row["partial_r_size"] = _finite(partial[g])
        row["notes"] = "; ".join(notes)
        rows.append(row)
    return rows


def correlate(
    x: np.ndarray, y: np.ndarray, seed: int = 0, log_size: np.ndarray | None = None, x_name: str = "metric"
) -> dict:
    """``correlate_many`` for one group."""
    size = None if log_size is None else np.asarray(log_size, dtype=float)[None]
    return correlate_many(np.asarray(x, dtype=float)[None], np.asarray(y, dtype=float)[None], [seed], size, [x_name])[0]


def verdicts(n: np.ndarray, p_adjusted: np.ndarray) -> np.ndarray:
    """Plain words per row: too few models below 5; significant when the BH-adjusted Pearson p (NaN: none) is
    below 0.05."""
    with np.errstate(invalid="ignore"):
        significant = np.where(p_adjusted < SIGNIFICANCE, VERDICT_SIGNIFICANT, VERDICT_NOT_SIGNIFICANT)
    return np.where(n < MIN_MODELS_FOR_VERDICT, VERDICT_TOO_FEW, significant).astype(object)


def correlation_table(
    families: Sequence[str],
    values: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    log_size: np.ndarray | None = None,
    seed: int = 0,
    label: str = "",
    pooled: bool = True,
) -> list[dict]:
    """Rows for every family with at least 3 models, and one pooled row (family ``(all)``) per metric.

    ``families``, ``values`` (the reported value, one per model), each ``metrics[name]`` and ``log_size``
    (log10 parameter count, NaN when unknown) are aligned arrays over models; a model whose metric is NaN is left
    out of that metric's rows. ``label`` (the reported metric) only seeds the resamples. Pearson p-values are
    BH-adjusted across all rows of a metric (every family and the pooled row are tested at once); pooled rows
    carry the within-family estimate, families agreeing with the pooled sign, and the Simpson's-paradox flag
    (pooled r and within-family r of opposite signs, the within-family interval excluding 0). ``group_rows``
    then ``finish_rows``, which the lake's table uses directly to recompute only some families."""
    rows = group_rows(families, values, metrics, log_size, seed, label, pooled)
    finished = finish_rows({name: [row.get(name) for row in rows] for name in FINISH_INPUTS})
    for index, row in enumerate(rows):
        row["pearson_p_adjusted"] = _finite(finished["pearson_p_adjusted"][index])
        row["verdict"] = finished["verdict"][index]
        if row["family"] == POOLED:
            row.update({name: finished[name][index] for name in ("families_agreeing", "families_total")})
            row["simpsons_paradox"] = finished["simpsons_paradox"][index]
    position = {metric: i for i, metric in enumerate(metrics)}
    rows.sort(key=lambda r: (r["family"] == POOLED, r["family"], position[r["metric"]]))
    return rows


def group_rows(
    families: Sequence[str] | None,
    values: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    log_size: np.ndarray | None = None,
    seed: int = 0,
    label: str = "",
    pooled: bool = True,
    only_families: Collection[str] | None = None,
    family_codes: tuple[Sequence[str], np.ndarray] | None = None,
    pooled_states: Mapping[str, RankState] | None = None,
) -> list[dict]:
    """The statistics of each (family, metric) group of at least 3 models and of the pooled groups (with their
    within-family estimate), as rows; what depends on every row of a metric (BH-adjusted p, verdict, families
    agreeing) is ``finish_rows``'s. Arguments as ``correlation_table``; with ``only_families``, only those families'
    rows (and the pooled rows, from every model). ``family_codes``: (names, index of each model's name), standing
    for ``families`` (pass None) when the caller has them, so that 100 000 family names need not be sorted.
    ``pooled_states``: per metric, the ``RankState`` of the pooled group (aligned with the arrays), which stands
    for its sorts."""
    values = np.asarray(values, dtype=float)
    sizes = None if log_size is None else np.asarray(log_size, dtype=float)
    if family_codes is not None:
        names, inverse = np.asarray(family_codes[0], dtype=object), np.asarray(family_codes[1])
    else:
        names, inverse = np.unique(np.asarray(families, dtype=object).astype(str), return_inverse=True)
    # (family, metric, model indices) of every family row, then all rows of one size computed at once.
    groups: list[tuple[str, str, np.ndarray]] = []
    wanted_codes = None
    if only_families is not None:
        wanted_codes = np.array([i for i, name in enumerate(names) if name in only_families], dtype=np.int64)
    candidates = None  # the models of the wanted families (None: every model)
    if wanted_codes is not None:
        wanted = np.zeros(len(names), bool)
        wanted[wanted_codes] = True
        candidates = np.flatnonzero(wanted[inverse])
    for metric, column in metrics.items():
        column = np.asarray(column, dtype=float)
        if candidates is None:
            chosen = np.flatnonzero(np.isfinite(column) & np.isfinite(values))
        else:
            chosen = candidates[np.isfinite(column[candidates]) & np.isfinite(values[candidates])]
        order = chosen[np.argsort(inverse[chosen], kind="stable")]
        starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0]) if order.size else np.array([], int)
        for members in np.split(order, starts[1:]) if order.size else []:
            if members.size >= MIN_MODELS:
                groups.append((names[inverse[members[0]]], metric, members))
    batches: dict[int, list[int]] = {}
    for index, (_, _, members) in enumerate(groups):
        batches.setdefault(members.size, []).append(index)
    computed: list[dict] = [{}] * len(groups)
    for indices in batches.values():
        x = np.stack([np.asarray(metrics[groups[i][1]], dtype=float)[groups[i][2]] for i in indices])
        y = np.stack([values[groups[i][2]] for i in indices])
        z = None if sizes is None else np.stack([sizes[groups[i][2]] for i in indices])
        seeds = [_seed(seed, label, groups[i][0], groups[i][1]) for i in indices]
        metric_names = [groups[i][1] for i in indices]
        for i, row in zip(indices, correlate_many(x, y, seeds, z, metric_names), strict=True):
            computed[i] = dict(family=groups[i][0], metric=groups[i][1], **row)
    rows = []
    for metric in metrics:  # each metric's family rows, then its pooled row
        rows += [row for row in computed if row["metric"] == metric]
        if pooled:
            state = (pooled_states or {}).get(metric)
            pooled_row = pooled_rows(
                values, metrics[metric], sizes, inverse, _seed(seed, label, POOLED, metric), state, metric
            )
            if pooled_row is not None:
                rows.append(dict(family=POOLED, metric=metric, **pooled_row))
    return rows


def pooled_rows(
    values: np.ndarray,
    x: np.ndarray,
    log_size: np.ndarray | None,
    families: np.ndarray,
    seed: int,
    state: RankState | None = None,
    name: str = "the metric",
) -> dict | None:
    """The pooled row of metric ``name`` (None below ``MIN_MODELS`` usable models): ``correlate``'s statistics and
    ``within_family``'s over the models whose x and value are both finite, from arrays aligned over every model
    (``families``: integer codes). The same numbers as those functions on the usable models alone (tested), but
    without copying the usable points out: every statistic is a sum over centred values (zero where unusable),
    which pass through four buffers in turn. A pooled group holds up to every model of the lake and a scan
    recomputes it; on the VMs we measure on, a fresh 800 KB array costs ~2 ms of page faults, many times its
    arithmetic. ``state``: the group's ``RankState`` (ranks and Kendall integers), else sorted here."""
    values = np.asarray(values, dtype=float)
    x = np.asarray(x, dtype=float)
    usable = np.isfinite(x)
    usable &= np.isfinite(values)
    n = int(np.count_nonzero(usable))
    if n < MIN_MODELS:
        return None
    state = state or RankState.of(x, values)
    unusable = ~usable
    buffers = np.empty((4, x.size))

    def mean_of(column: np.ndarray) -> float:  # putmask and a plain sum: a sum with where= is twenty times slower
        np.copyto(buffers[3], column)
        np.putmask(buffers[3], unusable, 0.0)
        return float(buffers[3].sum()) / n

    def centred(column: np.ndarray, out: np.ndarray, mean: float) -> np.ndarray:
        np.subtract(column, mean, out=out)
        np.putmask(out, unusable, 0.0)
        return out

    total = n * (n - 1) // 2
    constant_x, constant_y = state.ties["xtie"] == total, state.ties["ytie"] == total
    ok = not (constant_x or constant_y)
    mean_x, mean_y = mean_of(x), mean_of(values)
    cx, cy = centred(x, buffers[0], mean_x), centred(values, buffers[1], mean_y)
    # The sums over y in units of its largest centred magnitude (as in _row_pearson: squares of 1e200 overflow).
    scale_y = max(float(cy.max()), -float(cy.min())) or 1.0
    scaled_y = np.divide(cy, scale_y, out=buffers[3])
    sxx, sxy_scaled, syy_scaled = float(np.dot(cx, cx)), float(np.dot(cx, scaled_y)), float(np.dot(scaled_y, scaled_y))
    r = _dot_pearson(cx, cy)
    row = dict(n=n, slope=None, intercept=None, rmse=None, partial_r_size=None)
    if not constant_x:
        slope_scaled = sxy_scaled / sxx
        slope = slope_scaled * scale_y
        intercept = mean_y - slope * mean_x
        rmse = scale_y * math.sqrt(max(syy_scaled - slope_scaled * sxy_scaled, 0.0) / n)
        row.update(slope=_finite(slope), intercept=_finite(intercept), rmse=_finite(rmse))
    row["r_squared"] = _finite(r * r) if ok else (0.0 if constant_y and not constant_x else None)
    sized = 0 if log_size is None else int(np.count_nonzero(np.isfinite(log_size) & usable))
    if sized == n and n >= 4 and ok:
        log_size = np.asarray(log_size, dtype=float)
        cz = centred(log_size, buffers[2], mean_of(log_size))
        szz = float(np.dot(cz, cz))
        if szz > 0:  # residuals of x and y after their least-squares fit on size (only centred when it is constant)
            np.subtract(cx, float(np.dot(cx, cz)) / szz * cz, out=buffers[3])
            np.subtract(cy, float(np.dot(cy, cz)) / szz * cz, out=buffers[2])
            row["partial_r_size"] = _finite(_dot_pearson(buffers[3], buffers[2]))
        else:
            row["partial_r_size"] = _finite(r)
    row.update(_pooled_within(cx, cy, usable, families, buffers[2:]) if ok else _NO_WITHIN)
    middle = (n + 1) / 2  # the mean of average ranks, exactly
    rho = _dot_pearson(centred(state.rank_x, buffers[0], middle), centred(state.rank_y, buffers[1], middle))
    (p, (low, high)), (rho_p, _) = _pearson_p_interval(np.array(r), n), _pearson_p_interval(np.array(rho), n)
    kendall = state.kendall() if ok else None
    intervals = _pooled_intervals(x, values, usable, n, seed, rho, kendall[0] if kendall else math.nan, ok)
    estimates = dict(
        pearson_r=r,
        pearson_p=p,
        pearson_ci_low=low,
        pearson_ci_high=high,
        spearman_rho=rho,
        spearman_p=rho_p,
        kendall_tau=kendall[0] if kendall else None,
        kendall_p=kendall[1] if kendall else None,
        **intervals,
    )
    row.update({key: _finite(value) if ok else None for key, value in estimates.items()})
    notes = [f"{name} is the same for every model"] if constant_x else []
    if constant_y:
        notes.append("the reported value is the same for every model")
    if ok and n > BOOTSTRAP_MAX_N:
        notes.append(f"rho/tau intervals: Fisher z (Fieller-Hartley-Pearson), n > {BOOTSTRAP_MAX_N}")
    if sized < n:
        notes.append(f"partial_r_size: parameter count unknown for {n - sized} of {n} models")
    row["notes"] = "; ".join(notes)
    return row


def _dot_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two centred vectors (zero where a point is left out), each divided by its largest magnitude
    first, as ``_row_pearson`` does (into this thread's scratch array: no fresh temporaries, see ``pooled_rows``)."""
    scaled_a, scaled_b = _scratch(a.size)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        np.divide(a, max(float(a.max()), -float(a.min())), out=scaled_a)
        np.divide(b, max(float(b.max()), -float(b.min())), out=scaled_b)
        r = np.dot(scaled_a, scaled_b) / np.sqrt(np.dot(scaled_a, scaled_a) * np.dot(scaled_b, scaled_b))
        return float(np.clip(r, -1.0, 1.0))


def _pooled_within(cx: np.ndarray, cy: np.ndarray, usable: np.ndarray, families: np.ndarray, buffers) -> dict:
    """``within_family`` of the usable models, from their centred x and y (zero elsewhere) and two buffers."""
    counts = np.bincount(families[usable] if not usable.all() else families, minlength=int(families.max()) + 1)
    k = int(np.count_nonzero(counts >= 2))
    if k == 0:
        return _NO_WITHIN
    members = (counts >= 2)[families]
    members &= usable
    size = int(np.count_nonzero(members))
    outside = ~members
    with np.errstate(invalid="ignore", divide="ignore"):
        for column, out in ((cx, buffers[0]), (cy, buffers[1])):
            means = np.bincount(families, weights=column, minlength=counts.size) / counts
            np.take(means, families, out=out)
            np.subtract(column, out, out=out)
            np.putmask(out, outside, 0.0)
    r = _finite(_dot_pearson(buffers[0], buffers[1]))
    if r is None:
        return _NO_WITHIN
    low, high = fisher_interval(r, size - k - 2)
    return dict(within_family_r=r, within_family_ci_low=low, within_family_ci_high=high)


def _pooled_intervals(x, values, usable, n: int, seed: int, rho: float, tau: float, ok: bool) -> dict:
    """The ρ and τ intervals of a pooled row: bootstrap up to ``BOOTSTRAP_MAX_N`` models (over copies of the
    usable points, a few KB), Fieller-Hartley-Pearson above."""
    if not ok:
        return dict.fromkeys(("spearman_ci_low", "spearman_ci_high", "kendall_ci_low", "kendall_ci_high"))
    if n <= BOOTSTRAP_MAX_N:
        found = bootstrap_intervals(x[usable][None], values[usable][None], [seed])
    else:
        found = _fhp_intervals([rho], [tau], n)
    return dict(
        spearman_ci_low=found["rho_low"][0],
        spearman_ci_high=found["rho_high"][0],
        kendall_ci_low=found["tau_low"][0],
        kendall_ci_high=found["tau_high"][0],
    )


def _fhp_intervals(rho: Sequence[float], tau: Sequence[float], n: int) -> dict[str, list]:
    """Fieller-Hartley-Pearson Fisher-z intervals of ρ and τ estimates of n models, as ``bootstrap_intervals``
    names them (rho_low, rho_high, tau_low, tau_high)."""
    intervals = {}
    for name, estimates, (variance, offset) in (("rho", rho, _FHP_SPEARMAN), ("tau", tau, _FHP_KENDALL)):
        bounds = [fisher_interval(_finite(e), (n - offset) / variance) for e in estimates]
        intervals[f"{name}_low"] = [b[0] for b in bounds]
        intervals[f"{name}_high"] = [b[1] for b in bounds]
    return intervals


FINISH_INPUTS = (
    "family",
    "metric",
    "n",
    "pearson_r",
    "pearson_p",
    "within_family_r",
    "within_family_ci_low",
    "within_family_ci_high",
)


def finish_rows(columns: Mapping[str, Sequence]) -> dict:
    """What depends on every row of a reported metric's table, from its columns ``FINISH_INPUTS`` over all of
    them (None or NaN: no value): ``pearson_p_adjusted`` (``benjamini_hochberg`` over the tested rows of one weight
    metric; NaN where untested), ``verdict``, and for the pooled rows ``families_agreeing`` (family rows whose r has
    the pooled sign), ``families_total`` (family rows with an r) and ``simpsons_paradox`` (None for the other rows).
    Arrays or lists aligned with the rows."""

    def floats(name: str) -> np.ndarray:
        return np.array(columns[name], dtype=float)  # None becomes NaN

    family = np.asarray(columns["family"], dtype=object)
    metric = np.asarray(columns["metric"], dtype=object)
    r, p = floats("pearson_r"), floats("pearson_p")
    within, low, high = floats("within_family_r"), floats("within_family_ci_low"), floats("within_family_ci_high")
    size = len(family)
    adjusted = np.full(size, math.nan)
    agreeing: list = [None] * size
    total: list = [None] * size
    paradox: list = [None] * size
    is_pooled = family == POOLED
    for name in dict.fromkeys(metric.tolist()):
        of_metric = metric == name
        tested = of_metric & np.isfinite(p)
        if tested.any():
            adjusted[tested] = benjamini_hochberg(p[tested])
        signs = np.sign(r[of_metric & ~is_pooled & np.isfinite(r)])
        for i in np.flatnonzero(of_metric & is_pooled):
            known = math.isfinite(r[i])
            agreeing[i] = int(np.count_nonzero(signs == np.sign(r[i]))) if known else 0
            total[i] = int(signs.size)
            paradox[i] = bool(
                known
                and math.isfinite(within[i])
                and math.isfinite(low[i])
                and np.sign(r[i]) != np.sign(within[i])
                and (low[i] > 0 or high[i] < 0)
            )
    return dict(
        pearson_p_adjusted=adjusted,
        verdict=verdicts(np.asarray(columns["n"]), adjusted),
        families_agreeing=agreeing,
        families_total=total,
        simpsons_paradox=paradox,
    )


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of m p-values in [0, 1] (Benjamini & Hochberg, JRSS B 57:289, 1995, as
    adjusted p-values: Yekutieli & Benjamini, JSPI 82:171, 1999; R's ``p.adjust(method="BH")``): with p₍₁₎ ≤ … ≤ p₍ₘ₎
    sorted, p̃₍ᵢ₎ = min over j ≥ i of p₍ⱼ₎ m / j, capped at 1, returned in the order of ``p``. Rejecting where p̃ < q
    keeps the false discovery rate below q. Equal to ``scipy.stats.false_discovery_control(p, method="bh")`` to the
    last bit (the same operations; tested)."""
    m = p.size
    order = np.argsort(p)
    adjusted = p[order] * (m / np.arange(1, m + 1))
    np.minimum.accumulate(adjusted[::-1], out=adjusted[::-1])
    result = np.empty_like(adjusted)
    result[order] = adjusted
    return np.clip(result, 0.0, 1.0)


# ----- pooled groups kept up to date point by point ---------------------------------------------------------------


@dataclass
class RankState:
    """What Spearman ρ and Kendall τ-b of one large group need, so that a change of a few points costs O(n) instead
    of the O(n log n) sorts: the average ranks of x and of y among the usable points (finite x and y; NaN for
    the others), and Kendall's integers C − D (concordant minus discordant pairs), the tied pairs in x, in y and in
    both, and the tie terms of the variance. Aligned with the caller's x and y arrays; ``insert`` and ``remove``
    keep it so as points come and go, and ρ and τ from it equal scipy's on the usable points (tested)."""

    rank_x: np.ndarray
    rank_y: np.ndarray
    concordance: int = 0
    ties: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIE_NAMES, 0))

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> RankState:
        """The state of the usable points of x and y, by sorting (``rank_tests.rank_pairs``)."""
        usable = np.isfinite(x) & np.isfinite(y)
        state = cls(np.full(x.shape, np.nan), np.full(y.shape, np.nan))
        if not usable.any():
            return state
        ranked = rank_pairs(x[usable][None], y[usable][None])
        state.rank_x[usable], state.rank_y[usable] = ranked.rank_x[0], ranked.rank_y[0]
        state.concordance, state.ties = ranked.counts_of(0)
        return state

    def insert(self, x: np.ndarray, y: np.ndarray, at: int) -> None:
        """Point ``at`` has just been added to x and y (its ranks NaN): count it in."""
        self._move(x, y, at, +1)

    def remove(self, x: np.ndarray, y: np.ndarray, at: int) -> None:
        """Point ``at`` is about to leave x and y: count it out (its ranks become NaN)."""
        self._move(x, y, at, -1)

    def _move(self, x: np.ndarray, y: np.ndarray, at: int, sign: int) -> None:
        px, py = x[at], y[at]
        if not (math.isfinite(px) and math.isfinite(py)):
            return
        absent = ~np.isfinite(self.rank_x)  # the points not counted, and this one
        absent[at] = True
        n_absent = int(np.count_nonzero(absent))
        # Two scratch arrays shared by every move of this thread, and putmask rather than a boolean index: fresh
        # 100 000-element temporaries cost more in page faults than the arithmetic, and each move is ~10 passes.
        sign_x, sign_y = _scratch(x.size)
        for values, point, signs in ((x, px, sign_x), (y, py, sign_y)):
            np.subtract(values, point, out=signs)
            np.putmask(signs, absent, 0.0)  # absent points look tied in both and add nothing below
            np.sign(signs, out=signs)
        self.concordance += sign * int(np.dot(sign_x, sign_y))
        tied_x, tied_y = sign_x == 0, sign_y == 0
        tied_x_count = int(np.count_nonzero(tied_x)) - n_absent  # the other points in its tie group in x
        tied_y_count = int(np.count_nonzero(tied_y)) - n_absent
        tied_x &= tied_y
        self.ties["xytie"] += sign * (int(np.count_nonzero(tied_x)) - n_absent)
        for axis, t in (("x", tied_x_count), ("y", tied_y_count)):
            for name, term in zip(TIE_KINDS, TIE_TERMS, strict=True):
                self.ties[f"{axis}{name}"] += sign * (term(t + 1) - term(t))
        # Average ranks: every larger value moves by one, every equal one by a half, a smaller one not at all:
        # (sign + 1) / 2 of the comparison (absent points have NaN ranks, which stay NaN).
        for ranks, signs, t in ((self.rank_x, sign_x, tied_x_count), (self.rank_y, sign_y, tied_y_count)):
            smaller = int(np.count_nonzero(signs < 0))
            signs += 1.0
            signs *= 0.5 * sign
            ranks += signs
            ranks[at] = smaller + (t + 2) / 2 if sign > 0 else math.nan

    def kendall(self) -> tuple[float, float]:
        """τ-b and its two-sided p from these integers (``rank_tests.kendall_tau_p``: exact or asymptotic as
        ``scipy.stats.kendalltau`` decides, and equal to it)."""
        return kendall_tau_p(int(np.isfinite(self.rank_x).sum()), self.concordance, self.ties)


_THREAD_SCRATCH = threading.local()


def _scratch(size: int) -> np.ndarray:
    """This thread's (2, size) scratch array for ``RankState`` moves and ``_dot_pearson``, kept from one call to the
    next."""
    found = getattr(_THREAD_SCRATCH, "array", None)
    if found is None or found.shape[1] != size:
        found = _THREAD_SCRATCH.array = np.empty((2, size))
    return found
