"""What the static site reads from the lake: everything through queries/*.sql, nothing computed here.

The lake-wide tables (leaderboard, correlations, each repo's latest models row, every scan of every repo, reported
values, fine-tune distances) are small (a row per model or per scan) and read once. The per-layer tables (layers,
the plotted ESDs, distances, drift) grow with models × layers, so ``model_details`` reads them a slice of repos at a
time (the queries' ``first_repo`` / ``last_repo`` variables) and yields one model's rows at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..lake.sql import run_query
from ..leaderboard.render import leaderboard_data

# Layer rows per slice of the per-layer queries: ~100 MB of rows in memory. Each slice's ESD query decodes the
# row groups holding its repos (256K rows each in a compacted lake), so fewer, larger slices read less.
SLICE_LAYERS = 100_000
SCANNED_STATUSES = ("scanned", "partial")


@dataclass
class LakeData:
    metric: str
    board: list[dict]  # queries/leaderboard.sql for ``metric``: each scanned repo's latest scan, ranked
    correlations: list[dict]  # the correlations table's rows for ``metric`` (per family and pooled)
    models: dict[str, dict]  # repo_id → its latest models row (every status)
    history: dict[str, list[dict]]  # repo_id → queries/site_history.sql rows, oldest first
    evals: dict[str, list[dict]]  # repo_id → queries/site_evals.sql rows
    finetunes: list[dict]  # queries/finetune_drift.sql: each fine-tune against its base
    scans: list[dict]  # the scans table

    @property
    def families(self) -> list[str]:
        return sorted({row["family"] for row in self.models.values()})

    @cached_property
    def board_of(self) -> dict[str, list[dict]]:
        """family → its leaderboard rows (its scanned models), ranked."""
        return _grouped(self.board, "family")

    @cached_property
    def models_of(self) -> dict[str, list[dict]]:
        """family → its repos' latest models rows (every status)."""
        return _grouped(list(self.models.values()), "family")

    @cached_property
    def family_sizes(self) -> dict[str, int]:
        """Scanned models per family (the leaderboard's rows)."""
        return {family: len(rows) for family, rows in self.board_of.items()}

    @cached_property
    def finetunes_of(self) -> dict[str, list[dict]]:
        """base repo_id → finetune_drift rows of its fine-tunes."""
        return _grouped(self.finetunes, "base_repo_id")

    @cached_property
    def bases_of(self) -> dict[str, list[dict]]:
        """fine-tune repo_id → its finetune_drift rows (one per base it was compared with)."""
        return _grouped(self.finetunes, "repo_id")

    @cached_property
    def declared_children(self) -> dict[str, list[str]]:
        """base repo_id → the repos whose card names it as base_model."""
        children: dict[str, list[str]] = defaultdict(list)
        for row in self.models.values():
            if row.get("base_model"):
                children[row["base_model"]].append(row["repo_id"])
        return dict(children)


@dataclass
class ModelDetails:
    layers: list[dict] = field(default_factory=list)  # queries/site_layers.sql
    esd: list[dict] = field(default_factory=list)  # queries/site_esd.sql
    distances: list[dict] = field(default_factory=list)  # queries/site_distances.sql
    drift: list[dict] = field(default_factory=list)  # queries/site_drift.sql


def _grouped(rows: list[dict], column: str) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row[column]].append(row)
    return dict(grouped)


def _by_repo(rows: list[dict]) -> dict[str, list[dict]]:
    return _grouped(rows, "repo_id")


def read_lake(root: Path, metric: str) -> LakeData:
    board, correlations = leaderboard_data(root, metric=metric)
    models = {row["repo_id"]: row for row in run_query(root, "models_latest")}
    return LakeData(
        metric=metric,
        board=board,
        correlations=correlations,
        models=models,
        history=_by_repo(run_query(root, "site_history")),
        evals=_by_repo(run_query(root, "site_evals", {"prefer_import": False, "dataset": None, "family": None})),
        finetunes=run_query(root, "finetune_drift", {"metric": metric, "prefer_import": False, "dataset": None}),
        scans=run_query(root, "scans"),
    )


def slices(sizes: dict[str, int], budget: int = SLICE_LAYERS) -> Iterator[list[str]]:
    """Repo ids in sorted order, cut into runs whose layer counts (``sizes``) add up to at most ``budget`` (a larger
    model is a run of its own)."""
    run: list[str] = []
    total = 0
    for repo_id in sorted(sizes):
        size = max(1, sizes[repo_id] or 0)
        if run and total + size > budget:
            yield run
            run, total = [], 0
        run.append(repo_id)
        total += size
    if run:
        yield run


def model_details(
    root: Path, sizes: dict[str, int], budget: int = SLICE_LAYERS, wanted: set[str] | None = None
) -> Iterator[tuple[str, ModelDetails]]:
    """(repo_id, its per-layer rows) for every repo of ``sizes`` (repo_id → its number of layers), or of those in
    ``wanted`` only, in sorted order, reading at most about ``budget`` layer rows per query: the slices are cut over
    every repo of ``sizes``, so a few wanted repos far apart cost a few small queries, never a read of the repos
    between them."""
    for run in slices(sizes, budget):
        members = run if wanted is None else [repo for repo in run if repo in wanted]
        if not members:
            continue
        bounds = {"first_repo": members[0], "last_repo": members[-1]}
        details: dict[str, ModelDetails] = defaultdict(ModelDetails)
        for name, attribute in (
            ("site_layers", "layers"),
            ("site_esd", "esd"),
            ("site_distances", "distances"),
            ("site_drift", "drift"),
        ):
            for row in run_query(root, name, bounds):
                getattr(details[row["repo_id"]], attribute).append(row)
        for repo_id in members:
            yield repo_id, details.get(repo_id) or ModelDetails()
