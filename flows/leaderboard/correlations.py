"""The lake's ``correlations`` table: every weight metric against every reported metric, per family and pooled.

``refresh_correlations`` reads each repo's latest scan and its reported values (``queries/reported_values.sql``:
one value per model and metric, percentages on the fraction scale) and stores the rows of
``flows.leaderboard.stats.correlation_table`` for every reported metric. It runs after each scan
(``flows.scanning.loop.record_scan``) and each ``wwhub evals import``, so ``wwhub query correlations``, the
leaderboard, the report and ``duckdb`` users read the same numbers.

Columns (``CORRELATIONS_SCHEMA``, flows/lake/schema.py): reported_metric, family (``(all)`` = pooled), metric (the
weight metric), n, pearson_r, spearman_rho, kendall_tau, slope, intercept, r_squared, rmse (the OLS fit of the
reported value on the metric), families_agreeing, families_total, simpsons_paradox (pooled rows), pearson_p,
pearson_ci_low, pearson_ci_high, spearman_p, spearman_ci_low, spearman_ci_high, kendall_p, kendall_ci_low,
kendall_ci_high, pearson_p_adjusted (Benjamini-Hochberg over the rows of one weight metric), verdict,
within_family_r, within_family_ci_low, within_family_ci_high (pooled rows), partial_r_size (controlling for log10
parameter count), higher_is_better (of the reported metric), datasets (the datasets the values come from), notes
(why a value is missing). See flows/leaderboard/stats.py for the formulas.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..lake import Lake
from ..lake.schema import column_names
from ..lake.sql import run_query
from . import stats

WEIGHT_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")
TABLE = "correlations"
SEED = 0


def _points(root: Path, variables: dict, metric: str | None = None) -> list[dict]:
    """One row per (model, reported metric): family, the weight metrics, the value, its dataset, log10 size."""
    where = ["m.status IN ('scanned', 'partial')"]
    if metric is not None:
        where.append("r.metric = getvariable('only_metric')")
        variables = dict(variables, only_metric=metric)
    sql = (
        f"SELECT m.family, m.repo_id, r.metric AS reported_metric, r.value, r.dataset, r.higher_is_better, "
        f"{', '.join(f'm.{c}' for c in WEIGHT_METRICS)}, log10(nullif(m.num_params, 0)) AS log_size "
        f"FROM models_latest m JOIN reported_values r USING (repo_id) WHERE {' AND '.join(where)} "
        "ORDER BY r.metric, m.family, m.repo_id"
    )
    return run_query(root, sql, variables)


def _as_float(values: list) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def compute_rows(points: list[dict]) -> list[dict]:
    """``correlation_table`` rows for each reported metric in ``points`` (see ``_points``)."""
    by_metric: dict[str, list[dict]] = {}
    for point in points:
        by_metric.setdefault(point["reported_metric"], []).append(point)
    rows = []
    for reported, members in sorted(by_metric.items()):
        table = stats.correlation_table(
            [p["family"] for p in members],
            _as_float([p["value"] for p in members]),
            {m: _as_float([p[m] for p in members]) for m in WEIGHT_METRICS},
            _as_float([p["log_size"] for p in members]),
            seed=SEED,
            label=reported,
        )
        datasets: dict[tuple[str, str], set[str]] = {}
        for p in members:
            for m in WEIGHT_METRICS:
                if p[m] is not None:
                    for group in (p["family"], stats.POOLED):
                        datasets.setdefault((group, m), set()).add(p["dataset"] or "")
        extra = dict(reported_metric=reported, higher_is_better=members[0]["higher_is_better"])
        for row in table:
            row = dict(row, **extra, datasets=", ".join(sorted(datasets[(row["family"], row["metric"])])))
            rows.append({name: row.get(name) for name in column_names(TABLE)})
    return rows


def refresh_correlations(root: str | Path) -> int:
    """Recompute the ``correlations`` table from the lake's models and reported values and replace it whole, in
    one commit (readers see the old table or the new one); the row count."""
    root = Path(root)
    rows = compute_rows(_points(root, {"prefer_import": False, "dataset": None}))
    Lake(root).replace_derived(TABLE, rows)
    return len(rows)


def read_correlations(root: Path, metric: str, family: str | None = None) -> list[dict]:
    """The stored rows of one reported metric (and family), in table order."""
    sql = "SELECT * EXCLUDE (reported_metric) FROM correlations WHERE reported_metric = getvariable('only_metric')"
    variables = {"only_metric": metric}
    if family is not None:
        sql += " AND family = getvariable('only_family')"
        variables["only_family"] = family
    return run_query(root, sql, variables)


def correlations_for(
    root: Path, metric: str, family: str | None = None, prefer_import: bool = False, dataset: str | None = None
) -> list[dict]:
    """The correlation rows a leaderboard shows (one family's, or all). Read from the table for the default
    precedence; computed on the spot for ``--prefer-import`` or ``--dataset``, which choose other reported values
    than the stored table, or for a lake whose table predates its models. Computed over every family even when one
    is asked for: the Benjamini-Hochberg adjustment counts every family's test."""
    if not prefer_import and not dataset:
        stored = read_correlations(root, metric, family)
        if stored:
            return stored
    variables = {"prefer_import": prefer_import, "dataset": dataset}
    rows = compute_rows(_points(root, variables, metric=metric))
    return [
        {k: v for k, v in r.items() if k != "reported_metric"} for r in rows if family is None or r["family"] == family
    ]
