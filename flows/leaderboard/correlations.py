"""The lake's ``correlations`` table: every weight metric against every reported metric, per family and pooled.

``refresh_correlations`` reads each repo's latest scan and its reported values (``queries/reported_values.sql``:
one value per model and metric, percentages on the fraction scale) and stores, for every reported metric, the
rows of ``flows.leaderboard.stats.correlation_table`` (its ``group_rows`` then ``finish_rows``). It runs after each scan
(``flows.scanning.loop.record_scan``) and each ``wwhub evals import``, so ``wwhub query correlations``, the
leaderboard, the report and ``duckdb`` users read the same numbers.

Work proportional to what changed: a scan passes the models it wrote, an evals import the repos it concerns.
With the cache of the stored table's points and the pooled groups' rank states (``CACHE``: an Arrow file in the
lake, named after the table's segment it goes with), only those models' points are read (views restricted to them),
the rows of the families they left or joined and the pooled ``(all)`` rows are recomputed, and every other family's
stored rows are kept (only their BH-adjusted p and verdict are recomputed, since the adjustment counts every row of
a metric). The pooled rows need ranks and Kendall's concordance over every model: ``stats.RankState`` keeps them,
updated in O(n) per changed model instead of sorting n points again, equal to scipy's (τ to the last bit). Without a
cache that matches the table (a lake from an older wwhub, a crash between the two writes), every point is read, the
families whose stored counts no longer match are recomputed too (``_families_left``), and the cache is written for
the next scan. Either way the table equals a full recomputation's (tested). Above ``stats.BOOTSTRAP_MAX_N`` (500)
models the ρ and τ intervals are Fieller-Hartley-Pearson Fisher-z intervals instead of a bootstrap (the Pearson
interval is Fisher z at every size), so no bootstrap ever resamples more than 500 models.

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

import bisect
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..lake import Lake
from ..lake.files import replace_bytes
from ..lake.sql import query_arrow, run_query
from . import stats

WEIGHT_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")
TABLE = "correlations"
SEED = 0

# The points behind the stored table and the rank states of its pooled groups (``stats.RankState``), so that a scan
# of a few models updates the pooled rows in O(n) without reading every model again. A cache: named after the
# table's segment it was computed with, ignored (and rebuilt) when it does not match, never the source of a row.
CACHE = Path("cache") / "correlation_points.arrow"
# Beside it: the models and evals segments the cached points reflect (JSON, with the table's segment). A refresh
# also takes up the repos of any segment committed since, so a scan killed between its commits and its refresh
# loses no point. (A commit that only hides rows, with no new segment, names its repos itself: an evals import that
# replaces an earlier one passes the repos of both.)
SEEN = Path("cache") / "correlation_points.seen.json"
SOURCES = ("models", "evals")
CACHE_FORMAT = "1"
# Above this many changed points of one reported metric, its pooled rank states are rebuilt by sorting (once,
# O(n log n)) instead of being updated point by point (O(n) each).
MAX_POINT_UPDATES = 32
# Above this many changed models (an evals import of a whole leaderboard), the refresh reads every point: one query
# over the lake costs less than a view restricted to thousands of named repos.
MAX_CHANGED_REPOS = 2000
# Each refresh splices a few slices into the cached points; past this many chunks they are combined before writing.
MAX_CHUNKS = 64
_KEY = ("family", "repo_id")


# A missing number is NaN in the points, not NULL: a float column without nulls is read as a NumPy array without
# a copy.
_NAN = "'NaN'::DOUBLE"


def _points(root: Path, variables: dict, metric: str | None = None, repos: list[str] | None = None):
    """One row per (model, reported metric), in (reported metric, family, repo) order, as a ``pyarrow.Table``:
    reported_metric, family, repo_id, value, dataset, higher_is_better, the weight metrics, log10 size (NaN where
    missing). With ``repos``, only those models' rows (read from the segments that may hold them)."""
    where = ["m.status IN ('scanned', 'partial')"]
    if metric is not None:
        where.append("r.metric = getvariable('only_metric')")
        variables = dict(variables, only_metric=metric)
    sql = (
        f"SELECT r.metric AS reported_metric, m.family, m.repo_id, r.value, r.dataset, r.higher_is_better, "
        f"{', '.join(f'coalesce(m.{c}, {_NAN}) AS {c}' for c in WEIGHT_METRICS)}, "
        f"coalesce(log10(nullif(m.num_params, 0)), {_NAN}) AS log_size "
        f"FROM models_latest m JOIN reported_values r USING (repo_id) WHERE {' AND '.join(where)} "
        "ORDER BY r.metric, m.family, m.repo_id"
    )
    return query_arrow(root, sql, variables, repos=repos)


