"""Impatient users and killed processes: Ctrl-C stops a scan quickly and keeps what completed (exit 130); a scan
killed with SIGKILL mid-shard leaves a work folder that the next scan removes, and only folders of dead owners go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from flows.scanning.workdirs import PREFIX, _host, new_workdir, remove_dead_workdirs
from tests.fakehub import model_index, write_model
from tests.flows.lake.synth import rows

WWHUB = Path(sys.executable).parent / "wwhub"


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_dead_owners_work_folders_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("WWHUB_WORKDIR", str(tmp_path))
    live = subprocess.Popen(["sleep", "60"])
    try:
        dead = tmp_path / f"{PREFIX}{dead_pid()}@{_host()}-abcd1234"
        alive = tmp_path / f"{PREFIX}{live.pid}@{_host()}-abcd1234"
        other_host = tmp_path / f"{PREFIX}{dead_pid()}@another.host-abcd1234"
        not_ours = tmp_path / f"{PREFIX}something-else"
        for folder in (dead, alive, other_host, not_ours):
            (folder / "model.safetensors.incomplete").parent.mkdir()
            (folder / "model.safetensors.incomplete").write_bytes(b"half")
        mine = new_workdir()
        assert mine.parent == tmp_path and mine.name.startswith(f"{PREFIX}{os.getpid()}@")
        assert remove_dead_workdirs() == [dead]
        assert not dead.exists()
        assert alive.exists() and other_host.exists() and not_ours.exists() and mine.exists()
    finally:
        live.kill()
        live.wait()


@pytest.fixture
def slow_family(fake_hub, tmp_path):
    rng = np.random.default_rng(2)
    repos = [f"acme/slow-{k}m" for k in range(1, 5)]
    for k, repo_id in enumerate(repos):
        folder = write_model(
            tmp_path / "src" / repo_id,
            {f"l{i}.weight": rng.standard_t(3, (80, 40)).astype(np.float32) for i in range(3)},
            card={"model-index": model_index(repo_id, 0.5 + k / 10)},
        )
        fake_hub.add_folder(repo_id, folder)
    return repos


def spawn_scan(fake_hub, lake: Path, workdir: Path, *repos: str) -> subprocess.Popen:
    env = dict(os.environ, WWHUB_WORKDIR=str(workdir), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    argv = [str(WWHUB), "scan", *repos, "--endpoint", fake_hub.endpoint, "--lake", str(lake), "--workers", "1"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def scanned_models(lake: Path) -> list[str]:
    """The models committed so far (none before the lake's first commit)."""
    if not (lake / "manifest.json").exists():
        return []
    return [repo for (repo,) in rows(lake, "SELECT repo_id FROM models WHERE repo_id LIKE 'acme/%' ORDER BY 1")]


@pytest.mark.slow
def test_ctrl_c_stops_the_scan_keeps_what_completed_and_exits_130(fake_hub, slow_family, tmp_path):
    fake_hub.slow(0.7, match=".safetensors")  # every header read and download of every model
    lake, workdir = tmp_path / "lake", tmp_path / "work"
    workdir.mkdir()
    scan = spawn_scan(fake_hub, lake, workdir, *slow_family)
    wait_for(lambda: scanned_models(lake) or scan.poll() is not None)
    interrupted_at = time.monotonic()
    scan.send_signal(signal.SIGINT)
    _, err = scan.communicate(timeout=60)
    assert scan.returncode == 130, err
    assert time.monotonic() - interrupted_at < 10  # the brief's bound: queued models are not scanned first
    assert "wwhub scan: interrupted; what completed is kept" in err and "Traceback" not in err
    done = scanned_models(lake)
    assert 1 <= len(done) < len(slow_family)
    complete = rows(
        lake, "SELECT m.repo_id, count(l.name) FROM models m JOIN layers l USING (repo_id, revision) GROUP BY 1"
    )
    errors = rows(lake, "SELECT errors FROM scans")
    assert len(complete) == len(done) and all(n == 3 for _, n in complete)  # every kept model is whole
    assert "interrupted after" in errors[0][0]
    fake_hub.clear_faults()
    assert main(["scan", *slow_family, "--endpoint", fake_hub.endpoint, "--lake", str(lake)]) == 0
    assert len(scanned_models(lake)) == len(slow_family)


@pytest.mark.slow
def test_a_scan_killed_mid_shard_leaves_a_folder_the_next_scan_removes(fake_hub, slow_family, tmp_path, monkeypatch):
    fake_hub.stall_after_headers(match="model.safetensors", ranged=False, count=1)  # the download hangs mid-body
    lake, workdir = tmp_path / "lake", tmp_path / "work"
    workdir.mkdir()
    scan = spawn_scan(fake_hub, lake, workdir, slow_family[0])
    wait_for(lambda: list(workdir.glob(f"{PREFIX}*/**/*.incomplete")) or scan.poll() is not None)
    scan.kill()  # SIGKILL: no cleanup of any kind runs
    scan.wait()
    left = list(workdir.glob(f"{PREFIX}*"))
    assert len(left) == 1 and left[0].name.startswith(f"{PREFIX}{scan.pid}@")
    assert not scanned_models(lake)  # the killed model left nothing that counts
    monkeypatch.setenv("WWHUB_WORKDIR", str(workdir))
    assert main(["scan", slow_family[0], "--endpoint", fake_hub.endpoint, "--lake", str(lake)]) == 0
    assert not list(workdir.iterdir())  # the dead scan's folder went, and this scan's own too
    assert len(scanned_models(lake)) == 1
