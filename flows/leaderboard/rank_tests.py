"""Average ranks and Kendall's τ-b with its two-sided p, with numpy (and ``distributions`` for the normal tail).

They equal scipy.stats' ``rankdata`` (method "average") and ``kendalltau`` (τ-b, method "auto"; tested in
tests/flows/leaderboard/test_rank_tests.py) without importing scipy.stats: that import costs 0.65-0.87 s, a third
of a one-model ``wwhub scan``, whose refresh of the correlations table needs nothing else from it.

Kendall's τ-b and its p depend on the sample only through integers: C − D (concordant minus discordant pairs), the
pairs tied in x, in y and in both, and the tie terms of the variance. ``rank_pairs`` counts them (with the ranks,
from the same sorts), ``stats.RankState`` keeps them up to date point by point, and ``kendall_tau_p`` turns them
into τ-b and p for both.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .distributions import normal_two_sided_p

# What a tie group of t equal values adds (Kendall 1970, ch. 3; scipy.stats.kendalltau's ``count_rank_tie``): the
# tied pairs t(t−1)/2 and the variance terms t(t−1)(t−2) and t(t−1)(2t+5). For Python ints and int64 arrays alike.
TIE_KINDS = ("tie", "0", "1")
TIE_TERMS = (lambda t: t * (t - 1) // 2, lambda t: t * (t - 1) * (t - 2), lambda t: t * (t - 1) * (2 * t + 5))
# The counts of a pair of samples, named as in scipy: "xtie" (pairs tied in x), "x0", "x1" (the variance terms of
# x's tie groups), the same for y, and "xytie" (pairs tied in both).
TIE_NAMES = tuple(f"{axis}{kind}" for axis in "xy" for kind in TIE_KINDS) + ("xytie",)

# scipy.stats.kendalltau(method="auto") uses the exact distribution for untied samples of up to this many points.
EXACT_MAX_N = 33
# Pairs of blocks of this many points are counted by comparing every two points; larger blocks by merging (the
# fastest split on 100 000 points, measured with 16, 32, 64 and 128).
_COMPARED_BLOCK = 16


@dataclass(frozen=True)
class RankedPairs:
    """Rows of paired samples, ranked: the average ranks of x and of y in each row (1-based; ties get the mean of
    the ranks they span), and per row Kendall's integers: ``concordance`` (C − D) and ``ties`` (``TIE_NAMES``)."""

    rank_x: np.ndarray
    rank_y: np.ndarray
    concordance: np.ndarray
    ties: dict[str, np.ndarray]

    def counts_of(self, row: int) -> tuple[int, dict[str, int]]:
        """C − D and the tie counts of one row, as Python ints (``kendall_tau_p``'s arguments)."""
        return int(self.concordance[row]), {name: int(counts[row]) for name, counts in self.ties.items()}


def rank_pairs(x: np.ndarray, y: np.ndarray) -> RankedPairs:
    """Ranks and Kendall's integers of each row of two (G, n) arrays of finite values.

    The discordant pairs are the inversions of y's dense ranks once the points are ordered by x, then y (pairs tied
    in x are then in order, and a tie in y is no inversion), counted in O(n log n) (``_inversions``); then
    C − D = P − Tx − Ty + Txy − 2D with P = n(n−1)/2 pairs, since P = C + D + Tx + Ty − Txy."""
    n = x.shape[1]
    rank_x, dense_x, ties_x = _rank_rows(x)
    rank_y, dense_y, ties_y = _rank_rows(y)
    joint = np.sort(dense_x * n + dense_y, axis=1)  # every point as one integer, ordered by x then y
    starts = _run_starts(joint)
    ties = {f"x{kind}": ties_x[kind] for kind in TIE_KINDS} | {f"y{kind}": ties_y[kind] for kind in TIE_KINDS}
    ties["xytie"] = _sums_over_runs(starts, TIE_TERMS[0])
    discordant = _inversions(joint % n)
    concordance = n * (n - 1) // 2 - ties["xtie"] - ties["ytie"] + ties["xytie"] - 2 * discordant
    return RankedPairs(rank_x, rank_y, concordance, ties)


