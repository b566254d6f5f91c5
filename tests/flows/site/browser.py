"""Headless Chromium for the site's tests: Debian's ``chromium`` driven by Playwright (no browser download).

Every request a page makes is recorded and only ``file://`` ones are let through, so a test can assert that nothing
left the machine; script errors, console errors and dialogs (``alert`` from an injected script) are recorded too.
Where chromium or Playwright is missing the tests skip, saying why; with ``WWHUB_REQUIRE_CHROMIUM=1`` (set by
.ci/run, which installs chromium) they fail instead.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

REQUIRE = "WWHUB_REQUIRE_CHROMIUM"


def chromium_path() -> str:
    """The chromium executable, or skip (fail under WWHUB_REQUIRE_CHROMIUM) saying what is missing."""
    path = shutil.which("chromium")
    missing = None
    if path is None:
        missing = "Debian's chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get(REQUIRE):
            pytest.fail(f"{REQUIRE} is set but {missing}")
        pytest.skip(missing)
    return path


@dataclass
class Visit:
    """One page opened in its own browser context, with what it asked for and what went wrong."""

    page: object
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def outside_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith("file://")]


class Browser:
    def __init__(self, browser):
        self.browser = browser

    def open(self, path: Path, fragment: str = "", width: int = 1400, height: int = 1000) -> Visit:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        visit = Visit(page)

        def route(handler):
            url = handler.request.url
            visit.requests.append(url)
            handler.continue_() if url.startswith("file://") else handler.abort()

        context.route("**/*", route)
        page.on("websocket", lambda socket: visit.requests.append(socket.url))
        page.on("pageerror", lambda error: visit.errors.append(str(error)))
        page.on("console", lambda message: visit.errors.append(message.text) if message.type == "error" else None)
        page.on("dialog", lambda dialog: (visit.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(path.resolve().as_uri() + fragment, wait_until="load")
        return visit


def launched_browser():
    """A generator yielding a Browser over headless chromium (for a session fixture), closed after."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield Browser(launched)
        launched.close()


def local_file(url: str) -> Path:
    """The file a file:// URL names (fragment and query dropped)."""
    return Path(unquote(urlparse(url).path))


def broken_links(visit: Visit) -> list[str]:
    """Every link, image and script of the page (as the browser resolved them) whose file does not exist."""
    urls = visit.page.evaluate(
        "Array.from(document.querySelectorAll('a[href], img[src], script[src], link[href]'))"
        ".map(e => new URL(e.getAttribute('href') || e.getAttribute('src'), document.baseURI).href)"
    )
    return [url for url in urls if url.startswith("file://") and not local_file(url).is_file()]
