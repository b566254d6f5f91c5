"""The lake: Parquet files, one per (table, repo, commit), and a DuckDB catalog of views over them.

Layout (``LAKE`` defaults to ``./wwhub-lake``)::

    LAKE/layers/<org>__<name>@<sha>.parquet    one row per layer (ww_core columns + repo_id, revision, family, shard)
    LAKE/esd/<org>__<name>@<sha>.parquet       eigenvalues per layer, for plots without re-downloading
    LAKE/evals/<org>__<name>@<sha>.parquet     accuracies reported by the card (or imported)
    LAKE/distances/<org>__<name>@<sha>.parquet per layer, the distance of this revision from its base's
    LAKE/models/<org>__<name>@<sha>.parquet    one row per scanned revision; written last: the commit marker
    LAKE/scans/<scan_id>.parquet               one row per scan run
    LAKE/correlations/correlations.parquet     derived: metric-vs-reported-value statistics, rewritten whole
    LAKE/wwhub.duckdb                          views over all of the above and over queries/*.sql

Every file is written to a temporary name in the same folder and renamed, so concurrent tasks never share a file
and a killed scan leaves no half file; a rerun of the same model replaces its files, so rows are never duplicated.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import types
import typing
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ww_core import LayerMetrics, ModelSummary
from ww_core.distances import LayerDistance

DEFAULT_LAKE = "wwhub-lake"
CATALOG = "wwhub.duckdb"
TABLES = ("layers", "esd", "evals", "models", "scans", "distances", "correlations")
_STALE_TMP_SECONDS = 3600

_KEY_FIELDS = [pa.field("repo_id", pa.string()), pa.field("revision", pa.string()), pa.field("family", pa.string())]


def _arrow_type(annotation) -> pa.DataType:
    """pyarrow type of a dataclass field annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"__builtins__": __builtins__}, {})  # noqa: S307 - our own annotations
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}[annotation]


def _dataclass_fields(cls, skip: tuple[str, ...] = ()) -> list[pa.Field]:
    return [pa.field(f.name, _arrow_type(f.type)) for f in dataclasses.fields(cls) if f.name not in skip]


