"""Leaderboard exports: the query results as table, CSV, JSON, Markdown, or one self-contained HTML page.

The leaderboard view names its reported value ``value`` and its rank ``rank_by_value`` (a view cannot name a column
after a variable); every export names them after the metric (``accuracy``, ``rank_by_accuracy``; ``f1``, ...).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import math
from pathlib import Path

from .. import __version__
from ..evals.vocabulary import normalize_metric
from ..lake import lake_path
from ..lake.plain_values import plain_value
from ..lake.sql import run_query
from .correlations import correlations_for
from .stats import POOLED, VERDICT_SIGNIFICANT

DEFAULT_METRIC = "accuracy"
# What the tables show; JSON and CSV carry every column of the leaderboard view.
BOARD_COLUMNS = [
    "family",
    "repo_id",
    "value",
    "source",
    "rank_by_value",
    "rank_by_alpha",
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "log_spectral_norm",
    "log_norm",
    "num_layers",
    "quantization",
    "flags",
]
CORRELATION_HEADERS = {
    "family": "family",
    "metric": "metric",
    "n": "n",
    "pearson": "r [95% CI]",
    "pearson_p": "p",
    "pearson_p_adjusted": "p (BH)",
    "spearman": "rho [95% CI]",
    "spearman_p": "p (rho)",
    "kendall": "tau [95% CI]",
    "kendall_p": "p (tau)",
    "r_squared": "R²",
    "verdict": "verdict",
}
POOLED_HEADERS = {
    "metric": "metric",
    "n": "n",
    "pearson": "pooled r [95% CI]",
    "within_family": "within-family r [95% CI]",
    "partial_r_size": "partial r (size)",
    "agreeing": "families agreeing",
    "simpsons_paradox": "Simpson's paradox",
}


class NotInLake(LookupError):
    """Asked for a family or a metric the lake does not hold; the message names what it does hold."""


def available_metrics(root: Path) -> list[tuple[str, int]]:
    """(metric, number of scanned models reporting it), most reported first."""
    rows = run_query(root, "reported_metrics", {"prefer_import": False, "dataset": None})
    return [(r["metric"], r["models"]) for r in rows]


def leaderboard_data(
    lake: str | Path | None,
    family: str | None = None,
    metric: str = DEFAULT_METRIC,
    prefer_import: bool = False,
    dataset: str | None = None,
    require_metric: bool = False,
    all_members: bool = False,
) -> tuple[list[dict], list[dict]]:
    """(leaderboard rows, correlation rows) for one family or all, for the chosen reported metric (a raw name is
    normalised: ``acc`` → ``accuracy``). With a family, the queries read only that family's models (the variable
    ``family``). A family with a recorded listing shows its current members, or every model it ever held with
    ``all_members``. Raises NotInLake for a family the lake does not hold, and, with ``require_metric``, for a metric no
    scanned model reports (or none on ``dataset``)."""
    root = lake_path(lake)
    metric = normalize_metric(metric)
    variables = {
        "metric": metric,
        "prefer_import": prefer_import,
        "dataset": dataset,
        "family": family or None,
        "all_members": all_members,
    }
    board = run_query(root, "leaderboard", variables)
    if family and not board:
        held = run_query(root, "scanned_families")
        families = ", ".join(r["family"] for r in held)
        raise NotInLake(f"no family {family!r} in the lake; families: {families or 'none'}")
    if require_metric and board and all(r["value"] is None for r in board):
        known = ", ".join(f"{m} ({n} models)" for m, n in available_metrics(root)) or "none"
        where = f" on dataset {dataset!r}" if dataset else ""
        raise NotInLake(f"no scanned model reports {metric!r}{where}; reported metrics: {known}")
    correlations = correlations_for(root, metric, family, prefer_import, dataset)
    return board, correlations


def metric_of(board: list[dict], default: str = DEFAULT_METRIC) -> str:
    """The reported metric a board ranks by (its rows carry it when any model reports it)."""
    return next((r["metric"] for r in board if r.get("metric")), default)


def value_names(metric: str) -> dict[str, str]:
    """Export names of the view's generic columns: ``value`` → the metric, ``rank_by_value`` → ``rank_by_METRIC``."""
    name = metric if metric not in BOARD_COLUMNS + ["metric", "revision", "dataset"] else f"reported_{metric}"
    return {"value": name, "rank_by_value": f"rank_by_{name}"}


