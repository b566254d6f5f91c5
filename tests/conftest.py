"""Shared fixtures: an isolated Hugging Face environment and a running fake hub."""

from __future__ import annotations

import pytest

from tests.fakehub import FakeHub


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path_factory, monkeypatch):
    """No test touches the user's Hugging Face cache, token or the network."""
    home = tmp_path_factory.mktemp("hf-home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("WWHUB_CACHE", str(home / "wwhub"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return home


@pytest.fixture
def fake_hub():
    with FakeHub() as hub:
        yield hub