# What the decoding step knows of a layer (flows/weights): the expert it belongs to (null outside MoE experts), the
# quantization scheme it was dequantized from ('' for plain weights), the stored tensors it was made of.
_DECODING_FIELDS = [
    pa.field("expert", pa.int64()),
    pa.field("quantization", pa.string()),
    pa.field("source_tensors", pa.string()),
]
LAYERS_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [pa.field("shard", pa.string())]
    + _DECODING_FIELDS
    + _dataclass_fields(LayerMetrics, skip=("evals", "rand_evals"))
)
ESD_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
        pa.field("layer_id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("slice_id", pa.int64()),
        pa.field("evals", pa.list_(pa.float64())),
        pa.field("rand_evals", pa.list_(pa.float64())),
    ]
)
EVALS_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
        pa.field("source", pa.string()),
        pa.field("task", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("scale", pa.string()),
        pa.field("n_shot", pa.int64()),
        pa.field("raw_metric", pa.string()),
        pa.field("stderr", pa.float64()),
    ]
)
MODELS_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("scanned_at", pa.timestamp("us", tz="UTC")),
        pa.field("scan_id", pa.string()),
        pa.field("wwhub_version", pa.string()),
        pa.field("source", pa.string()),
        pa.field("options", pa.string()),
        pa.field("num_shards", pa.int64()),
        pa.field("bytes_read", pa.int64()),
        pa.field("seconds", pa.float64()),
        pa.field("card_status", pa.string()),
        pa.field("library_name", pa.string()),
        pa.field("pipeline_tag", pa.string()),
        pa.field("base_model", pa.string()),
        # model | adapter (a PEFT adapter's update ΔW) | merged (an adapter merged into a base: W + ΔW)
        pa.field("model_kind", pa.string()),
        pa.field("quantization", pa.string()),  # schemes dequantized, comma-separated ('' for a plain model)
        pa.field("num_dequantized", pa.int64()),
        pa.field("num_params", pa.int64()),  # logical parameters (dequantized shapes; an adapter's A and B)
        pa.field("skip_reasons", pa.string()),  # JSON {reason: count} of the skipped layers
        pa.field("downloads", pa.int64()),
        pa.field("likes", pa.int64()),
        pa.field("last_modified", pa.string()),
        pa.field("layer_selection", pa.string()),
    ]
    + _dataclass_fields(ModelSummary)
)
SCANS_SCHEMA = pa.schema(
    [
        pa.field("scan_id", pa.string()),
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("ended_at", pa.timestamp("us", tz="UTC")),
        pa.field("families", pa.string()),
        pa.field("source", pa.string()),
        pa.field("listed", pa.int64()),
        pa.field("scanned", pa.int64()),
        pa.field("skipped", pa.int64()),
        pa.field("failed", pa.int64()),
        pa.field("errors", pa.string()),
        pa.field("wwhub_version", pa.string()),
        pa.field("seconds", pa.float64()),
    ]
)
# Derived: recomputed from models + evals after every scan and evals import (flows/correlations.py).
CORRELATIONS_SCHEMA = pa.schema(
    [pa.field("reported_metric", pa.string()), pa.field("family", pa.string()), pa.field("metric", pa.string())]
    + [pa.field("n", pa.int64())]
    + [
        pa.field(name, pa.float64())
        for name in (
            "pearson_r",
            "spearman_rho",
            "kendall_tau",
            "slope",
            "intercept",
            "r_squared",
            "rmse",
        )
    ]
    + [pa.field("families_agreeing", pa.int64()), pa.field("families_total", pa.int64())]
    + [pa.field("simpsons_paradox", pa.bool_())]
    + [
        pa.field(name, pa.float64())
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
    + [pa.field("verdict", pa.string())]
    + [
        pa.field(name, pa.float64())
        for name in ("within_family_r", "within_family_ci_low", "within_family_ci_high", "partial_r_size")
    ]
    + [pa.field("higher_is_better", pa.bool_()), pa.field("datasets", pa.string()), pa.field("notes", pa.string())]
)
# One row per (repo_id, revision, base_repo_id, base_revision, layer): the model's layer against its base's twin.
DISTANCES_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [pa.field("base_repo_id", pa.string()), pa.field("base_revision", pa.string())]
    + _dataclass_fields(LayerDistance)
)
SCHEMAS = {
    "layers": LAYERS_SCHEMA,
    "esd": ESD_SCHEMA,
    "evals": EVALS_SCHEMA,
    "models": MODELS_SCHEMA,
    "scans": SCANS_SCHEMA,
    "distances": DISTANCES_SCHEMA,
    "correlations": CORRELATIONS_SCHEMA,
}


def lake_path(lake: str | os.PathLike | None = None) -> Path:
    """The lake folder: the argument, else ``WWHUB_LAKE``, else ``./wwhub-lake``."""
    return Path(lake or os.environ.get("WWHUB_LAKE") or DEFAULT_LAKE).resolve()


def model_file_stem(repo_id: str, revision: str) -> str:
    return f"{repo_id.replace('/', '__')}@{revision}"


