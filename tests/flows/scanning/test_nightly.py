"""The nightly scan on a hub that behaves as the real one (tests/fakehub.py: listings without sha unless asked,
fixed-window quotas answered with RateLimit headers): a quiet night costs the listing pages, a rate limit is waited
out, a model already scanned never loses its place, and each family's membership is data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from flows.cli import main
from flows.lake import Lake
from flows.lake.sql import run_query
from flows.scanning.families import admission_warnings
from flows.scanning.model_scan import ModelJob, release_bases, scan_bases
from flows.scanning.options import ScanOptions, SourceSpec
from tests.fakehub import write_model
from tests.flows.lake.synth import model_tables


def add_repo(hub, tmp_path, repo_id: str, seed: int, downloads: int = 0) -> str:
    rng = np.random.default_rng(seed)
    tensors = {f"l{k}.weight": rng.standard_t(4, (48, 24)).astype(np.float32) for k in range(2)}
    folder = write_model(tmp_path / "src" / repo_id / str(seed), tensors)
    sha = hub.add_folder(repo_id, folder)
    hub.repos[repo_id].downloads = downloads
    return sha


@pytest.fixture
def night(fake_hub, tmp_path):
    """Two author families of three repos each, listed in pages of two, and a families file naming them."""
    fake_hub.page_size = 2
    for i in range(3):
        add_repo(fake_hub, tmp_path, f"alpha/a{i}", seed=i)
        add_repo(fake_hub, tmp_path, f"beta/b{i}", seed=10 + i)
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  alpha:\n    author: alpha\n  beta:\n    author: beta\n")
    return families


def scan(hub, lake, *extra: str) -> int:
    return main(["scan", "--endpoint", hub.endpoint, "--lake", str(lake), "--hub-backoff", "0", *extra])


def requests_since(hub, start: int) -> dict[str, int]:
    """Requests per kind since the hub's ``start``-th: listing pages, other API calls, resolver calls."""
    counts = {"listing": 0, "api": 0, "resolvers": 0}
    for _, path, _ in hub.requests[start:]:
        kind = "listing" if path == "/api/models" else "api" if path.startswith("/api/") else "resolvers"
        counts[kind] += 1
    return counts


def rows(lake, sql: str, **variables) -> list[dict]:
    return run_query(lake, sql, variables or None)


