"""Correlations between model-averaged weight metrics and a reported metric, with their uncertainty.

Plain arrays in, rows (dicts) out: no DuckDB, no lake. ``flows/leaderboard/correlations.py`` feeds it from the lake and
stores
the rows as the ``correlations`` table. The statistics come from scipy.stats where scipy has them:

* Pearson r, its two-sided t-test p and its 95% Fisher-z interval ``tanh(atanh r ± z₀.₉₇₅/√(n−3))``:
  ``scipy.stats.pearsonr`` and its ``confidence_interval()``.
* Spearman ρ (average ranks for ties) and its t-approximation p: ``scipy.stats.spearmanr``.
* Kendall τ-b and its p (exact permutation distribution for small n without ties, normal approximation
  otherwise, as ``scipy.stats.kendalltau(method="auto")`` decides).
* Benjamini-Hochberg adjusted p-values: ``scipy.stats.false_discovery_control``.
* The OLS fit of the reported value on the metric: ``scipy.stats.linregress``.

Intervals for ρ and τ are percentile bootstrap intervals from ``BOOTSTRAP_RESAMPLES`` seeded resamples of the
models (``bootstrap_interval``). A resample is a vector of multiplicities (how many times each model was drawn),
so ρ and τ of all resamples are computed at once from those weights (``_weighted_spearman``,
``_weighted_kendall``) instead of re-sorting each resample in a Python loop; they equal scipy's statistics on the
resampled arrays (tested). Above ``BOOTSTRAP_MAX_N`` models the intervals are
Fieller, Hartley & Pearson's (Biometrika 44:470, 1957) Fisher-z intervals with variances 1.06/(n−3) for ρ and
0.437/(n−4) for τ, which are accurate at that size and cost nothing.

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
import warnings
import zlib
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from statistics import NormalDist

import numpy as np

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


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of each value among the drawn values, for every resample: the weight of all smaller values
    plus (the weight of equal values + 1) / 2, which is the average rank scipy.stats.rankdata gives each copy.
    ``values`` (G, n), ``weights`` (G, B, n) → (G, B, n)."""
    below = (values[:, None, :] < values[:, :, None]) + 0.5 * (values[:, None, :] == values[:, :, None])
    return np.matmul(weights, np.swapaxes(below, 1, 2)) + 0.5


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
        return np.einsum("...i,...i->...", np.matmul(weights, matrix), weights)

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
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=-1) / np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))


def partial_r(x: np.ndarray, y: np.ndarray, control: np.ndarray) -> float | None:
    """Partial correlation of x and y controlling for ``control``: Pearson r of the residuals of x and of y after a
    least-squares fit on [1, control]. Equals (r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²)) when z varies, and r_xy
    when z is constant (the fit then only centres)."""
    return _finite(_row_pearson(_residuals(x, control), _residuals(y, control)))


