"""Charts of the static site as inline SVG: numbers already in the lake in, markup out (no matplotlib, no script).

A site of 10 000 models draws tens of thousands of charts; an SVG string costs well under a millisecond, a
matplotlib figure ~100 ms. Every text that reaches the markup (layer names, repo ids, labels) is escaped here, so a
chart is safe to embed as it is. Each function returns a ``Figure``: the SVG and its legend (colour, marker,
label), which the page renders as HTML next to it.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass, field

import numpy as np

# matplotlib's tab10: distinct for the few categories a chart shows; more categories cycle.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
OVER_COLOUR, UNDER_COLOUR, TRAP_COLOUR, BAND_COLOUR = "#d62728", "#ff7f0e", "#111111", "#2ca02c"
WIDTH, HEIGHT = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 12, 42


@dataclass
class Figure:
    svg: str
    legend: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (colour, marker: dot|ring|x|line|dash|band, label)


# Names longer than this (a hostile card, a generated tensor name) are cut in a chart's labels and tooltips.
MAX_LABEL = 300


def esc(text) -> str:
    """Text for SVG markup: escaped, and cut at MAX_LABEL characters."""
    text = str(text)
    if len(text) > MAX_LABEL:
        text = text[:MAX_LABEL] + "…"
    return html.escape(text, quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def _tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.0e}"
    return f"{value:.4g}"


@dataclass
class Scale:
    """Data interval [low, high] onto pixels [start, end], linear or log10."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    integer: bool = False  # ticks on whole numbers only (layer ids)

    @classmethod
    def fit(cls, values, start: float, end: float, log: bool = False, pad: float = 0.05) -> Scale:
        finite = [v for v in values if _finite(v) and (v > 0 or not log)]
        if not finite:
            return cls(0.0, 1.0, start, end, log=False)
        low, high = min(finite), max(finite)
        if log:
            low, high = math.log10(low), math.log10(high)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        margin = (high - low) * pad
        low, high = low - margin, high + margin
        return cls(10**low if log else low, 10**high if log else high, start, end, log)

    def _t(self, value: float) -> float:
        return math.log10(value) if self.log else value

    def __call__(self, value: float) -> float:
        low, high = self._t(self.low), self._t(self.high)
        return self.start + (self._t(value) - low) / (high - low) * (self.end - self.start)

    def pixels(self, values) -> tuple[np.ndarray, np.ndarray]:
        """(pixel positions, mask of the values inside the scale) of many values at once."""
        values = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = np.isfinite(values) & (values >= self.low) & (values <= self.high)
            if self.log:
                inside &= values > 0
            t = np.log10(values) if self.log else values
            low, high = self._t(self.low), self._t(self.high)
            return self.start + (t - low) / (high - low) * (self.end - self.start), inside

    def contains(self, value: float) -> bool:
        return _finite(value) and (value > 0 or not self.log) and self.low <= value <= self.high

    def ticks(self, count: int = 5) -> list[float]:
        if self.log:
            first, last = math.floor(math.log10(self.low)), math.ceil(math.log10(self.high))
            step = max(1, math.ceil((last - first) / 6))
            values = [10.0**e for e in range(first, last + 1, step)]
            if len([v for v in values if self.low <= v <= self.high]) < 2:
                values = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
            return [v for v in values if self.low <= v <= self.high]
        raw = (self.high - self.low) / count
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        if self.integer:
            step = max(1, round(step))
        first = math.ceil(self.low / step) * step
        return [first + i * step for i in range(int((self.high - first) / step) + 1)]


