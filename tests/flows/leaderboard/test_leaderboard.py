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
from flows.lake import Lake
from flows.leaderboard.render import board_view, leaderboard_data
from tests.flows.lakes import write_lake

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
        # The uncertainty the table adds: scipy's p-values and Pearson's Fisher interval, through the lake.
        pearson = stats.pearsonr(x, y)
        interval = pearson.confidence_interval(0.95)
        assert corr["pearson_p"] == pytest.approx(pearson.pvalue, rel=tolerance, abs=1e-15)
        assert corr["pearson_ci_low"] == pytest.approx(interval.low, abs=tolerance)
        assert corr["pearson_ci_high"] == pytest.approx(interval.high, abs=tolerance)
        assert corr["spearman_p"] == pytest.approx(stats.spearmanr(x, y).pvalue, rel=tolerance, abs=1e-15)
        assert corr["kendall_p"] == pytest.approx(stats.kendalltau(x, y).pvalue, rel=tolerance, abs=1e-15)
        checked += 1
    return checked


def test_demo_correlations_agree_with_scipy(demo_lake):
    board, correlations = leaderboard_data(demo_lake / "lake")
    families = {r["family"] for r in board}
    assert len(families) >= 2
    assert check_against_scipy(board, correlations) == (len(families) + 1) * len(METRICS)


def test_demo_wrote_its_site(demo_lake):
    report = demo_lake / "report"
    assert (report / "index.html").is_file() and "wwhub-demo/digits-mlp-bs8" in (report / "leaderboard.csv").read_text()
    assert len(list((report / "models").glob("*.html"))) == 11  # tests/flows/site: what the pages show
    assert sorted(p.name for p in (report / "families").glob("*.html")) == [
        "digits-batch-size.html",
        "digits-width.html",
    ]


# Both ways a leaderboard gets its correlations: the table a scan refreshes, and computed on the spot without one.
CORRELATION_PATHS = pytest.mark.parametrize("stored_correlations", [True, False], ids=["stored", "computed"])


@CORRELATION_PATHS
def test_simpsons_paradox_is_flagged(tmp_path, stored_correlations):
    # Within each family accuracy falls as alpha grows; across families (offset upwards) it rises.
    models = []
    for f, offset in enumerate((0.0, 1.0, 2.0)):
        for i in range(4):
            models.append((f"fam{f}", f"org/fam{f}-{i}", offset + 0.2 * i, 0.5 + 0.2 * offset - 0.03 * i))
    lake = write_lake(tmp_path / "lake", models, correlations=stored_correlations)
    board, correlations = leaderboard_data(lake)
    by_key = {(c["family"], c["metric"]): c for c in correlations}
    for f in range(3):
        assert by_key[(f"fam{f}", "alpha")]["pearson_r"] < 0
        assert by_key[(f"fam{f}", "alpha")]["simpsons_paradox"] is None
    pooled = by_key[("(all)", "alpha")]
    assert pooled["pearson_r"] > 0 and pooled["simpsons_paradox"] is True
    assert pooled["families_agreeing"] == 0 and pooled["families_total"] == 3
    # Three families and the pooled row, each with every metric but log_norm.
    assert check_against_scipy(board, [c for c in correlations if c["metric"] != "log_norm"]) == 4 * 4


@CORRELATION_PATHS
def test_ties_use_average_ranks_like_scipy(tmp_path, stored_correlations):
    models = [
        ("fam", f"org/m{i}", a, acc)
        for i, (a, acc) in enumerate([(2.0, 0.9), (2.0, 0.8), (3.0, 0.8), (3.5, 0.7), (4.0, 0.7), (4.0, 0.6)])
    ]
    board, correlations = leaderboard_data(write_lake(tmp_path / "lake", models, correlations=stored_correlations))
    # One family and the pooled row, each with alpha, alpha_weighted and log_alpha_norm.
    kept = [c for c in correlations if c["metric"] not in ("log_norm", "log_spectral_norm")]
    assert check_against_scipy(board, kept) == 2 * 3


def test_lower_is_better_metrics_rank_ascending(tmp_path):
    lake = write_lake(tmp_path / "lake", [("fam", "org/a", 2.0, 0.1), ("fam", "org/b", 3.0, 0.3)])
    errors = [("org/a", 0.1), ("org/b", 0.3)]
    Lake(lake).commit(
        {
            "evals": [
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
                    import_id="errors",
                )
                for repo_id, value in errors
            ]
        },
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
    lake = write_lake(tmp_path / "lake", [("fam", "org/a", 2.0, 0.70), ("fam", "org/b", 3.0, 0.60)])
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
    (figure,) = tmp_path.glob("esd_wwhub-demo_digits-mlp-w64_layers_2_weight-*.png")  # a digest of repo and layer
    assert figure.stat().st_size > 10_000


