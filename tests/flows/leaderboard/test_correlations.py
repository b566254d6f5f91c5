"""The lake's correlations table: Simpson's paradox shown with numbers, size as a confounder, and the same rows
for `wwhub query correlations`, the leaderboard and plain duckdb."""

import json
import math

import duckdb
import numpy as np
import pytest
from scipy import stats

from flows.cli import main
from flows.lake import Lake
from flows.leaderboard.correlations import refresh_correlations
from flows.leaderboard.render import leaderboard_data
from tests.flows.lakes import write_lake

WEIGHT_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")


def simpsons_lake(root):
    """Four families of six models: within each, accuracy falls as alpha grows (with noise); the families sit on a
    rising diagonal, so pooled, accuracy rises with alpha."""
    rng = np.random.default_rng(4)
    models = []
    for f in range(4):
        alphas = 2.0 + f + np.linspace(0, 0.8, 6)
        accuracy = 0.55 + 0.1 * f - 0.05 * (alphas - alphas.mean()) + rng.normal(scale=0.004, size=6)
        models += [
            (f"fam{f}", f"org/fam{f}-{i}", float(a), float(y), 10**8)
            for i, (a, y) in enumerate(zip(alphas, accuracy, strict=True))
        ]
    return write_lake(root, models), models


def test_simpsons_paradox_is_shown_with_numbers(tmp_path, capsys):
    lake, models = simpsons_lake(tmp_path / "lake")
    assert main(["query", "correlations", "--lake", str(lake), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    pooled = next(r for r in rows if r["family"] == "(all)" and r["metric"] == "alpha")
    assert pooled["pearson_r"] > 0  # the naive pooled estimate points the wrong way
    assert pooled["within_family_r"] < 0 and pooled["within_family_ci_high"] < 0  # the within-family one does not
    assert pooled["simpsons_paradox"] is True
    assert pooled["families_agreeing"] == 0 and pooled["families_total"] == 4
    # The within-family estimate by hand: centre per family, correlate (Bland & Altman's within-subject r).
    alpha = np.array([m[2] for m in models])
    accuracy = np.array([m[3] for m in models])
    family = np.repeat(np.arange(4), 6)
    centred = [v - np.array([v[family == f].mean() for f in range(4)])[family] for v in (alpha, accuracy)]
    assert pooled["within_family_r"] == pytest.approx(stats.pearsonr(*centred).statistic, abs=1e-12)
    for f in range(4):
        row = next(r for r in rows if r["family"] == f"fam{f}" and r["metric"] == "alpha")
        assert row["pearson_r"] < 0 and row["simpsons_paradox"] is None


def test_every_reader_sees_the_same_columns(tmp_path, capsys):
    lake, _ = simpsons_lake(tmp_path / "lake")
    assert main(["query", "correlations", "--lake", str(lake), "--format", "json"]) == 0
    from_query = json.loads(capsys.readouterr().out)
    # Plain duckdb, as README shows: the lake's views.sql, its relative paths resolved against the lake folder.
    con = duckdb.connect()
    try:
        con.execute(f"SET file_search_path = '{lake}'")
        con.execute((lake / "views.sql").read_text())
        cursor = con.execute("SELECT * FROM correlations")
        from_duckdb = [dict(zip([d[0] for d in cursor.description], r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()
    issue_columns = (
        "pearson_p, pearson_ci_low, pearson_ci_high, spearman_p, spearman_ci_low, spearman_ci_high, kendall_p, "
        "kendall_ci_low, kendall_ci_high, pearson_p_adjusted, verdict, within_family_r, within_family_ci_low, "
        "within_family_ci_high, partial_r_size"
    ).split(", ")
    kept = "family, metric, n, pearson_r, spearman_rho, kendall_tau, slope, intercept, r_squared, rmse".split(", ")
    assert set(issue_columns + kept) <= set(from_duckdb[0]) == set(from_query[0])
    assert len(from_duckdb) == len(from_query) == (4 + 1) * len(WEIGHT_METRICS)
    _, from_board = leaderboard_data(lake, family="fam2")
    assert {(r["family"], r["metric"]) for r in from_board} == {("fam2", m) for m in WEIGHT_METRICS}
    stored = {(r["family"], r["metric"]): r for r in from_duckdb}
    for row in from_board:
        assert row["pearson_p"] == stored[(row["family"], row["metric"])]["pearson_p"]


def test_partial_correlation_controls_for_size(tmp_path):
    # Accuracy is driven by size, and alpha falls with size: alpha and accuracy correlate only through size.
    rng = np.random.default_rng(8)
    log_size = np.linspace(7, 10, 12)
    alpha = 6 - 0.5 * log_size + rng.normal(scale=0.1, size=12)
    accuracy = 0.3 + 0.05 * log_size + rng.normal(scale=0.01, size=12)
    models = [
        ("fam", f"org/m{i}", float(a), float(y), int(10**s))
        for i, (a, y, s) in enumerate(zip(alpha, accuracy, log_size, strict=True))
    ]
    lake = write_lake(tmp_path / "lake", models)
    _, rows = leaderboard_data(lake)
    row = next(r for r in rows if r["family"] == "fam" and r["metric"] == "alpha")
    sizes = np.log10(np.array([m[4] for m in models], dtype=float))
    r_xy, r_xz, r_yz = (
        stats.pearsonr(a, b).statistic for a, b in ((alpha, accuracy), (alpha, sizes), (accuracy, sizes))
    )
    closed = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert row["pearson_r"] < -0.9  # naive: a strong negative correlation
    assert row["partial_r_size"] == pytest.approx(closed, abs=1e-9)  # log10(int(10**s)) rounds: 1e-9, not 1e-12
    assert abs(row["partial_r_size"]) < 0.8


def test_partial_r_is_null_with_a_reason_when_sizes_are_missing(tmp_path):
    models = [("fam", f"org/m{i}", 2.0 + i / 10, 0.9 - i / 50, None if i == 2 else 10**9) for i in range(6)]
    lake = write_lake(tmp_path / "lake", models)
    _, rows = leaderboard_data(lake)
    assert all(r["partial_r_size"] is None for r in rows)
    assert "parameter count unknown for 1 of 6 models" in rows[0]["notes"]


def test_percent_and_fraction_values_are_never_mixed(tmp_path):
    # Family a reports fractions, family b percent: one pooled correlation over one scale.
    models = [("a", f"org/a{i}", 2.0 + i / 10, 0.90 - i / 100, 10**8) for i in range(5)]
    lake = write_lake(tmp_path / "lake", models)
    for i in range(5):
        key = dict(repo_id=f"org/b{i}", revision="r1", family="b")
        evals = dict(key, source="model-index", dataset="d", metric="accuracy", value=80.0 - i, scale="percent")
        models = dict(key, status="scanned", alpha=3.0 + i / 10)
        Lake(lake).commit_model(key["repo_id"], "r1", {"evals": [evals], "models": [models]})
    refresh_correlations(lake)
    board, rows = leaderboard_data(lake)
    values = {r["repo_id"]: r["value"] for r in board}
    assert values["org/b0"] == pytest.approx(0.80) and values["org/a0"] == pytest.approx(0.90)
    assert {r["reported_scale"] for r in board} == {"percent", "fraction"}
    pooled = next(r for r in rows if r["family"] == "(all)" and r["metric"] == "alpha")
    x = np.array([2.0 + i / 10 for i in range(5)] + [3.0 + i / 10 for i in range(5)])
    y = np.array([0.90 - i / 100 for i in range(5)] + [(80.0 - i) / 100 for i in range(5)])
    assert pooled["pearson_r"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)


def test_one_family_computed_on_the_spot_is_adjusted_like_all_of_them(tmp_path):
    lake, models = simpsons_lake(tmp_path / "lake")
    rows = [
        dict(
            repo_id=m[1],
            family=m[0],
            source="import:csv:x",
            metric="accuracy",
            value=m[3] + 0.01 * (i % 3),
            import_id="x",
        )
        for i, m in enumerate(models)
    ]
    Lake(lake).commit({"evals": rows})
    _, everything = leaderboard_data(lake, prefer_import=True)
    _, one = leaderboard_data(lake, family="fam1", prefer_import=True)
    expected = {r["metric"]: r["pearson_p_adjusted"] for r in everything if r["family"] == "fam1"}
    assert {r["metric"]: r["pearson_p_adjusted"] for r in one} == expected
    assert all(r["pearson_p_adjusted"] > r["pearson_p"] for r in one)  # five tests per metric: adjusted upwards
