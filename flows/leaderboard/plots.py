"""Figures from the lake (matplotlib, headless): family trends, correlation flow, and one layer's ESD.

Every function takes rows already queried from the lake (plain dicts) and writes PNG and SVG files; none
recomputes a metric. The ESD plot reads eigenvalues stored in the lake's ``esd`` table (every eigenvalue, or the
fitted tail exactly and a quantile sketch of the bulk): no re-download.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .stats import POOLED, VERDICT_SIGNIFICANT, ols_band  # noqa: E402

TREND_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")
# Above this many models (or families) a figure names none of them in its legend: hundreds of entries are unreadable
# and cost matplotlib seconds per figure, every night (a correlation flow of 250 models: 2.6 s; at 100 000 models
# the legends alone took most of the nightly's plots). The reported value is then read from a colour bar.
MAX_LEGEND_ENTRIES = 12


# With ``reuse``, a figure whose inputs did not change since it was drawn into the same folder is not drawn again
# (the nightly refreshes LAKE/reports/ every night, and a figure costs 0.5-2 s: a thousand families would cost the
# nightly half an hour of unchanged figures). Each figure's key, a digest of this file, matplotlib's version and the
# rows it is drawn from, is recorded in RECORD beside the figures, after them; a recorded figure no longer drawn is
# removed.
RECORD = "plots.json"


@functools.cache
def _code_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes() + matplotlib.__version__.encode()).hexdigest()


def _key(*made_of) -> str:
    return hashlib.sha256(repr((_code_digest(), made_of)).encode()).hexdigest()


def _shown(fit: dict | None) -> tuple | None:
    """What a figure shows of a correlation row (not its BH-adjusted p, which moves with every other family's)."""
    fields = ("n", "pearson_r", "pearson_ci_low", "pearson_ci_high", "pearson_p", "verdict")
    return None if fit is None else tuple(fit.get(name) for name in fields)


def _paths(out: Path, stem: str) -> list[Path]:
    return [out / f"{stem}.png", out / f"{stem}.svg"]


def _recorded(out: Path) -> dict[str, str]:
    try:
        recorded = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _unchanged(out: Path, stem: str, key: str, recorded: dict[str, str]) -> bool:
    return recorded.get(stem) == key and all(path.is_file() for path in _paths(out, stem))


def _record(out: Path, keys: dict[str, str], kind: str) -> None:
    """Record ``keys`` (stem → key of the figures of one ``kind``, ``trend_`` or ``flow_``, now in ``out``), replacing
    the record atomically. Recorded figures of that kind no longer drawn (their family left the lake or has no
    reported values) are removed first: the folder holds the lake's figures, not last month's."""
    out.mkdir(parents=True, exist_ok=True)
    recorded = _recorded(out)
    for stem in recorded:
        if stem.startswith(kind) and stem not in keys:
            for path in _paths(out, stem):
                path.unlink(missing_ok=True)
    others = {stem: key for stem, key in recorded.items() if not stem.startswith(kind)}
    tmp = out / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(others | keys, sort_keys=True))
    os.replace(tmp, out / RECORD)


def _save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = _paths(out, stem)
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _slug(text: str) -> str:
    """``text`` as part of a file name: itself when it holds only letters, digits, '-' and '_'; else those, any
    other character as '_', and a digest of the text, so that families ``x y``, ``x_y`` and ``x/y`` never share a
    figure (as the site names its pages)."""
    readable = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
    return readable if readable == text else f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _legend(fit: dict) -> str:
    """``r = -0.96 [-1.00, -0.52], p = 0.008`` and n, with the verdict when it is not significant."""
    r, low, high = fit.get("pearson_r"), fit.get("pearson_ci_low"), fit.get("pearson_ci_high")
    if r is None:
        return f"n={fit['n']}: r undefined (constant values)"
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    p = fit.get("pearson_p")
    text = f"OLS, 95% band\nn={fit['n']}  r = {r:.2f}{interval}, p = {p:.2g}"
    if fit.get("verdict") != VERDICT_SIGNIFICANT:
        text += f"\n({fit.get('verdict')})"
    return text


