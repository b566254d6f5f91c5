"""The lake's ``correlations`` table: every weight metric against every reported metric, per family and pooled.

``refresh_correlations`` reads each repo's latest scan and its reported values (``queries/reported_values.sql``:
one value per model and metric, percentages on the fraction scale) and stores the rows of
``flows.leaderboard.stats.correlation_table`` for every reported metric. It runs after each scan
(``flows.scanning.loop.record_scan``) and each ``wwhub evals import``, so ``wwhub query correlations``, the
leaderboard, the report and ``duckdb`` users read the same numbers.

Work proportional to what changed: a scan passes the families it wrote models of, an evals import the families of
the repos it concerns, and only those families' rows, the rows of families a rescanned model moved out of
(``_families_left``) and the pooled ``(all)`` rows are recomputed; every other family's stored rows are kept (only
their BH-adjusted p and verdict are recomputed, since the adjustment counts every row of a metric), so the table
equals a full recomputation's. The pooled rows read every model's point but cost O(n log n): above
``stats.BOOTSTRAP_MAX_N`` (500) models the ρ and τ intervals are Fieller-Hartley-Pearson Fisher-z intervals instead
of a bootstrap (the Pearson interval is Fisher z at every size), so no bootstrap ever resamples more than 500
models; below that size the rows are exactly today's bootstrap rows.

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
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..lake import Lake
from ..lake.schema import column_names
from ..lake.sql import query_columns, run_query
from . import stats

WEIGHT_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")
TABLE = "correlations"
SEED = 0


def _points(root: Path, variables: dict, metric: str | None = None) -> dict[str, np.ndarray]:
    """One entry per (model, reported metric), in (metric, family, repo) order, as columns (NumPy arrays, NULLs
    masked): family, reported_metric, value, dataset, higher_is_better, the weight metrics, log10 size. Columns
    rather than rows: a 100 000-model lake has 100 000 points per metric, and the pooled rows need them all."""
    where = ["m.status IN ('scanned', 'partial')"]
    if metric is not None:
        where.append("r.metric = getvariable('only_metric')")
        variables = dict(variables, only_metric=metric)
    sql = (
        f"SELECT m.family, r.metric AS reported_metric, r.value, r.dataset, r.higher_is_better, "
        f"{', '.join(f'm.{c}' for c in WEIGHT_METRICS)}, log10(nullif(m.num_params, 0)) AS log_size "
        f"FROM models_latest m JOIN reported_values r USING (repo_id) WHERE {' AND '.join(where)} "
        "ORDER BY r.metric, m.family, m.repo_id"
    )
    return query_columns(root, sql, variables)


def _as_float(column: np.ndarray) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(column, dtype=float), math.nan)


def _present(column: np.ndarray) -> np.ndarray:
    return ~np.ma.getmaskarray(column)


def _datasets(families: list, datasets: list, present: dict[str, np.ndarray], wanted: set[str] | None) -> dict:
    """The datasets behind each (family, weight metric) row, ', '-joined: of the pooled rows, and of the families
    in ``wanted`` (None: every family)."""
    names = np.array(["" if d is None else d for d in datasets], dtype=object)
    found: dict[tuple[str, str], set[str]] = {
        (stats.POOLED, m): set(names[mask].tolist()) for m, mask in present.items()
    }
    for i, family in enumerate(map(str, families)):
        if wanted is None or family in wanted:
            for m, mask in present.items():
                if mask[i]:
                    found.setdefault((family, m), set()).add(names[i])
    return {key: ", ".join(sorted(values)) for key, values in found.items()}


def _families_left(kept_rows: list[dict], families: list, values: np.ndarray, metrics: dict) -> set[str]:
    """The families of ``kept_rows`` whose stored n is no longer the number of their usable points, to be
    recomputed too: a model moved out of them (rescanned into another family, the one named). A scan changes an
    unnamed family's points only by such a departure (an arrival or a new value names the family), and a departure
    always lowers a count, so every family whose rows went stale is found."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(str(f), len(index)) for f in families), dtype=np.int64, count=len(families))
    counts = {}
    for metric, column in metrics.items():
        usable = np.isfinite(_as_float(column)) & np.isfinite(values)
        counts[metric] = np.bincount(codes[usable], minlength=len(index))
    return {
        r["family"] for r in kept_rows if r["family"] not in index or counts[r["metric"]][index[r["family"]]] != r["n"]
    }


