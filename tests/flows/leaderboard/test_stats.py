"""flows/leaderboard/stats.py against scipy.stats and the textbook formulas, on fixed data and on simulated samples."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from flows.leaderboard import stats as wstats

# Fixed data: nine models, a tie in each variable, a clearly negative trend.
X = np.array([2.1, 2.4, 2.4, 2.9, 3.3, 3.6, 4.0, 4.4, 5.2])
Y = np.array([0.91, 0.90, 0.87, 0.88, 0.84, 0.80, 0.81, 0.77, 0.71])
Z975 = stats.norm.ppf(0.975)


def test_pearson_p_and_fisher_interval_agree_with_scipy_and_the_formula():
    row = wstats.correlate(X, Y, seed=0)
    reference = stats.pearsonr(X, Y)
    interval = reference.confidence_interval(0.95)
    # pearsonr's formulas (not the call, see _pearson): 1e-9 leaves room for summation order, not another formula.
    assert row["pearson_r"] == pytest.approx(reference.statistic, abs=1e-9)
    assert row["pearson_p"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert row["pearson_ci_low"] == pytest.approx(interval.low, abs=1e-9)
    assert row["pearson_ci_high"] == pytest.approx(interval.high, abs=1e-9)
    # And the textbook: t = r √((n−2)/(1−r²)) on n−2 degrees of freedom; tanh(atanh r ± z/√(n−3)).
    r, n = reference.statistic, X.size
    t = r * math.sqrt((n - 2) / (1 - r**2))
    assert row["pearson_p"] == pytest.approx(2 * stats.t.sf(abs(t), n - 2), rel=1e-9)
    assert row["pearson_ci_low"] == pytest.approx(math.tanh(math.atanh(r) - Z975 / math.sqrt(n - 3)), abs=1e-9)
    assert row["pearson_ci_high"] == pytest.approx(math.tanh(math.atanh(r) + Z975 / math.sqrt(n - 3)), abs=1e-9)


def test_pearson_rows_equal_scipy_pearsonr():
    """_pearson (r, p and interval of many rows at once) against scipy.stats.pearsonr row by row: small and large
    samples, ties, a perfect correlation, a row of three."""
    rng = np.random.default_rng(5)
    for n in (3, 4, 9, 250, 20_000):
        x = np.round(rng.standard_normal((4, n)), 1)
        y = np.round(0.3 * x + rng.standard_normal((4, n)), 1)
        y[1] = 2 * x[1] + 1
        r, p, (low, high) = wstats._pearson(x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True))
        for g in range(4):
            reference = stats.pearsonr(x[g], y[g])
            interval = reference.confidence_interval(0.95)
            assert r[g] == pytest.approx(reference.statistic, rel=1e-12, abs=1e-15)
            # Near |r| = 1 the p of a few points moves by orders of magnitude with the last bit of r.
            assert p[g] == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-300 if g != 1 else 1e-6)
            assert low[g] == pytest.approx(interval.low, rel=1e-12, abs=1e-15)
            assert high[g] == pytest.approx(interval.high, rel=1e-12, abs=1e-15)


def test_pooled_rows_of_several_metrics_equal_each_computed_alone():
    """group_rows computes the pooled rows of the metrics defined for the same models at once (one y row for all);
    each equals correlate plus within_family on that metric's models alone."""
    rng = np.random.default_rng(8)
    n = 700
    families = rng.integers(0, 40, n).astype(str)
    values = np.round(rng.random(n), 2)
    metrics = {name: np.round(rng.standard_normal(n) - values, 2) for name in ("alpha", "log_norm", "alpha_weighted")}
    metrics["alpha_weighted"][::7] = np.nan  # defined for fewer models: its own batch
    sizes = rng.normal(9, 1, n)
    rows = wstats.group_rows(families, values, metrics, sizes, seed=4, label="accuracy", only_families=set())
    pooled = {row["metric"]: row for row in rows if row["family"] == wstats.POOLED}
    assert set(pooled) == set(metrics)
    for name, column in metrics.items():
        usable = np.isfinite(column)
        alone = wstats.correlate(column[usable], values[usable], seed=0, log_size=sizes[usable], x_name=name)
        alone.update(wstats.within_family(column[usable], values[usable], families[usable]))
        for key, value in alone.items():
            if key.endswith(("_ci_low", "_ci_high")) and key.startswith(("spearman", "kendall")):
                continue  # bootstrap seeds differ by row label
            if isinstance(value, float):
                assert pooled[name][key] == pytest.approx(value, rel=1e-12, abs=1e-15), (name, key)
            else:
                assert pooled[name][key] == value, (name, key)


