"""The tails a correlations refresh computes without scipy (flows/leaderboard/distributions.py), against scipy.special
and against closed forms that need no special function at all."""

import math

import numpy as np
import pytest
from scipy import special, stats

from flows.leaderboard.distributions import normal_two_sided_p, pearson_two_sided_p

SIZES = (3, 4, 5, 7, 10, 33, 100, 1_000, 10_000, 100_000, 1_000_000)


def correlations() -> np.ndarray:
    """r from −1 to 1, near 0 and near ±1 on a log scale."""
    near_zero = np.geomspace(1e-12, 1, 300)
    near_one = 1 - np.geomspace(1e-16, 1e-1, 200)
    return np.concatenate([np.linspace(-1, 1, 2001), near_zero, -near_zero, near_one, -near_one])


@pytest.mark.parametrize("n", SIZES)
def test_pearson_p_equals_the_incomplete_beta_function_of_scipy(n):
    r = correlations()
    half = n / 2 - 1
    # I_y(h, h) at y = (1 − |r|)/2 itself: scipy's pearsonr forms (|r| + 1)/2, which rounds away tiny p near |r| = 1.
    reference = 2 * special.betainc(half, half, (1 - np.abs(r)) / 2)
    p = pearson_two_sided_p(r, n)
    representable = reference > 1e-300
    assert p[representable] == pytest.approx(reference[representable], rel=1e-11)
    assert np.all(p[~representable] < 1e-290)
    assert np.all((p >= 0) & (p <= 1))


def test_pearson_p_equals_closed_forms_near_perfect_correlation():
    """n = 4: r is uniform on [−1, 1], p = 1 − |r|; n = 3: p = (4/π)·asin(√((1 − |r|)/2)). Both exact, without a
    special function, where the 1 − |r| of a near-perfect r carries every digit of p."""
    r = np.concatenate([1 - np.geomspace(1e-16, 0.5, 400), -np.linspace(0.001, 0.999, 50)])
    assert pearson_two_sided_p(r, 4) == pytest.approx(1 - np.abs(r), rel=1e-13)
    assert pearson_two_sided_p(r, 3) == pytest.approx(4 / np.pi * np.arcsin(np.sqrt((1 - np.abs(r)) / 2)), rel=1e-13)


def test_pearson_p_equals_scipy_pearsonr_on_samples():
    rng = np.random.default_rng(3)
    for n in (3, 8, 40, 500, 20_000):
        x = rng.normal(size=n)
        for y in (x + rng.normal(size=n), rng.normal(size=n), -x + 0.1 * rng.normal(size=n)):
            reference = stats.pearsonr(x, y)
            p = pearson_two_sided_p(reference.statistic, n)
            assert p.shape == () and float(p) == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300)


def test_pearson_p_edges_and_shapes():
    assert pearson_two_sided_p(0.0, 10) == 1.0
    assert pearson_two_sided_p(np.array([1.0, -1.0]), 10).tolist() == [0.0, 0.0]
    assert math.isnan(pearson_two_sided_p(math.nan, 10))
    # n = 2 (and below): no distribution, NaN as scipy's betaincc(0, 0, x).
    assert np.isnan(pearson_two_sided_p(np.array([0.5, 1.0]), 2)).all()
    grid = np.linspace(-0.9, 0.9, 12).reshape(3, 4)
    p = pearson_two_sided_p(grid, 50)
    assert p.shape == (3, 4) and p == pytest.approx(pearson_two_sided_p(grid.ravel(), 50).reshape(3, 4), rel=0)


def test_normal_two_sided_p_equals_scipy_ndtr():
    for z in np.concatenate([np.linspace(-38, 38, 1521), [0.0, 1e-9, -1e-9]]):
        assert normal_two_sided_p(float(z)) == pytest.approx(float(2 * special.ndtr(-abs(z))), rel=1e-13, abs=1e-300)
    assert normal_two_sided_p(0.0) == 1.0
    assert math.isnan(normal_two_sided_p(math.nan))


@pytest.mark.parametrize("n", [5, 40, 100_000])
def test_pearson_p_of_one_r_is_the_same_bits_alone_or_among_others(n):
    """A scan recomputes one family (one r) where a full refresh computes every family at once: the stored table
    must be the same either way (tests/flows/leaderboard/test_correlations.py compares them exactly)."""
    r = np.random.default_rng(n).uniform(-0.2, 0.2, 64)
    together = pearson_two_sided_p(r, n)
    alone = [float(pearson_two_sided_p(value, n)) for value in r]
    assert together.tolist() == alone
