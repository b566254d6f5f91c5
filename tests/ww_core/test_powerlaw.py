"""Power-law fits: recovery of known exponents, edge cases, fix_fingers and TPL."""

import numpy as np
import pytest
from scipy import integrate, optimize

from ww_core.powerlaw import (
    PowerLawFitError,
    fit_power_law,
    fit_power_law_clip_xmax,
    fit_power_law_xmin_peak,
    fit_truncated_power_law,
)


def pareto(alpha: float, n: int, seed: int) -> np.ndarray:
    """Samples with density ~ x^-alpha on x >= 1 (inverse-CDF sampling)."""
    u = np.random.default_rng(seed).random(n)
    return (1.0 - u) ** (-1.0 / (alpha - 1.0))


@pytest.mark.parametrize("alpha", [2.2, 3.0, 4.0, 5.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_pareto_exponent_recovered_within_three_standard_errors(alpha, seed):
    fit = fit_power_law(pareto(alpha, 2500, seed))
    # sigma = (alpha - 1) / sqrt(n_tail) is the MLE's standard error (Clauset et al. 2009, eq. 3.2).
    assert abs(fit.alpha - alpha) < 3 * fit.sigma
    assert fit.n_tail > 500


def test_fit_matches_a_direct_loop_over_candidates():
    x = np.sort(pareto(3.0, 400, 7) * np.random.default_rng(3).uniform(0.5, 1.5, 400))
    fit = fit_power_law(x)
    best = None
    for i in range(len(x) - 1):
        tail = x[i:]
        n = len(tail)
        a = 1 + n / np.sum(np.log(tail / x[i]))
        d = np.max(np.abs(1 - (tail / x[i]) ** (1 - a) - np.arange(n) / n))
        if best is None or d < best[0]:
            best = (d, a, x[i])
    # Same arithmetic in another order: agreement to rounding.
    assert fit.D == pytest.approx(best[0], rel=1e-9)
    assert fit.alpha == pytest.approx(best[1], rel=1e-9)
    assert fit.xmin == best[2]


def test_small_sample_uses_bias_corrected_objective():
    x = pareto(3.0, 15, 2)
    fit = fit_power_law(x)
    assert fit.n_tail >= 8
    tail = np.sort(x)[-fit.n_tail :]
    assert fit.alpha == pytest.approx(1 + (fit.n_tail - 1) / np.sum(np.log(tail / tail[0])), rel=1e-12)


def test_too_few_or_degenerate_eigenvalues_raise():
    with pytest.raises(PowerLawFitError):
        fit_power_law(np.array([1.0]))
    with pytest.raises(PowerLawFitError):
        fit_power_law(np.full(50, 2.0))


def test_clip_xmax_removes_fingers():
    x = np.sort(pareto(4.0, 800, 4))
    # Two huge outliers ("fingers") drag alpha down in an unclipped fit of a thin tail.
    fingered = np.concatenate([x, [x[-1] * 40, x[-1] * 60]])
    plain = fit_power_law(fingered)
    clipped = fit_power_law_clip_xmax(fingered)
    assert clipped.raw_alpha == pytest.approx(plain.alpha)
    if clipped.num_fingers:
        assert clipped.alpha + 1.0 < plain.alpha
        assert clipped.xmax < fingered.max()


def test_xmin_peak_restricts_xmin_to_the_peak_window():
    x = pareto(3.0, 1000, 5)
    fit = fit_power_law_xmin_peak(x)
    counts, edges = np.histogram(np.log10(x), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    assert 0.95 * peak <= fit.xmin <= 1.5 * peak


def test_truncated_power_law_is_the_likelihood_maximum():
    rng = np.random.default_rng(6)
    # Rejection-sample x^-2.5 e^{-0.05 x} on x >= 1.
    x = pareto(2.5, 40000, 8)
    x = x[rng.random(x.size) < np.exp(-0.05 * x)][:4000]
    fit = fit_truncated_power_law(x)
    tail = x[x >= fit.xmin]

    def negative_log_likelihood(params):
        a, lam = params
        if lam <= 0:
            return 1e300
        z = integrate.quad(lambda y: y**-a * np.exp(-lam * y), fit.xmin, np.inf)[0]
        return a * np.log(tail).sum() + lam * tail.sum() + tail.size * np.log(z)

    # An independent maximization with numerical integration lands on the same point.
    reference = optimize.minimize(
        negative_log_likelihood, [2.5, 0.05], method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9}
    )
    assert fit.alpha == pytest.approx(reference.x[0], rel=1e-3)
    assert fit.Lambda == pytest.approx(reference.x[1], rel=1e-2)
    # The cutoff absorbs the tail's curvature, so the TPL exponent is below the pure power law's.
    assert fit.Lambda > 0 and fit.alpha < fit_power_law(x).alpha