def board_view(board: list[dict], metric: str) -> list[dict]:
    """Board rows with the value columns named after the metric, and ``flags`` summing up the layer warnings."""
    names = value_names(metric)
    rows = []
    for row in board:
        flags = [
            f"{row[k]} {label}" + ("s" if k == "num_trap_layers" and row[k] > 1 else "")
            for k, label in (
                ("num_failed", "failed"),
                ("num_over_trained", "over-trained"),
                ("num_under_trained", "under-trained"),
                ("num_trap_layers", "trap"),
            )
            if row.get(k)
        ]
        if row.get("last_attempt_failed"):
            flags.append(f"last attempt {row.get('last_attempt_status') or 'failed'}")
        if row.get("member") is False:
            flags.append("no longer listed")
        rows.append({names.get(k, k): v for k, v in row.items()} | {"flags": ", ".join(flags)})
    return rows


def cell_text(value) -> str:
    """A table cell: floats to 4 significant digits, NaN and None empty, booleans yes/empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _p(value) -> str:
    if value is None:
        return ""
    return "<1e-10" if value < 1e-10 else f"{value:.2g}"


def _interval(estimate, low, high) -> str:
    if estimate is None:
        return ""
    if low is None or high is None:
        return f"{estimate:+.2f}"
    return f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}]"


def correlation_cells(row: dict) -> dict:
    """Display cells of a correlation row: each estimate with its interval in one cell, p-values short."""
    return dict(
        family=row["family"],
        metric=row["metric"],
        n=row["n"],
        pearson=_interval(row["pearson_r"], row["pearson_ci_low"], row["pearson_ci_high"]),
        pearson_p=_p(row["pearson_p"]),
        pearson_p_adjusted=_p(row["pearson_p_adjusted"]),
        spearman=_interval(row["spearman_rho"], row["spearman_ci_low"], row["spearman_ci_high"]),
        spearman_p=_p(row["spearman_p"]),
        kendall=_interval(row["kendall_tau"], row["kendall_ci_low"], row["kendall_ci_high"]),
        kendall_p=_p(row["kendall_p"]),
        r_squared=cell_text(row["r_squared"]),
        verdict=row["verdict"],
        within_family=_interval(
            row.get("within_family_r"), row.get("within_family_ci_low"), row.get("within_family_ci_high")
        ),
        partial_r_size="" if row.get("partial_r_size") is None else f"{row['partial_r_size']:+.2f}",
        agreeing=f"{row.get('families_agreeing')} of {row.get('families_total')}" if row["family"] == POOLED else "",
        simpsons_paradox="yes" if row.get("simpsons_paradox") else "no",
    )


def _sign_note(board: list[dict]) -> str:
    higher = next((r["higher_is_better"] for r in board if r.get("higher_is_better") is not None), True)
    return "negative" if higher else "positive"


def explanations(board: list[dict]) -> dict[str, str]:
    """One short paragraph per table: what the columns and their signs mean."""
    metric = metric_of(board)
    names = value_names(metric)
    expected = _sign_note(board)
    better = "higher" if expected == "negative" else "lower"
    return dict(
        board=(
            f"One row per model (its latest scan). {names['value']}: the reported value on the fraction scale "
            "(percentages divided by 100), from the source column (precedence: model card, then the Hub's eval "
            f"results, then imports: CSV, lm-eval, Open LLM Leaderboard). {names['rank_by_value']}: 1 = best in its "
            f"family ({better} is better). rank_by_alpha: 1 = smallest average alpha in its family; HT-SR expects the "
            "better-trained model to have the smaller alpha (2-6 is the well-trained range, below 2 over-trained, "
            "above 6 under-trained), so where the theory holds the two ranks agree."
        ),
        correlations=(
            f"Each row correlates a weight metric with {metric} across a family's models. Lower alpha (and "
            f"alpha_weighted, log_alpha_norm) is expected to go with {better} {metric} within a family, so a "
            f"{expected} r, rho and tau is the expected direction. r: Pearson with its 95% Fisher-z interval; rho "
            "(Spearman) and tau (Kendall) with 95% bootstrap intervals; p (BH): the Pearson p-value adjusted "
            "for testing every family at once (Benjamini-Hochberg). verdict: significant when p (BH) < 0.05 with "
            "at least 5 models; rows that are not significant are greyed out in the HTML page."
        ),
        pooled=(
            "Pooled across families, a correlation mixes differences between families (size, data, recipe) with "
            "the trend inside them. within-family r centres every family first (a fixed-effects estimate); when it "
            "has the opposite sign of the pooled r and its interval excludes 0, the pooled trend is a Simpson's "
            "paradox. partial r (size) controls for log parameter count."
        ),
    )


def markdown_text(text: str) -> str:
    """``text`` safe in a Markdown table cell or heading: ``|`` would end the cell and a newline the row, so they
    become ``\\|`` and a space; ``&``, ``<`` and ``>`` become entities, so a name renders as written, never as HTML."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(text.splitlines())


