"""flows/leaderboard/rank_tests.py against scipy.stats (rankdata, kendalltau) and against counting by brute force."""

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from flows.leaderboard import rank_tests


def kendall_of(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ranked = rank_tests.rank_pairs(x[None], y[None])
    return rank_tests.kendall_tau_p(x.size, *ranked.counts_of(0))


def scipy_kendall(x: np.ndarray, y: np.ndarray, method: str = "auto") -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns, and returns the NaN we compare with
        found = stats.kendalltau(x, y, method=method)
    return float(found.statistic), float(found.pvalue)


def test_average_ranks_equal_scipy_rankdata_in_one_row_and_row_by_row():
    """Ranks are halves of integers, exact in float64: equal to scipy's to the last bit, ties included."""
    rng = np.random.default_rng(0)
    for groups, n in ((1, 1), (1, 2), (1, 17), (6, 9), (40, 64), (3, 5000)):
        x = np.round(rng.standard_normal((groups, n)), 1)  # many ties
        y = rng.standard_normal((groups, n))  # none
        y[:, ::3] = 0.5  # unless placed
        ranked = rank_tests.rank_pairs(x, y)
        np.testing.assert_array_equal(ranked.rank_x, stats.rankdata(x, axis=1))
        np.testing.assert_array_equal(ranked.rank_y, stats.rankdata(y, axis=1))
        np.testing.assert_array_equal(ranked.rank_x[0], stats.rankdata(x[0]))


def test_inversions_equal_a_count_of_every_pair():
    """Sizes on both sides of the compared blocks and of each power of two (the padding), with ties."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 15, 16, 17, 31, 33, 64, 100, 1000, 1025):
        for groups in (1, 3):
            values = rng.integers(0, max(1, n // 3), (groups, n))
            brute = [sum(int(a > b) for a, b in itertools.combinations(row, 2)) for row in values.tolist()]
            assert rank_tests._inversions(values).tolist() == brute, n


def test_the_counts_of_orders_by_inversions_are_those_of_every_permutation():
    """Kendall's exact distribution: M(n, k) against the n! permutations themselves, n ≤ 7."""
    for n in range(1, 8):
        found = [0] * (n * (n - 1) // 2 + 1)
        for order in itertools.permutations(range(n)):
            found[sum(a > b for a, b in itertools.combinations(order, 2))] += 1
        assert list(rank_tests._inversion_counts(n)) == found
    assert sum(rank_tests._inversion_counts(33)) == math.factorial(33)


def untied_samples(n: int, rng: np.random.Generator):
    """y orders of n untied points: random ones, and 0, 1, 2 discordant pairs from each end (at most one is exact
    beyond 33 points, two is not)."""
    x = rng.permutation(n).astype(float)
    ordered = np.sort(x)
    yield x, rng.permutation(n).astype(float) * 0.5
    for swaps in range(min(3, n // 2 + 1)):
        y = ordered.copy()
        for k in range(swaps):  # each swap of two neighbours far apart: one discordant pair more
            y[[2 * k, 2 * k + 1]] = y[[2 * k + 1, 2 * k]]
        yield ordered, y
        yield ordered, -y


def test_kendall_of_untied_samples_equals_scipy_exact_and_asymptotic():
    """n = 2..40: τ to the last bit (the same operations); the exact p (n ≤ 33, or one discordant or concordant pair
    at most) is the exact integer ratio rounded once, scipy's a float recursion: 1e-13 relative. Beyond 33 points
    with two discordant pairs or more, the asymptotic p, as scipy's (the C library's erfc where scipy has cephes':
    1e-13 relative)."""
    rng = np.random.default_rng(2)
    exact = asymptotic = 0
    for n in range(2, 41):
        for x, y in untied_samples(n, rng):
            tau, p = kendall_of(x, y)
            reference = scipy_kendall(x, y)
            assert tau == reference[0]
            assert p == pytest.approx(reference[1], rel=1e-13, abs=1e-300), (n, x, y)
            total = n * (n - 1) // 2
            discordant = round((1 - tau) * total / 2)
            if n <= 33 or min(discordant, total - discordant) <= 1:
                assert p == pytest.approx(scipy_kendall(x, y, "exact")[1], rel=1e-13, abs=1e-300)
                exact += 1
            else:
                assert p == pytest.approx(scipy_kendall(x, y, "asymptotic")[1], rel=1e-13, abs=1e-300)
                asymptotic += 1
    assert exact > 200 and asymptotic > 20


@pytest.mark.parametrize("tied", ["x", "y", "both"])
def test_kendall_with_ties_equals_scipy(tied):
    """Ties take the asymptotic p with the tie-corrected variance, computed as scipy does, operation for operation:
    τ-b to the last bit, p to 1e-13 (the normal tail from the C library's erfc, scipy's from cephes')."""
    rng = np.random.default_rng(3)
    for n in (3, 5, 12, 33, 34, 250):
        for _ in range(10):
            x = rng.standard_normal(n)
            y = x + rng.standard_normal(n)
            if tied in ("x", "both"):
                x = np.round(x)
            if tied in ("y", "both"):
                y = np.round(y)
            if np.all(x == x[0]) or np.all(y == y[0]):
                continue
            tau, p = kendall_of(x, y)
            reference = scipy_kendall(x, y)
            assert tau == reference[0] and p == pytest.approx(reference[1], rel=1e-13, abs=1e-300)


def test_kendall_of_constant_input_is_undefined():
    for x, y in (
        (np.ones(5), np.arange(5.0)),
        (np.arange(5.0), np.full(5, 0.7)),
        (np.ones(40), np.ones(40)),
        (np.array([1.0]), np.array([2.0])),
    ):
        assert all(math.isnan(v) for v in kendall_of(x, y))
        assert all(math.isnan(v) for v in scipy_kendall(x, y))


def test_kendall_of_100000_points_with_ties_equals_scipy():
    """A pooled group's size. τ from the same integers and operations: 1e-12 relative is room for none; the p of a
    weak correlation (~0.01) to 1e-9."""
    rng = np.random.default_rng(4)
    n = 100_000
    x = np.round(rng.standard_normal(n), 2)
    y = np.round(0.006 * x + rng.standard_normal(n), 1)
    ranked = rank_tests.rank_pairs(x[None], y[None])
    tau, p = rank_tests.kendall_tau_p(n, *ranked.counts_of(0))
    reference = scipy_kendall(x, y)
    assert tau == pytest.approx(reference[0], rel=1e-12)
    assert p == pytest.approx(reference[1], rel=1e-9)
    assert 1e-4 < p < 0.5  # a p in the middle of its range, where a wrong variance would show
    np.testing.assert_array_equal(ranked.rank_y[0], stats.rankdata(y))


def test_exact_p_of_a_perfect_order_underflows_to_zero_without_n_factorial():
    """Beyond 33 untied points only 0 or 1 discordant pairs take the exact p, 2(1 + D(n−1))/n!: it underflows to 0
    long before 100 000 points (and scipy says 0 from 172 on)."""
    for n in (34, 100, 171, 1000, 100_000):
        x = np.arange(float(n))
        for y in (x, np.r_[1.0, 0.0, x[2:]]):
            tau, p = kendall_of(x, y)
            assert p == pytest.approx(scipy_kendall(x, y)[1], rel=1e-13, abs=1e-300)
    assert rank_tests.kendall_exact_p(100_000, 0) == 0.0
