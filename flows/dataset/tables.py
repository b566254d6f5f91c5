"""What an export is made of: the configs, the options, and the record of what was written (shared by the export
and its card)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..leaderboard.render import DEFAULT_METRIC

DEFAULT_MAX_FILE_MB = 200
BATCH_ROWS = 100_000
SPLIT = "train"


@dataclass(frozen=True)
class Config:
    name: str
    query: str  # a queries/*.sql name or a view
    about: str


CONFIGS = (
    Config("models", "export_models", "one row per scanned revision of a repo: status, card facts, layer averages"),
    Config("layers", "export_layers", "one row per logical weight matrix of a scanned revision: its spectral metrics"),
    Config("evals", "export_evals", "reported evaluation results: model cards, the Hub's eval results, imports"),
    Config("distances", "export_distances", "each fine-tune's layers against the same layers of its base model"),
    Config("scans", "scans", "one row per scan run"),
    Config("attempts", "attempts", "models a scan tried and could not scan (the hub did not answer, gated, gone)"),
    Config("memberships", "memberships", "which repos each family's listing held in each scan, at what rank"),
    Config("leaderboard", "leaderboard", "each repo's latest scan ranked in its family by a reported metric"),
    Config("correlations", "correlations", "each weight metric against each reported metric, per family and pooled"),
)


@dataclass
class TableExport:
    config: Config
    rows: int
    files: list[str]  # paths relative to the export folder
    columns: list[tuple[str, str]]  # (name, Arrow type)
    bytes: int


@dataclass
class ExportOptions:
    latest_only: bool = False
    metric: str = DEFAULT_METRIC
    max_file_bytes: int = DEFAULT_MAX_FILE_MB * 1024 * 1024
    repo_id: str = "ORG/NAME"  # where it will be published: fills the card's examples
    title: str = "wwhub lake"
    batch_rows: int = BATCH_ROWS  # rows read and written at a time (a file passes max_file_bytes by at most one)


@dataclass
class DatasetExport:
    out: Path
    options: ExportOptions
    tables: list[TableExport] = field(default_factory=list)
    manifest_version: int | None = None
    exported_at: str = ""
