"""Correlations between model-averaged weight metrics and a reported metric, with their uncertainty.

Plain arrays in, rows (dicts) out: no DuckDB, no lake. ``flows/correlations.py`` feeds it from the lake and stores
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
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import special, stats

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

_Z = float(special.ndtri(0.5 + CONFIDENCE / 2))


def _finite(value) -> float | None:
    """A Python float, or None for NaN/inf (the table stores NULL, never NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _constant(values: np.ndarray) -> bool:
    return bool(values.size == 0 or np.all(values == values[0]))


def pearson(x: np.ndarray, y: np.ndarray) -> dict:
    """Pearson r with its t-test p-value and 95% Fisher-z interval (``scipy.stats.pearsonr``).

    With n = 3 the Fisher interval is undefined (1/√(n−3)); scipy then reports (−1, 1), which says as much."""
    if _constant(x) or _constant(y):
        return dict(pearson_r=None, pearson_p=None, pearson_ci_low=None, pearson_ci_high=None)
    result = stats.pearsonr(x, y)
    interval = result.confidence_interval(confidence_level=CONFIDENCE)
    return dict(
        pearson_r=_finite(result.statistic),
        pearson_p=_finite(result.pvalue),
        pearson_ci_low=_finite(interval.low),
        pearson_ci_high=_finite(interval.high),
    )


def fisher_interval(r: float, dof: float) -> tuple[float | None, float | None]:
    """``tanh(atanh r ± z/√dof)``: the Fisher-z interval of a correlation whose atanh has variance 1/dof."""
    if r is None or dof <= 0 or not math.isfinite(r):
        return None, None
    if abs(r) >= 1:
        return r, r
    z = math.atanh(r)
    half = _Z / math.sqrt(dof)
    return math.tanh(z - half), math.tanh(z + half)


def _ranks_from_weights(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of each original value within every weighted resample.

    ``weights`` is (B, n): how often each of the n values was drawn. A value's rank among the drawn values is the
    weight of all smaller values plus (its tie group's weight + 1) / 2: the average rank scipy.stats.rankdata gives
    each copy of it."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    group_of_sorted = np.cumsum(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) - 1
    group = np.empty_like(group_of_sorted)
    group[order] = group_of_sorted
    group_weight = np.add.reduceat(weights[:, order], starts, axis=1)
    below = np.cumsum(group_weight, axis=1) - group_weight
    group_rank = below + (group_weight + 1) / 2
    return group_rank[:, group]


def _weighted_pearson(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    mean_a = (weights * a).sum(axis=1, keepdims=True) / total
    mean_b = (weights * b).sum(axis=1, keepdims=True) / total
    da, db = a - mean_a, b - mean_b
    cov = (weights * da * db).sum(axis=1)
    var = (weights * da * da).sum(axis=1) * (weights * db * db).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(var)


def _weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman ρ of each weighted resample: Pearson r of the average ranks, each value counted as often as drawn."""
    return _weighted_pearson(_ranks_from_weights(x, weights), _ranks_from_weights(y, weights), weights)


def _tied_pairs(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pairs of draws with equal values, per resample: Σ over tie groups of c(c−1)/2, c the group's weight."""
    _, inverse = np.unique(values, return_inverse=True)
    onehot = np.zeros((values.size, inverse.max() + 1))
    onehot[np.arange(values.size), inverse] = 1.0
    counts = weights @ onehot
    return (counts * (counts - 1) / 2).sum(axis=1)


def _weighted_kendall(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall τ-b of each weighted resample: (C − D) / √((P − Tx)(P − Ty)), with P the pairs of draws, Tx and Ty the
    pairs tied in x and in y, and C − D = ½ Σᵢⱼ wᵢ wⱼ sign(xᵢ − xⱼ) sign(yᵢ − yⱼ) (two draws of the same model are a
    tie in both, as when scipy.stats.kendalltau sees the resampled arrays)."""
    concordance = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    score = ((weights @ concordance) * weights).sum(axis=1) / 2
    draws = weights.sum(axis=1)
    pairs = draws * (draws - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return score / np.sqrt((pairs - _tied_pairs(x, weights)) * (pairs - _tied_pairs(y, weights)))


def bootstrap_interval(statistic, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float | None, float | None]:
    """95% percentile bootstrap interval of a paired statistic (Efron & Tibshirani 1993, ch. 13; what
    ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` computes): resample the n (x, y) pairs
    ``BOOTSTRAP_RESAMPLES`` times with ``seed`` and take the 2.5% and 97.5% quantiles of the statistic. Resamples
    whose statistic is undefined (every draw the same model) are dropped. Percentile rather than BCa: with a
    handful of models the bootstrap distribution is a few atoms, and BCa's adjusted levels then jump to an atom
    at the far end (ρ = −0.9 from 5 models got [−1, +1]); coverage of the two was the same in our simulations
    (n = 5 to 30)."""
    n = x.size
    draws = np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    offsets = np.arange(BOOTSTRAP_RESAMPLES)[:, None] * n
    weights = np.bincount((draws + offsets).ravel(), minlength=BOOTSTRAP_RESAMPLES * n)
    resampled = statistic(x, y, weights.reshape(BOOTSTRAP_RESAMPLES, n).astype(float))
    resampled = resampled[np.isfinite(resampled)]
    if resampled.size < BOOTSTRAP_RESAMPLES // 2:
        return None, None
    low, high = np.quantile(resampled, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return _finite(low), _finite(high)


def spearman(x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Spearman ρ and p (``scipy.stats.spearmanr``), 95% bootstrap interval (FHP Fisher-z above 500 models)."""
    if _constant(x) or _constant(y):
        return dict(spearman_rho=None, spearman_p=None, spearman_ci_low=None, spearman_ci_high=None)
    result = stats.spearmanr(x, y)
    rho = _finite(result.statistic)
    if x.size <= BOOTSTRAP_MAX_N:
        low, high = bootstrap_interval(_weighted_spearman, x, y, seed)
    else:
        low, high = fisher_interval(rho, (x.size - _FHP_SPEARMAN[1]) / _FHP_SPEARMAN[0])
    return dict(spearman_rho=rho, spearman_p=_finite(result.pvalue), spearman_ci_low=low, spearman_ci_high=high)


def kendall(x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Kendall τ-b and p (``scipy.stats.kendalltau``: exact for small n without ties), 95% bootstrap interval
    (FHP Fisher-z above 500 models)."""
    if _constant(x) or _constant(y):
        return dict(kendall_tau=None, kendall_p=None, kendall_ci_low=None, kendall_ci_high=None)
    result = stats.kendalltau(x, y)
    tau = _finite(result.statistic)
    if x.size <= BOOTSTRAP_MAX_N:
        low, high = bootstrap_interval(_weighted_kendall, x, y, seed)
    else:
        low, high = fisher_interval(tau, (x.size - _FHP_KENDALL[1]) / _FHP_KENDALL[0])
    return dict(kendall_tau=tau, kendall_p=_finite(result.pvalue), kendall_ci_low=low, kendall_ci_high=high)


def ols(x: np.ndarray, y: np.ndarray) -> dict:
    """OLS fit y = intercept + slope·x (``scipy.stats.linregress``), R², and RMSE = √(mean squared residual)."""
    if _constant(x):
        return dict(slope=None, intercept=None, r_squared=None, rmse=None)
    fit = stats.linregress(x, y)
    residuals = y - (fit.intercept + fit.slope * x)
    return dict(
        slope=_finite(fit.slope),
        intercept=_finite(fit.intercept),
        r_squared=_finite(fit.rvalue**2),
        rmse=_finite(math.sqrt(np.mean(residuals**2))),
    )


def ols_band(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The OLS line on ``grid`` and its 95% confidence band for the mean:
    ŷ ± t₀.₉₇₅,ₙ₋₂ · s · √(1/n + (g − x̄)² / Σ(x − x̄)²), s² = Σ residual² / (n − 2). None below 3 points or for a
    constant x."""
    if x.size < 3 or _constant(x):
        return None
    fit = stats.linregress(x, y)
    line = fit.intercept + fit.slope * grid
    residuals = y - (fit.intercept + fit.slope * x)
    s = math.sqrt(np.sum(residuals**2) / (x.size - 2))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, x.size - 2) * s
    half = half * np.sqrt(1 / x.size + (grid - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    return line, line - half, line + half


def partial_r(x: np.ndarray, y: np.ndarray, control: np.ndarray) -> float | None:
    """Partial correlation of x and y controlling for ``control``: Pearson r of the residuals of x and of y after a
    least-squares fit on [1, control]. Equals (r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²)) when z varies, and r_xy
    when z is constant (the fit then only centres)."""
    design = np.column_stack([np.ones_like(control), control])
    residual_x = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    residual_y = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    scale = math.sqrt(np.sum(residual_x**2) * np.sum(residual_y**2))
    if scale == 0 or not math.isfinite(scale):
        return None
    return _finite(np.sum(residual_x * residual_y) / scale)


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
    scale = math.sqrt(np.sum(centred_x**2) * np.sum(centred_y**2))
    if scale == 0:
        return empty
    r = _finite(np.sum(centred_x * centred_y) / scale)
    low, high = fisher_interval(r, x.size - k - 2)
    return dict(within_family_r=r, within_family_ci_low=low, within_family_ci_high=high)


def _seed(seed: int, *labels: str) -> int:
    """A per-row seed: the same row gets the same resamples whatever else is in the lake."""
    return (seed + zlib.crc32("\x1f".join(labels).encode())) % 2**32


def correlate(
    x: np.ndarray, y: np.ndarray, seed: int = 0, log_size: np.ndarray | None = None, x_name: str = "metric"
) -> dict:
    """Every statistic of one (group, metric): n, Pearson/Spearman/Kendall with p and interval, OLS, partial r
    controlling for log size (None when any size is missing), and ``notes`` saying why a value is missing."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    notes = []
    if _constant(x):
        notes.append(f"{x_name} is the same for every model")
    if _constant(y):
        notes.append("the reported value is the same for every model")
    with warnings.catch_warnings():
        # Tiny or tied samples make scipy warn about what the None values and notes already say.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        row = dict(n=int(x.size), **pearson(x, y), **spearman(x, y, seed), **kendall(x, y, seed + 1), **ols(x, y))
    if x.size > BOOTSTRAP_MAX_N and row["spearman_rho"] is not None:
        notes.append(f"rho/tau intervals: Fisher z (Fieller-Hartley-Pearson), n > {BOOTSTRAP_MAX_N}")
    row["partial_r_size"] = None
    if log_size is None or not np.all(np.isfinite(log_size)):
        missing = x.size if log_size is None else int(np.sum(~np.isfinite(log_size)))
        notes.append(f"partial_r_size: parameter count unknown for {missing} of {x.size} models")
    elif x.size >= 4:
        row["partial_r_size"] = partial_r(x, y, np.asarray(log_size, dtype=float))
    row["notes"] = "; ".join(notes)
    return row


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
) -> list[dict]:
    """Rows for every family with at least 3 models, and one pooled row (family ``(all)``) per metric.

    ``families``, ``values`` (the reported value, one per model), each ``metrics[name]`` and ``log_size``
    (log10 parameter count, NaN when unknown) are aligned arrays over models; a model whose metric is NaN is left
    out of that metric's rows. ``label`` (the reported metric) only seeds the resamples. Pearson p-values are
    BH-adjusted across all rows of a metric (every family and the pooled row are tested at once); pooled rows
    carry the within-family estimate, families agreeing with the pooled sign, and the Simpson's-paradox flag
    (pooled r and within-family r of opposite signs, the within-family interval excluding 0)."""
    families = np.asarray(families, dtype=object)
    values = np.asarray(values, dtype=float)
    sizes = None if log_size is None else np.asarray(log_size, dtype=float)
    rows: list[dict] = []
    for metric, column in metrics.items():
        column = np.asarray(column, dtype=float)
        usable = np.isfinite(column) & np.isfinite(values)
        metric_rows = []
        groups = sorted(set(families[usable]))
        for family in groups:
            member = usable & (families == family)
            if member.sum() < MIN_MODELS:
                continue
            row = correlate(
                column[member],
                values[member],
                _seed(seed, label, family, metric),
                None if sizes is None else sizes[member],
                metric,
            )
            metric_rows.append(dict(family=family, metric=metric, **row))
        if pooled and usable.sum() >= MIN_MODELS:
            row = correlate(
                column[usable],
                values[usable],
                _seed(seed, label, POOLED, metric),
                None if sizes is None else sizes[usable],
                metric,
            )
            row.update(within_family(column[usable], values[usable], families[usable]))
            row.update(_pooled_signs(row, metric_rows))
            metric_rows.append(dict(family=POOLED, metric=metric, **row))
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
    tested = [r for r in rows if r["pearson_p"] is not None]
    for row in rows:
        row["pearson_p_adjusted"] = None
    if tested:
        adjusted = stats.false_discovery_control([r["pearson_p"] for r in tested], method="bh")
        for row, p in zip(tested, adjusted, strict=True):
            row["pearson_p_adjusted"] = _finite(p)