@dataclass
class Frame:
    x: Scale
    y: Scale
    x_label: str
    y_label: str
    x_format: object = _tick_label
    parts: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls, xs, ys, x_label: str, y_label: str, x_log=False, y_log=False, x_format=_tick_label, x_integer=False
    ) -> Frame:
        x = Scale.fit(xs, LEFT, WIDTH - RIGHT, x_log)
        x.integer = x_integer
        y = Scale.fit(ys, HEIGHT - BOTTOM, TOP, y_log)
        return cls(x, y, x_label, y_label, x_format)

    def svg(self, label: str) -> str:
        grid, text = [], []
        for value in self.x.ticks():
            px = _num(self.x(value))
            grid.append(f'<line x1="{px}" x2="{px}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
            text.append(
                f'<text x="{px}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{esc(self.x_format(value))}</text>'
            )
        for value in self.y.ticks():
            py = _num(self.y(value))
            grid.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py}" y2="{py}"/>')
            text.append(f'<text x="{LEFT - 5}" y="{py}" dy="3" text-anchor="end">{esc(_tick_label(value))}</text>')
        middle = (TOP + HEIGHT - BOTTOM) / 2
        text.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">{esc(self.x_label)}</text>'
        )
        text.append(
            f'<text transform="translate(13 {middle}) rotate(-90)" text-anchor="middle">{esc(self.y_label)}</text>'
        )
        box = (
            f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
            'fill="none" stroke="#999"/>'
        )
        # Presentation attributes, not CSS: the same markup renders inline and as an <img> file.
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{esc(label)}</title>'
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
            f'<g stroke="#e6e6e6">{"".join(grid)}</g>{"".join(self.parts)}{box}'
            f'<g font-family="system-ui, sans-serif" font-size="11" fill="#333">{"".join(text)}</g></svg>'
        )

    def band(self, low: float, high: float, colour: str = BAND_COLOUR) -> None:
        """A horizontal band between two y values (clipped to the frame)."""
        top = self.y(min(high, self.y.high)) if low < self.y.high else None
        bottom = self.y(max(low, self.y.low)) if high > self.y.low else None
        if top is not None and bottom is not None:
            self.parts.append(
                f'<rect x="{LEFT}" y="{_num(top)}" width="{WIDTH - LEFT - RIGHT}" height="{_num(bottom - top)}" '
                f'fill="{colour}" fill-opacity="0.1"/>'
            )

    def vline(self, value: float, colour: str, dash: str = "4 3", label: str = "") -> None:
        if self.x.contains(value):
            px = _num(self.x(value))
            title = f"<title>{esc(label)}</title>" if label else ""
            self.parts.append(
                f'<line x1="{px}" x2="{px}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="{colour}" '
                f'stroke-dasharray="{dash}" stroke-width="1.3">{title}</line>'
            )

    def polyline(self, xs, ys, colour: str, width: float = 1.6, dash: str = "", label: str = "") -> None:
        px, x_inside = self.x.pixels(xs)
        py, y_inside = self.y.pixels(ys)
        inside = x_inside & y_inside
        points = [f"{x:.1f},{y:.1f}" for x, y in zip(px[inside].tolist(), py[inside].tolist(), strict=True)]
        if len(points) > 1:
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            title = f"<title>{esc(label)}</title>" if label else ""
            self.parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{extra} '
                f'points="{" ".join(points)}">{title}</polyline>'
            )

    def area(self, xs, lows, highs, colour: str) -> None:
        inside = [
            (x, lo, hi)
            for x, lo, hi in zip(xs, lows, highs, strict=True)
            if self.x.contains(x) and _finite(lo) and _finite(hi)
        ]
        if len(inside) > 1:
            clip = lambda v: min(max(v, self.y.low), self.y.high)  # noqa: E731 - one expression, used twice
            upper = [f"{_num(self.x(x))},{_num(self.y(clip(hi)))}" for x, _, hi in inside]
            lower = [f"{_num(self.x(x))},{_num(self.y(clip(lo)))}" for x, lo, _ in reversed(inside)]
            self.parts.append(f'<polygon fill="{colour}" fill-opacity="0.15" points="{" ".join(upper + lower)}"/>')

    def dot(self, x: float, y: float, colour: str, title: str, href: str | None = None, marker: str = "dot") -> None:
        if not (self.x.contains(x) and self.y.contains(y)):
            return
        px, py = _num(self.x(x)), _num(self.y(y))
        if marker == "ring":
            shape = f'<circle cx="{px}" cy="{py}" r="6.5" fill="none" stroke="{colour}" stroke-width="1.8"/>'
        elif marker == "x":
            shape = (
                f'<path d="M{self.x(x) - 5:.1f},{self.y(y) - 5:.1f}l10,10m0,-10l-10,10" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        else:
            shape = f'<circle cx="{px}" cy="{py}" r="3.6" fill="{colour}" fill-opacity="0.85"/>'
        body = f"<g><title>{esc(title)}</title>{shape}</g>"
        self.parts.append(f'<a href="{esc(href)}">{body}</a>' if href else body)


def colours(categories: list[str]) -> dict[str, str]:
    """A colour per category, in first-seen order."""
    ordered = list(dict.fromkeys(categories))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}


