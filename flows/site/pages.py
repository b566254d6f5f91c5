"""The pages of the static site: what each shows, from the rows ``data.py`` read, rendered by Jinja templates with
autoescaping on (every value from a card, a repo name or a tensor name is escaped; charts escape their own text).

Links are relative (``models/…``, ``../families/…``), so the folder works from the file system, moved or copied.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from functools import cache
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from .. import __version__
from ..lake.esd import eigenvalues
from ..leaderboard.correlations import WEIGHT_METRICS
from ..leaderboard.render import board_view, cell_text, correlation_cells, explanations, value_names
from ..leaderboard.stats import POOLED, VERDICT_SIGNIFICANT, ols_band
from . import charts
from .data import LakeData, ModelDetails

TEMPLATES = Path(__file__).resolve().parent / "templates"
TREND_METRICS = WEIGHT_METRICS  # the metrics the correlations table holds
DEPTH_METRICS = (("alpha", (2.0, 6.0)), ("alpha_weighted", None), ("log_spectral_norm", None))
SUMMARY_METRICS = (
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "mp_softrank",
)
COUNTS = ("num_layers", "num_ok", "num_failed", "num_skipped", "num_over_trained", "num_under_trained")
FACTS = (
    "revision",
    "status",
    "reason",
    "scanned_at",
    "model_kind",
    "quantization",
    "num_params",
    "library_name",
    "pipeline_tag",
    "base_model",
    "downloads",
    "likes",
    "last_modified",
    "card_status",
    "skip_reasons",
    "layer_selection",
    "num_shards",
    "bytes_read",
    "seconds",
    "source",
    "options",
    "wwhub_version",
    "scan_id",
)
# Text from cards and files is shown whole up to this length; past it, cut with the count of what was left out.
MAX_TEXT = 2000
# A model page colours each expert apart while there are few categories; past this, experts share one colour per
# layer type (the dot's tooltip still names the expert).
MAX_CATEGORIES = 10
_READABLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def page_slug(text: str) -> str:
    """A file name for a repo id or family name: the name itself (``org--name``) when it is a plain Hub id, else a
    readable prefix and a digest, so two names never share a page and nothing can climb out of the folder."""
    if _READABLE_ID.match(text) and "--" not in text and len(text) <= 96:
        return text.replace("/", "--")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "--"))[:60].lstrip("._-")
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def model_href(repo_id: str) -> str:
    return f"models/{page_slug(repo_id)}.html"


def family_href(family: str) -> str:
    return f"families/{page_slug(family)}.html"


def clip(value, limit: int = MAX_TEXT) -> str:
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def fmt(value) -> str:
    """A cell as the leaderboard writes it (:func:`cell_text`), times in UTC, long text clipped."""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return clip(cell_text(value))


def sort_key(value) -> str:
    """The ``data-v`` a sortable cell sorts by: the number itself, or the text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return clip(value, 200)


def figure_html(figure: charts.Figure) -> Markup:
    """A chart's SVG (escaped by charts.py) and its legend (escaped here)."""
    items = "".join(
        f'<li><span class="key {marker}" style="--c:{colour}"></span>{escape(clip(label, 300))}</li>'
        for colour, marker, label in figure.legend
    )
    legend = f'<ul class="legend">{items}</ul>' if items else ""
    return Markup(f'<figure class="chart">{figure.svg}{legend}</figure>')


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, key=sort_key, clip=clip, figure=figure_html)
    env.globals.update(version=__version__)
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def correlation_rows(correlations: list[dict]) -> list[dict]:
    """Display cells of correlation rows, with the class that greys out what is not significant."""
    rows = []
    for row in correlations:
        cells = correlation_cells(row)
        cells["css"] = (
            "paradox" if row.get("simpsons_paradox") else "" if row["verdict"] == VERDICT_SIGNIFICANT else "ns"
        )
        cells["sort"] = {name: row.get(name) for name in ("pearson_r", "spearman_rho", "kendall_tau", "n")}
        rows.append(cells)
    return rows


def fit_note(fit: dict | None) -> str:
    if fit is None or fit.get("pearson_r") is None:
        return "OLS fit: fewer than 3 models with a value"
    low, high = fit.get("pearson_ci_low"), fit.get("pearson_ci_high")
    interval = f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else ""
    r, p = fit["pearson_r"], fit["pearson_p"]
    return f"OLS, 95% band · n={fit['n']} r = {r:+.2f}{interval}, p = {p:.2g} ({fit['verdict']})"


def trend_figure(
    board: list[dict], correlations: dict, family: str, metric: str, reported: str, prefix: str
) -> charts.Figure:
    """A family's reported value against one weight metric (``board``: the family's leaderboard rows), with the
    OLS band and the family's correlation in the legend."""
    points = [
        dict(
            x=row[metric],
            y=row["value"],
            title=f"{row['repo_id']}: {metric} {row[metric]:.4g}, {reported} {row['value']:.4g}",
            href=prefix + model_href(row["repo_id"]),
        )
        for row in board
        if row.get("value") is not None and row.get(metric) is not None and math.isfinite(row[metric])
    ]
    band = None
    if len(points) >= 3:
        x = np.array([p["x"] for p in points], dtype=float)
        y = np.array([p["y"] for p in points], dtype=float)
        fitted = ols_band(x, y, np.linspace(x.min(), x.max(), 40))
        band = None if fitted is None else (np.linspace(x.min(), x.max(), 40), *fitted)
    return charts.fit_chart(points, metric, reported, band, fit_note(correlations.get((family, metric))))


