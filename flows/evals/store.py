"""Imported evaluation results into the lake: one file per imported origin, never a silent replacement.

An import is stored as ``LAKE/evals/import__<label>-<digest>.parquet``, the digest naming where it came from (the
resolved path of a local file, or the repo). Importing the same origin again replaces its earlier import (and says
so); a different file with the same name lands beside it. After writing, the catalog and the ``correlations``
table are rebuilt, and the user hears about repos that are not in the lake yet and about (model, metric) pairs
that other sources report too (the precedence of queries/reported_values.sql decides which one counts).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..correlations import refresh_correlations
from ..lake import Lake, build_catalog
from ..query import run_query
from .importers import Import

PRECEDENCE = "model card, Hub eval results, CSV, lm-eval, Open LLM Leaderboard (--prefer-import puts imports first)"
_SHOWN = 5


@dataclass
class StoredImport:
    path: Path
    rows: int
    notes: list[str] = field(default_factory=list)  # what the user should know (printed as warnings)


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "import"


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def store_import(root: Path, imported: Import, label: str, origin: str) -> StoredImport:
    """Write ``imported`` under a name unique to ``origin``, rebuild the catalog and correlations, and report."""
    lake = Lake(root)
    digest = hashlib.sha1(origin.encode()).hexdigest()[:10]
    name = f"{_label(label)}-{digest}"
    path = lake.root / "evals" / f"import__{name}.parquet"
    notes = list(imported.notes)
    if path.exists():
        notes.append(f"replaces the previous import of {origin}")
    namesakes = [p.name for p in (lake.root / "evals").glob(f"import__{_label(label)}-*.parquet") if p != path]
    if namesakes:
        notes.append(f"kept beside {len(namesakes)} earlier import(s) of another file named {label}")
    written = lake.write_imported_evals(name, imported.rows)
    build_catalog(lake.root)
    scanned = {r["repo_id"] for r in run_query(lake.root, "SELECT DISTINCT repo_id FROM models")}
    missing = sorted({r["repo_id"] for r in imported.rows} - scanned)
    if missing:
        notes.append(
            f"{len(missing)} of {len({r['repo_id'] for r in imported.rows})} models are not in the lake yet "
            f"({_some(missing)}): their values count once they are scanned"
        )
    others = run_query(
        lake.root,
        "SELECT DISTINCT repo_id, metric, source FROM evals WHERE source <> getvariable('this_source') "
        "OR source IS NULL",
        {"this_source": imported.source},
    )
    reported = {(r["repo_id"], r["metric"]) for r in imported.rows}
    overlap = sorted({(r["repo_id"], r["metric"]) for r in others} & reported)
    if overlap:
        pairs = [f"{repo} {metric}" for repo, metric in overlap]
        notes.append(
            f"{len(overlap)} (model, metric) pair(s) also come from other sources ({_some(pairs)}); "
            f"the leaderboard picks one by source: {PRECEDENCE}"
        )
    refresh_correlations(lake.root)
    return StoredImport(written, len(imported.rows), notes)