def test_rank_correlations_and_ols_agree_with_scipy():
    row = wstats.correlate(X, Y, seed=0)
    spearman, kendall, fit = stats.spearmanr(X, Y), stats.kendalltau(X, Y), stats.linregress(X, Y)
    assert row["spearman_rho"] == pytest.approx(spearman.statistic, abs=1e-9)
    assert row["spearman_p"] == pytest.approx(spearman.pvalue, rel=1e-9)
    assert row["kendall_tau"] == pytest.approx(kendall.statistic, abs=1e-9)
    assert row["kendall_p"] == pytest.approx(kendall.pvalue, rel=1e-9)
    assert row["slope"] == pytest.approx(fit.slope, rel=1e-9)
    assert row["r_squared"] == pytest.approx(fit.rvalue**2, rel=1e-9)
    residuals = Y - (fit.intercept + fit.slope * X)
    assert row["rmse"] == pytest.approx(math.sqrt(np.mean(residuals**2)), rel=1e-9)


def test_kendall_p_is_exact_for_small_untied_samples():
    x, y = np.arange(7.0), np.array([0.2, 0.1, 0.4, 0.3, 0.6, 0.7, 0.5])
    row = wstats.correlate(x, y, seed=0)
    exact = stats.kendalltau(x, y, method="exact")
    asymptotic = stats.kendalltau(x, y, method="asymptotic")
    assert row["kendall_p"] == pytest.approx(exact.pvalue, rel=1e-12)
    assert abs(exact.pvalue - asymptotic.pvalue) > 1e-3  # the two differ here, so the check above means something


def test_resampled_statistics_equal_scipy_on_the_resampled_arrays():
    # The bootstrap computes rho and tau from draw counts; each must be scipy's statistic of the drawn sample
    # (ties from the data and from repeated draws included). Float summation order only: 1e-12.
    rng = np.random.default_rng(3)
    weights = np.stack([np.bincount(rng.integers(0, X.size, X.size), minlength=X.size) for _ in range(60)])
    rho = wstats._weighted_spearman(X, Y, weights.astype(float))
    tau = wstats._weighted_kendall(X, Y, weights.astype(float))
    compared = 0
    for counts, r, t in zip(weights, rho, tau, strict=True):
        xs, ys = np.repeat(X, counts), np.repeat(Y, counts)
        if np.all(xs == xs[0]) or np.all(ys == ys[0]):
            assert not (np.isfinite(r) or np.isfinite(t))
            continue
        assert r == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
        assert t == pytest.approx(stats.kendalltau(xs, ys).statistic, abs=1e-12)
        compared += 1
    assert compared > 50


def test_bootstrap_intervals_are_reproducible_with_a_seed():
    first, again, other = (wstats.correlate(X, Y, seed=s) for s in (7, 7, 8))
    keys = ("spearman_ci_low", "spearman_ci_high", "kendall_ci_low", "kendall_ci_high")
    assert [first[k] for k in keys] == [again[k] for k in keys]
    assert [first[k] for k in keys] != [other[k] for k in keys]
    assert first["spearman_ci_low"] < first["spearman_rho"] < first["spearman_ci_high"]


