"""A site build keeps the model pages whose inputs did not change and renders the others; the result is the site a
full build writes (up to each page's "generated" time)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest

from flows.lake import Lake
from flows.lake.sql import run_query
from flows.site import build_site, reuse
from tests.flows.lakes import _heavy_tailed, scanned_tables, write_site_lake

FOOTER = re.compile(r"generated [^<]*? by wwhub")


def _pages(site) -> dict[str, str]:
    return {p.name: FOOTER.sub("generated - by wwhub", p.read_text()) for p in sorted((site / "models").glob("*.html"))}


def _inodes(site) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in (site / "models").glob("*.html")}


def _families(lake) -> dict[str, str]:
    return {r["repo_id"]: r["family"] for r in run_query(lake, "SELECT repo_id, family FROM models_latest")}


def _scan(lake, repo_id, revision, family, day, seed, value=0.7):
    rng = np.random.default_rng(seed)
    matrices = [(f"model.layers.{i}.weight", _heavy_tailed(rng, 96, 48, 2.5 + i / 3), {}) for i in range(3)]
    evals = [dict(source="model-index", metric="accuracy", value=value, dataset="d")]
    at = dt.datetime(2026, 1, day, tzinfo=dt.UTC)
    tables = scanned_tables(repo_id, revision, family, matrices, at, scan_id=f"scan-{day}", evals=evals)
    Lake.for_writing(lake).commit_model(repo_id, revision, tables)


def test_a_build_with_nothing_changed_renders_no_model_page_and_keeps_them_all(tmp_path):
    lake = write_site_lake(tmp_path / "lake")
    first = build_site(lake, tmp_path / "site")
    before, inodes = _pages(tmp_path / "site"), _inodes(tmp_path / "site")
    again = build_site(lake, tmp_path / "site")
    assert first.rendered == first.models > 5
    assert again.rendered == 0 and again.models == first.models
    assert _pages(tmp_path / "site") == before and _inodes(tmp_path / "site") == inodes  # linked, not rewritten
    assert again.bytes["models"] == first.bytes["models"]
    assert build_site(lake, tmp_path / "site", reuse_previous=False).rendered == first.models


def test_after_a_scan_the_kept_and_rendered_pages_are_a_full_builds(tmp_path):
    lake = write_site_lake(tmp_path / "lake")
    build_site(lake, tmp_path / "site")
    inodes, family_of = _inodes(tmp_path / "site"), _families(lake)
    board = {r["repo_id"] for r in run_query(lake, "leaderboard", {"metric": "accuracy"}) if r["family"] == "fam-b"}
    # A new commit of the first of fam-b's leaderboard with the lowest value: every other rank in fam-b moves.
    _scan(lake, "org/b-0", "9" * 40, "fam-b", 20, seed=1, value=0.01)
    _scan(lake, "org/b-new", "8" * 40, "fam-b", 20, seed=2)  # a new fam-b repo
    incremental = build_site(lake, tmp_path / "site")
    full = build_site(lake, tmp_path / "full")
    assert full.rendered == full.models == incremental.models == len(family_of) + 1
    assert _pages(tmp_path / "site") == _pages(tmp_path / "full")
    kept = {name for name, inode in _inodes(tmp_path / "site").items() if inodes.get(name) == inode}
    page = {repo: f"{repo.replace('/', '--')}.html" for repo in [*family_of, "org/b-new"]}
    fam_a = {page[repo] for repo, family in family_of.items() if family == "fam-a"}
    assert fam_a and fam_a <= kept  # fam-a's pages show nothing of fam-b
    assert len(board) > 2 and not kept & {page[repo] for repo in board | {"org/b-new"}}
    assert incremental.rendered == full.models - len(kept) < full.models


def test_rows_rewritten_under_an_unchanged_models_row_re_render_that_page_only(tmp_path):
    """The key covers the per-layer rows through the lake segments that may hold them: a commit that replaces a
    repo's layers (here with the same models row) gives it a new segment, and its page is rendered again."""
    lake = write_site_lake(tmp_path / "lake")
    build_site(lake, tmp_path / "site")
    _scan(lake, "org/b-new", "8" * 40, "fam-b", 20, seed=2)
    build_site(lake, tmp_path / "site")
    inodes = _inodes(tmp_path / "site")
    _scan(lake, "org/b-new", "8" * 40, "fam-b", 20, seed=3)  # same models row keys, other matrices
    rebuilt = build_site(lake, tmp_path / "site")
    changed = {name for name, inode in _inodes(tmp_path / "site").items() if inodes[name] != inode}
    assert "org--b-new.html" in changed and rebuilt.rendered == len(changed)
    assert _pages(tmp_path / "site") == _pages(build_site(lake, tmp_path / "full").out)


def test_new_site_code_renders_every_page(tmp_path, monkeypatch):
    lake = write_site_lake(tmp_path / "lake")
    first = build_site(lake, tmp_path / "site")
    monkeypatch.setattr(reuse, "code_digest", lambda: "another version of the templates")
    assert build_site(lake, tmp_path / "site").rendered == first.models


def test_an_unreadable_record_renders_every_page(tmp_path):
    lake = write_site_lake(tmp_path / "lake")
    first = build_site(lake, tmp_path / "site")
    (tmp_path / "site" / reuse.RECORD).write_text("{not json")
    assert build_site(lake, tmp_path / "site").rendered == first.models


def test_a_build_stopped_before_its_keys_were_installed_keeps_no_stale_page(tmp_path, monkeypatch):
    """The keys (data/) are moved into place after the pages (models/): a build stopped between the two leaves the
    earlier keys beside the new pages, and the next build still writes a full build's pages."""
    from flows.site import build

    lake = write_site_lake(tmp_path / "lake")
    build_site(lake, tmp_path / "site")
    _scan(lake, "org/b-0", "9" * 40, "fam-b", 20, seed=1, value=0.01)
    replace, installed = build.os.replace, []

    def stop_at_the_second(source, target):
        if Path(target).name in ("models", "data"):
            installed.append(Path(target).name)
            if len(installed) == 2:
                raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(build.os, "replace", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        build_site(lake, tmp_path / "site")
    monkeypatch.setattr(build.os, "replace", replace)
    assert installed == ["models", "data"]
    build_site(lake, tmp_path / "site")
    assert _pages(tmp_path / "site") == _pages(build_site(lake, tmp_path / "full").out)
