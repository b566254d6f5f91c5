"""The static site in headless Chromium: the DOM after its scripts ran (filters, sorting, links, every layer named),
and no request leaving the machine (every request is recorded; only file:// ones are let through)."""

from __future__ import annotations

import re

import pytest

from flows.cli import main
from flows.lake.sql import run_query
from flows.site.pages import family_href, model_href
from tests.flows.lakes import write_site_lake, write_synthetic_lake
from tests.flows.site.browser import broken_links

LAYERS_SQL = (
    "SELECT l.repo_id, l.layer_id, l.name, l.fit_status, l.reason, l.warning, l.correlation_trap, l.alpha "
    "FROM layers l JOIN models_latest m USING (repo_id, revision) ORDER BY l.repo_id, l.layer_id, l.slice_id"
)


def board_rows(page) -> list[dict]:
    """The leaderboard rows the page shows, as {column key: cell text}."""
    return page.evaluate(
        """() => {
            const keys = Array.from(document.querySelectorAll('#board thead th')).map(th => th.dataset.key);
            return Array.from(document.querySelectorAll('#board tbody tr')).map(tr =>
                Object.fromEntries(Array.from(tr.cells).map((td, i) => [keys[i], td.textContent])));
        }"""
    )


def assert_clean(visit) -> None:
    assert visit.outside_requests() == []
    assert visit.errors == [] and visit.dialogs == []
    assert broken_links(visit) == []


def test_demo_index_filters_sorts_and_links_offline(browser, demo_site):
    visit = browser.open(demo_site / "site" / "index.html")
    page = visit.page
    rows = board_rows(page)
    assert len(rows) == 11 and page.text_content("#board-count") == "11 of 11 models"

    page.select_option("select[name=family]", "digits-width")
    rows = board_rows(page)
    assert len(rows) == 6 and {r["family"] for r in rows} == {"digits-width"}
    assert "family=digits-width" in page.url  # the filter is in the address: a family page links to it
    page.fill("input[name=q]", "W128")  # case-insensitive substring of the repo id
    assert [r["repo_id"] for r in board_rows(page)] == ["wwhub-demo/digits-mlp-w128"]
    page.fill("input[name=q]", "")
    page.select_option("select[name=family]", "")

    board = run_query(demo_site / "lake", "leaderboard", {"metric": "accuracy"})
    page.click("#board thead th[data-key=alpha]")
    shown = [float(r["alpha"]) for r in board_rows(page)]
    # Cells show 4 significant digits: the order is the lake's, each value within rounding of its own.
    assert shown == sorted(shown) and shown == pytest.approx(sorted(r["alpha"] for r in board), rel=5e-4)
    page.click("#board thead th[data-key=alpha]")
    assert [float(r["alpha"]) for r in board_rows(page)] == sorted(shown, reverse=True)

    top = board_rows(page)[0]["repo_id"]
    page.click("#board tbody tr >> nth=0 >> a")
    page.wait_for_load_state("load")
    assert page.url.endswith(model_href(top)) and page.text_content("h1") == top
    assert_clean(visit)


def test_a_link_with_a_filter_opens_the_index_filtered(browser, demo_site):
    visit = browser.open(demo_site / "site" / "index.html", "#family=digits-batch-size&q=bs1")
    rows = board_rows(visit.page)
    assert sorted(r["repo_id"] for r in rows) == ["wwhub-demo/digits-mlp-bs1024", "wwhub-demo/digits-mlp-bs128"]
    assert visit.page.input_value("select[name=family]") == "digits-batch-size"


@pytest.mark.parametrize("site", ["demo_site", "rich_site"])
def test_every_model_page_names_every_layer_with_its_status(browser, site, request):
    root = request.getfixturevalue(site)
    layers: dict[str, list[dict]] = {}
    for row in run_query(root / "lake", LAYERS_SQL):
        layers.setdefault(row["repo_id"], []).append(row)
    models = [r["repo_id"] for r in run_query(root / "lake", "SELECT repo_id FROM models_latest ORDER BY 1")]
    for repo_id in models:
        visit = browser.open(root / "site" / model_href(repo_id))
        shown = visit.page.evaluate(
            "Array.from(document.querySelectorAll('#layers tbody tr')).map(tr => [tr.dataset.name, tr.className, "
            "tr.cells[tr.cells.length - 1].textContent])"
        )
        expected = layers.get(repo_id, [])
        assert [name for name, _, _ in shown] == [r["name"] for r in expected], repo_id
        for (_, css, reason), row in zip(shown, expected, strict=True):
            assert css.split()[0] == row["fit_status"] and reason == (row["reason"] or "")
        assert_clean(visit)


