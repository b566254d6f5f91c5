"""``wwhub evals import FILE.csv``: reported metrics for models whose cards carry none."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ..lake import Lake, build_catalog, lake_path
from ..sources import infer_family
from ._errors import CliError

REQUIRED = ("repo_id", "metric", "value")


def register(sub) -> None:
    parser = sub.add_parser("evals", help="manage reported evaluation results")
    actions = parser.add_subparsers(dest="action", required=True)
    importer = actions.add_parser(
        "import", help="import accuracies from a CSV: repo_id, metric, value[, dataset, source]"
    )
    importer.add_argument("file", help="CSV with columns repo_id, metric, value[, dataset, source]")
    importer.add_argument("--lake", help="lake folder (default: WWHUB_LAKE or ./wwhub-lake)")
    importer.set_defaults(run=run_import)


def read_evals_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise CliError(f"{path}: missing column(s) {', '.join(missing)}; need repo_id, metric, value")
            rows = []
            for line, record in enumerate(reader, start=2):
                try:
                    value = float(record["value"])
                except (TypeError, ValueError):
                    raise CliError(f"{path}:{line}: value {record['value']!r} is not a number") from None
                source = record.get("source") or path.name
                rows.append(
                    dict(
                        repo_id=record["repo_id"].strip(),
                        revision=None,
                        family=infer_family(record["repo_id"]),
                        source=f"import:{source}",
                        task="",
                        dataset=record.get("dataset") or "",
                        split="",
                        metric=record["metric"].strip(),
                        value=value,
                    )
                )
            return rows
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None


def run_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    rows = read_evals_csv(path)
    root = lake_path(args.lake)
    written = Lake(root).write_imported_evals(path.stem, rows)
    build_catalog(root)
    print(f"imported {len(rows)} rows from {path} into {written}")
    return 0
