"""The hub's listing against a hub that misbehaves: a ``next`` link that loops or never ends costs its family alone,
an item that is not a repo costs itself alone, and a repo listed twice is scanned once."""

from __future__ import annotations

import numpy as np
import pytest

from flows.cli import main
from flows.sources import listing
from tests.fakehub import _Handler, write_model
from tests.flows.scanning.helpers import lake_rows

REPOS = ("acme/a", "acme/b")


@pytest.fixture
def acme(fake_hub, tmp_path):
    rng = np.random.default_rng(3)
    for repo_id in REPOS:
        tensors = {f"l{k}.weight": rng.standard_t(3, (64, 32)).astype(np.float32) for k in range(2)}
        fake_hub.add_folder(repo_id, write_model(tmp_path / repo_id, tensors))
    return fake_hub


def answer_listing(monkeypatch, pages) -> None:
    """The fake hub lists ``pages(hub, offset)``: (items, the next page's offset or None) instead of its repos."""

    def list_models(self, query: dict) -> None:
        items, following = pages(self.hub, int((query.get("offset") or [0])[0]))
        url = f"{self.hub.endpoint}/api/models?author=acme&expand=sha&offset={following}"
        self._json(items, {"Link": f'<{url}>; rel="next"'} if following is not None else {})

    monkeypatch.setattr(_Handler, "_list_models", list_models)


def item(hub, repo_id: str) -> dict:
    return {"_id": repo_id, "id": repo_id, "sha": hub.repos[repo_id].head.sha}


def scan_families(hub, tmp_path, families: str) -> int:
    path = tmp_path / "families.yaml"
    path.write_text(families)
    return main(["scan", "--families", str(path), "--endpoint", hub.endpoint, "--lake", str(tmp_path / "lake")])


LISTED_AND_EXPLICIT = "families:\n  listed:\n    author: acme\n  explicit:\n    repos: [acme/b]\n"


def test_a_next_link_back_to_a_listed_page_costs_its_family_alone(acme, tmp_path, monkeypatch, capsys):
    answer_listing(monkeypatch, lambda hub, offset: ([item(hub, "acme/a")], 0))  # page 0 says: next is page 0
    assert scan_families(acme, tmp_path, LISTED_AND_EXPLICIT) == 1
    err = capsys.readouterr().err
    assert "wwhub scan: family listed: list models: the next page" in err and "(a listing that loops)" in err
    models = lake_rows(tmp_path / "lake", "SELECT repo_id, family, status FROM models")
    assert models == [{"repo_id": "acme/b", "family": "explicit", "status": "scanned"}]


def test_a_listing_that_never_ends_stops_at_the_page_cap(acme, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(listing, "MAX_LISTING_PAGES", 5)
    answer_listing(monkeypatch, lambda hub, offset: ([item(hub, "acme/a")], offset + 1))  # always one more page
    assert scan_families(acme, tmp_path, LISTED_AND_EXPLICIT) == 1
    assert "wwhub scan: family listed: list models: more than 5 pages: stopped" in capsys.readouterr().err
    pages = acme.count("GET", "/api/models") - acme.count("GET", "/api/models/")
    assert pages == 1 + 5  # the scan's reachability probe, then the family's 5 pages
    assert [m["repo_id"] for m in lake_rows(tmp_path / "lake", "SELECT repo_id FROM models")] == ["acme/b"]


def test_an_item_that_is_not_a_repo_is_skipped_and_the_family_scanned(acme, tmp_path, monkeypatch, capsys):
    def pages(hub, offset):
        hostile = [{"_id": "x", "sha": "a" * 40}, "acme/a", None, 3, {"_id": "y", "id": None}, {"id": 12345}]
        return [*hostile, item(hub, "acme/a"), item(hub, "acme/b")], None

    answer_listing(monkeypatch, pages)
    assert main(["scan", "--author", "acme", "--endpoint", acme.endpoint, "--lake", str(tmp_path / "lake")]) == 0
    err = capsys.readouterr().err
    assert "a listed item is not a repo ('acme/a'); skipped" in err and "repo id 12345 is not a Hub repo id" in err
    models = lake_rows(tmp_path / "lake", "SELECT repo_id, status FROM models ORDER BY repo_id")
    assert models == [{"repo_id": repo_id, "status": "scanned"} for repo_id in REPOS]


def test_a_repo_on_two_pages_of_a_listing_is_scanned_once(acme, tmp_path, monkeypatch, capsys):
    """Offset pages shift when a repo is created while they are read: the Hub can list a repo on two pages."""
    answer_listing(
        monkeypatch,
        lambda hub, offset: (
            ([item(hub, "acme/a")], 1) if offset == 0 else ([item(hub, "acme/a"), item(hub, "acme/b")], None)
        ),
    )
    assert main(["scan", "--author", "acme", "--endpoint", acme.endpoint, "--lake", str(tmp_path / "lake")]) == 0
    assert "acme/a listed again on a later page; kept once" in capsys.readouterr().err
    assert acme.count("GET", "/api/models/acme/a") == 1  # one model_info: one scan of the repo
    rows = lake_rows(tmp_path / "lake", "SELECT repo_id, count(*) AS n FROM models GROUP BY repo_id ORDER BY repo_id")
    assert rows == [{"repo_id": repo_id, "n": 1} for repo_id in REPOS]


def test_a_repo_two_families_list_is_scanned_once_in_the_first(acme, tmp_path, capsys):
    families = "families:\n  first:\n    repos: [acme/a]\n  second:\n    repos: [acme/a, acme/b]\n"
    assert scan_families(acme, tmp_path, families) == 0
    assert "family second: acme/a listed before, in first: scanned once, there" in capsys.readouterr().err
    assert acme.count("GET", "/api/models/acme/a") == 1
    lake = tmp_path / "lake"
    models = lake_rows(lake, "SELECT repo_id, family FROM models ORDER BY repo_id")
    assert models == [{"repo_id": "acme/a", "family": "first"}, {"repo_id": "acme/b", "family": "second"}]
    # Each family's membership is what it listed; the scan counts the repo once.
    members = lake_rows(lake, "SELECT family, repo_id FROM memberships ORDER BY family, repo_id")
    assert [(m["family"], m["repo_id"]) for m in members] == [
        ("first", "acme/a"),
        ("second", "acme/a"),
        ("second", "acme/b"),
    ]
    assert lake_rows(lake, "SELECT listed, scanned FROM scans") == [{"listed": 2, "scanned": 2}]