def _floats(column) -> np.ndarray:
    """A numeric Arrow column as float64, NULL as NaN."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.type != pa.float64():
        column = pc.cast(column, pa.float64())
    return column.to_numpy()


def _codes(column) -> tuple[list[str], np.ndarray]:
    """(distinct values, index of each row's value): a string column grouped without sorting its strings."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pc.fill_null(column, "")).combine_chunks()
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False)


def _datasets(family_codes, dataset_codes, present: dict[str, np.ndarray], wanted: set[str] | None) -> dict:
    """The datasets behind each (family, weight metric) row, ', '-joined: of the pooled rows, and of the families
    in ``wanted`` (None: every family)."""
    family_names, families = family_codes
    dataset_names, datasets = dataset_codes
    found = {}
    chosen = np.ones(len(family_names), bool)
    if wanted is not None:
        chosen = np.array([f in wanted for f in family_names], bool) if family_names else chosen
    for metric, mask in present.items():
        present_datasets = np.flatnonzero(np.bincount(datasets[mask], minlength=len(dataset_names)))
        found[(stats.POOLED, metric)] = ", ".join(sorted(dataset_names[d] for d in present_datasets))
        rows = mask & chosen[families]
        pairs = np.unique(families[rows] * len(dataset_names) + datasets[rows])
        per_family: dict[int, set[str]] = {}
        for pair in pairs.tolist():
            per_family.setdefault(pair // len(dataset_names), set()).add(dataset_names[pair % len(dataset_names)])
        for family, names in per_family.items():
            found[(family_names[family], metric)] = ", ".join(sorted(names))
    return found


def _families_left(kept, family_codes, values: np.ndarray, metrics: dict) -> set[str]:
    """The families of the ``kept`` rows (an Arrow table) whose stored n is no longer the number of their usable
    points, to be recomputed too: a model moved out of them (rescanned into another family). Only needed without
    the cache (which knows each changed model's old family): a scan changes an unnamed family's points only by such
    a departure, and a departure always lowers a count, so every family whose rows went stale is found."""
    names, codes = family_codes
    index = {name: i for i, name in enumerate(names)}
    counts = {
        metric: np.bincount(codes[np.isfinite(column) & np.isfinite(values)], minlength=len(names))
        for metric, column in metrics.items()
    }
    return {
        family
        for family, metric, n in zip(*(kept.column(c).to_pylist() for c in ("family", "metric", "n")), strict=True)
        if family not in index or counts[metric][index[family]] != n
    }


def _runs(column) -> list[tuple[str, int, int]]:
    """(value, start, stop) of each run of equal values of a string column sorted by that value."""
    import pyarrow.compute as pc

    counts = sorted((c["values"], c["counts"]) for c in pc.value_counts(column).to_pylist())
    stops = np.cumsum([n for _, n in counts], dtype=np.int64)
    return [(value, int(stop - n), int(stop)) for (value, n), stop in zip(counts, stops, strict=True)]


def compute_rows(
    points,
    only_families: set[str] | None = None,
    kept=None,
    states: dict | None = None,
    check_counts: bool = True,
    changed_metrics: set[str] | None = None,
):
    """(the table, the rank states of its pooled groups): ``correlation_table`` rows for each reported metric in
    ``points`` (see ``_points``) as an Arrow table in the table's columns and order, and ``states[reported]
    [metric]`` (given ones are used, missing ones computed). With ``only_families``, the rows of those families
    and the pooled rows are computed and ``kept`` (an Arrow table of the other families' stored rows) completes
    the table: only their BH-adjusted p and verdict are recomputed. ``check_counts``: also recompute the kept
    families whose stored n no longer matches their points (``_families_left``), for a caller that does not know
    every family a change touched. ``changed_metrics``: the reported metrics whose points moved (None: any may
    have); ``kept`` then holds every stored row of the others, which stand as they are (with their states): no
    point of theirs moved, and BH adjusts within one reported metric."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..lake.schema import arrow_schema

    schema = arrow_schema(TABLE)
    out_states, tables = {}, []
    for reported, start, stop in _runs(points.column("reported_metric")):
        if changed_metrics is not None and reported not in changed_metrics:
            standing = kept.filter(pc.equal(kept.column("reported_metric"), reported))
            tables.append(standing.select(schema.names).cast(schema))
            out_states[reported] = states[reported]
            continue
        part = points.slice(start, stop - start)
        family_codes = _codes(part.column("family"))
        metrics = {m: _floats(part.column(m)) for m in WEIGHT_METRICS}
        values = _floats(part.column("value"))
        wanted = only_families
        stored = None
        if kept is not None:
            stored = kept.filter(pc.equal(kept.column("reported_metric"), reported))
        if wanted is not None and stored is not None and check_counts:
            left = _families_left(stored, family_codes, values, metrics)
            wanted = wanted | left
            stays = pc.invert(pc.is_in(stored.column("family"), value_set=pa.array(sorted(left), pa.string())))
            stored = stored.filter(stays)
        pooled = (states or {}).get(reported) or {m: stats.RankState.of(c, values) for m, c in metrics.items()}
        out_states[reported] = pooled
        computed = stats.group_rows(
            None,
            values,
            metrics,
            _floats(part.column("log_size")),
            seed=SEED,
            label=reported,
            only_families=wanted,
            family_codes=family_codes,
            pooled_states=pooled,
        )
        datasets = _datasets(
            family_codes,
            _codes(part.column("dataset")),
            {m: np.isfinite(column) & np.isfinite(values) for m, column in metrics.items()},
            wanted,
        )
        extra = dict(reported_metric=reported, higher_is_better=part.column("higher_is_better")[0].as_py())
        rows = [dict(row, **extra, datasets=datasets[(str(row["family"]), row["metric"])]) for row in computed]
        table = pa.Table.from_pylist(rows, schema=schema)
        if stored is not None and stored.num_rows:
            table = pa.concat_tables([table, stored.select(schema.names).cast(schema)])
        tables.append(_finished(table, list(metrics)))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return table, out_states


def _finished(table, metrics: list[str]):
    """``stats.finish_rows`` applied to one reported metric's rows, sorted as the table is: families by name,
    the pooled rows last, weight metrics in ``WEIGHT_METRICS`` order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in stats.FINISH_INPUTS}
    finished = stats.finish_rows(columns)
    for name, column in finished.items():
        at = table.schema.get_field_index(name)
        field = table.schema.field(at)
        table = table.set_column(at, field, pa.array(column, field.type, from_pandas=True))
    position = {metric: i for i, metric in enumerate(metrics)}
    keys = pa.table(
        {
            "pooled": columns["family"] == stats.POOLED,
            "family": table.column("family"),
            "position": [position[m] for m in columns["metric"]],
        }
    )
    return table.take(pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names]))


