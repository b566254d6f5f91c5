"""Figures from the lake (matplotlib, headless): family trends, correlation flow, and one layer's ESD.

Every function takes rows already queried from the lake (plain dicts) and writes PNG and SVG files; none
recomputes a metric. The ESD plot reads eigenvalues stored in the lake's ``esd`` table (every eigenvalue, or the
fitted tail exactly and a quantile sketch of the bulk): no re-download.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TREND_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")


def _save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plot_family_trends(board: list[dict], correlations: list[dict], out: Path) -> list[Path]:
    """Per family (and pooled): reported accuracy against each model-averaged metric, the OLS line, and
    n, Pearson r, Spearman rho, Kendall tau and R^2 in the legend."""
    by_family: dict[str, list[dict]] = defaultdict(list)
    for row in board:
        if row.get("accuracy") is not None:
            by_family[row["family"]].append(row)
    stats = {(c["family"], c["metric"]): c for c in correlations}
    paths: list[Path] = []
    groups = [(family, rows) for family, rows in sorted(by_family.items())]
    if len(groups) > 1:
        groups.append(("(all)", [r for _, rows in groups for r in rows]))
    for family, rows in groups:
        fig, axes = plt.subplots(1, len(TREND_METRICS), figsize=(4.2 * len(TREND_METRICS), 3.8), squeeze=False)
        metric_name = rows[0].get("metric") or "accuracy"
        for ax, metric in zip(axes[0], TREND_METRICS, strict=True):
            if family == "(all)":
                for member, member_rows in sorted(by_family.items()):
                    xs = [r[metric] for r in member_rows if r.get(metric) is not None]
                    ys = [r["accuracy"] for r in member_rows if r.get(metric) is not None]
                    ax.scatter(xs, ys, s=28, label=member)
            else:
                xs = [r[metric] for r in rows if r.get(metric) is not None]
                ys = [r["accuracy"] for r in rows if r.get(metric) is not None]
                ax.scatter(xs, ys, s=28, color="tab:blue")
            fit = stats.get((family, metric))
            if fit and fit.get("slope") is not None:
                xs_all = [r[metric] for r in rows if r.get(metric) is not None]
                grid = np.linspace(min(xs_all), max(xs_all), 50)
                label = (
                    f"n={fit['n']} r={fit['pearson_r']:.2f} ρ={fit['spearman_rho']:.2f}\n"
                    f"τ={fit['kendall_tau']:.2f} R²={fit['r_squared']:.2f}"
                )
                ax.plot(grid, fit["intercept"] + fit["slope"] * grid, color="tab:red", lw=1.5, label=label)
            ax.set_xlabel(metric)
            ax.set_ylabel(metric_name)
            ax.legend(fontsize=7, loc="best")
            ax.grid(alpha=0.3)
        title = "all families (pooled)" if family == "(all)" else f"family {family}"
        fig.suptitle(f"{title}: reported {metric_name} vs weight metrics")
        paths += _save(fig, out, f"trend_{_slug(family)}")
    return paths


def plot_correlation_flow(flow: list[dict], out: Path) -> list[Path]:
    """Per family: alpha against relative layer depth, one line per model (Martin & Mahoney's correlation flow)."""
    by_family: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in flow:
        by_family[row["family"]][row["repo_id"]].append(row)
    paths: list[Path] = []
    for family, models in sorted(by_family.items()):
        fig, ax = plt.subplots(figsize=(7, 4))
        for repo_id, rows in sorted(models.items()):
            ax.plot(
                [r["depth"] for r in rows], [r["alpha"] for r in rows], marker="o", ms=3, label=repo_id.split("/")[-1]
            )
        ax.axhspan(2, 6, color="tab:green", alpha=0.07, label="2 ≤ α ≤ 6")
        ax.set_xlabel("relative layer depth")
        ax.set_ylabel("alpha")
        ax.set_title(f"correlation flow: {family}")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        paths += _save(fig, out, f"flow_{_slug(family)}")
    return paths


def plot_esd(esd: dict, layer: dict, out: Path) -> list[Path]:
    """One layer's ESD on log-log axes with the fitted power law from xmin, and the randomized ESD overlaid with
    its largest eigenvalue marked: a correlation trap shows as that line far right of the randomized bulk. The
    title says whether the lake held the full ESD or the tail and a sketch of the bulk (flows/lake/esd.py)."""
    from .lake.esd import eigenvalues

    evals, rand, storage = eigenvalues(esd)
    evals = evals[evals > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.logspace(math.log10(evals.min()), math.log10(evals.max()), 60)
    ax.hist(evals, bins=bins, density=True, alpha=0.55, color="royalblue", label="ESD of W")
    if rand is not None and len(rand):
        rand = rand[rand > 0]
        rbins = np.logspace(math.log10(rand.min()), math.log10(max(rand.max(), evals.max())), 60)
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
    return _save(fig, out, f"esd_{_slug(esd['repo_id'])}_{_slug(esd['name'])}")
