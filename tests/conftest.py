"""Shared fixtures: an isolated Hugging Face environment and a running fake hub."""

from __future__ import annotations

import logging

import pytest

from tests.fakehub import FakeHub


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject.toml): one worker per usable core, at most 4. Each worker imports torch, scipy and
    matplotlib, and some tests hold a model or a 100 MB layer in memory: more workers would cost memory on a large
    machine for little time (the longest module alone takes ~2 min)."""
    from flows.analysis.model_analysis import usable_cores

    return min(usable_cores(), 4)


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path_factory, monkeypatch):
    """No test touches the user's Hugging Face cache, token or the network."""
    home = tmp_path_factory.mktemp("hf-home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("WWHUB_CACHE", str(home / "wwhub"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    for variable in (
        "WWHUB_HUB_TIMEOUT",
        "WWHUB_HUB_RETRIES",
        "WWHUB_HUB_BACKOFF",
        "WWHUB_HUB_MAX_WAIT",
        "WWHUB_DEBUG",
    ):
        monkeypatch.delenv(variable, raising=False)
    yield home
    # A scan installs its timeouts and retries in huggingface_hub's shared client; the next test starts clean.
    from flows.sources.transport import uninstall

    uninstall()
    # `main()` gives wwhub's loggers their own one-line handler; give them back to pytest's capture (caplog).
    logger = logging.getLogger("flows")
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def fake_hub():
    with FakeHub() as hub:
        yield hub