def depth_chart(layers: list[dict], metric: str, band: tuple[float, float] | None = None) -> Figure:
    """``metric`` of each ok layer against its position in depth order (layer_id), coloured by ``category``
    (layer type and expert); over-trained layers ringed red, under-trained ringed orange, correlation traps
    crossed; ``band`` shaded (alpha's 2-6)."""
    points = [row for row in layers if row.get("fit_status") == "ok" and _finite(row.get(metric))]
    xs = [row["layer_id"] for row in points]
    ys = [row[metric] for row in points] + (list(band) if band else [])
    frame = Frame.build(xs, ys, "layer_id (depth order)", metric, x_integer=True)
    legend = []
    if band:
        frame.band(*band)
        legend.append((BAND_COLOUR, "band", f"{band[0]:g} ≤ {metric} ≤ {band[1]:g}"))
    palette = colours([row["category"] for row in points])
    for row in points:
        title = f"{row['layer_id']}: {row['name']} ({row['category']}) {metric} = {row[metric]:.4g}"
        frame.dot(row["layer_id"], row[metric], palette[row["category"]], title, row.get("anchor"))
    marks = (
        ("over-trained", OVER_COLOUR, "ring", lambda r: r.get("warning") == "over-trained"),
        ("under-trained", UNDER_COLOUR, "ring", lambda r: r.get("warning") == "under-trained"),
        ("correlation trap", TRAP_COLOUR, "x", lambda r: bool(r.get("correlation_trap"))),
    )
    for label, colour, marker, chosen in marks:
        marked = [row for row in points if chosen(row)]
        for row in marked:
            frame.dot(row["layer_id"], row[metric], colour, f"{label}: {row['name']}", row.get("anchor"), marker)
        if marked:
            legend.append((colour, marker, f"{label} ({len(marked)})"))
    legend = [(colour, "dot", name) for name, colour in palette.items()] + legend
    return Figure(frame.svg(f"{metric} by layer depth"), legend)