def within_family(x: np.ndarray, y: np.ndarray, families: np.ndarray) -> dict:
    """Fixed-effects correlation: x and y centred on their family means, Pearson r over the models of the k
    families with at least two models, and its Fisher-z interval with n − k − 2 degrees of freedom."""
    labels, inverse, counts = np.unique(families, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= 2
    empty = dict(within_family_r=None, within_family_ci_low=None, within_family_ci_high=None)
    if not keep.any():
        return empty
    x, y, inverse = x[keep], y[keep], inverse[keep]
    k = np.unique(inverse).size
    centred_x = x - (np.bincount(inverse, x) / np.bincount(inverse))[inverse]
    centred_y = y - (np.bincount(inverse, y) / np.bincount(inverse))[inverse]
    r = _finite(_row_pearson(centred_x, centred_y))
    if r is None:
        return empty
    low, high = fisher_interval(r, x.size - k - 2)
    return dict(within_family_r=r, within_family_ci_low=low, within_family_ci_high=high)


def _seed(seed: int, *labels: str) -> int:
    """A per-row seed: the same row gets the same resamples whatever else is in the lake."""
    return (seed + zlib.crc32("\x1f".join(labels).encode())) % 2**32


def correlate_many(
    x: np.ndarray,
    y: np.ndarray,
    seeds: Sequence[int],
    log_size: np.ndarray | None = None,
    x_names: Sequence[str] | None = None,
) -> list[dict]:
    """Every statistic of G groups of n models at once (rows of the (G, n) arrays ``x``, ``y``, ``log_size``):
    n; Pearson r, p and Fisher interval (``scipy.stats.pearsonr`` over the rows); Spearman ρ and p (Pearson r of the
    average ranks, ``scipy.stats.rankdata`` + ``pearsonr``: the same t-test as ``scipy.stats.spearmanr``, tested);
    Kendall τ-b and p (``scipy.stats.kendalltau`` per row: exact for small untied samples); their bootstrap (or,
    above BOOTSTRAP_MAX_N models, Fieller-Hartley-Pearson) intervals; the OLS fit (slope = Sxy/Sxx, as
    ``scipy.stats.linregress``), R², RMSE; partial r given log size (None when a size is unknown); and ``notes``
    saying why a value is missing. Batched because a lake has thousands of small families."""
    from scipy import stats  # imported here: reading stored correlations needs no scipy

    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
    groups, n = x.shape
    constant_x, constant_y = _constant_rows(x), _constant_rows(y)
    defined = ~(constant_x | constant_y)
    with warnings.catch_warnings():
        # Constant or tiny samples make scipy warn about what the None values and the notes already say.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pearson = stats.pearsonr(x, y, axis=1)
        interval = pearson.confidence_interval(CONFIDENCE)
        spearman = stats.pearsonr(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1), axis=1)
        kendall = [stats.kendalltau(x[g], y[g]) if defined[g] else None for g in range(groups)]
    if n <= BOOTSTRAP_MAX_N:
        intervals = bootstrap_intervals(x, y, seeds)
    else:
        intervals = {}
        for name, estimates, (variance, offset) in (
            ("rho", spearman.statistic, _FHP_SPEARMAN),
            ("tau", [k.statistic if k else np.nan for k in kendall], _FHP_KENDALL),
        ):
            bounds = [fisher_interval(_finite(e), (n - offset) / variance) for e in estimates]
            intervals[f"{name}_low"] = [b[0] for b in bounds]
            intervals[f"{name}_high"] = [b[1] for b in bounds]
    centred_x = x - x.mean(axis=1, keepdims=True)
    centred_y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (centred_x * centred_y).sum(axis=1) / (centred_x * centred_x).sum(axis=1)
    intercept = y.mean(axis=1) - slope * x.mean(axis=1)
    rmse = np.sqrt(np.mean((y - intercept[:, None] - slope[:, None] * x) ** 2, axis=1))
    sizes_known = None if log_size is None else np.all(np.isfinite(np.atleast_2d(log_size)), axis=1)
    partial = None if log_size is None else _row_pearson(*(_residuals(v, np.atleast_2d(log_size)) for v in (x, y)))
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
            pearson_r=_finite(pearson.statistic[g]) if ok else None,
            pearson_p=_finite(pearson.pvalue[g]) if ok else None,
            pearson_ci_low=_finite(interval.low[g]) if ok else None,
            pearson_ci_high=_finite(interval.high[g]) if ok else None,
            spearman_rho=_finite(spearman.statistic[g]) if ok else None,
            spearman_p=_finite(spearman.pvalue[g]) if ok else None,
            spearman_ci_low=_finite(intervals["rho_low"][g]) if ok else None,
            spearman_ci_high=_finite(intervals["rho_high"][g]) if ok else None,
            kendall_tau=_finite(kendall[g].statistic) if ok else None,
            kendall_p=_finite(kendall[g].pvalue) if ok else None,
            kendall_ci_low=_finite(intervals["tau_low"][g]) if ok else None,
            kendall_ci_high=_finite(intervals["tau_high"][g]) if ok else None,
            slope=None if constant_x[g] else _finite(slope[g]),
            intercept=None if constant_x[g] else _finite(intercept[g]),
            r_squared=_finite(pearson.statistic[g] ** 2)
            if ok
            else (0.0 if constant_y[g] and not constant_x[g] else None),
            rmse=None if constant_x[g] else _finite(rmse[g]),
            partial_r_size=None,
        )
        if sizes_known is None or not sizes_known[g]:
            missing = n if log_size is None else int(np.sum(~np.isfinite(np.atleast_2d(log_size)[g])))
            notes.append(f"partial_r_size: parameter count unknown for {missing} of {n} models")
        elif n >= 4:
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


def verdict(n: int, p_adjusted: float | None) -> str:
    """Plain words: too few models below 5; significant when the BH-adjusted Pearson p is below 0.05."""
    if n < MIN_MODELS_FOR_VERDICT:
        return VERDICT_TOO_FEW
    if p_adjusted is not None and p_adjusted < SIGNIFICANCE:
        return VERDICT_SIGNIFICANT
    return VERDICT_NOT_SIGNIFICANT