def test_drift_between_two_commits(tmp_path):
    lake = Lake.for_writing(tmp_path / "lake")
    import datetime as dt

    for revision, alpha, month in (("old", 3.0, 1), ("new", 2.5, 2)):
        when = dt.datetime(2026, month, 1, tzinfo=dt.UTC)
        common = dict(repo_id="org/m", revision=revision, family="m")
        layer = dict(common, layer_id=0, name="w", slice_id=-1, alpha=alpha, log_spectral_norm=1.0, fit_status="ok")
        lake.commit_model(
            "org/m", revision, {"layers": [layer], "models": [dict(common, status="scanned", scanned_at=when)]}
        )
    from flows.lake.sql import run_query

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

    script = Path(__file__).resolve().parents[3] / "scripts" / "screenshot_html.sh"
    shot = tmp_path / "page.png"
    subprocess.run(
        [str(script), str(demo_lake / "report" / "index.html"), str(shot), "1400x2600"], check=True, timeout=120
    )
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    # A rendered page with tables and plots is far from blank: many distinct colours, not one background.
    pixels = np.asarray(image.resize((140, 260))).reshape(-1, 3)
    assert image.size == (1400, 2600) and len(np.unique(pixels, axis=0)) > 200


def test_asking_for_a_metric_or_family_the_lake_does_not_hold_names_what_it_holds(tmp_path, capsys):
    lake = str(write_lake(tmp_path / "lake", [("fam", f"org/m{i}", 2.0 + i, 0.9 - i / 10) for i in range(3)]))
    assert main(["leaderboard", "--lake", lake, "--metric", "f1"]) == 2
    assert "no scanned model reports 'f1'; reported metrics: accuracy (3 models)" in capsys.readouterr().err
    assert main(["leaderboard", "--lake", lake, "--metric", "acc"]) == 0  # normalised: acc is accuracy
    assert "rank_by_accuracy" in capsys.readouterr().out
    assert main(["plot", "--lake", lake, "--family", "nosuch", "--out", str(tmp_path / "plots")]) == 2
    assert "no family 'nosuch' in the lake; families: fam" in capsys.readouterr().err
    assert main(["leaderboard", "--lake", lake, "--family", "nosuch"]) == 2
    assert not (tmp_path / "plots").exists()


