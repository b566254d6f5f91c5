"""Every table of the lake, declared once: its Arrow schema and the columns whose values identify a batch of rows.

A write names the key values it replaces (``KEYS``): rows already in the lake with the same key are hidden by the
commit that brings the new ones, so a rescan, a re-import or a merge never doubles a model.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing

from ww_core.records import ARRAY_FIELDS, LayerDistance, LayerMetrics, ModelSummary

# Column types are DuckDB's names; Arrow schemas are derived on demand (readers never import pyarrow).
STRING, INT, FLOAT, BOOL, FLOATS = "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "DOUBLE[]"
TIMESTAMP = "TIMESTAMP WITH TIME ZONE"
_KEY_FIELDS = [("repo_id", STRING), ("revision", STRING), ("family", STRING)]


def _column_type(annotation) -> str:
    """Lake type of a dataclass field annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"__builtins__": __builtins__}, {})  # noqa: S307 - our own annotations
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return {int: INT, float: FLOAT, str: STRING, bool: BOOL}[annotation]


def _dataclass_fields(cls, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    return [(f.name, _column_type(f.type)) for f in dataclasses.fields(cls) if f.name not in skip]


LAYERS_SCHEMA = (
    _KEY_FIELDS
    + [
        ("shard", STRING),
        # Filled by the decoding pipeline: the expert index of a fused MoE matrix (null otherwise), the
        # quantization scheme the matrix was decoded from ('' for plain weights), the stored tensors it came from.
        ("expert", INT),
        ("quantization", STRING),
        ("source_tensors", STRING),
    ]
    + _dataclass_fields(LayerMetrics, skip=ARRAY_FIELDS)
)
# What the ESD plots and refits need, bounded per layer (flows/lake/esd.py): ``storage`` 'full' keeps every
# eigenvalue in ``evals``; 'tail' keeps the fitted tail exactly (up to a cap) in ``evals`` and a fixed-size
# quantile sketch of the rest in ``bulk_quantiles``. ``rand_*`` hold the same for the shuffled matrix.
ESD_SCHEMA = _KEY_FIELDS + [
    ("layer_id", INT),
    ("name", STRING),
    ("slice_id", INT),
    ("storage", STRING),
    ("num_evals", INT),
    ("evals", FLOATS),
    ("bulk_quantiles", FLOATS),
    ("rand_num_evals", INT),
    ("rand_evals", FLOATS),
    ("rand_bulk_quantiles", FLOATS),
]
EVALS_SCHEMA = _KEY_FIELDS + [
    ("source", STRING),
    ("task", STRING),
    ("dataset", STRING),
    ("split", STRING),
    ("metric", STRING),
    ("value", FLOAT),
    ("scale", STRING),  # 'percent' | 'fraction'
    ("n_shot", INT),
    ("raw_metric", STRING),  # the name as reported; `metric` holds the normalized one
    ("stderr", FLOAT),
    # Imported rows only (revision null): which import they came from, `<file label>-<digest of its origin>`
    # (flows/evals/ingest.py). Importing the same origin again replaces exactly these rows.
    ("import_id", STRING),
]
MODELS_SCHEMA = (
    _KEY_FIELDS
    + [
        ("status", STRING),
        ("reason", STRING),
        ("scanned_at", TIMESTAMP),
        ("scan_id", STRING),
        ("wwhub_version", STRING),
        ("source", STRING),
        ("options", STRING),
        ("num_shards", INT),
        ("bytes_read", INT),
        ("seconds", FLOAT),
        ("card_status", STRING),
        ("library_name", STRING),
        ("pipeline_tag", STRING),
        ("base_model", STRING),
        ("downloads", INT),
        ("likes", INT),
        ("last_modified", STRING),
        # model | adapter (a PEFT adapter's update ΔW) | merged (an adapter merged into a base: W + ΔW)
        ("model_kind", STRING),
        ("quantization", STRING),  # schemes dequantized, comma-separated ('' for a plain model)
        ("num_dequantized", INT),
        ("num_params", INT),  # logical parameters (dequantized shapes; an adapter's A and B)
        ("skip_reasons", STRING),  # JSON {reason: count} of the skipped layers
        ("layer_selection", STRING),  # the --layers selection the summary covers ('' = all layers)
    ]
    + _dataclass_fields(ModelSummary)
)
SCANS_SCHEMA = [
    ("scan_id", STRING),
    ("started_at", TIMESTAMP),
    ("ended_at", TIMESTAMP),
    ("families", STRING),
    ("source", STRING),
    ("listed", INT),
    ("scanned", INT),  # scanned or partial: the models this run wrote
    ("skipped", INT),  # already in the lake at the listed commit
    ("failed", INT),  # failed or unavailable, and families that could not be listed
    ("errors", STRING),
    ("wwhub_version", STRING),
    ("seconds", FLOAT),
    ("unsupported", INT),  # nothing analyzable with the run's options
    ("gated", INT),  # the hub wants a license accepted and a token with access
]
# One row per model a scan tried and could not scan (flows/scanning/status.py): the hub did not answer, the repo is
# gated
# or gone. It never shadows the model's last good scan (models_latest shows that one, flagged).
ATTEMPTS_SCHEMA = _KEY_FIELDS + [
    ("scan_id", STRING),
    ("attempted_at", TIMESTAMP),
    ("status", STRING),
    ("reason", STRING),
    ("error_kind", STRING),  # the hub error's kind: not_found, gated, unavailable, invalid, other
]
# Which repos each family's listing held in a scan, at what rank (1 = first of the listing); the family_members
# view is each family's latest listing.
MEMBERSHIPS_SCHEMA = [
    ("scan_id", STRING),
    ("family", STRING),
    ("repo_id", STRING),
    ("revision", STRING),
    ("rank", INT),
    ("listed_at", TIMESTAMP),
]
# One row per (repo_id, revision, base_repo_id, base_revision, layer): the model's layer against its base's twin.
DISTANCES_SCHEMA = (
    _KEY_FIELDS + [("base_repo_id", STRING), ("base_revision", STRING)] + _dataclass_fields(LayerDistance)
)
# Derived from `models` and `evals` (flows/leaderboard/correlations.py), written whole by Lake.replace_derived after
# every scan
# and evals import; the columns are described there.
CORRELATIONS_SCHEMA = (
    [("reported_metric", STRING), ("family", STRING), ("metric", STRING), ("n", INT)]
    + [
        (name, FLOAT)
        for name in ("pearson_r", "spearman_rho", "kendall_tau", "slope", "intercept", "r_squared", "rmse")
    ]
    + [("families_agreeing", INT), ("families_total", INT), ("simpsons_paradox", BOOL)]
    + [
        (name, FLOAT)
        for name in (
            "pearson_p",
            "pearson_ci_low",
            "pearson_ci_high",
            "spearman_p",
            "spearman_ci_low",
            "spearman_ci_high",
            "kendall_p",
            "kendall_ci_low",
            "kendall_ci_high",
            "pearson_p_adjusted",
        )
    ]
    + [("verdict", STRING)]
    + [(name, FLOAT) for name in ("within_family_r", "within_family_ci_low", "within_family_ci_high", "partial_r_size")]
    + [("higher_is_better", BOOL), ("datasets", STRING), ("notes", STRING)]
)

SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "layers": LAYERS_SCHEMA,
    "esd": ESD_SCHEMA,
    "evals": EVALS_SCHEMA,
    "models": MODELS_SCHEMA,
    "scans": SCANS_SCHEMA,
    "attempts": ATTEMPTS_SCHEMA,
    "memberships": MEMBERSHIPS_SCHEMA,
    "distances": DISTANCES_SCHEMA,
    "correlations": CORRELATIONS_SCHEMA,
}
TABLES = tuple(SCHEMAS)
# The tables one scanned model writes together, in one commit (its distances to every base included).
MODEL_TABLES = ("layers", "esd", "evals", "distances", "models")
# Written whole by their producer, never row by row.
DERIVED_TABLES = ("correlations",)
# What `wwhub lake import` takes: a derived table is recomputed by its producer, never imported.
IMPORTABLE_TABLES = tuple(t for t in TABLES if t not in DERIVED_TABLES)

