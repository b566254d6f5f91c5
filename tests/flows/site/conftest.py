"""Fixtures of the static site's tests: the browser, the demo lake and its site, a lake with every kind of row."""

import pytest

from flows.cli import main
from tests.flows.lakes import write_site_lake
from tests.flows.site.browser import launched_browser


@pytest.fixture(scope="session")
def browser():
    yield from launched_browser()


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory):
    """`wwhub demo`'s lake and the site it wrote."""
    root = tmp_path_factory.mktemp("demo-site")
    assert main(["demo", "--lake", str(root / "lake"), "--out", str(root / "site")]) == 0
    return root


@pytest.fixture(scope="session")
def rich_site(tmp_path_factory):
    """write_site_lake's lake (two families, a fine-tune, experts, traps, skipped and failed layers, two commits of
    one repo) and its site from `wwhub report`."""
    root = tmp_path_factory.mktemp("rich-site")
    write_site_lake(root / "lake")
    assert main(["report", "--lake", str(root / "lake"), "--out", str(root / "site")]) == 0
    return root