def test_depth_charts_mark_over_and_under_trained_layers_and_traps(browser, rich_site):
    layers = [r for r in run_query(rich_site / "lake", LAYERS_SQL) if r["repo_id"] == "org/odd"]
    visit = browser.open(rich_site / "site" / model_href("org/odd"))
    titles = visit.page.evaluate(
        "Array.from(document.querySelectorAll('#depth figure')[0].querySelectorAll('svg a title'))"
        ".map(t => t.textContent)"
    )
    ok = [r for r in layers if r["fit_status"] == "ok"]
    dots = sorted(int(t.split(":")[0]) for t in titles if t[0].isdigit())
    assert dots == [r["layer_id"] for r in ok]  # one dot per ok layer; skipped and failed ones have no value
    for label, chosen in (
        ("over-trained", lambda r: r["warning"] == "over-trained"),
        ("under-trained", lambda r: r["warning"] == "under-trained"),
        ("correlation trap", lambda r: bool(r["correlation_trap"])),
    ):
        marked = sorted(t.split(": ", 1)[1] for t in titles if t.startswith(label + ":"))
        assert marked == sorted(r["name"] for r in ok if chosen(r)) and marked, label
    band = visit.page.locator("#depth figure >> nth=0 >> svg rect[fill='#2ca02c']")
    assert band.count() == 1  # the 2-6 band, on the alpha chart only
    # A dot links to its row of the table.
    visit.page.locator("#depth figure >> nth=0 >> svg a").first.click()
    assert visit.page.evaluate("document.querySelector('tr:target').dataset.name") == ok[0]["name"]

    esd = visit.page.evaluate(
        "Array.from(document.querySelectorAll('#esd article')).map(a => [a.querySelector('h3').textContent, "
        "Array.from(a.querySelectorAll('svg polyline title')).map(t => t.textContent)])"
    )
    lowest = min(ok, key=lambda r: r["alpha"])
    highest = max(ok, key=lambda r: r["alpha"])
    headings = {heading.split(" · ")[0]: heading for heading, _ in esd}
    assert set(headings) == {lowest["name"], highest["name"]} | {r["name"] for r in ok if r["correlation_trap"]}
    assert "most over-trained" in headings[lowest["name"]] and "most under-trained" in headings[highest["name"]]
    for _, lines in esd:  # each ESD: W's histogram, the shuffled W's, and the fitted power law
        assert lines[:2] == ["ESD of W", "ESD of shuffled W"] and lines[2].startswith("power law α = ")
    assert_clean(visit)


def test_base_fine_tunes_distances_and_scans_over_time(browser, rich_site):
    site = rich_site / "site"
    tuned = browser.open(site / model_href("org/base-ft")).page
    assert tuned.locator("#lineage a", has_text="org/base").first.get_attribute("href") == "../" + model_href(
        "org/base"
    )
    distances = run_query(rich_site / "lake", "SELECT name FROM distances WHERE repo_id = 'org/base-ft' ORDER BY 1")
    table = tuned.locator("#lineage table tbody tr")
    assert table.count() == len(distances) == 5

    base = browser.open(site / model_href("org/base")).page
    assert base.locator("#lineage table", has_text="org/base-ft").count() == 1  # its fine-tune, ranked by move
    assert base.locator("#history table").first.locator("tbody tr").count() == 2  # scanned at two commits
    assert base.locator("#history figure svg polyline").count() == 1  # alpha over time: one line, two points
    assert "fam-a" in base.text_content("nav.top")

    adapter_base = browser.open(site / model_href("org/b-0")).page
    assert adapter_base.locator("#lineage a", has_text="org/b-lora").count() == 1  # declared on the adapter's card


def test_family_page_ranks_its_models_with_trends_and_correlations(browser, rich_site):
    visit = browser.open(rich_site / "site" / family_href("fam-b"))
    page = visit.page
    members = run_query(rich_site / "lake", "leaderboard", {"metric": "accuracy", "family": "fam-b"})
    ranked = page.evaluate(
        "Array.from(document.querySelectorAll('#ranking table')[0].tBodies[0].rows).map(r => r.cells[1].textContent)"
    )
    assert ranked == [r["repo_id"] for r in members]
    assert page.locator("#ranking table >> nth=1 >> tbody tr").count() == 1  # org/broken, not scanned, with reason
    assert "truncated" in page.text_content("#ranking")
    assert page.locator("#trends figure").count() == 5 and page.locator("#over-time figure").count() == 3
    assert page.locator("#correlations tbody tr").count() == 5
    assert_clean(visit)