def history_figure(history: dict[str, list[dict]], repos: list[str], metric: str, prefix: str) -> charts.Figure:
    series = {
        repo: [(r["scanned_at"], r[metric], f"{repo} @ {r['revision'][:12]}: {metric} {fmt(r[metric])}") for r in rows]
        for repo in repos
        if (rows := [r for r in history.get(repo, []) if r["status"] in ("scanned", "partial") and r["scanned_at"]])
    }
    return charts.time_chart(series, metric, {repo: prefix + model_href(repo) for repo in series})


def board_payload(data: LakeData) -> str:
    """The index's leaderboard as a script (``window.WWHUB_BOARD``): column names and one array per model,
    escaped for a script (no ``<``, ``>``, ``&`` or line separators in the text)."""
    names = value_names(data.metric)
    columns = [
        ("family", "family", "text"),
        ("repo_id", "repo_id", "link"),
        ("value", names["value"], "num"),
        ("rank_by_value", names["rank_by_value"], "num"),
        ("rank_by_alpha", "rank_by_alpha", "num"),
        *((m, m, "num") for m in TREND_METRICS),
        ("num_layers", "num_layers", "num"),
        ("quantization", "quantization", "text"),
        ("model_kind", "model_kind", "text"),
        ("source", "source", "text"),
        ("flags", "flags", "text"),
    ]
    view = board_view(data.board, data.metric)
    rows = []
    for plain, shown in zip(data.board, view, strict=True):
        cells = []
        for key, label, _ in columns:
            value = shown.get(label, plain.get(key))
            if isinstance(value, float):
                value = None if not math.isfinite(value) else float(f"{value:.6g}")
            elif value is not None and not isinstance(value, int | bool):
                value = clip(value, 300)
            cells.append(value)
        cells.append(model_href(plain["repo_id"]))
        rows.append(cells)
    payload = {"columns": [{"key": k, "label": label, "type": kind} for k, label, kind in columns], "rows": rows}
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return f"window.WWHUB_BOARD = {text};\n"


def index_page(data: LakeData, title: str, generated: str) -> tuple[str, dict[str, charts.Figure]]:
    """index.html and the thumbnail charts it links (family → its alpha trend figure)."""
    by_key = {(c["family"], c["metric"]): c for c in data.correlations}
    families = []
    thumbnails = {}
    for family in data.families:
        members = data.board_of.get(family, [])
        thumbnails[family] = trend_figure(members, by_key, family, "alpha", data.metric, "../")
        families.append(
            dict(
                name=family,
                href=family_href(family),
                thumbnail=f"families/{page_slug(family)}-alpha.svg",
                models=len(members),
                with_value=sum(r.get("value") is not None for r in members),
                not_scanned=len(data.models_of.get(family, [])) - len(members),
                correlations=correlation_rows([c for c in data.correlations if c["family"] == family]),
            )
        )
    pooled = correlation_rows([c for c in data.correlations if c["family"] == POOLED])
    html = render(
        "index.html.j2",
        root="",
        title=title,
        generated=generated,
        metric=data.metric,
        families=families,
        pooled=pooled,
        notes=explanations(data.board),
        models=len(data.board),
        all_models=len(data.models),
        last_scan=max((s["ended_at"] for s in data.scans if s.get("ended_at")), default=None),
        filters=dict(
            families=data.families,
            quantizations=sorted({r.get("quantization") or "" for r in data.board}),
            kinds=sorted({r.get("model_kind") or "" for r in data.board}),
        ),
    )
    return html, thumbnails


def family_page(data: LakeData, family: str, title: str, generated: str) -> str:
    by_key = {(c["family"], c["metric"]): c for c in data.correlations}
    members = data.board_of.get(family, [])
    names = value_names(data.metric)
    trends = [trend_figure(members, by_key, family, m, data.metric, "../") for m in TREND_METRICS]
    repos = sorted(r["repo_id"] for r in data.models_of.get(family, []))
    over_time = [
        history_figure(data.history, repos, m, "../") for m in ("alpha", "alpha_weighted", "log_spectral_norm")
    ]
    others = [m for m in data.models_of.get(family, []) if m["status"] not in ("scanned", "partial")]
    return render(
        "family.html.j2",
        root="../",
        title=title,
        generated=generated,
        family=family,
        metric=data.metric,
        value_label=names["value"],
        rank_label=names["rank_by_value"],
        members=[dict(r, href="../" + model_href(r["repo_id"])) for r in members],
        others=[dict(m, href="../" + model_href(m["repo_id"])) for m in sorted(others, key=lambda m: m["repo_id"])],
        trends=trends,
        over_time=over_time,
        rescanned=sum(len(data.history.get(repo, [])) > 1 for repo in repos),
        correlations=correlation_rows([c for c in data.correlations if c["family"] == family]),
        notes=explanations(data.board),
    )


