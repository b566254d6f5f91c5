"""Imported evaluation results into the lake: one import per origin, never a silent replacement.

Each imported row carries ``import_id`` = ``<label>-<digest>``, the digest naming where it came from (the resolved
path of a local file, or the repo), and the lake keys imported rows by it (flows/lake/schema.py): importing the same
origin again replaces exactly what it brought before (and says so); a different file with the same name lands
beside it. The import is one lake commit, followed by the derived ``correlations`` of the families of the repos it
concerns; the user hears about repos that are not in the lake yet and about (model, metric) pairs that other
sources report too (the precedence of queries/reported_values.sql decides which one counts).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..lake import Lake
from ..lake.sql import run_query
from ..leaderboard.correlations import refresh_correlations
from .importers import Import

PRECEDENCE = "model card, Hub eval results, CSV, lm-eval, Open LLM Leaderboard (--prefer-import puts imports first)"
_SHOWN = 5


@dataclass
class StoredImport:
    lake: Path
    import_id: str
    rows: int
    notes: list[str] = field(default_factory=list)  # what the user should know (printed as warnings)


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "import"


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def store_import(root: str | Path | None, imported: Import, label: str, origin: str) -> StoredImport:
    """Commit ``imported`` under an ``import_id`` unique to ``origin``, refresh the correlations, and report.
    Raises LakeError (one line) when the lake cannot be written, before anything is."""
    lake = Lake.for_writing(root)
    import_id = f"{_label(label)}-{hashlib.sha1(origin.encode()).hexdigest()[:10]}"
    notes = list(imported.notes)
    same_label = re.compile(re.escape(_label(label)) + r"-[0-9a-f]{10}")
    earlier = {
        r["import_id"]
        for r in run_query(lake.root, "SELECT DISTINCT import_id FROM evals WHERE import_id IS NOT NULL")
        if same_label.fullmatch(r["import_id"])
    }
    if import_id in earlier:
        notes.append(f"replaces the previous import of {origin}")
    if earlier - {import_id}:
        notes.append(f"kept beside {len(earlier - {import_id})} earlier import(s) of another file named {label}")
    # The repos whose reported values change: those this import brings and those the import it replaces brought.
    repos = {r["repo_id"] for r in imported.rows}
    if import_id in earlier:
        sql = "SELECT DISTINCT repo_id FROM evals WHERE import_id = getvariable('import_id')"
        repos |= {r["repo_id"] for r in run_query(lake.root, sql, {"import_id": import_id})}
    rows = [dict(row, import_id=import_id) for row in imported.rows]
    lake.commit({"evals": rows}, replace={"evals": [{"import_id": import_id}]})
    family_of = run_query(lake.root, "SELECT DISTINCT repo_id, family FROM models")
    scanned = {r["repo_id"] for r in family_of}
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
    refresh_correlations(lake.root, repos)
    return StoredImport(lake.root, import_id, len(imported.rows), notes)
