"""The nightly Prefect flow (prefect.yaml's deployment): scan every family of a families file through the scan
flows of :mod:`flows.scan`, then refresh the exports and publish what changed since the previous night."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from . import __version__
from .leaderboard.exports import refresh_exports
from .leaderboard.render import leaderboard_data, metric_of, value_names
from .scan import DEFAULT_WORKERS, make_task_runner, scan_families
from .scanning.changes import changes_markdown, compare_snapshots, family_members, lake_snapshot
from .scanning.families import load_families
from .scanning.options import ScanOptions, SourceSpec


@flow(name="nightly-scan", log_prints=True)
def nightly_scan(
    families_file: str = "families.yaml",
    lake: str = "wwhub-lake",
    metric: str = "accuracy",
    source: str = "hub",
    endpoint: str | None = None,
    task_runner: str = "threads",
    dask_address: str | None = None,
    workers: int = DEFAULT_WORKERS,
    force: bool = False,
    options: dict | None = None,
) -> dict:
    """Every night: scan new commits of every family in ``families_file``, refresh the leaderboard exports and
    plots in LAKE/reports, and publish artifacts (progress, leaderboard table, what changed since last night,
    who joined and left each family). The token for gated or private repos is the worker's ``HF_TOKEN``."""
    families = load_families(families_file)
    spec = SourceSpec(source, endpoint)
    before, members_before = lake_snapshot(lake), family_members(lake)
    runner = make_task_runner(task_runner, dask_address, workers)
    scan_options = ScanOptions(analysis=options or {}, force=force)
    report = scan_families.with_options(task_runner=runner)(families, lake, spec, scan_options)
    changes = compare_snapshots(before, lake_snapshot(lake), members_before, family_members(lake))
    exports = refresh_exports(lake, metric)
    _publish_board(lake, metric)
    counts = report.counts()
    create_markdown_artifact(
        changes_markdown(changes, counts, report.problems()),
        key="wwhub-nightly-changes",
        description="what changed since the previous night",
    )
    return {
        "scan_id": report.scan_id,
        **counts,
        "changed": changes.scanned_repos,
        "joined": changes.joined,
        "left": changes.left,
        "exports": [str(p) for p in exports],
        "wwhub_version": __version__,
    }


def _publish_board(lake: str, metric: str) -> None:
    board, _ = leaderboard_data(lake, metric=metric)
    names = value_names(metric_of(board, metric))
    columns = ["family", "repo_id", "value", "source", "rank_by_value", "alpha", "alpha_weighted", "num_trap_layers"]
    create_table_artifact(
        [{names.get(c, c): row.get(c) for c in columns} for row in board],
        key="wwhub-leaderboard",
        description=f"family leaderboards ({metric})",
    )
