"""Leaderboards and correlations in SQL: agreement with scipy.stats, Simpson's paradox, exports, demo, imports."""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from flows.cli import main
from flows.lake import Lake, build_catalog
from flows.report import board_view, leaderboard_data

METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--lake", str(root / "lake"), "--out", str(root / "report")]) == 0
    return root


def check_against_scipy(board, correlations, tolerance=1e-9):
    groups = {}
    for row in board:
        if row["value"] is not None:
            groups.setdefault(row["family"], []).append(row)
    groups["(all)"] = [r for rows in list(groups.values()) for r in rows]
    checked = 0
    for corr in correlations:
        rows = groups[corr["family"]]
        x = np.array([r[corr["metric"]] for r in rows], dtype=float)
        y = np.array([r["value"] for r in rows], dtype=float)
        fit = stats.linregress(x, y)
        assert corr["n"] == len(rows)
        # Same formulas in another engine; 1e-9 leaves room only for summation order.
        assert corr["pearson_r"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=tolerance)
        assert corr["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=tolerance)
        assert corr["kendall_tau"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=tolerance)
        assert corr["slope"] == pytest.approx(fit.slope, rel=tolerance, abs=tolerance)
        assert corr["intercept"] == pytest.approx(fit.intercept, rel=tolerance, abs=tolerance)
        assert corr["r_squared"] == pytest.approx(fit.rvalue**2, abs=tolerance)
        residuals = y - (fit.intercept + fit.slope * x)
        assert corr["rmse"] == pytest.approx(math.sqrt(np.mean(residuals**2)), rel=1e-7, abs=tolerance)
        checked += 1
    return checked


def test_demo_correlations_agree_with_scipy(demo_lake):
    board, correlations = leaderboard_data(demo_lake / "lake")
    families = {r["family"] for r in board}
    assert len(families) >= 2
    assert check_against_scipy(board, correlations) == (len(families) + 1) * len(METRICS)


def test_demo_wrote_plots_and_page(demo_lake):
    report = demo_lake / "report"
    pngs = {p.name for p in report.glob("*.png")}
    assert {"trend_digits-batch-size.png", "trend_digits-width.png", "flow_digits-width.png"} <= pngs
    page = (report / "index.html").read_text()
    assert "<table" in page and page.count("data:image/png;base64,") == len(pngs)
    assert "wwhub-demo/digits-mlp-bs8" in page


def make_lake(root: Path, models: list[tuple[str, str, float, float]], ties: bool = False) -> Path:
    """A lake from (family, repo_id, alpha, accuracy) with no weights: models and evals rows only."""
    lake = Lake(root)
    for family, repo_id, alpha, accuracy in models:
        common = dict(repo_id=repo_id, revision="r1", family=family)
        lake.write_rows(
            "evals",
            repo_id,
            "r1",
            [
                dict(
                    common, source="model-index", task="t", dataset="d", split="test", metric="accuracy", value=accuracy
                )
            ],
        )
        lake.write_rows(
            "models",
            repo_id,
            "r1",
            [
                dict(
                    common,
                    status="scanned",
                    alpha=alpha,
                    alpha_weighted=alpha * 2,
                    log_alpha_norm=alpha + 1,
                    log_spectral_norm=1.0 if ties else alpha / 3,
                    log_norm=2.0,
                    num_layers=1,
                    num_ok=1,
                )
            ],
        )
    build_catalog(root)
    return root


def test_simpsons_paradox_is_flagged(tmp_path):
    # Within each family accuracy falls as alpha grows; across families (offset upwards) it rises.
    models = []
    for f, offset in enumerate((0.0, 1.0, 2.0)):
        for i in range(4):
            models.append((f"fam{f}", f"org/fam{f}-{i}", offset + 0.2 * i, 0.5 + 0.2 * offset - 0.03 * i))
    lake = make_lake(tmp_path / "lake", models)
    board, correlations = leaderboard_data(lake)
    by_key = {(c["family"], c["metric"]): c for c in correlations}
    for f in range(3):
        assert by_key[(f"fam{f}", "alpha")]["pearson_r"] < 0
        assert by_key[(f"fam{f}", "alpha")]["simpsons_paradox"] is None
    pooled = by_key[("(all)", "alpha")]
    assert pooled["pearson_r"] > 0 and pooled["simpsons_paradox"] is True
    assert pooled["families_agreeing"] == 0 and pooled["families_total"] == 3
    check_against_scipy(board, [c for c in correlations if c["metric"] != "log_norm"])


def test_ties_use_average_ranks_like_scipy(tmp_path):
    models = [
        ("fam", f"org/m{i}", a, acc)
        for i, (a, acc) in enumerate([(2.0, 0.9), (2.0, 0.8), (3.0, 0.8), (3.5, 0.7), (4.0, 0.7), (4.0, 0.6)])
    ]
    board, correlations = leaderboard_data(make_lake(tmp_path / "lake", models))
    check_against_scipy(board, [c for c in correlations if c["metric"] not in ("log_norm", "log_spectral_norm")])


def test_lower_is_better_metrics_rank_ascending(tmp_path):
    lake = make_lake(tmp_path / "lake", [("fam", "org/a", 2.0, 0.1), ("fam", "org/b", 3.0, 0.3)])
    errors = [("org/a", 0.1), ("org/b", 0.3)]
    Lake(lake).write_imported_evals(
        "errors",
        [
            dict(
                repo_id=repo_id,
                revision=None,
                family="fam",
                source="import:x",
                task="",
                dataset="",
                split="",
                metric="error_rate",
                value=value,
            )
            for repo_id, value in errors
        ],
    )
    board, _ = leaderboard_data(lake, metric="error_rate")
    assert {r["repo_id"]: r["rank_by_value"] for r in board} == {"org/a": 1, "org/b": 2}
    assert all(r["higher_is_better"] is False for r in board)


def test_exports_round_trip(demo_lake, tmp_path, capsys):
    lake = str(demo_lake / "lake")
    assert main(["leaderboard", "--lake", lake, "--format", "json", "--out", str(tmp_path / "b.json")]) == 0
    assert main(["leaderboard", "--lake", lake, "--format", "csv", "--out", str(tmp_path / "b.csv")]) == 0
    board = board_view(leaderboard_data(lake)[0], "accuracy")
    assert "accuracy" in board[0] and "rank_by_accuracy" in board[0]  # the value columns named after the metric
    from_json = json.loads((tmp_path / "b.json").read_text())
    from_csv = list(csv.DictReader(io.StringIO((tmp_path / "b.csv").read_text())))
    assert len(from_json) == len(from_csv) == len(board)
    for original, j, c in zip(board, from_json, from_csv, strict=True):
        for key, value in original.items():
            if isinstance(value, float):
                assert j[key] == pytest.approx(value, rel=1e-12) and float(c[key]) == pytest.approx(value, rel=1e-12)
            elif isinstance(value, bool):
                assert j[key] is value and c[key] == str(value)
            elif isinstance(value, int):
                assert j[key] == value and int(c[key]) == value
            elif value is None:
                assert j[key] is None and c[key] == ""
            elif isinstance(value, str):
                assert j[key] == value and c[key] == value
            else:  # timestamps travel as ISO 8601
                assert j[key] == value.isoformat() == c[key]
    assert main(["leaderboard", "--lake", lake, "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# wwhub leaderboard")


def test_imported_accuracies_and_preference(tmp_path, capsys):
    lake = make_lake(tmp_path / "lake", [("fam", "org/a", 2.0, 0.70), ("fam", "org/b", 3.0, 0.60)])
    csv_file = tmp_path / "top1.csv"
    csv_file.write_text(
        "repo_id,metric,value,dataset,source\norg/a,accuracy,0.75,imagenet,paper\norg/c,accuracy,0.5,imagenet,paper\n"
    )
    assert main(["evals", "import", str(csv_file), "--lake", str(lake)]) == 0
    board, _ = leaderboard_data(lake)
    assert {r["repo_id"]: r["value"] for r in board} == {"org/a": 0.70, "org/b": 0.60}  # card rows win
    board, _ = leaderboard_data(lake, prefer_import=True)
    chosen = {r["repo_id"]: (r["value"], r["source"]) for r in board}
    assert chosen["org/a"] == (0.75, "import:csv:paper") and chosen["org/b"] == (0.60, "model-index")
    bad = tmp_path / "bad.csv"
    bad.write_text("repo,value\nx,1\n")
    assert main(["evals", "import", str(bad), "--lake", str(lake)]) == 2
    assert "missing column" in capsys.readouterr().err


def test_outliers_flow_and_esd_plot(demo_lake, tmp_path, capsys):
    lake = str(demo_lake / "lake")
    assert main(["query", "layer_outliers", "--lake", lake, "--format", "json"]) == 0
    outliers = json.loads(capsys.readouterr().out)
    assert outliers and all(r["alpha"] < 2 or r["alpha"] > 6 or r["correlation_trap"] for r in outliers)
    assert main(["query", "correlation_flow", "--lake", lake, "--format", "json"]) == 0
    flow = json.loads(capsys.readouterr().out)
    assert {r["depth"] for r in flow} >= {0.0, 1.0}
    assert (
        main(["plot", "--lake", lake, "--out", str(tmp_path), "--esd", "wwhub-demo/digits-mlp-w64", "layers.2.weight"])
        == 0
    )
    assert (tmp_path / "esd_wwhub-demo_digits-mlp-w64_layers_2_weight.png").stat().st_size > 10_000


def test_drift_between_two_commits(tmp_path):
    lake = Lake(tmp_path / "lake")
    import datetime as dt

    for revision, alpha, month in (("old", 3.0, 1), ("new", 2.5, 2)):
        when = dt.datetime(2026, month, 1, tzinfo=dt.UTC)
        common = dict(repo_id="org/m", revision=revision, family="m")
        lake.write_rows(
            "layers",
            "org/m",
            revision,
            [dict(common, layer_id=0, name="w", slice_id=-1, alpha=alpha, log_spectral_norm=1.0, fit_status="ok")],
        )
        lake.write_rows("models", "org/m", revision, [dict(common, status="scanned", scanned_at=when)])
    build_catalog(lake.root)
    from flows.query import run_query

    rows = run_query(lake.root, "drift")
    assert [(r["previous_revision"], r["revision"], r["delta_alpha"]) for r in rows] == [("old", "new", -0.5)]


def test_html_page_renders_in_headless_chromium(demo_lake, tmp_path):
    import os
    import shutil
    import subprocess

    if not shutil.which("chromium"):
        if os.environ.get("WWHUB_REQUIRE_CHROMIUM"):  # set by .ci/run, which installs it
            pytest.fail("WWHUB_REQUIRE_CHROMIUM is set but Debian's chromium is not on PATH")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")

    script = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_html.sh"
    shot = tmp_path / "page.png"
    subprocess.run(
        [str(script), str(demo_lake / "report" / "index.html"), str(shot), "1400x2600"], check=True, timeout=120
    )
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    # A rendered page with tables and plots is far from blank: many distinct colours, not one background.
    pixels = np.asarray(image.resize((140, 260))).reshape(-1, 3)
    assert image.size == (1400, 2600) and len(np.unique(pixels, axis=0)) > 200
