"""Marchenko-Pastur fits: no spikes for noise, spikes for planted signal, exact KDE."""

import numpy as np
import pytest

from ww_core.eigen import gram_eigenvalues
from ww_core.marchenko_pastur import _linear_kde, marchenko_pastur_fit, random_matrix_edge


def gaussian(n, m, seed):
    return np.random.default_rng(seed).standard_normal((n, m)) / np.sqrt(n)


@pytest.mark.parametrize("shape", [(1000, 500), (600, 600), (2000, 300)])
def test_gaussian_matrix_has_no_spikes(shape):
    evals = gram_eigenvalues([gaussian(*shape, seed=1)])
    fit = marchenko_pastur_fit(evals, max(shape), min(shape))
    assert fit.num_spikes == 0
    assert 0 < fit.mp_softrank <= 1.5


def test_planted_rank_one_spike_is_found():
    n, m = 1000, 500
    rng = np.random.default_rng(2)
    W = gaussian(n, m, 2) + 3 * np.outer(rng.standard_normal(n), rng.standard_normal(m)) / np.sqrt(n * m)
    fit = marchenko_pastur_fit(gram_eigenvalues([W]), n, m)
    assert fit.num_spikes >= 1


def test_linear_kde_is_a_normalized_triangular_density():
    samples = np.random.default_rng(3).gamma(2.0, 0.5, 500)
    grid = np.linspace(-1, samples.max() + 1, 20001)
    density = _linear_kde(samples, grid, 0.1)
    # A density integrates to 1 (trapezoid rule on a fine grid; error ~ 1e-6).
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-4)
    x = 1.3
    direct = np.mean(np.maximum(0, 1 - np.abs(x - samples) / 0.1)) / 0.1
    assert _linear_kde(samples, np.array([x]), 0.1)[0] == pytest.approx(direct, rel=1e-12)


def test_random_matrix_edge_matches_gaussian_largest_eigenvalue():
    n, m = 2000, 500
    W = np.random.default_rng(4).standard_normal((n, m))
    edge, width = random_matrix_edge(1.0, n, m)
    lam_max = gram_eigenvalues([W])[-1]
    # Tracy-Widom: lambda_max = edge + O(width); 6 widths covers the TW1 law's whole practical range.
    assert abs(lam_max - edge) < 6 * width