# ----- the cache of points and rank states ------------------------------------------------------------------------


def _read_cache(lake: Lake, segment: str):
    """(points, the whole cached table, the states' integers) computed with the table stored in ``segment``, or
    None (no cache, one computed with another version of the table, or a file left half-written). Memory-mapped:
    nothing is copied until ``_cached_states``."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(lake.root / CACHE)) as source:
            table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid):
        return None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("format") != CACHE_FORMAT or meta.get("segment") != segment:
        return None
    points = table.select([c for c in table.column_names if not c.startswith("rank_")])
    return points, table, json.loads(meta["states"])


def cache_facts(root) -> dict | None:
    """What ``wwhub lake info`` says of the cache (None: there is none): its file and bytes, and whether it holds
    the points the stored table was computed with (``current``, then ``points``). A cache that is not current is
    ignored: the next refresh reads every point and recomputes every row, then writes a current one."""
    lake = Lake.open(root)
    path = lake.root / CACHE
    if not path.is_file():
        return None
    segment = lake.derived_segment(TABLE)
    cached = _read_cache(lake, segment.file) if segment else None
    facts = {"file": str(path), "bytes": path.stat().st_size, "current": cached is not None}
    if cached is not None:
        facts["points"] = cached[0].num_rows
    return facts


def _cached_states(table, integers: dict) -> dict[str, dict[str, stats.RankState]]:
    """The rank states of the cached table, per reported metric and weight metric. Their ranks are read-only views
    of the memory-mapped file: the states of a reported metric that changes are copied by ``_moved_states``, the
    others are only read."""
    states = {}
    for reported, start, stop in _runs(table.column("reported_metric")):
        ranks = {
            name: table.column(name).slice(start, stop - start).to_numpy(zero_copy_only=False)
            for name in table.column_names
            if name.startswith("rank_")
        }
        states[reported] = {
            m: stats.RankState(ranks[f"rank_x:{m}"], ranks[f"rank_y:{m}"], **integers[reported][m])
            for m in WEIGHT_METRICS
        }
    return states


def _write_cache(lake: Lake, segment: str, points, states: dict) -> None:
    """The points and rank states the table stored in ``segment`` was computed with: an Arrow file (memory-mapped
    when read), written under a temporary name and renamed."""
    import pyarrow as pa

    runs = _runs(points.column("reported_metric"))
    table = points
    for axis in "xy":
        for m in WEIGHT_METRICS:
            parts = [getattr(states[reported][m], f"rank_{axis}") for reported, _, _ in runs]
            ranks = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.array([])
            table = table.append_column(f"rank_{axis}:{m}", pa.array(ranks, pa.float64()))
    integers = {
        reported: {m: {"concordance": s.concordance, "ties": s.ties} for m, s in states[reported].items()}
        for reported, _, _ in runs
    }
    if table.column(0).num_chunks > MAX_CHUNKS:
        table = table.combine_chunks()
    table = table.replace_schema_metadata({"format": CACHE_FORMAT, "segment": segment, "states": json.dumps(integers)})
    path = lake.root / CACHE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Keys:
    """(family, repo_id) of the rows of a points table that are not ``removed`` (sorted), for bisect without
    converting every row."""

    def __init__(self, part, removed: np.ndarray):
        self.family, self.repo = part.column("family"), part.column("repo_id")
        self.size = part.num_rows - removed.size
        self.kept_cuts = _kept_cuts(removed)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[str, str]:
        row = i + bisect.bisect_right(self.kept_cuts, i)
        return (self.family[row].as_py(), self.repo[row].as_py())


def _kept_cuts(removed: np.ndarray) -> list[int]:
    """For each removed row (sorted), the index among the kept rows of the first kept row after it."""
    return (removed - np.arange(removed.size)).tolist()


def _splice_plan(old_size: int, removed: np.ndarray, where: np.ndarray) -> list[tuple[int, int, int, int]]:
    """How ``np.insert(np.delete(old, removed), where, new)`` (both sorted) is made of slices: per run of kept
    rows, (its first kept index, its first old row, its length, the new rows inserted before it), and a last
    entry of length 0 for the new rows after every kept row. No index array over the whole table is made."""
    kept_cuts, inserted_at = _kept_cuts(removed), where.tolist()
    kept = old_size - removed.size
    cuts = sorted({0, kept, *kept_cuts, *inserted_at})
    plan = []
    for start, stop in zip(cuts, cuts[1:] + [kept], strict=True):
        plan.append(
            (
                start,
                start + bisect.bisect_right(kept_cuts, start),
                stop - start,
                bisect.bisect_right(inserted_at, start),
            )
        )
    return plan


def _spliced(old, removed: np.ndarray, new, where: np.ndarray):
    """``old`` without its rows ``removed``, with the rows of ``new`` inserted before the kept rows ``where`` (as
    ``np.insert``), built from slices of both: nothing is copied."""
    import pyarrow as pa

    pieces, placed = [], 0
    for _, old_start, length, inserted in _splice_plan(old.num_rows, removed, where):
        pieces += [new.slice(j, 1) for j in range(placed, inserted)]
        placed = inserted
        if length:
            pieces.append(old.slice(old_start, length))
    pieces += [new.slice(j, 1) for j in range(placed, new.num_rows)]
    return pa.concat_tables(pieces) if pieces else old.slice(0, 0)


def _splice_in_place(buffer: np.ndarray, size: int, removed: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``np.insert(np.delete(buffer[:size], removed), where, nan)`` made in ``buffer`` itself (large enough for the
    result) and returned as a view of it: each run of kept values is moved by one slice assignment (a memmove),
    those moving left first, left to right, then those moving right, right to left, so that no run overwrites one
    not yet moved. A rescan of 100 000 ranks then faults in no fresh page."""
    moves = [
        (start + inserted, old_start, length)
        for start, old_start, length, inserted in _splice_plan(size, removed, where)
        if length
    ]
    for target, source, length in moves:
        if target <= source:
            buffer[target : target + length] = buffer[source : source + length]
    for target, source, length in reversed(moves):
        if target > source:
            buffer[target : target + length] = buffer[source : source + length]
    buffer[where + np.arange(where.size)] = np.nan
    return buffer[: size - removed.size + where.size]