def test_bootstrap_intervals_are_the_same_on_threads(monkeypatch):
    """Many groups are bootstrapped a chunk per thread: the intervals are exactly those of one thread."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(250, 10)), rng.normal(size=(250, 10))  # 100 groups of 10 per chunk: 3 chunks
    y = y + x * rng.uniform(0, 1, size=(250, 1))
    seeds = list(range(250))
    found = {}
    for workers in (1, 2, 3):
        monkeypatch.setattr(wstats, "_bootstrap_workers", lambda workers=workers: workers)
        found[workers] = wstats.bootstrap_intervals(x, y, seeds)
    for key, values in found[1].items():
        assert np.isfinite(values).sum() > 200
        np.testing.assert_array_equal(found[2][key], values)
        np.testing.assert_array_equal(found[3][key], values)


def test_the_resampled_rank_products_in_single_precision_are_the_double_precision_ones_exactly():
    """Draw counts times comparisons or signs (multiples of 1/2 in [-1, 1]) are multiples of 1/2 no larger than n:
    float32 represents every partial sum exactly, so the bootstrap loses nothing to its faster products. Ties and
    repeated draws included; n = 3000 is past where a float32 sum of arbitrary values would round."""
    rng = np.random.default_rng(5)
    for n in (9, 3000):
        values = rng.integers(0, n // 3 + 2, size=(2, n)).astype(float)  # many ties
        weights = np.stack([wstats._resample_weights(n, seed)[:50] for seed in (1, 2)])
        below = (values[:, None, :] < values[:, :, None]) + 0.5 * (values[:, None, :] == values[:, :, None])
        signs = np.sign(values[:, :, None] - values[:, None, :]) * np.sign(values[:, None, :] - values[:, :, None])
        for matrix in (np.swapaxes(below, 1, 2), signs):
            product = wstats._count_matmul(weights, matrix)
            assert product.dtype == np.float64
            np.testing.assert_array_equal(product, np.matmul(weights, matrix))


def test_bootstrap_intervals_cover_the_true_rank_correlations():
    # 200 samples of n = 30 from a bivariate normal with Pearson correlation 0.6. The population Spearman rho is
    # (6/π) asin(ρ/2) and Kendall tau (2/π) asin ρ. A 95% interval must cover them in at least 90% of samples
    # (the binomial sd of the coverage over 200 samples is 1.5%, so a correct interval falls below 90% with
    # probability ~1e-3; the seeds are fixed, so the test is deterministic).
    rho_pearson, n, samples = 0.6, 30, 200
    true_rho = 6 / math.pi * math.asin(rho_pearson / 2)
    true_tau = 2 / math.pi * math.asin(rho_pearson)
    xs, ys = [], []
    for k in range(samples):
        xy = np.random.default_rng(1000 + k).multivariate_normal([0, 0], [[1, rho_pearson], [rho_pearson, 1]], n)
        xs.append(xy[:, 0])
        ys.append(xy[:, 1])
    rows = wstats.correlate_many(np.array(xs), np.array(ys), seeds=list(range(samples)))
    covered_rho = sum(r["spearman_ci_low"] <= true_rho <= r["spearman_ci_high"] for r in rows)
    covered_tau = sum(r["kendall_ci_low"] <= true_tau <= r["kendall_ci_high"] for r in rows)
    assert covered_rho / samples >= 0.90
    assert covered_tau / samples >= 0.90


def test_large_groups_use_fieller_hartley_pearson_intervals():
    rng = np.random.default_rng(0)
    x = rng.normal(size=wstats.BOOTSTRAP_MAX_N + 100)
    y = 0.5 * x + rng.normal(size=x.size)
    row = wstats.correlate(x, y, seed=0)
    rho, tau, n = row["spearman_rho"], row["kendall_tau"], x.size
    assert row["spearman_ci_low"] == pytest.approx(math.tanh(math.atanh(rho) - Z975 * math.sqrt(1.06 / (n - 3))))
    assert row["kendall_ci_high"] == pytest.approx(math.tanh(math.atanh(tau) + Z975 * math.sqrt(0.437 / (n - 4))))
    assert "Fieller" in row["notes"]


def test_benjamini_hochberg_adjusts_across_families():
    rng = np.random.default_rng(5)
    families, values, alphas = [], [], []
    for f, slope in enumerate((-1.0, -0.5, 0.0, 0.2)):
        x = rng.normal(size=8)
        families += [f"fam{f}"] * 8
        alphas += list(x)
        values += list(slope * x + rng.normal(scale=0.5, size=8))
    rows = wstats.correlation_table(families, np.array(values), {"alpha": np.array(alphas)})
    p = np.array([r["pearson_p"] for r in rows])
    # BH by hand: p_(i) m / i, made monotone from the largest p down, capped at 1.
    order = np.argsort(p)
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    expected = np.empty_like(p)
    expected[order] = np.minimum(1, np.minimum.accumulate(scaled[::-1])[::-1])
    assert [r["pearson_p_adjusted"] for r in rows] == pytest.approx(expected, rel=1e-12)
    for row in rows:
        assert row["verdict"] == ("significant" if row["pearson_p_adjusted"] < 0.05 else "not significant")


def test_partial_correlation_matches_the_closed_form():
    rng = np.random.default_rng(11)
    size = rng.normal(size=40)
    x = size + rng.normal(size=40)
    y = -0.5 * x + 2 * size + rng.normal(size=40)
    r_xy, r_xz, r_yz = (stats.pearsonr(a, b).statistic for a, b in ((x, y), (x, size), (y, size)))
    closed = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert wstats.partial_r(x, y, size) == pytest.approx(closed, abs=1e-12)
    assert wstats.correlate(x, y, log_size=size)["partial_r_size"] == pytest.approx(closed, abs=1e-12)
    # Sizes all equal: controlling for a constant is plain r.
    assert wstats.partial_r(x, y, np.ones(40)) == pytest.approx(r_xy, abs=1e-12)


def test_within_family_r_is_the_partial_correlation_given_family_dummies():
    rng = np.random.default_rng(2)
    families = np.repeat(["a", "b", "c", "d"], 6)
    offsets = np.repeat([0.0, 1.0, 2.0, 3.0], 6)
    x = offsets + rng.normal(size=24)
    y = 0.5 * offsets - 0.3 * x + rng.normal(scale=0.3, size=24)
    dummies = (families[:, None] == np.unique(families)[None, :]).astype(float)
    residual = np.eye(24) - dummies @ np.linalg.pinv(dummies)
    reference = stats.pearsonr(residual @ x, residual @ y).statistic
    row = wstats.within_family(x, y, families)
    assert row["within_family_r"] == pytest.approx(reference, abs=1e-12)
    # Fisher z with n − k − 2 degrees of freedom (a partial correlation given k − 1 dummies).
    half = Z975 / math.sqrt(24 - 4 - 2)
    assert row["within_family_ci_low"] == pytest.approx(math.tanh(math.atanh(reference) - half), abs=1e-12)
    assert row["within_family_ci_high"] == pytest.approx(math.tanh(math.atanh(reference) + half), abs=1e-12)


def test_constant_values_give_empty_statistics_and_say_why():
    constant_y = wstats.correlate(X, np.full(X.size, 0.9), seed=0)
    constant_x = wstats.correlate(np.full(Y.size, 2.0), Y, seed=0)
    for row in (constant_y, constant_x):
        assert row["pearson_r"] is row["spearman_rho"] is row["kendall_tau"] is None
        assert "same for every model" in row["notes"]
    assert constant_x["slope"] is None and constant_y["slope"] == 0
    rows = wstats.correlation_table(["f"] * 5, np.full(5, 0.9), {"alpha": np.arange(5.0)})
    assert rows[0]["verdict"] == "not significant" and rows[0]["pearson_p_adjusted"] is None


def test_verdict_needs_five_models():
    rows = wstats.correlation_table(["f"] * 4, np.array([0.9, 0.8, 0.7, 0.6]), {"alpha": np.arange(4.0)})
    assert rows[0]["pearson_r"] == pytest.approx(-1.0) and rows[0]["verdict"] == "too few models"


def test_ols_band_is_the_textbook_confidence_band():
    grid = np.array([X.mean(), X.max()])
    line, low, high = wstats.ols_band(X, Y, grid)
    fit = stats.linregress(X, Y)
    s = math.sqrt(np.sum((Y - fit.intercept - fit.slope * X) ** 2) / (X.size - 2))
    t = stats.t.ppf(0.975, X.size - 2)
    sxx = np.sum((X - X.mean()) ** 2)
    assert high[0] - line[0] == pytest.approx(t * s / math.sqrt(X.size), rel=1e-12)
    assert line[1] - low[1] == pytest.approx(t * s * math.sqrt(1 / X.size + (X.max() - X.mean()) ** 2 / sxx))


@pytest.mark.parametrize("seed", range(6))
def test_rank_state_kept_point_by_point_equals_scipy(seed):
    """Points inserted and removed one at a time (ties in x, in y and in both; NaN values that are not points):
    the ranks are scipy's rankdata of the points, and τ-b is scipy's kendalltau to the last bit, its p to 1e-13 (the
    normal tail from the C library's erfc, scipy's from cephes')."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 300))
    x = np.round(rng.standard_normal(n), 1)
    y = np.round(x + rng.standard_normal(n), 1)
    x[rng.random(n) < 0.05] = np.nan
    state = wstats.RankState.of(x, y)
    for _ in range(25):
        if rng.random() < 0.5:
            at = int(rng.integers(len(x)))
            state.remove(x, y, at)
            x, y = np.delete(x, at), np.delete(y, at)
            state.rank_x, state.rank_y = np.delete(state.rank_x, at), np.delete(state.rank_y, at)
        else:
            at = int(rng.integers(len(x) + 1))
            new_x = round(float(rng.standard_normal()), 1)
            new_y = math.nan if rng.random() < 0.1 else round(new_x + float(rng.standard_normal()), 1)
            x, y = np.insert(x, at, new_x), np.insert(y, at, new_y)
            state.rank_x, state.rank_y = np.insert(state.rank_x, at, np.nan), np.insert(state.rank_y, at, np.nan)
            state.insert(x, y, at)
        usable = np.isfinite(x) & np.isfinite(y)
        fresh = wstats.RankState.of(x, y)
        assert np.array_equal(state.rank_x, fresh.rank_x, equal_nan=True)
        assert np.array_equal(state.rank_y, fresh.rank_y, equal_nan=True)
        assert np.array_equal(state.rank_x[usable], stats.rankdata(x[usable]))
        assert (state.concordance, state.ties) == (fresh.concordance, fresh.ties)
        reference = stats.kendalltau(x[usable], y[usable])
        tau, p = state.kendall()
        assert tau == reference.statistic and p == pytest.approx(reference.pvalue, rel=1e-13, abs=1e-300)


def test_rank_state_gives_scipys_exact_kendall_p_for_small_untied_samples():
    """Without ties, scipy uses the exact distribution up to 33 points: so does the state, from its integers (the
    exact ratio rounded once, scipy's a float recursion: 1e-13); with ties, the asymptotic p (1e-13)."""
    x = np.arange(20.0)
    y = x + np.where(np.arange(20) % 3 == 0, 0.5, -0.5) * np.arange(20) / 10
    tau, p = wstats.RankState.of(x, y).kendall()
    exact, asymptotic = stats.kendalltau(x, y, method="exact"), stats.kendalltau(x, y, method="asymptotic")
    assert tau == exact.statistic
    assert p == pytest.approx(exact.pvalue, rel=1e-13)
    assert p != pytest.approx(asymptotic.pvalue, rel=1e-3)  # the two differ here, so the check above means something
    tied = np.round(np.random.default_rng(0).standard_normal(60), 1)
    tau, p = wstats.RankState.of(tied, tied + 1).kendall()
    reference = stats.kendalltau(tied, tied + 1)
    assert tau == reference.statistic and p == pytest.approx(reference.pvalue, rel=1e-13)


def test_benjamini_hochberg_equals_scipy_false_discovery_control():
    """The same operations as scipy's, ties among the p-values included: equal to the last bit."""
    rng = np.random.default_rng(6)
    for m in (0, 1, 2, 7, 300):
        p = np.round(rng.random(m) ** 3, 3)  # ties, small p-values, and a 0
        np.testing.assert_array_equal(wstats.benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))