def test_the_value_column_is_named_after_the_metric(tmp_path, capsys):
    lake = write_lake(tmp_path / "lake", [("fam", f"org/m{i}", 2.0 + i, 0.9 - i / 10) for i in range(3)])
    Lake(lake).commit(
        {
            "evals": [
                dict(
                    repo_id=f"org/m{i}",
                    family="fam",
                    source="import:csv:x",
                    metric="f1",
                    value=0.5 + i / 10,
                    import_id="f1",
                )
                for i in range(3)
            ]
        }
    )
    assert main(["leaderboard", "--lake", str(lake), "--metric", "f1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["f1"] for r in rows} == {0.5, 0.6, 0.7} and "accuracy" not in rows[0]
    assert [r["rank_by_f1"] for r in sorted(rows, key=lambda r: -r["f1"])] == [1, 2, 3]
    assert main(["leaderboard", "--lake", str(lake), "--metric", "f1", "--format", "md"]) == 0
    markdown = capsys.readouterr().out
    assert "| family | repo_id | f1 | source | rank_by_f1 |" in markdown and "rank_by_alpha: 1 = smallest" in markdown


def test_html_survives_constant_accuracy_and_constant_alpha(tmp_path):
    constant_accuracy = [("flat", f"org/flat{i}", 2.0 + i / 5, 0.9) for i in range(5)]
    constant_alpha = [("same", f"org/same{i}", 3.0, 0.8 + i / 50) for i in range(5)]
    lake = write_lake(tmp_path / "lake", constant_accuracy + constant_alpha)
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--lake", str(lake), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3  # trends of both families and pooled (no layers: no flow)
    _, correlations = leaderboard_data(lake)
    flat = next(r for r in correlations if r["family"] == "flat" and r["metric"] == "alpha")
    assert flat["pearson_r"] is None and "the reported value is the same for every model" in flat["notes"]


def test_every_string_from_a_card_or_repo_is_escaped_in_html(tmp_path):
    hostile = "<script>alert(1)</script>"
    models = [("fam", f"org/m{i}{hostile if i == 0 else ''}", 2.0 + i / 5, 0.9 - i / 50) for i in range(5)]
    lake = write_lake(tmp_path / "lake", models)
    Lake(lake).commit(
        {
            "evals": [
                dict(
                    repo_id=m[1],
                    family="fam",
                    source=f"import:csv:{hostile}",
                    dataset=hostile,
                    metric=hostile,
                    value=0.5,
                    import_id="hostile",
                )
                for m in models
            ]
        }
    )
    for metric in ("accuracy", hostile):
        out = tmp_path / "board.html"
        assert (
            main(["leaderboard", "--lake", str(lake), "--metric", metric, "--format", "html", "--out", str(out)]) == 0
        )
        page = out.read_text()
        # Our one script (the table sorter) and nothing else: the hostile strings arrive escaped.
        assert page.count("<script>") == 1 and "alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_page_explains_and_greys_out(demo_lake):
    page = (demo_lake / "report" / "index.html").read_text()
    assert "rank_by_alpha: 1 = smallest average alpha in its family" in page
    assert "so a negative r, rho and tau is the expected direction" in page
    board, correlations = leaderboard_data(demo_lake / "lake")
    significant = [r for r in correlations if r["verdict"] == "significant"]
    assert significant and len(significant) < len(correlations)
    # One greyed-out row per correlation that is not significant (and not a flagged paradox).
    greyed = sum(1 for r in correlations if r["verdict"] != "significant" and not r.get("simpsons_paradox"))
    assert page.count('<tr class="ns">') == greyed
    first = significant[0]
    assert f"{first['pearson_r']:+.2f} [{first['pearson_ci_low']:+.2f}, {first['pearson_ci_high']:+.2f}]" in page


def test_trend_plots_carry_the_interval_and_p(tmp_path, monkeypatch):
    import flows.leaderboard.plots

    legends = []

    def keep_legends(fig, out, stem):
        legends.extend(text.get_text() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts())
        return []

    monkeypatch.setattr(flows.leaderboard.plots, "_save", keep_legends)
    lake = write_lake(
        tmp_path / "lake", [("fam", f"org/m{i}", 2.0 + i / 5, 0.9 - i / 50 + (i % 2) / 100) for i in range(6)]
    )
    board, correlations = leaderboard_data(lake)
    flows.leaderboard.plots.plot_family_trends(board, correlations, tmp_path)
    alpha = next(r for r in correlations if r["metric"] == "alpha")
    expected = (
        f"n=6  r = {alpha['pearson_r']:.2f} [{alpha['pearson_ci_low']:.2f}, {alpha['pearson_ci_high']:.2f}], "
        f"p = {alpha['pearson_p']:.2g}"
    )
    assert any(expected in legend for legend in legends), legends


def test_a_correlation_flow_names_its_models_up_to_a_cap_then_shows_a_colour_bar(tmp_path, monkeypatch):
    import flows.leaderboard.plots as plots

    figures = {}

    def keep(fig, out, stem):
        legend = fig.axes[0].get_legend()
        figures[stem] = ([t.get_text() for t in legend.get_texts()] if legend else [], len(fig.axes))
        return []

    monkeypatch.setattr(plots, "_save", keep)
    sizes = {"small": 3, "large": plots.MAX_LEGEND_ENTRIES + 1}
    board = [
        dict(family=f, repo_id=f"org/{f}-{i}", value=0.5 + i / 100, metric="accuracy")
        for f, n in sizes.items()
        for i in range(n)
    ]
    flow = [dict(family=r["family"], repo_id=r["repo_id"], depth=d / 2, alpha=2.0 + d) for r in board for d in range(3)]
    plots.plot_correlation_flow(flow, board, [], tmp_path)
    small_labels, small_axes = figures["flow_small"]
    large_labels, large_axes = figures["flow_large"]
    assert small_labels[:3] == ["small-0 (0.5)", "small-1 (0.51)", "small-2 (0.52)"] and small_axes == 1
    assert large_labels == ["2 ≤ α ≤ 6"] and large_axes == 2  # no model named; the colour bar is the second axes


def demo_board_page(demo_lake) -> Path:
    """`wwhub leaderboard --format html` of the demo lake: the one-page export (the demo's index is the site's)."""
    page = demo_lake / "board.html"
    if not page.exists():
        assert main(["leaderboard", "--lake", str(demo_lake / "lake"), "--format", "html", "--out", str(page)]) == 0
    return page


def test_html_tables_fit_1400_px(demo_lake):
    page = demo_board_page(demo_lake).read_text()
    # The main leaderboard has 13 columns, numbers 4 significant digits: without a browser, bound its width by
    # the widest cell of each column at 7.5 px per character of 13 px text plus 14 px of padding and border.
    import re

    tables = re.findall(r"<table.*?</table>", page, re.S)
    assert len(tables) == 3
    for table in tables:
        header = re.findall(r"<th>(.*?)</th>", table)
        rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]
        widths = []
        for i, name in enumerate(header):
            longest_header_part = max(len(part) for part in name.split("<wbr>"))
            cells = [len(r[i]) for r in rows if len(r) > i]
            widths.append(7.5 * max([longest_header_part, *cells]) + 14)
        assert sum(widths) < 1400 - 2 * 32, (header, widths)  # the page's 2em margins


def test_html_tables_fit_1400_px_in_chromium(demo_lake, tmp_path):
    import os
    import shutil
    import subprocess

    if not shutil.which("chromium"):
        if os.environ.get("WWHUB_REQUIRE_CHROMIUM"):
            pytest.fail("WWHUB_REQUIRE_CHROMIUM is set but Debian's chromium is not on PATH")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    long_names = [
        (f"a-family-with-a-long-name-{f}", f"an-organisation-name/a-long-model-name-with-many-tokens-{f}-{i}b-instruct")
        for f in range(2)
        for i in range(5)
    ]
    lake = write_lake(tmp_path / "lake", [(f, r, 2.0 + i / 7, 0.91 - i / 97) for i, (f, r) in enumerate(long_names)])
    long_page = tmp_path / "long.html"
    assert main(["leaderboard", "--lake", str(lake), "--format", "html", "--out", str(long_page)]) == 0
    # A script appended to a copy of each page records the layout; headless chromium prints the DOM it ends with.
    probe = (
        '<script>document.body.setAttribute("data-layout", JSON.stringify({page: '
        "document.documentElement.scrollWidth, boxes: Array.from(document.querySelectorAll('div.scroll'))"
        ".map(function (d) { return [d.scrollWidth, d.clientWidth]; })}));</script></body>"
    )
    for page in (demo_board_page(demo_lake), long_page):
        probed = tmp_path / f"probed-{page.name}"
        probed.write_text(page.read_text().replace("</body>", probe))
        profile = tmp_path / f"profile-{page.stem}"
        dom = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1400,2600",
                "--dump-dom",
                probed.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        import html as html_module
        import re

        layout = json.loads(html_module.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
        assert layout["page"] <= 1400, (page.name, layout)
        # No table needs its own horizontal scroll bar: each fits its box.
        assert layout["boxes"] and all(scroll <= client for scroll, client in layout["boxes"]), (page.name, layout)


def test_terminal_tables_show_intervals_p_values_and_verdicts(demo_lake, capsys):
    # `wwhub demo` prints this same export.
    assert main(["leaderboard", "--lake", str(demo_lake / "lake")]) == 0
    out = capsys.readouterr().out
    for header in ("r [95% CI]", "p (BH)", "rho [95% CI]", "tau [95% CI]", "verdict", "within-family r [95% CI]"):
        assert header in out
    _, correlations = leaderboard_data(demo_lake / "lake")
    batch = next(r for r in correlations if r["family"] == "digits-batch-size" and r["metric"] == "alpha")
    line = next(line for line in out.splitlines() if line.startswith("digits-batch-size  alpha "))
    assert f"{batch['pearson_r']:+.2f} [{batch['pearson_ci_low']:+.2f}, {batch['pearson_ci_high']:+.2f}]" in line
    assert batch["verdict"] in line


def test_markdown_escapes_pipes_newlines_and_html_in_names(tmp_path, capsys):
    family = "a|b\n<i>x</i> & y"
    lake = write_lake(tmp_path / "lake", [(family, "org/a", 2.0, 0.70), (family, "org/b", 3.0, 0.60)])
    assert main(["leaderboard", "--lake", str(lake), "--format", "md"]) == 0
    out = capsys.readouterr().out
    escaped = "a\\|b &lt;i&gt;x&lt;/i&gt; &amp; y"
    board = [line for line in out.splitlines() if "org/a" in line]
    assert len(board) == 1 and escaped in board[0]
    header = out.splitlines()[2]
    for row in (line for line in out.splitlines() if line.startswith("| ") and escaped in line):
        # as many cells as the header: no | inside a name splits one
        assert row.replace("\\|", "").count("|") == header.count("|"), row
    assert "<i>" not in out and "a|b" not in out