def compute_rows(
    points: dict[str, np.ndarray], only_families: set[str] | None = None, kept_rows: list[dict] = ()
) -> list[dict]:
    """``correlation_table`` rows for each reported metric in ``points`` (see ``_points``); with ``only_families``,
    the rows of those families and the pooled rows, plus ``kept_rows`` (the other families' stored rows, whose
    BH-adjusted p and verdict are recomputed)."""
    reported_column = np.asarray(np.ma.asarray(points["reported_metric"]).tolist(), dtype=object)
    rows = []
    for reported in sorted(set(reported_column.tolist())):
        at = np.flatnonzero(reported_column == reported)
        families = np.ma.asarray(points["family"][at]).tolist()
        metrics = {m: points[m][at] for m in WEIGHT_METRICS}
        values = _as_float(points["value"][at])
        wanted, kept = only_families, [r for r in kept_rows if r["reported_metric"] == reported]
        if wanted is not None:
            left = _families_left(kept, families, values, metrics)
            wanted, kept = wanted | left, [r for r in kept if r["family"] not in left]
        table = stats.correlation_table(
            families,
            values,
            {m: _as_float(column) for m, column in metrics.items()},
            _as_float(points["log_size"][at]),
            seed=SEED,
            label=reported,
            only_families=wanted,
            kept_rows=kept,
        )
        datasets = _datasets(
            families,
            np.ma.asarray(points["dataset"][at]).tolist(),
            {m: _present(column) for m, column in metrics.items()},
            wanted,
        )
        higher_is_better = np.ma.asarray(points["higher_is_better"][at]).tolist()[0]
        extra = dict(reported_metric=reported, higher_is_better=higher_is_better)
        for row in table:
            if "datasets" not in row:  # a kept row has its own
                row = dict(row, **extra, datasets=datasets[(str(row["family"]), row["metric"])])
            rows.append({name: row.get(name) for name in column_names(TABLE)})
    return rows


def refresh_correlations(root: str | Path, families: Iterable[str] | None = None) -> int:
    """Recompute the ``correlations`` table from the lake's models and reported values and replace it whole, in
    one commit (readers see the old table or the new one); the row count.

    ``families``: the families whose models or reported values changed (a scan's, an import's). Only their rows
    and the pooled rows are recomputed; every other family's stored rows are kept (their BH-adjusted p and verdict
    follow the new rows), which gives the table a full refresh would. A lake with no stored rows yet is refreshed
    in full."""
    root = Path(root)
    points = _points(root, {"prefer_import": False, "dataset": None})
    kept, only = [], None
    if families is not None:
        only = {str(f) for f in families}
        kept = [r for r in read_all_correlations(root) if r["family"] not in only and r["family"] != stats.POOLED]
        if not kept:
            only = None  # nothing stored to keep: every family's rows are computed
    rows = compute_rows(points, only, kept)
    Lake(root).replace_derived(TABLE, rows)
    return len(rows)


def families_with_reported_values(root: str | Path, family_of: dict[str, str]) -> set[str]:
    """The families (``family_of``: repo_id → family) of the repos with any evals row in the lake: only their
    models can be points of the table, so a scan of models without reported values changes no correlation."""
    if not family_of:
        return set()
    sql = "SELECT DISTINCT repo_id FROM evals WHERE list_contains(getvariable('repos'), repo_id)"
    return {family_of[r["repo_id"]] for r in run_query(root, sql, {"repos": sorted(family_of)})}


def read_all_correlations(root: Path) -> list[dict]:
    """Every stored row of the table."""
    return run_query(root, "SELECT * FROM correlations")


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