def _updated(cached, states: dict, repos: list[str], new) -> tuple:
    """(points, states, changed metrics): the cached points with ``repos``' rows replaced by ``new`` (each reported
    metric kept in (family, repo) order), the rank states carried along point by point (a reported metric with
    more than ``MAX_POINT_UPDATES`` changed points gets none: compute_rows rebuilds its states), and the reported
    metrics that had a point removed or added (or no cached states)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    leaving_repos = pa.array(repos, pa.string())
    old_runs = {r: (start, stop) for r, start, stop in _runs(cached.column("reported_metric"))}
    new_runs = {r: (start, stop) for r, start, stop in _runs(new.column("reported_metric"))}
    parts, out_states, changed = [], {}, set()
    for reported in sorted(set(old_runs) | set(new_runs)):
        start, stop = old_runs.get(reported, (0, 0))
        old_part = cached.slice(start, stop - start)
        start, stop = new_runs.get(reported, (0, 0))
        new_part = new.slice(start, stop - start).cast(cached.schema)
        leaving = pc.is_in(old_part.column("repo_id"), value_set=leaving_repos)
        removed = np.flatnonzero(leaving.to_numpy(zero_copy_only=False))  # old positions of the leaving rows
        keys = _Keys(old_part, removed)
        new_keys = zip(*(new_part.column(c).to_pylist() for c in _KEY), strict=True)
        where = np.array([bisect.bisect_left(keys, k) for k in new_keys], dtype=np.int64)
        part = _spliced(old_part, removed, new_part, where)
        if removed.size or new_part.num_rows:
            part = _numbers_combined(part)
        parts.append(part)
        reported_states = states.get(reported)
        changes = removed.size + new_part.num_rows
        if changes or reported_states is None:  # without states its rows are recomputed with them
            changed.add(reported)
        if reported_states is None or changes > MAX_POINT_UPDATES:
            continue
        if changes:
            _moved_states(reported_states, old_part, part, removed, where)
        out_states[reported] = reported_states
    return (pa.concat_tables(parts) if parts else cached.slice(0, 0)), out_states, changed


def _numbers_combined(part):
    """``part`` with each float column in one piece: read as NumPy arrays without a copy by the rank moves, the
    statistics and the cache writer alike (a spliced column is in pieces, which each of them would copy)."""
    import pyarrow as pa

    for index, field in enumerate(part.schema):
        if pa.types.is_floating(field.type) and part.column(index).num_chunks > 1:
            part = part.set_column(index, field, pa.chunked_array([part.column(index).combine_chunks()]))
    return part


def _moved_states(states: dict, old_part, part, removed: np.ndarray, where: np.ndarray) -> None:
    """Carry one reported metric's rank states from the points ``old_part`` to ``part`` (its rows ``removed``
    gone, the new rows inserted before the kept rows ``where``): each removed point counted out, the ranks spliced,
    each new point counted in. The ranks are copied once out of the memory-mapped cache, into arrays with room for
    the new points, and spliced there."""
    values_before, values_after = _floats(old_part.column("value")), _floats(part.column("value"))
    size = old_part.num_rows
    for m, state in states.items():
        buffers = []
        for axis in ("rank_x", "rank_y"):
            buffer = np.empty(size + where.size)
            buffer[:size] = getattr(state, axis)
            setattr(state, axis, buffer[:size])
            buffers.append(buffer)
        before = _floats(old_part.column(m))
        for at in removed[::-1]:
            state.remove(before, values_before, int(at))
        state.rank_x, state.rank_y = (_splice_in_place(b, size, removed, where) for b in buffers)
        after = _floats(part.column(m))
        for at in where + np.arange(where.size):  # the new rows' final positions
            state.insert(after, values_after, int(at))


def refresh_correlations(root: str | Path, repos: Iterable[str] | None = None) -> int:
    """Recompute the ``correlations`` table from the lake's models and reported values and replace it whole, in
    one commit (readers see the old table or the new one); the row count.

    ``repos``: the models whose rows or reported values changed (a scan's, an evals import's); None recomputes
    everything. With the cache of the stored table's points (``CACHE``), only those models' points are read; the
    rows of the families they left or joined and the pooled rows are recomputed (the pooled rank states updated
    point by point) and every other family's stored rows are kept (their BH-adjusted p and verdict follow the
    new rows): the table a full refresh gives (tested). Without the cache, every point is read and the families
    to recompute are found from the stored counts (``_families_left``). A change that moves no point (models
    without a reported value, a rescan that gives the same metrics and values) commits nothing."""
    root = Path(root)
    lake = Lake(root)
    with lake.derived_lock(TABLE):  # a concurrent refresh would start from the table this one replaces
        return _refresh(lake, None if repos is None else sorted(set(repos)))


def _refresh(lake: Lake, repos: list[str] | None) -> int:
    """``refresh_correlations`` under the lock: from the cache when it matches the table and ``repos`` are given,
    else from every point."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = lake.root
    variables = {"prefer_import": False, "dataset": None}
    snapshot = lake.snapshot()  # before any point is read: a segment committed meanwhile stays unseen
    segment = lake.derived_segment(TABLE, snapshot)
    table_file = segment.file if segment else ""
    unchanged = segment.rows if segment else 0
    only, states, cached, changed_metrics = None, None, None, None
    if repos is not None:
        cached = _read_cache(lake, table_file)
        seen = _read_seen(lake, table_file) if cached is not None else None
        if seen is None:
            cached = None
        else:
            repos = sorted(set(repos) | _repos_committed_since(lake, snapshot, seen))
    if repos is not None and len(repos) > MAX_CHANGED_REPOS:
        repos, cached = None, None
    if repos is None:
        points = _points(root, variables)
    elif cached is not None:
        changed = pa.array(repos, pa.string())
        new = _points(root, variables, repos=repos)
        old = cached[0].filter(pc.is_in(cached[0].column("repo_id"), value_set=changed))
        moved = _moved(old, new)
        if not moved:  # no point moved (a rescan of the same weights and card, or no reported value)
            _write_seen(lake, table_file, snapshot)
            return unchanged
        moving = pa.array(moved, pa.string())
        old = old.filter(pc.is_in(old.column("repo_id"), value_set=moving))
        new = new.filter(pc.is_in(new.column("repo_id"), value_set=moving))
        only = set(old.column("family").to_pylist()) | set(new.column("family").to_pylist())
        points, states, changed_metrics = _updated(cached[0], _cached_states(*cached[1:]), moved, new)
    elif not _any_reported(root, repos):
        return unchanged
    else:
        points = _points(root, variables)
        now = points.filter(pc.is_in(points.column("repo_id"), value_set=pa.array(repos, pa.string())))
        only = set(now.column("family").to_pylist())
    kept = None
    if only is not None and segment is not None:
        # ParquetFile, not read_table: read_table loads pyarrow.dataset (and pandas), 0.1 s of a scan's start-up.
        stored = pq.ParquetFile(lake.root / segment.file).read()
        recomputed = pc.is_in(stored.column("family"), value_set=pa.array(sorted(only | {stats.POOLED})))
        if changed_metrics is not None:  # the rows of a reported metric none of whose points moved all stand
            moved_metrics = pa.array(sorted(changed_metrics), pa.string())
            recomputed = pc.and_(recomputed, pc.is_in(stored.column("reported_metric"), value_set=moved_metrics))
        kept = stored.filter(pc.invert(recomputed))
    if kept is None or not kept.num_rows:
        only, kept, changed_metrics = None, None, None  # nothing stored to keep: every family's rows are computed
    table, states = compute_rows(points, only, kept, states, states is None, changed_metrics)
    table_file = lake.replace_derived(TABLE, table)
    # The record first: renamed after the 20 MB cache, its rename waited 10-16 ms for the cache's pages to be
    # written out (ext4 flushes a file renamed over another). Either order is safe: each names the table it goes with.
    _write_seen(lake, table_file, snapshot)
    _write_cache(lake, table_file, points, states)
    return table.num_rows


