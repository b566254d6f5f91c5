"""The static site without a browser: file names, what the index carries, SVG charts, the nightly's reports folder,
and `wwhub report` itself."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from flows.cli import main
from flows.lake import Lake
from flows.leaderboard.exports import refresh_exports
from flows.site import build_site, charts
from flows.site.data import read_lake
from flows.site.pages import board_payload, model_href, page_slug
from tests.flows.lakes import write_lake


def test_page_names_are_the_repo_id_or_a_digest_never_a_path():
    assert page_slug("meta-llama/Llama-3.1-8B") == "meta-llama--Llama-3.1-8B"
    assert model_href("wwhub-demo/digits-mlp-bs8") == "models/wwhub-demo--digits-mlp-bs8.html"
    hostile = ["../../etc/passwd", "a/b/c", "<script>", "a--b/c", "a/--b", "x" * 500, ".hidden", "fam a"]
    names = [page_slug(text) for text in hostile]
    assert len(set(names + ["fam_a"])) == len(names) + 1 and page_slug("fam_a") == "fam_a"  # never one page for two
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{10}", name) and len(name) <= 80, name


def test_the_index_carries_one_row_per_model_and_no_markup(tmp_path):
    hostile = "</script><script>alert(1)</script>\u2028&"
    lake = write_lake(
        tmp_path / "lake", [(f"fam{hostile}", f"org/m{i}", 2.0 + i, 0.9 - i / 10, 1000) for i in range(4)]
    )
    data = read_lake(lake, "accuracy")
    script = board_payload(data)
    assert not re.search(r"[<>&\u2028]", script)  # a script's text cannot end the script or break a line
    board = json.loads(script.removeprefix("window.WWHUB_BOARD = ").removesuffix(";\n"))
    keys = [c["key"] for c in board["columns"]]
    rows = {row[keys.index("repo_id")]: row for row in board["rows"]}
    assert sorted(rows) == [f"org/m{i}" for i in range(4)]
    assert rows["org/m0"][keys.index("family")] == f"fam{hostile}" and rows["org/m0"][-1] == model_href("org/m0")
    assert rows["org/m2"][keys.index("alpha")] == 4.0 and rows["org/m2"][keys.index("value")] == pytest.approx(0.7)


def test_esd_chart_draws_the_power_law_as_a_straight_line_from_xmin():
    rng = np.random.default_rng(0)
    evals = np.sort((1 - rng.random(400)) ** (-1 / 2.5))  # a Pareto tail of exponent 3.5, xmin 1
    figure = charts.esd_chart(evals, evals[::-1] * 0.5, 3.5, 1.0, "a <layer> & its name")
    law = re.search(r'<polyline[^>]*points="([^"]*)"><title>power law α = 3.5</title>', figure.svg)
    points = np.array([[float(v) for v in p.split(",")] for p in law.group(1).split()])
    slopes = np.diff(points[:, 1]) / np.diff(points[:, 0])
    # On log-log axes the fitted density is a straight line: one slope (pixels are rounded to 0.1).
    assert np.allclose(slopes, slopes.mean(), atol=0.02) and slopes.mean() > 0  # falls: SVG y grows downwards
    xmin = re.search(r'<line x1="([\d.]+)"[^>]*><title>xmin = 1</title>', figure.svg)
    assert float(xmin.group(1)) == pytest.approx(points[0, 0], abs=0.1)
    assert "a &lt;layer&gt; &amp; its name" in figure.svg and "<layer>" not in figure.svg
    assert [label for _, _, label in figure.legend][:2] == ["ESD of W", "ESD of shuffled W"]


def test_depth_chart_colours_each_layer_type_and_expert():
    rows = [
        dict(layer_id=i, name=f"l{i}", fit_status="ok", alpha=2.5 + i, category=category, warning="")
        for i, category in enumerate(["attn", "mlp · expert 0", "mlp · expert 1", "attn"])
    ] + [dict(layer_id=4, name="skipped", fit_status="skipped", alpha=None, category="attn")]
    figure = charts.depth_chart(rows, "alpha", band=(2.0, 6.0))
    assert [label for _, marker, label in figure.legend if marker == "dot"] == [
        "attn",
        "mlp · expert 0",
        "mlp · expert 1",
    ]
    assert figure.svg.count("<circle") == 4  # ok layers only
    assert "under-trained" not in str(figure.legend)


def test_nightly_exports_write_the_site_and_keep_other_files(tmp_path):
    lake = write_lake(tmp_path / "lake", [("fam", f"org/m{i}", 2.0 + i, 0.9 - i / 10, 1000) for i in range(3)])
    reports = lake / "reports"
    (reports / "models").mkdir(parents=True)
    (reports / "models" / "org--gone.html").write_text("a model that left the lake")
    (reports / "notes.txt").write_text("mine")
    written = refresh_exports(lake)
    assert reports / "index.html" in written and (reports / "leaderboard.html").exists()
    assert sorted(p.name for p in (reports / "models").iterdir()) == ["org--m0.html", "org--m1.html", "org--m2.html"]
    assert (reports / "notes.txt").read_text() == "mine"
    assert not list(reports.glob(".wwhub-site-*"))  # the staging folder is gone
    header = (reports / "leaderboard.csv").read_text().splitlines()[0]
    assert header.startswith("family,repo_id,revision,metric,accuracy,")


def test_report_command_and_a_lake_without_models(tmp_path, capsys):
    lake = write_lake(tmp_path / "lake", [("fam", f"org/m{i}", 2.0 + i, 0.9 - i / 10, 1000) for i in range(3)])
    assert main(["report", "--lake", str(lake), "--out", str(tmp_path / "site"), "--metric", "acc"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'site' / 'index.html'}: 3 model pages (3 rendered, 0 unchanged")
    assert main(["report", "--lake", str(lake), "--out", str(tmp_path / "site"), "--metric", "acc"]) == 0
    assert "3 model pages (0 rendered, 3 unchanged since the last build), 1 family pages" in capsys.readouterr().out
    args = ["report", "--lake", str(lake), "--out", str(tmp_path / "site"), "--metric", "acc", "--rebuild"]
    assert main(args) == 0
    assert "3 model pages (3 rendered, 0 unchanged" in capsys.readouterr().out
    assert "accuracy" in (tmp_path / "site" / "index.html").read_text()  # acc normalised to accuracy
    Lake.for_writing(tmp_path / "empty")
    assert main(["report", "--lake", str(tmp_path / "empty"), "--out", str(tmp_path / "empty-site")]) == 2
    assert "no models in the lake" in capsys.readouterr().err
    assert not (tmp_path / "empty-site").exists()


def test_a_model_page_per_model_and_a_family_page_per_family(tmp_path):
    lake = write_lake(tmp_path / "lake", [(f"f{i % 2}", f"org/m{i}", 2.0 + i, 0.9 - i / 10, 1000) for i in range(5)])
    site = build_site(lake, tmp_path / "site", title="t")
    assert (site.models, site.families) == (5, 2)
    assert sorted(p.name for p in (tmp_path / "site" / "families").glob("*.html")) == ["f0.html", "f1.html"]
    assert site.bytes["index.html"] < 50_000 and site.bytes["largest model page"] < 50_000


def test_per_layer_reads_go_by_slices_of_about_a_budget_of_layer_rows():
    from flows.site.data import slices

    sizes = {"b": 40, "a": 30, "c": 50, "d": 500, "e": 0, "f": None}
    # Sorted by repo; a run closes before it would pass the budget; a model larger than it is a run of its own.
    assert list(slices(sizes, budget=100)) == [["a", "b"], ["c"], ["d"], ["e", "f"]]