def render_markdown(board: list[dict], correlations: list[dict]) -> str:
    def table(rows, columns, headers=None):
        headers = headers or {c: c for c in columns}
        lines = ["| " + " | ".join(markdown_text(headers[c]) for c in columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(markdown_text(cell_text(r.get(c))) for c in columns) + " |" for r in rows]
        return "\n".join(lines)

    metric = metric_of(board)
    names = value_names(metric)
    notes = explanations(board)
    cells = [correlation_cells(r) for r in correlations]
    family_columns = [c for c in CORRELATION_HEADERS if c != "r_squared"]
    text = (
        f"# wwhub leaderboard\n\n{table(board_view(board, metric), [names.get(c, c) for c in BOARD_COLUMNS])}\n\n"
        f"{notes['board']}\n\n## Correlations with {markdown_text(metric)}\n\n"
        f"{table([c for c in cells if c['family'] != POOLED], family_columns, CORRELATION_HEADERS)}\n\n"
        f"{notes['correlations']}\n"
    )
    pooled = [c for c in cells if c["family"] == POOLED]
    if pooled:
        text += f"\n## Pooled across families\n\n{table(pooled, list(POOLED_HEADERS), POOLED_HEADERS)}\n\n"
        text += f"{notes['pooled']}\n"
    return text


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

# Headers wrap at underscores and long names wrap anywhere, so the main tables fit a 1400 px window.
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1340px; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-bottom: 1.5em; }
p.explain { max-width: 60em; color: #333; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f0f3f8; cursor: pointer; user-select: none; white-space: normal; vertical-align: bottom; }
th[data-sort=asc]::after { content: ' ▲'; } th[data-sort=desc]::after { content: ' ▼'; }
td.text { text-align: left; white-space: normal; overflow-wrap: break-word; }
tr.paradox td { background: #fff2cc; } tr.ns td { color: #9a9a9a; }
.plots img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def _header(name: str) -> str:
    return html.escape(name).replace("_", "_<wbr>")


def _html_table(rows: list[dict], columns: list[str], headers: dict[str, str] | None = None, row_class=None) -> str:
    """A sortable table. A cell is a plain value or (text, sort key); every string is HTML-escaped."""
    headers = headers or {}
    head = "".join(f"<th>{_header(headers.get(c, c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            text, key = value if isinstance(value, tuple) else (cell_text(value), cell_text(value))
            kind = "text" if isinstance(value, str) else ""
            cells.append(f'<td class="{kind}" data-v="{html.escape(str(key))}">{html.escape(text)}</td>')
        cls = row_class(row) if row_class else ""
        attribute = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attribute}>{''.join(cells)}</tr>")
    table = f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _html_correlation_rows(correlations: list[dict]) -> list[dict]:
    """Display cells keyed for sorting by the estimate (not the text of its interval)."""
    rows = []
    for row in correlations:
        cells = correlation_cells(row)
        for name, estimate in (
            ("pearson", "pearson_r"),
            ("spearman", "spearman_rho"),
            ("kendall", "kendall_tau"),
            ("within_family", "within_family_r"),
        ):
            cells[name] = (cells[name], cell_text(row.get(estimate)))
        for name in ("pearson_p", "pearson_p_adjusted", "spearman_p", "kendall_p"):
            cells[name] = (cells[name], cell_text(row.get(name)))
        cells["_verdict"] = row["verdict"]
        cells["_paradox"] = row.get("simpsons_paradox")
        rows.append(cells)
    return rows


def _correlation_class(row: dict) -> str:
    if row["_paradox"]:
        return "paradox"
    return "" if row["_verdict"] == VERDICT_SIGNIFICANT else "ns"


def render_html(
    board: list[dict], correlations: list[dict], plots: list[Path], title: str = "wwhub leaderboard"
) -> str:
    """One self-contained page: sortable leaderboard, correlation tables with intervals (rows that are not
    significant greyed out), a paragraph per table on what it shows, PNG plots inlined as data URIs."""
    images = []
    for path in plots:
        if path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode()
            images.append(
                f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
            )
    metric = metric_of(board)
    names = value_names(metric)
    notes = explanations(board)
    families = sorted({r["family"] for r in board})
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cells = _html_correlation_rows(correlations)
    family_rows = [c for c in cells if c["family"] != POOLED]
    pooled_rows = [c for c in cells if c["family"] == POOLED]
    pooled = ""
    if pooled_rows:
        pooled = (
            f'<h2>Pooled across families</h2>\n<p class="explain">{html.escape(notes["pooled"])}</p>\n'
            f"{_html_table(pooled_rows, list(POOLED_HEADERS), POOLED_HEADERS, _correlation_class)}"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="meta">{len(board)} models in {len(families)} families ({html.escape(", ".join(families))}) ·
generated {stamp} by wwhub {__version__} · click a column header to sort</div>
<h2>Leaderboard</h2>
<p class="explain">{html.escape(notes["board"])}</p>
{_html_table(board_view(board, metric), [names.get(c, c) for c in BOARD_COLUMNS])}
<h2>Correlations with {html.escape(metric)}</h2>
<p class="explain">{html.escape(notes["correlations"])}</p>
{_html_table(family_rows, list(CORRELATION_HEADERS), CORRELATION_HEADERS, _correlation_class)}
{pooled}
<h2>Plots</h2>
<div class="plots">{"".join(images)}</div>
<script>{_SORT_SCRIPT}</script>
</body></html>
"""


def write_plots(
    lake: str | Path | None,
    out: Path,
    family: str | None = None,
    metric: str = DEFAULT_METRIC,
    prefer_import: bool = False,
    dataset: str | None = None,
    data: tuple[list[dict], list[dict]] | None = None,
    reuse: bool = False,
) -> list[Path]:
    """Family trend plots and correlation-flow plots for the lake (or one family), as PNG and SVG in ``out``.
    ``data``: the (board, correlations) already read, so they are not queried twice. ``reuse``: figures already in
    ``out`` whose rows did not change are kept, not drawn again (flows/leaderboard/plots.py, RECORD)."""
    from .plots import plot_correlation_flow, plot_family_trends

    board, correlations = data or leaderboard_data(lake, family, metric, prefer_import, dataset)
    flow = run_query(lake, "correlation_flow")
    if family:
        flow = [r for r in flow if r["family"] == family]
    trends = plot_family_trends(board, correlations, out, reuse=reuse)
    return trends + plot_correlation_flow(flow, board, correlations, out, reuse=reuse)


def write_esd_plot(lake: str | Path | None, repo_id: str, layer: str, out: Path) -> list[Path]:
    """The ESD plot of one layer (by tensor name or layer_id) of a repo's latest scan, from the lake alone."""
    from .plots import plot_esd

    by_id = layer.isdigit()
    variables = {"repo_id": repo_id, "layer_id": int(layer) if by_id else None, "layer_name": None if by_id else layer}
    rows = run_query(lake, "layer_esd", variables)
    if not rows:
        raise ValueError(_no_esd(lake, repo_id, layer))
    return plot_esd(rows[0], rows[0], out)


def _no_esd(lake: str | Path | None, repo_id: str, layer: str) -> str:
    """Why ``layer`` (a layer_id or a tensor name) of ``repo_id`` has no stored ESD: the repo has no such layer (then
    the layer ids it has), no ESD at all (scanned with ``--esd none``), or none for that layer (its fit status)."""
    layers = run_query(lake, "esd_layers", {"repo_id": repo_id})
    if not layers:
        return f"{repo_id} has no scanned layers in the lake"
    asked = f"layer_id {layer}" if layer.isdigit() else f"layer {layer!r}"
    matching = [r for r in layers if (str(r["layer_id"]) if layer.isdigit() else r["name"]) == layer]
    if not matching:
        return f"{repo_id} has no {asked} in the lake: its layer ids are {_id_ranges(r['layer_id'] for r in layers)}"
    if not any(r["has_esd"] for r in layers):
        return f"no eigenvalues of {repo_id} in the lake (scanned with --esd none?)"
    first = matching[0]
    because = f" ({first['reason']})" if first["reason"] else ""
    return f"no eigenvalues of {repo_id} {asked} in the lake: its fit was {first['fit_status']}{because}"


def _id_ranges(ids) -> str:
    """``0-3, 5, 7-9`` for the ids 0, 1, 2, 3, 5, 7, 8, 9."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)