def _moved(old, new) -> list[str]:
    """The repos whose points differ between ``old`` and ``new`` (both in (reported, family, repo) order)."""
    rows: dict[str, list] = {}
    for which, table in enumerate((old, new)):
        for row in table.to_pylist():
            row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}  # NaN != NaN
            rows.setdefault(row["repo_id"], [[], []])[which].append(row)
    return sorted(repo for repo, (before, after) in rows.items() if before != after)


def _read_seen(lake: Lake, table_file: str) -> set[str] | None:
    """The source segments the cached points reflect, or None (no record, or one for another table)."""
    try:
        record = json.loads((lake.root / SEEN).read_text())
    except (OSError, ValueError):
        return None
    return set(record["seen"]) if isinstance(record, dict) and record.get("segment") == table_file else None


def _write_seen(lake: Lake, table_file: str, snapshot) -> None:
    """Which source segments the cache reflects, tagged, like the cache, with the table they go with. Not flushed
    to the disk: after a power cut, a cache and a record that do not name the same table (or a record of fewer
    segments) only make the next refresh read more points, never a wrong table."""
    path = lake.root / SEEN
    path.parent.mkdir(parents=True, exist_ok=True)
    seen = sorted(s.file for table in SOURCES for s in snapshot.tables[table])
    replace_bytes(path, json.dumps({"segment": table_file, "seen": seen}).encode())