class Lake:
    """Writes Parquet files atomically and answers "is this commit already here?"."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = lake_path(root)
        for table, schema in SCHEMAS.items():
            folder = self.root / table
            folder.mkdir(parents=True, exist_ok=True)
            # A zero-row file per table keeps every view valid (and typed) before the first scan lands, and
            # gives files written before a column was added that column (as NULL) under union_by_name.
            empty = folder / "_schema.parquet"
            # Rewritten when the schema grew (a lake made by an older wwhub), so that every view sees new columns.
            if not empty.exists() or not pq.read_schema(empty).equals(schema):
                self._write(empty, schema.empty_table())
            # A killed writer leaves a hidden .tmp file that no view reads; tidy those up once they are old.
            for stale in folder.glob(".*.tmp"):
                try:
                    if time.time() - stale.stat().st_mtime > _STALE_TMP_SECONDS:
                        stale.unlink(missing_ok=True)
                except FileNotFoundError:
                    # Another task's write finished (renamed its temp file) between glob and stat.
                    continue

    def _write(self, path: Path, table: pa.Table) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)

    def file(self, table: str, repo_id: str, revision: str) -> Path:
        return self.root / table / f"{model_file_stem(repo_id, revision)}.parquet"

    def write_rows(self, table: str, repo_id: str, revision: str, rows: Iterable[dict]) -> Path:
        """Replace the (table, repo, commit) file with ``rows`` (dicts keyed by the table's column names)."""
        schema = SCHEMAS[table]
        arrow = pa.Table.from_pylist([_plain_row(r, schema) for r in rows], schema=schema)
        path = self.file(table, repo_id, revision)
        self._write(path, arrow)
        return path

    def write_scan(self, row: dict) -> Path:
        path = self.root / "scans" / f"{row['scan_id']}.parquet"
        self._write(path, pa.Table.from_pylist([_plain_row(row, SCANS_SCHEMA)], schema=SCANS_SCHEMA))
        return path

    def write_imported_evals(self, name: str, rows: list[dict]) -> Path:
        """Reported metrics from a file (no commit: they apply to every scanned revision of the repo)."""
        arrow = pa.Table.from_pylist([_plain_row(r, EVALS_SCHEMA) for r in rows], schema=EVALS_SCHEMA)
        path = self.root / "evals" / f"import__{name}.parquet"
        self._write(path, arrow)
        return path

    def has_model(self, repo_id: str, revision: str) -> bool:
        """True when this commit was scanned (the models file is written last, after layers, esd and evals).

        A model recorded as ``unsupported`` (nothing analyzable with the options of that run, e.g. --no-pickle) or
        ``gated`` (no access yet) does not count: a later run with other options, or a token, scans it."""
        path = self.file("models", repo_id, revision)
        if not path.exists():
            return False
        statuses = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        return statuses not in (["unsupported"], ["gated"])

    def glob(self, table: str) -> str:
        return str(self.root / table / "*.parquet")


def _plain_row(row: dict, schema: pa.Schema) -> dict:
    out = {}
    for field in schema:
        value = row.get(field.name)
        if isinstance(value, float) and value != value and not pa.types.is_floating(field.type):
            value = None
        out[field.name] = value
    return out


def _queries_dir() -> Path:
    """queries/ of the checkout (editable installs, CI), else the copy a wheel installs under share/wwhub."""
    checkout = Path(__file__).resolve().parent.parent / "queries"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "wwhub" / "queries"


QUERIES_DIR = _queries_dir()


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def build_catalog(root: str | os.PathLike | None = None, queries_dir: Path | None = None) -> Path:
    """(Re)create ``LAKE/wwhub.duckdb``: one view per table over its Parquet files, ``models_latest`` (each repo's
    newest scanned revision), and one view per ``queries/*.sql`` file, named after the file.

    DuckDB allows one writing process per database file, so only this step writes it; scan tasks write Parquet.
    """
    import duckdb

    lake = Lake(root)
    path = lake.root / CATALOG
    tmp = path.with_name(f".{CATALOG}.{uuid.uuid4().hex}.tmp")
    con = duckdb.connect(str(tmp))
    try:
        for table in TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet("
                f"{_sql_literal(lake.glob(table))}, union_by_name = true)"
            )
        con.execute(
            "CREATE OR REPLACE VIEW models_latest AS SELECT * FROM models "
            "QUALIFY row_number() OVER (PARTITION BY repo_id ORDER BY scanned_at DESC) = 1"
        )
        _create_query_views(con, sorted((queries_dir or QUERIES_DIR).glob("*.sql")))
    finally:
        con.close()
    os.replace(tmp, path)
    return path


def _create_query_views(con, sql_files: list[Path]) -> None:
    """One view per query file. Queries may read each other's views, so create them in dependency order by
    retrying those whose dependencies do not exist yet; a query that never binds is a bug and raises."""
    import duckdb

    pending = {f.stem: f.read_text().strip().rstrip(";") for f in sql_files}
    while pending:
        attempted = len(pending)
        errors = {}
        for name, sql in list(pending.items()):
            try:
                con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
                del pending[name]
            except duckdb.Error as err:
                errors[name] = err
        if len(errors) == attempted:
            detail = "\n".join(f"queries/{name}.sql: {err}" for name, err in errors.items())
            raise ValueError(f"queries that do not bind:\n{detail}")
