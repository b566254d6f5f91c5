"""What changed between two nights: each repo's latest scan before and after, who joined and left each family,
and the nightly summary in Markdown (plain functions, no Prefect)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..lake import Lake, lake_path
from ..lake.sql import run_query

# An average that moves by more than this between two scans of a repo is reported as moved.
MOVED_ALPHA = 0.05


def lake_snapshot(lake: str | Path) -> dict[str, dict]:
    """Each repo's latest scanned revision and averages, keyed by repo_id ({} for an empty lake)."""
    root = lake_path(lake)
    if Lake(root).layout() is None:
        return {}
    rows = run_query(
        root,
        "SELECT repo_id, revision, family, alpha, alpha_weighted, log_spectral_norm, num_trap_layers, "
        "status FROM models_latest WHERE status IN ('scanned', 'partial')",
    )
    return {row["repo_id"]: row for row in rows}


def family_members(lake: str | Path) -> dict[str, set[str]]:
    """Each family's current members (queries/family_members.sql), {} for an empty lake."""
    root = lake_path(lake)
    if Lake(root).layout() is None:
        return {}
    members: dict[str, set[str]] = {}
    for row in run_query(root, "SELECT family, repo_id FROM family_members"):
        members.setdefault(row["family"], set()).add(row["repo_id"])
    return members


@dataclass
class Changes:
    new_models: list[dict] = field(default_factory=list)
    new_commits: list[tuple[dict, dict]] = field(default_factory=list)
    moved: list[tuple[dict, dict]] = field(default_factory=list)
    new_traps: list[tuple[dict | None, dict]] = field(default_factory=list)
    joined: dict[str, list[str]] = field(default_factory=dict)  # family → repos its listing holds since tonight
    left: dict[str, list[str]] = field(default_factory=dict)  # family → repos its listing no longer holds

    @property
    def scanned_repos(self) -> list[str]:
        return [m["repo_id"] for m in self.new_models] + [new["repo_id"] for _, new in self.new_commits]


def compare_snapshots(
    before: dict[str, dict],
    after: dict[str, dict],
    members_before: dict[str, set[str]] | None = None,
    members_after: dict[str, set[str]] | None = None,
) -> Changes:
    changes = Changes()
    members_before, members_after = members_before or {}, members_after or {}
    for family in sorted(members_after):
        old, new = members_before.get(family, set()), members_after[family]
        if new - old:
            changes.joined[family] = sorted(new - old)
        if old - new:
            changes.left[family] = sorted(old - new)
    for repo_id, new in sorted(after.items()):
        old = before.get(repo_id)
        if old is None:
            changes.new_models.append(new)
        elif old["revision"] != new["revision"]:
            changes.new_commits.append((old, new))
            if None not in (old["alpha"], new["alpha"]) and abs(new["alpha"] - old["alpha"]) > MOVED_ALPHA:
                changes.moved.append((old, new))
        if (new.get("num_trap_layers") or 0) > ((old or {}).get("num_trap_layers") or 0):
            changes.new_traps.append((old, new))
    return changes


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def changes_markdown(changes: Changes, counts: dict[str, int], problems: list[str]) -> str:
    """The nightly summary: what is new since the previous night, for a Prefect markdown artifact. ``counts`` and
    ``problems`` are the scan report's (``ScanReport.counts``, ``ScanReport.problems``)."""
    lines = [
        "# wwhub nightly scan",
        "",
        ", ".join(f"{name} **{count}**" if name == "scanned" else f"{name} {count}" for name, count in counts.items()),
        "",
    ]
    lines.append(f"## New models ({len(changes.new_models)})")
    lines += [
        f"- `{m['repo_id']}` ({m['family']}) at `{m['revision'][:12]}`: alpha {_fmt(m['alpha'])}"
        for m in changes.new_models
    ] or ["- none"]
    lines.append(f"\n## New commits ({len(changes.new_commits)})")
    lines += [
        f"- `{new['repo_id']}`: `{old['revision'][:12]}` → `{new['revision'][:12]}`, alpha "
        f"{_fmt(old['alpha'])} → {_fmt(new['alpha'])}"
        for old, new in changes.new_commits
    ] or ["- none"]
    lines.append(f"\n## Averages that moved (|Δalpha| > {MOVED_ALPHA}) ({len(changes.moved)})")
    lines += [
        f"- `{new['repo_id']}`: Δalpha {new['alpha'] - old['alpha']:+.3f}, Δalpha_weighted "
        f"{(new['alpha_weighted'] or 0) - (old['alpha_weighted'] or 0):+.3f}"
        for old, new in changes.moved
    ]
    lines += [] if changes.moved else ["- none"]
    lines.append(f"\n## New correlation traps ({len(changes.new_traps)})")
    lines += [
        f"- `{new['repo_id']}`: {((old or {}).get('num_trap_layers') or 0)} → {new['num_trap_layers']} trapped layers"
        for old, new in changes.new_traps
    ] or ["- none"]
    for title, moves in (("joined", changes.joined), ("left", changes.left)):
        count = sum(len(repos) for repos in moves.values())
        lines.append(f"\n## Models that {title} a family's listing ({count})")
        lines += [f"- {family}: {', '.join(f'`{r}`' for r in repos)}" for family, repos in moves.items()] or ["- none"]
    if problems:
        lines.append("\n## Problems")
        lines += [f"- {problem}" for problem in problems]
    return "\n".join(lines) + "\n"
