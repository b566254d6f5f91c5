"""The dataset card (README.md) of an exported lake: YAML front matter with one config per table, then what the
tables and their columns mean, what made them, and how to load or query them."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import yaml

from .columns import TABLE_COLUMNS
from .tables import SPLIT, DatasetExport, TableExport

UNDOCUMENTED = "(not documented)"


def front_matter(export: DatasetExport) -> str:
    configs = [
        {
            "config_name": table.config.name,
            "data_files": [{"split": SPLIT, "path": f"data/{table.config.name}/*.parquet"}],
            **({"default": True} if table.config.name == "leaderboard" else {}),
        }
        for table in export.tables
        if table.files
    ]
    meta = {
        "pretty_name": export.options.title,
        "tags": ["wwhub", "weightwatcher", "heavy-tailed-self-regularization", "model-analysis"],
        "configs": configs,
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _scan_options(staging: Path) -> list[tuple[str, int]]:
    """The analysis options the exported models were scanned with, and how many models each."""
    import pyarrow.parquet as pq

    counts: collections.Counter = collections.Counter()
    for path in sorted((staging / "data" / "models").glob("*.parquet")):
        counts.update(v for v in pq.read_table(path, columns=["options"]).column("options").to_pylist() if v)
    return counts.most_common()


def _columns_table(table: TableExport) -> str:
    meanings = TABLE_COLUMNS.get(table.config.name, {})
    lines = ["| column | type | meaning |", "|---|---|---|"]
    for name, kind in table.columns:
        meaning = meanings.get(name, UNDOCUMENTED).replace("|", "\\|")
        lines.append(f"| `{name}` | {kind} | {meaning} |")
    return "\n".join(lines)


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"


def dataset_card(export: DatasetExport, staging: Path, version: str) -> str:
    options = export.options
    repo = options.repo_id
    overview = "\n".join(
        f"| `{t.config.name}` | {t.rows} | {len(t.files)} | {_size(t.bytes)} | {t.config.about} |"
        + ("" if t.files else " (no rows in this lake: no config)")
        for t in export.tables
    )
    scan_options = _scan_options(staging)
    options_lines = "\n".join(f"- {count} models: `{json.dumps(json.loads(text))}`" for text, count in scan_options)
    columns = "\n\n".join(f"### `{t.config.name}`\n\n{t.config.about}.\n\n{_columns_table(t)}" for t in export.tables)
    scope = (
        "each repo's latest scan only (`--latest-only`)"
        if options.latest_only
        else "every scanned revision of every repo"
    )
    return f"""{front_matter(export)}
# {options.title}

Spectral metrics of model weights (WeightWatcher-style heavy-tailed self-regularization analysis) for the models of
a wwhub lake, next to the evaluation results their authors reported: one config
per table. Exported by wwhub {version} on {export.exported_at} from lake manifest version {export.manifest_version},
with {scope}; the leaderboard ranks by the reported `{options.metric}`; Parquet files of at most about
{options.max_file_bytes // (1024 * 1024)} MB each.

| config | rows | files | size | what a row is |
|---|---|---|---|---|
{overview}

Models were scanned with these analysis options (`models.options`):

{options_lines or "- (no scanned models)"}

## Load it

```python
from datasets import load_dataset

leaderboard = load_dataset("{repo}", "leaderboard", split="{SPLIT}")
layers = load_dataset("{repo}", "layers", split="{SPLIT}")  # or a local copy: load_dataset("path/to/folder", "layers")
```

## Query it with DuckDB

```sql
-- INSTALL httpfs; LOAD httpfs;  (once, for hf:// paths)
SELECT family, repo_id, value, rank_by_value, rank_by_alpha, alpha
FROM 'hf://datasets/{repo}/data/leaderboard/*.parquet'
ORDER BY family, rank_by_value;

SELECT repo_id, name, alpha, warning
FROM 'hf://datasets/{repo}/data/layers/*.parquet'
WHERE alpha < 2 OR alpha > 6;
```

A local copy answers the same queries with `data/TABLE/*.parquet` paths.

## Publish it

```bash
hf upload {repo} . --repo-type dataset
```

## Columns

Layer metrics are computed from the eigenvalues λ of WᵀW (N ≥ M the dimensions of a weight matrix); averages and
counts in `models` cover the layers whose fit is ok. A row that could not be analyzed has `fit_status` failed or
skipped, a `reason`, and null metrics (never -1).

{columns}
"""