def test_finish_rows_adjusts_the_tested_rows_of_each_metric_as_scipy():
    """Each weight metric's rows are one family of tests; a row without a p (None or NaN) is left out of it and
    has no adjusted p."""
    rng = np.random.default_rng(7)
    size = 40
    metric = np.array(["alpha", "log_norm"] * (size // 2), dtype=object)
    p = np.round(rng.random(size) ** 2, 2)
    columns = {name: [None] * size for name in wstats.FINISH_INPUTS}
    columns |= dict(family=["f"] * size, metric=metric, n=[8] * size, pearson_r=rng.uniform(-1, 1, size).tolist())
    columns["pearson_p"] = [None if k % 7 == 0 else (math.nan if k % 11 == 0 else float(v)) for k, v in enumerate(p)]
    adjusted = wstats.finish_rows(columns)["pearson_p_adjusted"]
    for name in ("alpha", "log_norm"):
        tested = (metric == name) & np.array([v is not None and math.isfinite(v) for v in columns["pearson_p"]])
        expected = stats.false_discovery_control(p[tested], method="bh")
        np.testing.assert_array_equal(adjusted[tested], expected)
        assert np.isnan(adjusted[(metric == name) & ~tested]).all()


def _assert_same_row(row: dict, reference: dict) -> None:
    assert set(row) == set(reference)
    for key, value in reference.items():
        if isinstance(value, float) and key.endswith("_p"):
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-300), key
        elif isinstance(value, float):
            assert row[key] == pytest.approx(value, rel=1e-11, abs=1e-14), key
        else:
            assert row[key] == value, key


def test_pooled_rows_equal_correlate_and_within_family_on_the_usable_models():
    """pooled_rows (sums over centred buffers, nothing copied out) with the group's RankState, and without one
    (sorting), gives correlate's and within_family's numbers on the usable models alone: a small group (bootstrap
    intervals) and a large one (Fisher z), ties, unusable points, an unknown size, a constant metric or value."""
    rng = np.random.default_rng(3)
    for n in (40, 700):
        families = rng.integers(0, n // 8, n)
        x = np.round(rng.standard_normal(n), 2)
        y = np.round(-x + rng.standard_normal(n), 2)
        x[::9] = np.nan
        y[4] = np.inf
        sizes = rng.normal(9, 1, n)
        usable = np.isfinite(x) & np.isfinite(y)
        for case in ("plain", "size unknown", "constant metric", "constant value"):
            xc, yc, zc = x.copy(), y.copy(), sizes.copy()
            if case == "size unknown":
                zc[10] = np.nan
            elif case == "constant metric":
                xc[usable] = 2.5
            elif case == "constant value":
                yc[usable] = 0.7
            reference = wstats.correlate(xc[usable], yc[usable], seed=7, log_size=zc[usable], x_name="alpha")
            reference.update(wstats.within_family(xc[usable], yc[usable], families[usable]))
            for state in (wstats.RankState.of(xc, yc), None):
                row = wstats.pooled_rows(yc, xc, zc, families, 7, state, "alpha")
                _assert_same_row(row, reference)
    assert wstats.pooled_rows(y[:3], np.array([1.0, np.nan, 2.0]), None, families[:3], 0) is None  # two usable


@pytest.mark.parametrize("extreme", [1e200, 1e-200])
def test_pearson_r_of_huge_or_tiny_values_equals_scipy_in_every_path(extreme):
    """A reported value of 1e200 (a perplexity) squared overflows and one of 1e-200 underflows: r read 0 with p = 1
    (or None). Centred values are scaled by their largest magnitude first, as scipy.stats.pearsonr does, so the
    batched rows, the pooled row with a kept RankState and the pooled row sorted afresh all give scipy's r and p."""
    x = np.array([2.1, 3.4, 2.9, 4.0, 5.2, 3.3])
    y = np.array([10.0, 20.0, 30.0, 40.0, extreme, 25.0]) * (extreme if extreme < 1 else 1.0)
    families = np.array([0, 0, 0, 1, 1, 1])
    sizes = np.array([6.0, 6.5, 7.0, 7.5, 8.0, 8.5])
    reference = stats.pearsonr(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow on the way either
        rows = [wstats.correlate(x, y, seed=1, log_size=sizes)]
        rows += [wstats.pooled_rows(y, x, sizes, families, 1, state) for state in (wstats.RankState.of(x, y), None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # linregress's Σy² overflows; its slope does not need it
        fit = stats.linregress(x, y)
    rmse = math.hypot(*(y - fit.intercept - fit.slope * x)) / math.sqrt(x.size)  # hypot scales: no overflow
    for row in rows:
        # 1e-12: the same formula as scipy up to summation order.
        assert row["pearson_r"] == pytest.approx(reference.statistic, rel=1e-12)
        assert row["pearson_p"] == pytest.approx(reference.pvalue, rel=1e-9)
        assert row["slope"] == pytest.approx(fit.slope, rel=1e-12)
        assert row["rmse"] == pytest.approx(rmse, rel=1e-12)
        assert row["partial_r_size"] is not None
    _assert_same_row(rows[1], rows[0] | wstats.within_family(x, y, families))
    _assert_same_row(rows[2], rows[1])
