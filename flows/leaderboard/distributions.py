"""Two-sided tail probabilities of the normal and of Pearson's r under independence, with ``math`` and numpy.

A correlations refresh needs only these, and importing ``scipy.special`` for them costs 0.16-0.24 s on 2 cores
(its array-API layer clones numpy), more than the rest of a one-model scan's refresh. Tested in
tests/flows/leaderboard/test_distributions.py: Pearson's p against ``scipy.special.betainc`` within 1e-11 relative
over n = 3 … 10⁶ and r from 0 to ±1 (~1e-12 seen), the normal tail against ``ndtr`` within 1e-13.

Pearson's p is the regularized incomplete beta function I_y(h, h), evaluated by its continued fraction (Abramowitz
and Stegun 26.5.8; Press et al., Numerical Recipes, 3rd ed., § 6.4, with the modified Lentz method of § 5.2), which
converges for y < (h + 1)/(2h + 2) = ½, i.e. for every r ≠ 0. Its prefactor y^h (1 − y)^h / B(h, h) is taken in
logarithms with the Stirling series of ln Γ, in which the terms of size h cancel by hand instead of in floating
point: ``math.lgamma`` of 50 000 would leave an error of ~1e-10 in p at n = 100 000.
"""

from __future__ import annotations

import math

import numpy as np

# The continued fraction stops when a step changes it by less than this (relative), as Numerical Recipes' betacf.
_CONVERGED = 1e-16
_TINY = 1e-300  # keeps the Lentz denominators off zero
# ~O(√h) steps are enough (Numerical Recipes § 6.4; ~200 measured at n = 10⁵ near r = 0): a bound for a bug only.
_MAX_STEPS = 100_000
_SQRT_HALF = math.sqrt(0.5)


def normal_two_sided_p(z: float) -> float:
    """P(|Z| ≥ |z|) for a standard normal Z: erfc(|z|·√½), as 2·scipy.special.ndtr(−|z|) (cephes) forms it: a
    division by √2 instead rounds the argument otherwise, which erfc's slope magnifies ~z² times in the far tail."""
    return math.erfc(abs(z) * _SQRT_HALF)


def pearson_two_sided_p(r, n: int) -> np.ndarray:
    """The two-sided p of Pearson correlations ``r`` (an array or a number) of n points under independence: r is
    Beta(h, h) on [−1, 1] with h = n/2 − 1, so p = 2·I_{(1−|r|)/2}(h, h) (``scipy.stats.pearsonr``'s
    ``2·betaincc(h, h, (|r| + 1)/2)``). 1 at r = 0, 0 at |r| = 1, NaN for a NaN r or n < 3 (as scipy)."""
    r = np.asarray(r, dtype=float)
    magnitude = np.abs(r).ravel()
    p = np.full(magnitude.shape, math.nan)
    half = n / 2 - 1
    if half <= 0:
        return p.reshape(r.shape)
    p[magnitude == 0] = 1.0
    p[magnitude == 1] = 0.0
    inside = (magnitude > 0) & (magnitude < 1)
    if inside.any():
        m = magnitude[inside]
        # ln(y(1 − y)) + ln 4 = ln(1 − r²), from factors that are exact where r² would round.
        log_one_minus_square = np.log1p(-m) + np.log1p(m)
        log_front = half * log_one_minus_square + 0.5 * math.log(half / (4 * math.pi))
        log_front += _stirling_correction(2 * half) - 2 * _stirling_correction(half)
        with np.errstate(under="ignore"):
            y = (1 - m) / 2
            p[inside] = 2 * np.exp(log_front) * _beta_fraction(half, y.item() if y.size == 1 else y) / half
    return np.minimum(p, 1.0).reshape(r.shape)


def _stirling_correction(x: float) -> float:
    """δ(x) = ln Γ(x) − [(x − ½) ln x − x + ½ ln 2π] for x > 0: the Stirling series to x⁻¹¹ from x = 10 (error
    below 1e-15 there), ``math.lgamma`` below (whose value is then small, so its rounding is too)."""
    if x < 10:
        return math.lgamma(x) - ((x - 0.5) * math.log(x) - x + 0.5 * math.log(2 * math.pi))
    inverse, square = 1 / x, 1 / (x * x)
    series = 1 / 12 - square * (
        1 / 360 - square * (1 / 1260 - square * (1 / 1680 - square * (1 / 1188 - square * 691 / 360360)))
    )
    return inverse * series


def _beta_fraction(h: float, y):
    """The continued fraction of I_y(h, h) (A&S 26.5.8 with a = b = h) by the modified Lentz method, for y in
    (0, ½): a float, or an array each of whose values stops at the first step that changes it by less than
    ``_CONVERGED``. Either way a value takes the same operations, so a family's p is the same bits whether it is
    computed alone or with every other family. A single value (the pooled rows, where n is every model and the
    fraction needs ~O(√h) steps near r = 0) goes through plain float arithmetic, ~20 times faster per step than
    numpy on a one-element array."""
    if isinstance(y, float):
        c, d = 1.0, _first_d(h, y)
        fraction = d
        for m in range(1, _MAX_STEPS):
            c, d, step = _fraction_steps(h, m, y, c, d)
            fraction *= step
            if abs(step - 1) < _CONVERGED:
                return fraction
        raise _not_converged(h)
    value = np.empty_like(y)
    active = np.arange(y.size)
    c, d = np.ones_like(y), _first_d(h, y)
    fraction = d.copy()
    for m in range(1, _MAX_STEPS):
        c, d, step = _fraction_steps(h, m, y[active], c, d)
        fraction *= step
        done = np.abs(step - 1) < _CONVERGED
        if done.any():
            value[active[done]] = fraction[done]
            keep = ~done
            active, c, d, fraction = active[keep], c[keep], d[keep], fraction[keep]
            if not active.size:
                return value
    raise _not_converged(h)


def _first_d(h: float, y):
    """Lentz's d before the first step: 1 / (1 − (a + b) y / (a + 1)) with a = b = h. A float or an array alike."""
    return 1 / _off_zero(1 - (2 * h) * y / (h + 1))


def _not_converged(h: float) -> ArithmeticError:
    return ArithmeticError(f"the incomplete beta fraction did not converge (h = {h})")


def _fraction_steps(h: float, m: int, y, c, d):
    """The m-th even and odd terms of the fraction, folded into Lentz's c and d: (c, d, the factor they multiply
    the fraction by). Floats or arrays alike."""
    even = m * (h - m) * y / ((h - 1 + 2 * m) * (h + 2 * m))
    d, c = 1 / _off_zero(1 + even * d), _off_zero(1 + even / c)
    step = d * c
    odd = -(h + m) * (2 * h + m) * y / ((h + 2 * m) * (h + 1 + 2 * m))
    d, c = 1 / _off_zero(1 + odd * d), _off_zero(1 + odd / c)
    return c, d, step * (d * c)


def _off_zero(x):
    """x moved off zero where it is nearer than ``_TINY`` (the modified Lentz method's guard), for a float or an
    array alike."""
    return x + (abs(x) < _TINY) * _TINY
