"""Small lakes for tests: models and evals rows without weights, and a fingerprint to prove a lake unchanged."""

import hashlib
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flows.correlations import refresh_correlations
from flows.lake import MODELS_SCHEMA, Lake, build_catalog


def write_lake(root, models, metric="accuracy", scale="fraction"):
    """A lake of models and card evals without weights. ``models``: (family, repo_id, alpha, value, num_params);
    num_params (which the formats work adds to the models schema) is written as an extra column."""
    lake = Lake(root)
    schema = MODELS_SCHEMA
    if "num_params" not in schema.names:
        schema = schema.append(pa.field("num_params", pa.int64()))
    for family, repo_id, alpha, value, num_params in models:
        common = dict(repo_id=repo_id, revision="r1", family=family)
        lake.write_rows(
            "evals",
            repo_id,
            "r1",
            [dict(common, source="model-index", dataset="d", split="test", metric=metric, value=value, scale=scale)],
        )
        row = dict(
            common,
            status="scanned",
            alpha=alpha,
            alpha_weighted=2 * alpha,
            log_alpha_norm=alpha + 1,
            log_spectral_norm=alpha / 3,
            log_norm=math.sqrt(alpha),
            num_layers=1,
            num_ok=1,
            num_params=num_params,
        )
        table = pa.Table.from_pylist([{f.name: row.get(f.name) for f in schema}], schema=schema)
        pq.write_table(table, lake.file("models", repo_id, "r1"))
    build_catalog(lake.root)
    refresh_correlations(lake.root)
    return lake.root


def lake_state(root: Path) -> dict[str, str]:
    """sha256 of every file under the lake, by relative path: equal before and after means nothing changed."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
