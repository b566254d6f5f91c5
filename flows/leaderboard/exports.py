"""The exports refreshed after a scan in LAKE/reports/: the static site, the one-page leaderboard and the plots."""

from __future__ import annotations

from pathlib import Path

from ..lake import lake_path
from .render import leaderboard_data, render_html, write_plots


def refresh_exports(lake: str | Path, metric: str = "accuracy") -> list[Path]:
    """Rewrite LAKE/reports/: the static site (index.html, a page per family and per model, leaderboard.csv:
    flows/site), leaderboard.html (one self-contained page, plots inlined) and the PNG/SVG plots. Model pages and
    figures whose inputs did not change since the previous night are kept, not drawn again."""
    from ..site import build_site

    root = lake_path(lake)
    out = root / "reports"
    board, correlations = leaderboard_data(root, metric=metric)
    if not board:
        return []
    site = build_site(root, out, metric)
    plots = write_plots(root, out, data=(board, correlations), reuse=True)
    (out / "leaderboard.html").write_text(render_html(board, correlations, plots))
    return [site.index, out / "leaderboard.csv", out / "leaderboard.html", *plots]