# The columns that identify a batch of rows: a write of key K replaces every older row with key K. Imported
# evals (revision null) are keyed by their import instead: importing a file again replaces what that file brought
# (every repo of it), and imports of other files, or of another file with the same name, add up.
KEYS: dict[str, tuple[str, ...]] = {
    "layers": ("repo_id", "revision"),
    "esd": ("repo_id", "revision"),
    "evals": ("repo_id", "revision"),
    "models": ("repo_id", "revision"),
    "scans": ("scan_id",),
    "attempts": ("scan_id", "repo_id"),
    "memberships": ("scan_id", "family"),
    "distances": ("repo_id", "revision", "base_repo_id", "base_revision"),
    "correlations": (),
}
IMPORTED_EVALS_KEY = ("import_id",)

# The columns one row is identified by: a batch (an import, a merge, a scan's commit) never holds two rows with the
# same values there. A layer's distance to a base is one row per method (a layer may be compared several ways).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "layers": ("repo_id", "revision", "layer_id", "name", "expert", "slice_id"),
    "esd": ("repo_id", "revision", "layer_id", "name", "slice_id"),
    "evals": ("repo_id", "revision", "import_id", "source", "task", "dataset", "split", "metric", "n_shot"),
    "models": ("repo_id", "revision"),
    "scans": ("scan_id",),
    "attempts": ("scan_id", "repo_id"),
    "memberships": ("scan_id", "family", "repo_id"),
    "distances": ("repo_id", "revision", "base_repo_id", "base_revision", "layer_id", "name", "method"),
}