def test_a_quiet_night_costs_the_listing_pages_and_nothing_per_repo(fake_hub, night, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    start = len(fake_hub.requests)
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    assert "scanned 0, skipped 6" in capsys.readouterr().out
    # One page of one model (is the hub there?), then two pages per family of three: no model_info, no resolver.
    assert requests_since(fake_hub, start) == {"listing": 1 + 2 + 2, "api": 0, "resolvers": 0}


def test_a_night_scans_exactly_the_new_commits_and_the_new_repos(fake_hub, night, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    new_commit = add_repo(fake_hub, tmp_path, "alpha/a1", seed=99)
    new_repo = add_repo(fake_hub, tmp_path, "beta/b9", seed=98)
    capsys.readouterr()
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    assert "listed 7, scanned 2, skipped 5" in capsys.readouterr().out
    scans = rows(lake, "SELECT scan_id FROM scans ORDER BY started_at DESC LIMIT 1")[0]["scan_id"]
    scanned = rows(lake, "SELECT repo_id, revision FROM models WHERE scan_id = $s ORDER BY repo_id", s=scans)
    assert [(r["repo_id"], r["revision"]) for r in scanned] == [("alpha/a1", new_commit), ("beta/b9", new_repo)]


def test_explicit_repos_are_pinned_by_one_resolver_request_each(fake_hub, night, tmp_path, capsys):
    lake = tmp_path / "lake"
    repos = ["alpha/a0", "alpha/a1", f"beta/b0@{fake_hub.repos['beta/b0'].head.sha}"]
    assert scan(fake_hub, lake, *repos) == 0
    start = len(fake_hub.requests)
    assert scan(fake_hub, lake, *repos) == 0
    # The hub check, and one HEAD on a resolver per repo at a branch; none for the repo given at its sha.
    assert requests_since(fake_hub, start) == {"listing": 1, "api": 0, "resolvers": 2}
    assert "scanned 0, skipped 3" in capsys.readouterr().out


def test_a_transient_failure_never_hides_the_last_good_scan(fake_hub, night, tmp_path, capsys):
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    good = fake_hub.repos["alpha/a2"].head.sha
    newer = add_repo(fake_hub, tmp_path, "alpha/a2", seed=77)
    fake_hub.fail_5xx(count=None, match=f"/api/models/alpha/a2/revision/{newer}")
    assert scan(fake_hub, lake, "--families", str(night), "--hub-retries", "1") == 1
    err = capsys.readouterr().err
    assert f"wwhub scan: unavailable: alpha/a2@{newer[:12]}" in err
    latest = rows(lake, "SELECT * FROM models_latest WHERE repo_id = 'alpha/a2'")[0]
    assert latest["revision"] == good and latest["status"] == "scanned"
    assert latest["last_attempt_failed"] and latest["last_attempt_status"] == "unavailable"
    attempts = rows(lake, "SELECT repo_id, revision, status FROM attempts")
    assert attempts == [{"repo_id": "alpha/a2", "revision": newer, "status": "unavailable"}]
    board = rows(lake, "leaderboard", family="alpha")
    assert sorted(r["repo_id"] for r in board) == ["alpha/a0", "alpha/a1", "alpha/a2"]
    # The failed commit is not "in the lake": once the hub answers, the next night scans it and the flag clears.
    fake_hub.clear_faults()
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    latest = rows(lake, "SELECT revision, last_attempt_failed FROM models_latest WHERE repo_id = 'alpha/a2'")[0]
    assert latest == {"revision": newer, "last_attempt_failed": False}


def test_an_unavailable_row_from_an_older_wwhub_does_not_hide_a_good_scan(tmp_path):
    """Lakes written before attempts had their own table hold `unavailable` models rows at revision main, newer
    than the good scan: models_latest and the leaderboard still show the good scan, flagged."""
    lake = Lake.for_writing(tmp_path / "lake")
    tables = model_tables("acme/old", revision="a" * 40, family="fam")
    lake.commit_model("acme/old", "a" * 40, tables)
    later = tables["models"][0]["scanned_at"] + dt.timedelta(days=1)
    legacy = dict(repo_id="acme/old", revision="main", family="fam", status="unavailable", scanned_at=later)
    lake.commit_model("acme/old", "main", {"models": [dict(legacy, reason="hub unavailable: HTTP 429 (4 attempts)")]})
    latest = rows(tmp_path / "lake", "SELECT revision, status, last_attempt_failed FROM models_latest")
    assert latest == [{"revision": "a" * 40, "status": "scanned", "last_attempt_failed": True}]


def test_family_membership_is_data_and_the_leaderboard_shows_current_members(fake_hub, tmp_path, capsys):
    for i, downloads in enumerate((30, 20, 10)):
        add_repo(fake_hub, tmp_path, f"acme/m{i}", seed=i, downloads=downloads)
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  top:\n    author: acme\n    sort: downloads\n    limit: 2\n")
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(families)) == 0
    fake_hub.repos["acme/m2"].downloads = 50  # m2 rises to the top, m1 drops out of the top two
    assert scan(fake_hub, lake, "--families", str(families)) == 0
    members = rows(lake, "SELECT repo_id, rank FROM family_members ORDER BY rank")
    assert members == [{"repo_id": "acme/m2", "rank": 1}, {"repo_id": "acme/m0", "rank": 2}]
    assert rows(lake, "SELECT count(DISTINCT scan_id) AS n FROM memberships")[0]["n"] == 2
    board = rows(lake, "leaderboard")
    assert sorted(r["repo_id"] for r in board) == ["acme/m0", "acme/m2"]
    everyone = {r["repo_id"]: r["member"] for r in rows(lake, "leaderboard", all_members=True)}
    assert everyone == {"acme/m0": True, "acme/m1": False, "acme/m2": True}
    capsys.readouterr()
    assert main(["leaderboard", "--lake", str(lake), "--all-members", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "acme/m1" in out and "no longer listed" in out


def test_explicit_repos_on_the_command_line_do_not_rewrite_a_familys_membership(fake_hub, night, tmp_path):
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    assert scan(fake_hub, lake, "alpha/a0", "--family", "alpha") == 0
    members = rows(lake, "SELECT repo_id FROM family_members WHERE family = 'alpha' ORDER BY repo_id")
    assert [m["repo_id"] for m in members] == ["alpha/a0", "alpha/a1", "alpha/a2"]


def test_a_family_that_can_never_admit_new_fine_tunes_is_warned_about(fake_hub, tmp_path, capsys):
    stuck = {"filter": ["base_model:acme/base"], "sort": "downloads", "limit": 20}
    assert admission_warnings({"tunes": stuck})[0].startswith("family tunes: a base_model filter sorted by downloads")
    assert admission_warnings({"tunes": dict(stuck, sort="created_at")}) == []
    assert admission_warnings({"tunes": {"filter": ["base_model:acme/base"], "sort": "downloads"}}) == []
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  tunes:\n    filter: base_model:acme/base\n    sort: downloads\n    limit: 20\n")
    add_repo(fake_hub, tmp_path, "acme/x", seed=1)
    scan(fake_hub, tmp_path / "lake", "--families", str(families))
    err = capsys.readouterr().err
    assert "wwhub: WARNING: family tunes: a base_model filter sorted by downloads with limit 20" in err
    assert "sort: created_at" in err


def test_a_quota_is_waited_out_and_every_model_scanned(fake_hub, night, tmp_path, capsys):
    """The API bucket at 4 requests per 1-second window: listing, pins and model_info all wait their turn; no
    model is recorded as unavailable and the hub never has to refuse a request."""
    fake_hub.quota("api", 4, 1)
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "--families", str(night)) == 0
    assert "listed 6, scanned 6" in capsys.readouterr().out
    assert rows(lake, "SELECT count(*) AS n FROM attempts")[0]["n"] == 0
    assert fake_hub.limited_by_bucket == {}


def test_bases_are_fetched_once_per_scan_and_dropped_with_it(tmp_path):
    spec = SourceSpec("local", str(tmp_path))
    first = ModelJob(spec, str(tmp_path / "lake"), ScanOptions(), "scan-1")
    assert scan_bases(first) is scan_bases(first)  # every model of the scan shares them
    closed = []
    scan_bases(first).close = lambda: closed.append("scan-1")
    second = scan_bases(ModelJob(spec, str(tmp_path / "lake"), ScanOptions(), "scan-2"))
    assert closed == ["scan-1"] and second is not None  # a worker's next scan drops the previous scan's bases
    release_bases("scan-2")
