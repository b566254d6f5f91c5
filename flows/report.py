"""Leaderboard exports: the query results as table, CSV, JSON, Markdown, or one self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import math
from pathlib import Path

from . import __version__
from .lake import build_catalog, lake_path
from .query import run_query
from .values import plain_value

BOARD_COLUMNS = [
    "family",
    "repo_id",
    "quantization",
    "metric",
    "accuracy",
    "rank_by_accuracy",
    "rank_by_alpha",
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "log_spectral_norm",
    "log_norm",
    "stable_rank",
    "num_layers",
    "num_failed",
    "num_over_trained",
    "num_under_trained",
    "num_traps",
    "accuracy_source",
]
CORRELATION_COLUMNS = [
    "family",
    "metric",
    "n",
    "pearson_r",
    "spearman_rho",
    "kendall_tau",
    "slope",
    "intercept",
    "r_squared",
    "rmse",
    "simpsons_paradox",
]


def leaderboard_data(
    lake: str | Path | None, family: str | None = None, metric: str = "accuracy", prefer_import: bool = False
) -> tuple[list[dict], list[dict]]:
    """(leaderboard rows, correlation rows) for one family or all, for the chosen reported metric."""
    root = lake_path(lake)
    build_catalog(root)
    variables = {"metric": metric, "prefer_import": prefer_import}
    board = run_query(root, "leaderboard", variables)
    correlations = run_query(root, "correlations", variables)
    if family:
        board = [r for r in board if r["family"] == family]
        correlations = [r for r in correlations if r["family"] == family]
    return board, correlations


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(board: list[dict], correlations: list[dict]) -> str:
    def table(rows, columns):
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
        return "\n".join(lines)

    return (
        f"# wwhub leaderboard\n\n{table(board, BOARD_COLUMNS)}\n\n## Correlations with the reported metric\n\n"
        f"{table(correlations, CORRELATION_COLUMNS)}\n"
    )


def board_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else plain_value(v)) for k, v in r.items()} for r in rows)
    return out.getvalue()


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.sort !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.dataset.sort = ''; });
    th.dataset.sort = asc ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-bottom: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f3f8; cursor: pointer; user-select: none; }
th[data-sort=asc]::after { content: ' ▲'; } th[data-sort=desc]::after { content: ' ▼'; }
td.text { text-align: left; } tr.paradox td { background: #fff2cc; }
.plots img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def _html_table(rows: list[dict], columns: list[str], row_class=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            kind = "text" if isinstance(value, str) else ""
            cells.append(f'<td class="{kind}" data-v="{html.escape(_fmt(value))}">{html.escape(_fmt(value))}</td>')
        cls = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    table = f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    # A wide leaderboard scrolls inside its box instead of pushing the page (and the plots) sideways.
    return f'<div class="scroll">{table}</div>'


def render_html(
    board: list[dict], correlations: list[dict], plots: list[Path], title: str = "wwhub leaderboard"
) -> str:
    """One self-contained page: sortable leaderboard, correlation table, PNG plots inlined as data URIs."""
    images = []
    for path in plots:
        if path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode()
            images.append(
                f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
            )
    families = sorted({r["family"] for r in board})
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="meta">{len(board)} models in {len(families)} families ({html.escape(", ".join(families))}) ·
generated {stamp} by wwhub {__version__} · click a column header to sort</div>
<h2>Leaderboard</h2>
{_html_table(board, BOARD_COLUMNS)}
<h2>Correlations with the reported metric</h2>
<p>Per family and pooled across families ((all)); highlighted rows flag a Simpson's paradox (the pooled trend
has the opposite sign of the trend within most families).</p>
{_html_table(correlations, CORRELATION_COLUMNS, lambda r: "paradox" if r.get("simpsons_paradox") else "")}
<h2>Plots</h2>
<div class="plots">{"".join(images)}</div>
<script>{_SORT_SCRIPT}</script>
</body></html>
"""


def write_plots(
    lake: str | Path | None, out: Path, family: str | None = None, metric: str = "accuracy", prefer_import: bool = False
) -> list[Path]:
    """Family trend plots and correlation-flow plots for the lake (or one family), as PNG and SVG in ``out``."""
    from .plots import plot_correlation_flow, plot_family_trends

    board, correlations = leaderboard_data(lake, family, metric, prefer_import)
    flow = run_query(lake_path(lake), "correlation_flow")
    if family:
        flow = [r for r in flow if r["family"] == family]
    return plot_family_trends(board, correlations, out) + plot_correlation_flow(flow, out)


def write_esd_plot(lake: str | Path | None, repo_id: str, layer: str, out: Path) -> list[Path]:
    """The ESD plot of one layer (by tensor name or layer_id) of a repo's latest scan, from the lake alone."""
    from .plots import plot_esd

    root = lake_path(lake)
    build_catalog(root)
    key = "layer_id = ?" if layer.isdigit() else "name = ?"
    value = int(layer) if layer.isdigit() else layer
    sql = (
        "SELECT e.*, l.alpha, l.xmin, l.correlation_trap FROM esd e "
        "JOIN models_latest m USING (repo_id, revision) "
        "JOIN layers l ON l.repo_id = e.repo_id AND l.revision = e.revision AND l.name = e.name "
        f"AND l.slice_id = e.slice_id WHERE e.repo_id = ? AND e.{key} ORDER BY e.slice_id LIMIT 1"
    )
    import duckdb

    con = duckdb.connect(str(root / "wwhub.duckdb"), read_only=True)
    try:
        cursor = con.execute(sql, [repo_id, value])
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()
    if not rows:
        raise ValueError(f"no eigenvalues for {repo_id} layer {layer!r} in the lake (scanned with --no-esd?)")
    return plot_esd(rows[0], rows[0], out)