def _rank_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(average ranks, dense ranks from 0, per row the sum of each of ``TIE_TERMS`` over its tie groups, by
    ``TIE_KINDS``) of each row of a (G, n) array: one stable sort per row."""
    groups, n = values.shape
    order = np.argsort(values, axis=1, kind="stable")
    starts = _run_starts(np.take_along_axis(values, order, axis=1))
    first = np.flatnonzero(starts)  # flat positions where a tie group begins; every row begins one
    lengths = np.diff(first, append=starts.size)
    # A group of t values beginning at 0-based sorted position s spans ranks s+1 .. s+t: their mean is s + (t+1)/2.
    in_order = np.repeat(first % n + (lengths + 1) / 2, lengths).reshape(groups, n)
    average = np.empty((groups, n))
    np.put_along_axis(average, order, in_order, axis=1)
    dense = np.empty((groups, n), dtype=np.int64)
    np.put_along_axis(dense, order, np.cumsum(starts, axis=1) - 1, axis=1)
    ties = {kind: _sums_over_runs(starts, term) for kind, term in zip(TIE_KINDS, TIE_TERMS, strict=True)}
    return average, dense, ties


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values of the sorted rows of ``ordered`` begins (True at every row's first value)."""
    starts = np.ones(ordered.shape, dtype=bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
    return starts


def _sums_over_runs(starts: np.ndarray, term) -> np.ndarray:
    """Per row, the sum of ``term(t)`` over its runs of t equal values (``starts`` from ``_run_starts``), in int64."""
    first = np.flatnonzero(starts)
    lengths = np.diff(first, append=starts.size).astype(np.int64)
    first_of_row = np.concatenate(([0], np.cumsum(np.count_nonzero(starts, axis=1))[:-1]))
    return np.add.reduceat(term(lengths), first_of_row)


def _inversions(sequences: np.ndarray) -> np.ndarray:
    """Per row of a (G, n) array of integers in [0, n), the pairs i < j with value i > value j: bottom-up merge sort.

    Rows are padded with n (above every value, so padding adds no inversion) to a power of two. Blocks of
    ``_COMPARED_BLOCK`` are counted by comparing every two values and sorted; then at each level every two adjacent
    sorted blocks (left, right) are merged by a stable sort of their values tagged with the block they come from
    (left before right among equals). A left value at merged position p that is the k-th of its block has p − k
    right values before it, all smaller: the level's count is Σ p − Σ k over the left values. numpy's stable sort
    finds the two runs, so a level costs O(n): O(n log n) in all."""
    groups, n = sequences.shape
    padded = 1 << max(0, (n - 1).bit_length())
    keys = np.full((groups, padded), n, dtype=np.int64)
    keys[:, :n] = sequences
    width = min(_COMPARED_BLOCK, padded)
    blocks = keys.reshape(groups, padded // width, width)
    later_smaller = np.triu(blocks[..., :, None] > blocks[..., None, :], 1)
    counts = np.count_nonzero(later_smaller, axis=(1, 2, 3)).astype(np.int64)
    keys = np.sort(blocks, axis=-1).reshape(groups, padded)
    while width < padded:
        span = 2 * width
        tagged = keys.reshape(groups, padded // span, 2, width) << 1
        tagged[:, :, 1] |= 1  # right block: placed after equal left values
        merged = np.sort(tagged.reshape(groups, padded // span, span), axis=-1, kind="stable")
        from_left = 1 - (merged & 1)
        positions = from_left @ np.arange(span, dtype=np.int64)  # Σ p per pair of blocks
        counts += positions.sum(axis=1) - (padded // span) * (width * (width - 1) // 2)
        keys = (merged >> 1).reshape(groups, padded)
        width = span
    return counts


def kendall_tau_p(n: int, concordance: int, ties: Mapping[str, int]) -> tuple[float, float]:
    """Kendall's τ-b of n points and its two-sided p, from C − D and the tie counts (``TIE_NAMES``), as
    ``scipy.stats.kendalltau`` computes them (equal to it, tested; NaN and NaN when x or y is constant):

    τ-b = (C − D) / √((P − Tx)(P − Ty)), P = n(n−1)/2, clipped to [−1, 1]. The p is exact (``kendall_exact_p``)
    without ties when n ≤ 33 or at most one pair is discordant (or concordant); otherwise C − D is taken as normal
    with Kendall's (1970, eq. 4.4) tie-corrected variance [v₀ − vx − vy]/18 + 2 Tx Ty / (n(n−1))
    + x₀ y₀ / (9 n(n−1)(n−2)), v₀ = n(n−1)(2n+5), vx = Σ t(t−1)(2t+5) over x's tie groups (``x1``), x₀ = Σ t(t−1)(t−2)
    (``x0``), the same for y. The arithmetic is scipy's, operation for operation: the same float64 results."""
    total = n * (n - 1) // 2
    x_tied, y_tied = ties["xtie"], ties["ytie"]
    if n < 2 or x_tied == total or y_tied == total:
        return math.nan, math.nan
    tau = concordance / np.sqrt(total - x_tied) / np.sqrt(total - y_tied)
    tau = float(np.minimum(1.0, max(-1.0, tau)))  # rounding can step past ±1
    if x_tied == 0 and y_tied == 0:
        discordant = (total - concordance) // 2
        if n <= EXACT_MAX_N or min(discordant, total - discordant) <= 1:
            return tau, kendall_exact_p(n, discordant)
    pairs = n * (n - 1.0)
    variance = (
        (pairs * (2 * n + 5) - ties["x1"] - ties["y1"]) / 18
        + (2 * x_tied * y_tied) / pairs
        + ties["x0"] * ties["y0"] / (9 * pairs * (n - 2))
    )
    z = concordance / np.sqrt(variance)
    return tau, normal_two_sided_p(z)


def kendall_exact_p(n: int, discordant: int) -> float:
    """The two-sided p of Kendall's statistic for n untied points with ``discordant`` discordant pairs, from its exact
    distribution under independence: each of the n! orders of y is equally likely, and D is its number of
    inversions. The distribution is symmetric about P/2 (P = n(n−1)/2), so p = 2 P(D ≤ c), c = min(D, P − D), capped
    at 1 (Kendall 1970, Rank Correlation Methods, ch. 5). Counted in exact integers and divided once, so the p is
    the float nearest the true value; scipy's float recursion agrees to ~1e-15 (tested)."""
    total = n * (n - 1) // 2
    fewer = min(discordant, total - discordant)
    orders = _orders_with_at_most(n, fewer)
    # The p underflows float64 (below e^−744.4) from ~180 points on: 0, without computing n! of 100 000 (0.16 s).
    if math.lgamma(n + 1) - math.log(2 * orders) > 745:
        return 0.0
    return min(1.0, 2 * orders / math.factorial(n))


def _orders_with_at_most(n: int, inversions: int) -> int:
    """The number of orders of n distinct items with at most ``inversions`` inversions. One order has none and n − 1
    have one (a swap of neighbours): the rule's cases with more than 33 points need nothing else, without a table
    of n(n−1)/2 numbers."""
    if inversions <= 1:
        return 1 + inversions * (n - 1)
    return sum(_inversion_counts(n)[: inversions + 1])


@functools.cache
def _inversion_counts(n: int) -> tuple[int, ...]:
    """M(n, k), the number of orders of n distinct items with k inversions, for k = 0 .. n(n−1)/2 (Kendall 1970, ch.
    5; the Mahonian numbers): M(n, k) = Σⱼ M(n−1, k−j) over j = 0 .. min(k, n−1), since the n-th item inserted at
    any of the n places of an order of the others adds the j inversions of the items it passes."""
    if n <= 1:
        return (1,)
    previous = _inversion_counts(n - 1)
    below = list(itertools.accumulate(previous, initial=0))  # below[k]: Σ M(n−1, i) for i < k
    return tuple(below[min(k, len(previous) - 1) + 1] - below[max(0, k - n + 1)] for k in range(n * (n - 1) // 2 + 1))