def _draw_fit(ax, xs: list[float], ys: list[float], fit: dict | None) -> None:
    """The OLS line with its 95% confidence band, labelled with r [CI] and p (nothing to draw for a constant x)."""
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if fit is None or x.size < 3:
        return
    grid = np.linspace(x.min(), x.max(), 60)
    band = ols_band(x, y, grid)
    if band is None:
        ax.plot([], [], " ", label=_legend(fit))
        return
    line, low, high = band
    significant = fit.get("verdict") == VERDICT_SIGNIFICANT
    color = "tab:red" if significant else "0.45"
    ax.fill_between(grid, low, high, color=color, alpha=0.15, lw=0)
    ax.plot(grid, line, color=color, lw=1.5, ls="-" if significant else "--", label=_legend(fit))


def plot_family_trends(board: list[dict], correlations: list[dict], out: Path, reuse: bool = False) -> list[Path]:
    """Per family (and pooled): the reported value against each model-averaged metric, the OLS line with its 95%
    confidence band, and n, r [95% CI] and p in the legend (dashed grey when not significant). ``reuse``: keep the
    figures in ``out`` whose rows did not change (RECORD)."""
    by_family: dict[str, list[dict]] = defaultdict(list)
    for row in board:
        if row.get("value") is not None:
            by_family[row["family"]].append(row)
    stats = {(c["family"], c["metric"]): c for c in correlations}
    paths: list[Path] = []
    groups = [(family, rows) for family, rows in sorted(by_family.items())]
    if len(groups) > 1:
        groups.append((POOLED, [r for _, rows in groups for r in rows]))
    recorded, keys = (_recorded(out) if reuse else {}), {}
    for family, rows in groups:
        stem = f"trend_{_slug(family)}"
        drawn = [(r["family"], r.get("metric"), r["value"], *(r.get(m) for m in TREND_METRICS)) for r in rows]
        keys[stem] = _key(family, drawn, [_shown(stats.get((family, m))) for m in TREND_METRICS])
        if _unchanged(out, stem, keys[stem], recorded):
            paths += _paths(out, stem)
            continue
        fig, axes = plt.subplots(1, len(TREND_METRICS), figsize=(4.2 * len(TREND_METRICS), 3.8), squeeze=False)
        metric_name = rows[0].get("metric") or "accuracy"
        for ax, metric in zip(axes[0], TREND_METRICS, strict=True):
            points = [r for r in rows if r.get(metric) is not None]
            if family == POOLED:
                named = len(by_family) <= MAX_LEGEND_ENTRIES
                for member, member_rows in sorted(by_family.items()):
                    shown = [r for r in member_rows if r.get(metric) is not None]
                    label = member if named else None
                    ax.scatter([r[metric] for r in shown], [r["value"] for r in shown], s=28, label=label)
            else:
                ax.scatter([r[metric] for r in points], [r["value"] for r in points], s=28, color="tab:blue")
            _draw_fit(ax, [r[metric] for r in points], [r["value"] for r in points], stats.get((family, metric)))
            ax.set_xlabel(metric)
            ax.set_ylabel(metric_name)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="best")
            ax.grid(alpha=0.3)
        title = "all families (pooled)" if family == POOLED else f"family {family}"
        fig.suptitle(f"{title}: reported {metric_name} vs weight metrics")
        paths += _save(fig, out, stem)
    if reuse:
        _record(out, keys, "trend_")
    return paths