def required_columns(table: str) -> tuple[str, ...]:
    """The columns every row of ``table`` has a value in: its key (imported evals have no revision: their import
    is their key), its family (leaderboards, plots and pages group and sort by it), and what each row means
    (a model's status; an eval's metric, value and source)."""
    named = {"models": ("status",), "evals": ("source", "metric", "value")}.get(table, ())
    keys = tuple(c for c in KEYS[table] if c != "revision" or table != "evals")
    family = ("family",) if "family" in column_names(table) and "family" not in keys else ()
    return keys + family + named


def key_source_columns(table: str) -> tuple[str, ...]:
    """The columns to read from rows to find their keys (``row_key`` of each distinct combination)."""
    return KEYS[table] + IMPORTED_EVALS_KEY if table == "evals" else KEYS[table]


def row_key(table: str, row: dict) -> dict:
    """The key a row of ``table`` is replaced by: ``KEYS[table]``, and for imported evals (no revision) the import
    they came from."""
    columns = IMPORTED_EVALS_KEY if table == "evals" and row.get("revision") is None else KEYS[table]
    return {c: row.get(c) for c in columns}


# The order rows are sorted in when segments are rewritten: lookups by repo skip whole row groups.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "layers": ("repo_id", "revision", "layer_id", "slice_id"),
    "esd": ("repo_id", "revision", "layer_id", "slice_id"),
    "evals": ("repo_id", "revision"),
    "models": ("repo_id", "revision"),
    "scans": ("started_at",),
    "attempts": ("repo_id", "attempted_at"),
    "memberships": ("family", "listed_at", "rank"),
    "distances": ("repo_id", "revision", "base_repo_id", "base_revision", "layer_id"),
    "correlations": (),
}


def quoted(column: str) -> str:
    """A column name as a DuckDB identifier (``Lambda`` is a keyword)."""
    return '"' + column.replace('"', '""') + '"'


def column_names(table: str) -> list[str]:
    return [name for name, _ in SCHEMAS[table]]


@functools.cache
def arrow_schema(table: str):
    """The Arrow schema of ``table`` (pyarrow imported only by writers)."""
    import pyarrow as pa

    types_ = {
        STRING: pa.string(),
        INT: pa.int64(),
        FLOAT: pa.float64(),
        BOOL: pa.bool_(),
        TIMESTAMP: pa.timestamp("us", tz="UTC"),
        FLOATS: pa.list_(pa.float64()),
    }
    return pa.schema([pa.field(name, types_[kind]) for name, kind in SCHEMAS[table]])


def to_arrow(table: str, rows):
    """Rows (dicts, or an Arrow table in any column order) in the declared schema of ``table``; absent columns
    become nulls, and NaN in a column that is not a float becomes null."""
    import pyarrow as pa

    schema = arrow_schema(table)
    if isinstance(rows, pa.Table):
        columns = [
            rows.column(f.name).cast(f.type) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        pass  # a NaN where the column is not a float (Arrow converts no float NaN to another type)
    # NaN means "not computed" in ww_core's records; in a column that is not a float it must be a null.
    not_float = [name for name, kind in SCHEMAS[table] if kind != FLOAT]
    plain = []
    for row in rows:
        bad = [name for name in not_float if isinstance(row.get(name), float) and row[name] != row[name]]
        plain.append(dict(row, **dict.fromkeys(bad)) if bad else row)
    return pa.Table.from_pylist(plain, schema=schema)


def sort_clause(table: str) -> str:
    """The ORDER BY a segment of ``table`` is written in (empty for a table with no sort keys)."""
    keys = SORT_KEYS[table]
    return f"ORDER BY {', '.join(keys)}" if keys else ""
