"""The nightly's figures: one whose rows did not change since it was drawn into the same folder is kept, the others
are drawn again; without ``reuse`` every figure is drawn."""

from __future__ import annotations

import json

import flows.leaderboard.plots as plots
from flows.lake import Lake
from flows.leaderboard.correlations import refresh_correlations
from flows.leaderboard.render import write_plots
from tests.flows.lakes import add_model, write_lake

POOLED_TREND = f"trend_{plots._slug('(all)')}"  # the pooled family's figure: "(all)" with a digest


def _drawing(monkeypatch) -> list[str]:
    """The stems drawn from now on (the figures are still saved)."""
    drawn, save = [], plots._save

    def counted(fig, out, stem):
        drawn.append(stem)
        return save(fig, out, stem)

    monkeypatch.setattr(plots, "_save", counted)
    return drawn


def _lake(root):
    models = [(f"f{i % 2}", f"org/m{i}", 2.0 + i / 4, 0.9 - i / 40 + (i % 3) / 100, 10**6) for i in range(8)]
    return write_lake(root, models)


def test_figures_whose_rows_did_not_change_are_kept(tmp_path, monkeypatch):
    lake, out = _lake(tmp_path / "lake"), tmp_path / "reports"
    drawn = _drawing(monkeypatch)
    first = write_plots(lake, out, reuse=True)
    assert sorted(drawn) == [POOLED_TREND, "trend_f0", "trend_f1"]
    pngs = {p.name: p.read_bytes() for p in out.glob("*.png")}
    drawn.clear()
    assert write_plots(lake, out, reuse=True) == first and drawn == []
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == pngs
    # A new model in f0 changes f0's figure and the pooled one; f1's is kept.
    add_model(Lake.for_writing(lake), "f0", "org/new", 3.1, 0.5, 10**6)
    refresh_correlations(lake)
    write_plots(lake, out, reuse=True)
    assert sorted(drawn) == [POOLED_TREND, "trend_f0"]
    drawn.clear()
    write_plots(lake, out)
    assert sorted(drawn) == [POOLED_TREND, "trend_f0", "trend_f1"]


def test_a_missing_figure_or_record_is_drawn_again(tmp_path, monkeypatch):
    lake, out = _lake(tmp_path / "lake"), tmp_path / "reports"
    write_plots(lake, out, reuse=True)
    drawn = _drawing(monkeypatch)
    (out / "trend_f1.svg").unlink()
    write_plots(lake, out, reuse=True)
    assert drawn == ["trend_f1"]
    (out / plots.RECORD).write_text("[not a record")
    drawn.clear()
    write_plots(lake, out, reuse=True)
    assert sorted(drawn) == [POOLED_TREND, "trend_f0", "trend_f1"]


def test_new_plotting_code_draws_every_figure(tmp_path, monkeypatch):
    lake, out = _lake(tmp_path / "lake"), tmp_path / "reports"
    write_plots(lake, out, reuse=True)
    drawn = _drawing(monkeypatch)
    monkeypatch.setattr(plots, "_code_digest", lambda: "another version")
    write_plots(lake, out, reuse=True)
    assert sorted(drawn) == [POOLED_TREND, "trend_f0", "trend_f1"]


def test_figures_no_longer_drawn_are_removed_with_their_keys(tmp_path):
    out = tmp_path / "reports"
    board = [
        dict(family=f, repo_id=f"org/{f}-{i}", value=0.5 + i / 10, metric="accuracy", alpha=2 + i / 3)
        for f in ("f0", "f1", "f2")
        for i in range(4)
    ]
    plots.plot_family_trends(board, [], out, reuse=True)
    assert sorted(p.name for p in out.glob("trend_*.png")) == [
        f"{POOLED_TREND}.png",
        "trend_f0.png",
        "trend_f1.png",
        "trend_f2.png",
    ]
    (out / "flow_f1.png").write_bytes(b"a correlation flow figure, of the other kind")
    recorded = json.loads((out / plots.RECORD).read_text())
    (out / plots.RECORD).write_text(json.dumps(recorded | {"flow_f1": "its key"}))
    # f1 and f2 have no reported values any more: their trend figures and the pooled one (one family left) go.
    plots.plot_family_trends([r for r in board if r["family"] == "f0"], [], out, reuse=True)
    assert sorted(p.name for p in out.glob("trend_*")) == ["trend_f0.png", "trend_f0.svg"]
    assert sorted(json.loads((out / plots.RECORD).read_text())) == ["flow_f1", "trend_f0"]
    assert (out / "flow_f1.png").exists()  # figures of the other kind are left to their own function


def test_family_figures_have_distinct_readable_names(tmp_path):
    """Families x y, x_y and x/y once all drew trend_x_y.png (one overwrote the others): a name with characters a
    file name cannot keep gets a digest, as the site's pages do; a plain name stays as it is."""
    board = [
        dict(family=f, repo_id=f"org/{i}-{f}", value=0.5 + i / 10, metric="accuracy", alpha=2 + i / 3)
        for f in ("x y", "x_y", "x/y")
        for i in range(4)
    ]
    plots.plot_family_trends(board, [], tmp_path)
    names = {p.stem for p in tmp_path.glob("trend_x_y*.png")}
    assert names == {f"trend_{plots._slug(f)}" for f in ("x y", "x_y", "x/y")} and len(names) == 3
    assert "trend_x_y" in names and (tmp_path / f"{POOLED_TREND}.png").exists()
    assert plots._slug("pythia-deduped") == "pythia-deduped"