def plot_correlation_flow(
    flow: list[dict], board: list[dict], correlations: list[dict], out: Path, reuse: bool = False
) -> list[Path]:
    """Per family: alpha against relative layer depth, one line per model (Martin & Mahoney's correlation flow),
    coloured by the model's reported value (named in the legend up to MAX_LEGEND_ENTRIES models, else read from a
    colour bar); the title gives the family's alpha-vs-value r [CI] and p and says whether it is significant (solid
    lines) or not (dashed). ``reuse``: keep the figures in ``out`` whose rows did not change (RECORD)."""
    by_family: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in flow:
        by_family[row["family"]][row["repo_id"]].append(row)
    values = {r["repo_id"]: r.get("value") for r in board}
    fits = {c["family"]: c for c in correlations if c["metric"] == "alpha"}
    metric_name = next((r["metric"] for r in board if r.get("metric")), "accuracy")
    paths: list[Path] = []
    recorded, keys = (_recorded(out) if reuse else {}), {}
    for family, models in sorted(by_family.items()):
        stem = f"flow_{_slug(family)}"
        drawn = [(repo, values.get(repo), [(r["depth"], r["alpha"]) for r in rows]) for repo, rows in models.items()]
        keys[stem] = _key(family, metric_name, sorted(drawn), _shown(fits.get(family)))
        if _unchanged(out, stem, keys[stem], recorded):
            paths += _paths(out, stem)
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        fit = fits.get(family)
        significant = fit is not None and fit.get("verdict") == VERDICT_SIGNIFICANT
        known = [v for repo in models if (v := values.get(repo)) is not None]
        norm = plt.Normalize(min(known), max(known)) if known and min(known) < max(known) else None
        named = len(models) <= MAX_LEGEND_ENTRIES
        for repo_id, rows in sorted(models.items()):
            value = values.get(repo_id)
            color = plt.cm.viridis(norm(value)) if norm is not None and value is not None else None
            label = repo_id.split("/")[-1] + ("" if value is None else f" ({value:.3g})") if named else None
            ax.plot(
                [r["depth"] for r in rows],
                [r["alpha"] for r in rows],
                marker="o",
                ms=3,
                color=color,
                ls="-" if significant else "--",
                label=label,
            )
        ax.axhspan(2, 6, color="tab:green", alpha=0.07, label="2 ≤ α ≤ 6")
        ax.set_xlabel("relative layer depth")
        ax.set_ylabel("alpha")
        title = f"correlation flow: {family}"
        if fit is not None and fit.get("pearson_r") is not None:
            low, high = fit.get("pearson_ci_low"), fit.get("pearson_ci_high")
            interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
            title += (
                f"\nalpha vs {metric_name}: r = {fit['pearson_r']:.2f}{interval}, "
                f"p = {fit['pearson_p']:.2g} ({fit['verdict']})"
            )
        else:
            title += f"\nalpha vs {metric_name}: no correlation (fewer than 3 models with values)"
        ax.set_title(title, fontsize=10)
        if not named and norm is not None:
            fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=f"reported {metric_name}")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        paths += _save(fig, out, stem)
    if reuse:
        _record(out, keys, "flow_")
    return paths


def _log_bins(low: float, high: float, count: int = 60) -> np.ndarray:
    """Log-spaced histogram edges from ``low`` to ``high``; a decade around a single value (a rank-1 layer's ESD
    has one non-zero eigenvalue), where equal edges would make bins of zero width."""
    if low == high:
        low, high = low / 3, high * 3
    return np.logspace(math.log10(low), math.log10(high), count)


def plot_esd(esd: dict, layer: dict, out: Path) -> list[Path]:
    """One layer's ESD on log-log axes with the fitted power law from xmin, and the randomized ESD overlaid with
    its largest eigenvalue marked: a correlation trap shows as that line far right of the randomized bulk. The
    title says whether the lake held the full ESD or the tail and a sketch of the bulk (flows/lake/esd.py)."""
    from ..lake.esd import eigenvalues

    evals, rand, storage = eigenvalues(esd)
    evals = evals[evals > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist(
        evals, bins=_log_bins(evals.min(), evals.max()), density=True, alpha=0.55, color="royalblue", label="ESD of W"
    )
    if rand is not None and len(rand):
        rand = rand[rand > 0]
        rbins = _log_bins(rand.min(), max(rand.max(), evals.max()))
        ax.hist(rand, bins=rbins, density=True, alpha=0.45, color="darkorchid", label="ESD of shuffled W")
        ax.axvline(rand.max(), color="darkorchid", ls="--", lw=1.2, label=f"shuffled λmax = {rand.max():.3g}")
    alpha, xmin = layer.get("alpha"), layer.get("xmin")
    if alpha is not None and xmin is not None and math.isfinite(alpha):
        tail = evals[evals >= xmin]
        grid = np.logspace(math.log10(xmin), math.log10(evals.max()), 50)
        # The fitted density on the tail, scaled to the tail's share of the eigenvalues.
        density = (alpha - 1) / xmin * (grid / xmin) ** (-alpha) * tail.size / evals.size
        ax.plot(grid, density, color="tab:red", lw=1.8, label=f"power law α = {alpha:.2f}")
        ax.axvline(xmin, color="tab:red", ls=":", lw=1.2, label=f"xmin = {xmin:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue λ of WᵀW")
    ax.set_ylabel("density")
    trap = " (correlation trap)" if layer.get("correlation_trap") else ""
    ax.set_title(f"{esd['repo_id']} · {esd['name']}{trap}\n{storage}", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out, f"esd_{_slug(esd['repo_id'] + ' ' + esd['name'])}")  # one digest of both: a/b_c ≠ a_b/c