def _repos_committed_since(lake: Lake, snapshot, seen: set[str]) -> set[str]:
    """The repos of the models and evals segments that are not in ``seen``: one repo for a scan's commit (its
    segment's repo range), every repo of a folded segment (read from its repo_id column; their points are then
    compared, and only those that moved are recomputed)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: set[str] = set()
    for table in SOURCES:
        for segment in snapshot.tables[table]:
            if segment.file in seen or not segment.rows:
                continue
            if segment.repo_min is not None and segment.repo_min == segment.repo_max:
                found.add(segment.repo_min)
            else:
                column = pq.ParquetFile(lake.root / segment.file).read(columns=["repo_id"]).column("repo_id")
                found.update(r for r in pc.unique(column).to_pylist() if r is not None)
    return found


def _any_reported(root: Path, repos: list[str]) -> bool:
    """Whether any of ``repos`` has an evals row: only such models can be points of the table."""
    sql = "SELECT 1 FROM evals WHERE list_contains(getvariable('repos'), repo_id) LIMIT 1"
    return bool(run_query(root, sql, {"repos": repos}))


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
    table, _ = compute_rows(_points(root, variables, metric=metric))
    return [
        {k: v for k, v in r.items() if k != "reported_metric"}
        for r in table.to_pylist()
        if family is None or r["family"] == family
    ]