def test_quantization_and_model_kind_filters(browser, rich_site):
    page = browser.open(rich_site / "site" / "index.html").page
    page.select_option("select[name=quantization]", "gptq")
    assert [r["repo_id"] for r in board_rows(page)] == ["org/moe"]
    page.select_option("select[name=quantization]", "*")
    page.select_option("select[name=kind]", "adapter")
    assert [r["repo_id"] for r in board_rows(page)] == ["org/b-lora"]


HOSTILE = (
    "<script>window.__pwned = 1; alert('x')</script>"
    '<img src="https://evil.example/x.png" onerror="window.__pwned = 2">'
    '</textarea></title><svg onload="window.__pwned = 3">&amp;'
)


def test_hostile_card_text_is_shown_as_text_and_never_runs(browser, tmp_path):
    huge = "A" * 100_000
    write_site_lake(tmp_path / "lake", hostile=HOSTILE + huge)
    assert main(["report", "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "site")]) == 0
    site = tmp_path / "site"
    pages = [
        site / "index.html",
        *sorted((site / "families").glob("*.html")),
        *sorted((site / "models").glob("*.html")),
    ]
    assert len(pages) == 1 + 2 + 9
    seen_as_text = 0
    for path in pages:
        visit = browser.open(path)
        page = visit.page
        assert page.evaluate("window.__pwned") is None, path.name
        assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0, path.name
        assert page.locator("img[src^='http'], svg[onload], [onerror]").count() == 0, path.name
        assert_clean(visit)
        text = page.evaluate("document.body.textContent")
        seen_as_text += HOSTILE in text
        # A huge string is cut, saying how much was left out, instead of filling the page.
        assert huge not in text and len(page.content()) < 2_000_000, path.name
    # The family name, the card's facts, a layer name, an eval, a failure reason: shown, as text, on every page
    # that names them (the index and fam-a's pages name the hostile family).
    assert seen_as_text >= 8
    # File names come from names, never with their markup: plain characters only.
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in site.rglob("*"))


@pytest.mark.slow
def test_ten_thousand_models(browser, tmp_path):
    lake = write_synthetic_lake(tmp_path / "lake", models=10_000, layers=4, families=20)
    assert main(["report", "--lake", str(lake), "--out", str(tmp_path / "site")]) == 0
    site = tmp_path / "site"
    assert len(list((site / "models").glob("*.html"))) == 10_000
    index_bytes = (site / "index.html").stat().st_size + (site / "data" / "leaderboard.js").stat().st_size
    assert index_bytes < 3_000_000  # the index holds the leaderboard's rows, never a model's details
    visit = browser.open(site / "index.html")
    page = visit.page
    assert page.text_content("#board-count") == "10000 of 10000 models (showing 1-100)"
    assert len(board_rows(page)) == 100  # one page of rows in the DOM, not 10 000
    page.select_option("select[name=family]", "family-007")
    assert page.text_content("#board-count").startswith("500 of 10000 models")
    page.select_option("select[name=family]", "")
    page.fill("input[name=q]", "model-00042")
    assert [r["repo_id"] for r in board_rows(page)] == ["org002/model-00042"]
    page.fill("input[name=q]", "")
    page.click("#board thead th[data-key=alpha]")
    page.click("#board thead th[data-key=alpha]")
    highest = run_query(lake, "SELECT max(alpha) AS a FROM models")[0]["a"]
    assert float(board_rows(page)[0]["alpha"]) == pytest.approx(highest, rel=5e-4)
    page.click("#board-pager button:text('next')")
    assert page.text_content("#board-count").endswith("(showing 101-200)")
    assert_clean(visit)
    model = browser.open(site / model_href("org005/model-04245"))
    assert model.page.locator("#layers tbody tr").count() == 4
    assert_clean(model)


def test_pages_fit_a_1400_px_window(browser, demo_site, rich_site):
    pages = [
        demo_site / "site" / "index.html",
        rich_site / "site" / "index.html",
        rich_site / "site" / family_href("fam-a"),
        rich_site / "site" / model_href("org/moe"),
    ]
    for path in pages:
        page = browser.open(path, width=1400).page
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400, path.name
    # The index's tables need no scroll bar of their own (a model's 20-column layer table may scroll in its box).
    page = browser.open(demo_site / "site" / "index.html", width=1400).page
    boxes = page.evaluate("Array.from(document.querySelectorAll('div.scroll')).map(d => d.scrollWidth - d.clientWidth)")
    assert boxes and max(boxes) <= 0