def _log_histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (geometric) and densities (count / total / bin width) on log-spaced bins."""
    counts, _ = np.histogram(values, bins=edges)
    density = counts / values.size / np.diff(edges)
    return np.sqrt(edges[:-1] * edges[1:]), density


def esd_chart(evals: np.ndarray, rand: np.ndarray | None, alpha, xmin, title: str, bins: int = 40) -> Figure:
    """One layer's ESD on log-log axes: the density of the eigenvalues of WᵀW on log-spaced bins, the power law
    fitted from xmin (scaled to the tail's share of the eigenvalues), xmin, and the shuffled matrix's ESD with its
    largest eigenvalue (a correlation trap shows as W's spike far right of that line)."""
    evals = evals[np.isfinite(evals) & (evals > 0)]
    if evals.size < 2:
        return Figure(Frame.build([], [], "eigenvalue λ", "density").svg(title))
    rand = None if rand is None else rand[np.isfinite(rand) & (rand > 0)]
    top = max(evals.max(), rand.max() if rand is not None and rand.size else 0)
    low = min(evals.min(), rand.min() if rand is not None and rand.size else math.inf)
    edges = np.geomspace(low, top * (1 + 1e-9), bins + 1)
    centres, density = _log_histogram(evals, edges)
    series = [("ESD of W", PALETTE[0], centres, density)]
    if rand is not None and rand.size:
        rand_centres, rand_density = _log_histogram(rand, edges)
        series.append(("ESD of shuffled W", PALETTE[4], rand_centres, rand_density))
    law = None
    if _finite(alpha) and _finite(xmin) and xmin > 0:
        grid = np.geomspace(xmin, evals.max(), 30)
        share = np.count_nonzero(evals >= xmin) / evals.size
        law = (grid, (alpha - 1) / xmin * (grid / xmin) ** (-alpha) * share)
    ys = [d for _, _, _, dens in series for d in dens if d > 0]
    frame = Frame.build(edges, ys, "eigenvalue λ of WᵀW", "density", x_log=True, y_log=True)
    legend = []
    for label, colour, xs, dens in series:
        keep = dens > 0
        frame.polyline(xs[keep], dens[keep], colour, label=label)
        legend.append((colour, "line", label))
    if law is not None:
        frame.polyline(law[0], law[1], OVER_COLOUR, width=2.2, label=f"power law α = {alpha:.3g}")
        frame.vline(xmin, OVER_COLOUR, "2 3", f"xmin = {xmin:.4g}")
        legend += [(OVER_COLOUR, "line", f"power law α = {alpha:.3g}"), (OVER_COLOUR, "dash", f"xmin = {xmin:.3g}")]
    if rand is not None and rand.size:
        frame.vline(float(rand.max()), PALETTE[4], "5 3", "shuffled λmax")
        legend.append((PALETTE[4], "dash", f"shuffled λmax = {rand.max():.3g}"))
    return Figure(frame.svg(title), legend)


def fit_chart(points: list[dict], x_label: str, y_label: str, band, note: str) -> Figure:
    """Reported value (``y``) against a weight metric (``x``), one dot per model (linking to its page), with the
    OLS line and its 95% confidence band (``band``: grid, line, low, high from flows.leaderboard.stats.ols_band, or
    None)."""
    xs = [p["x"] for p in points]
    ys = [p["y"] for p in points]
    if band is not None:
        ys = ys + [v for v in list(band[2]) + list(band[3]) if _finite(v)]
    frame = Frame.build(xs, ys, x_label, y_label)
    legend = []
    if band is not None:
        grid, line, low, high = band
        frame.area(grid, low, high, OVER_COLOUR)
        frame.polyline(grid, line, OVER_COLOUR, label=note)
        legend.append((OVER_COLOUR, "line", note))
    for p in points:
        frame.dot(p["x"], p["y"], PALETTE[0], p["title"], p.get("href"))
    return Figure(frame.svg(f"{y_label} against {x_label}"), legend)


def _date_format(span_seconds: float):
    """Tick labels for a time axis: dates, or hours and minutes when the scans are less than two days apart."""
    pattern = "%Y-%m-%d" if span_seconds > 2 * 86400 else "%m-%d %H:%M"
    return lambda seconds: dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(pattern)


def time_chart(series: dict[str, list[tuple[dt.datetime, float, str]]], y_label: str, hrefs=None) -> Figure:
    """``y_label`` over scan time, one line per series (a repo's successive scans; a repo scanned once is a dot).
    ``series``: label → [(scanned_at, value, title)], oldest first."""
    hrefs = hrefs or {}
    stamps = {
        label: [(t.timestamp(), v, title) for t, v, title in rows if _finite(v)] for label, rows in series.items()
    }
    xs = [t for rows in stamps.values() for t, _, _ in rows]
    ys = [v for rows in stamps.values() for _, v, _ in rows]
    span = max(xs) - min(xs) if xs else 0.0
    frame = Frame.build(xs, ys, "scanned at (UTC)", y_label, x_format=_date_format(span))
    palette = colours(list(stamps))
    for label, rows in stamps.items():
        frame.polyline([t for t, _, _ in rows], [v for _, v, _ in rows], palette[label], label=label)
        for t, v, title in rows:
            frame.dot(t, v, palette[label], title, hrefs.get(label))
    legend = [(colour, "dot", label) for label, colour in palette.items()] if len(palette) <= 12 else []
    return Figure(frame.svg(f"{y_label} over time"), legend)
