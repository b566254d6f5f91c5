"""What the scan tests share: `wwhub scan` against the fake hub, and a query of the lake it wrote."""

from flows.cli import main
from flows.lake.sql import run_query


def scan(fake_hub, lake, *extra) -> int:
    """`wwhub scan --endpoint FAKE_HUB --lake LAKE ...extra`; its exit code."""
    return main(["scan", "--endpoint", fake_hub.endpoint, "--lake", str(lake), *extra])


def lake_rows(lake, sql: str) -> list[dict]:
    """The rows of ``sql`` (or a named query) over the lake."""
    return run_query(lake, sql)