def layer_anchor(row: dict) -> str:
    """The id of a layer's row in the model page's table (a conv2d slice has its own row)."""
    slice_id = row.get("slice_id")
    return f"#layer-{row['layer_id']}" + (f"-{slice_id}" if slice_id is not None and slice_id >= 0 else "")


def _categories(layers: list[dict]) -> None:
    """Each layer's colour category: its type, and its expert while the categories stay few."""

    def name(row, per_expert):
        kind = row.get("layer_type") or "layer"
        if row.get("expert") is None:
            return kind
        return f"{kind} · expert {row['expert']}" if per_expert else f"{kind} · experts"

    per_expert = len({name(r, True) for r in layers}) <= MAX_CATEGORIES
    for row in layers:
        row["category"] = name(row, per_expert)
        row["anchor"] = layer_anchor(row)
        row["flag"] = ", ".join(
            label
            for label, on in (
                (row.get("warning") or "", bool(row.get("warning"))),
                ("correlation trap", bool(row.get("correlation_trap"))),
            )
            if on
        )


def esd_figures(rows: list[dict], repo_id: str) -> list[dict]:
    """The ESD charts of a model page, each with why the layer was chosen."""
    out = []
    for row in rows:
        reasons = []
        if row["is_lowest"]:
            reasons.append("most over-trained" if row.get("warning") == "over-trained" else "lowest alpha")
        if row["is_highest"]:
            reasons.append("most under-trained" if row.get("warning") == "under-trained" else "highest alpha")
        if row["correlation_trap"]:
            reasons.append("correlation trap")
        evals, rand, storage = eigenvalues(row)
        title = f"{repo_id} · {row['name']}"
        figure = charts.esd_chart(evals, rand, row.get("alpha"), row.get("xmin"), title)
        out.append(dict(row=row, why=", ".join(reasons), storage=storage, figure=figure, anchor=layer_anchor(row)))
    return out


def lineage(data: LakeData, model: dict, details: ModelDetails) -> dict:
    """The model's base (from its card, with the distances when the lake holds them) and its fine-tunes."""
    repo_id = model["repo_id"]
    as_finetune = data.bases_of.get(repo_id, [])
    finetunes = data.finetunes_of.get(repo_id, [])
    bases = {f["base_repo_id"] for f in as_finetune} | ({model["base_model"]} if model.get("base_model") else set())
    measured = {f["repo_id"] for f in finetunes}
    declared = sorted(r for r in data.declared_children.get(repo_id, []) if r not in measured)
    chart = None
    if details.distances:
        points = [
            dict(r, category=r.get("layer_type") or "layer", anchor=layer_anchor(r), warning="", correlation_trap=False)
            for r in details.distances
        ]
        chart = charts.depth_chart(points, "relative_change")

    def href(repo: str) -> str | None:
        return "../" + model_href(repo) if repo in data.models else None

    return dict(
        bases=[dict(repo_id=b, href=href(b)) for b in sorted(bases)],
        as_finetune=[dict(f, base_href=href(f["base_repo_id"])) for f in as_finetune],
        finetunes=[dict(f, href=href(f["repo_id"])) for f in finetunes],
        declared=[dict(repo_id=r, href=href(r)) for r in declared],
        distances=[dict(r, anchor=layer_anchor(r)) for r in details.distances],
        chart=chart,
    )


def model_page(
    data: LakeData, model: dict, details: ModelDetails, board_row: dict | None, title: str, generated: str
) -> str:
    repo_id = model["repo_id"]
    layers = details.layers
    _categories(layers)
    depth = [charts.depth_chart(layers, metric, band) for metric, band in DEPTH_METRICS]
    history = data.history.get(repo_id, [])
    names = value_names(data.metric)
    return render(
        "model.html.j2",
        root="../",
        title=title,
        generated=generated,
        model=model,
        facts=[(name, model.get(name)) for name in FACTS if model.get(name) not in (None, "")],
        family_link="../" + family_href(model["family"]),
        board=board_row,
        family_size=data.family_sizes.get(model["family"], 0),
        value_label=names["value"],
        rank_label=names["rank_by_value"],
        metric=data.metric,
        averages=[(name, model.get(name)) for name in SUMMARY_METRICS],
        counts=[(name, model.get(name)) for name in COUNTS]
        + [("traps", sum(bool(r.get("correlation_trap")) for r in layers))],
        reported=data.evals.get(repo_id, []),
        depth=depth,
        layers=layers,
        esd=esd_figures(details.esd, repo_id),
        lineage=lineage(data, model, details),
        history=history,
        history_chart=history_figure(data.history, [repo_id], "alpha", "../") if len(history) > 1 else None,
        drift=details.drift,
    )