def correlation_table(
    families: Sequence[str],
    values: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    log_size: np.ndarray | None = None,
    seed: int = 0,
    label: str = "",
    pooled: bool = True,
    only_families: Collection[str] | None = None,
    kept_rows: Sequence[dict] = (),
) -> list[dict]:
    """Rows for every family with at least 3 models, and one pooled row (family ``(all)``) per metric.

    ``families``, ``values`` (the reported value, one per model), each ``metrics[name]`` and ``log_size``
    (log10 parameter count, NaN when unknown) are aligned arrays over models; a model whose metric is NaN is left
    out of that metric's rows. ``label`` (the reported metric) only seeds the resamples. Pearson p-values are
    BH-adjusted across all rows of a metric (every family and the pooled row are tested at once); pooled rows
    carry the within-family estimate, families agreeing with the pooled sign, and the Simpson's-paradox flag
    (pooled r and within-family r of opposite signs, the within-family interval excluding 0).

    Incremental use: with ``only_families``, only those families' rows (and the pooled rows, from every model) are
    computed; ``kept_rows`` are the stored rows of the other families, which take part in the pooled rows' family
    counts and in the BH adjustment (their ``pearson_p_adjusted`` and ``verdict`` are recomputed, nothing else) and
    are returned with the new rows. Rows are then the same as a full computation's."""
    families = np.asarray(families, dtype=object).astype(str)
    values = np.asarray(values, dtype=float)
    sizes = None if log_size is None else np.asarray(log_size, dtype=float)
    names, inverse = np.unique(families, return_inverse=True)
    # (family, metric, model indices) of every row, then all rows of one size computed at once.
    groups: list[tuple[str, str, np.ndarray]] = []
    for metric, column in metrics.items():
        usable = np.flatnonzero(np.isfinite(np.asarray(column, dtype=float)) & np.isfinite(values))
        order = usable[np.argsort(inverse[usable], kind="stable")]
        starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0]) if order.size else np.array([], int)
        for members in np.split(order, starts[1:]) if order.size else []:
            if members.size >= MIN_MODELS and (only_families is None or names[inverse[members[0]]] in only_families):
                groups.append((names[inverse[members[0]]], metric, members))
        if pooled and usable.size >= MIN_MODELS:
            groups.append((POOLED, metric, usable))
    computed: list[dict | None] = [None] * len(groups)
    by_size: dict[int, list[int]] = {}
    for index, (_, _, members) in enumerate(groups):
        by_size.setdefault(members.size, []).append(index)
    for indices in by_size.values():
        x = np.stack([np.asarray(metrics[groups[i][1]], dtype=float)[groups[i][2]] for i in indices])
        y = np.stack([values[groups[i][2]] for i in indices])
        z = None if sizes is None else np.stack([sizes[groups[i][2]] for i in indices])
        seeds = [_seed(seed, label, groups[i][0], groups[i][1]) for i in indices]
        metric_names = [groups[i][1] for i in indices]
        for i, row in zip(indices, correlate_many(x, y, seeds, z, metric_names), strict=True):
            computed[i] = dict(family=groups[i][0], metric=groups[i][1], **row)
    rows: list[dict] = []
    for metric, column in metrics.items():
        metric_rows = [r for r in computed if r["metric"] == metric and r["family"] != POOLED]
        metric_rows += [dict(r) for r in kept_rows if r["metric"] == metric and r["family"] != POOLED]
        for row in computed:
            if row["metric"] == metric and row["family"] == POOLED:
                members = next(g[2] for g in groups if g[0] == POOLED and g[1] == metric)
                x = np.asarray(column, dtype=float)[members]
                row.update(within_family(x, values[members], inverse[members]))
                row.update(_pooled_signs(row, metric_rows))
                metric_rows.append(row)
        _adjust(metric_rows)
        rows += metric_rows
    for row in rows:
        row["verdict"] = verdict(row["n"], row["pearson_p_adjusted"])
    rows.sort(key=lambda r: (r["family"] == POOLED, r["family"], list(metrics).index(r["metric"])))
    return rows


def _pooled_signs(pooled: dict, family_rows: list[dict]) -> dict:
    signs = [r["pearson_r"] for r in family_rows if r["pearson_r"] is not None]
    r = pooled["pearson_r"]
    agreeing = sum(np.sign(s) == np.sign(r) for s in signs) if r is not None else 0
    within, low, high = (pooled[k] for k in ("within_family_r", "within_family_ci_low", "within_family_ci_high"))
    paradox = bool(
        r is not None
        and within is not None
        and low is not None
        and np.sign(r) != np.sign(within)
        and (low > 0 or high < 0)
    )
    return dict(families_agreeing=int(agreeing), families_total=len(signs), simpsons_paradox=paradox)


def _adjust(rows: list[dict]) -> None:
    """Benjamini-Hochberg over the rows' Pearson p-values (``scipy.stats.false_discovery_control``)."""
    from scipy import stats  # imported here: reading stored correlations needs no scipy

    tested = [r for r in rows if r["pearson_p"] is not None]
    for row in rows:
        row["pearson_p_adjusted"] = None
    if tested:
        adjusted = stats.false_discovery_control([r["pearson_p"] for r in tested], method="bh")
        for row, p in zip(tested, adjusted, strict=True):
            row["pearson_p_adjusted"] = _finite(p)
