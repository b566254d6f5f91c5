"""Streaming guarantees, measured on a real `wwhub scan` process: one shard (plus one prefetched) on disk and in
memory at a time; SIGKILL mid-scan leaves no partial or duplicate rows; the HF cache scans offline."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import snapshot_download

from flows.lake import Lake, connect
from tests.fakehub import model_index, write_model
from tests.memory import peaks_while_running, status_bytes

ROOT = Path(__file__).resolve().parents[3]


def spawn(args, env_extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "flows", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def folder_bytes(folder: Path) -> int:
    total = 0
    # The scan creates and deletes files while we walk: whatever vanished under us counts as 0 bytes.
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                pass
    return total


def watch(proc, workdir: Path) -> tuple[int, int]:
    """Peak bytes under ``workdir`` and peak RSS of ``proc``, sampled every 10 ms until it exits."""
    return peaks_while_running(proc, lambda: folder_bytes(workdir), lambda: status_bytes("VmRSS", proc.pid))


def big_tensors(seed: int, count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"layers.{i}.weight": rng.standard_normal((1536, 1024), dtype=np.float32) for i in range(count)}


@pytest.mark.slow
def test_one_shard_at_a_time_on_disk_and_in_memory(fake_hub, tmp_path):
    """Two models with the same shard size, 2 and 8 shards: the 8-shard one (4x the bytes) needs no more disk and
    (within the noise of a peak RSS) no more memory, so what a scan holds is bounded by a shard, not the model."""
    peaks, shard_sizes = {}, {}
    for shards in (2, 8):
        repo = f"acme/stream-{shards}b"
        folder = write_model(tmp_path / repo, big_tensors(shards, 6 * shards), shards=shards)
        fake_hub.add_folder(repo, folder)
        shard_sizes[shards] = max(p.stat().st_size for p in folder.glob("model-*.safetensors"))
        workdir = tmp_path / f"work-{shards}"
        workdir.mkdir()
        # Slow shard downloads a little so the sampler sees every state of the work folder.
        fake_hub.slow(0.2, match=".safetensors")
        proc = spawn(
            ["scan", repo, "--endpoint", fake_hub.endpoint, "--lake", str(tmp_path / "lake"), "--workers", "1"],
            {"WWHUB_WORKDIR": str(workdir)},
        )
        peaks[shards] = watch(proc, workdir)
        fake_hub.clear_faults()
        assert proc.returncode == 0, proc.stderr.read()
        assert folder_bytes(workdir) == 0  # every shard deleted after analysis

    shard_size = max(shard_sizes.values())
    for shards, (disk, _) in peaks.items():
        # Disk: the shard being analyzed plus the one being prefetched, never the whole model.
        assert shard_size <= disk <= 2 * shard_size + 1_000_000, (shards, disk, shard_size)
    # Memory: 6 more shards (~225 MB more weights) cost less than two shards (75 MB) of extra resident memory. The
    # peak RSS of one scan process varies by about one shard from run to run (malloc arenas of the layer and
    # download threads), so one shard of margin would be flaky; holding the model would add all 225 MB.
    growth = peaks[8][1] - peaks[2][1]
    assert growth < 2 * shard_size, (growth / 1e6, shard_size / 1e6)
    con = connect(Lake.open(tmp_path / "lake"))
    assert con.execute("SELECT count(*) FROM layers WHERE repo_id = 'acme/stream-8b'").fetchall()[0][0] == 48


def models_in(lake) -> int:
    """Models committed so far (0 before the lake exists)."""
    if not (lake / "manifest.json").exists():
        return 0
    con = connect(Lake.open(lake))
    try:
        return con.execute("SELECT count(*) FROM models").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.slow
def test_sigkill_mid_scan_leaves_no_partial_or_duplicate_rows(fake_hub, tmp_path):
    repos = []
    for i in range(4):
        folder = write_model(
            tmp_path / f"m{i}", big_tensors(i, 4), shards=2, card={"model-index": model_index(f"m{i}", 0.5 + i / 10)}
        )
        fake_hub.add_folder(f"acme/kill-{i}m", folder)
        repos.append(f"acme/kill-{i}m")
    lake = tmp_path / "lake"
    fake_hub.slow(0.3, match=".safetensors")
    proc = spawn(["scan", *repos, "--endpoint", fake_hub.endpoint, "--lake", str(lake), "--workers", "1"], {})
    deadline = time.time() + 120
    # Kill as soon as the first model has landed: the second is then mid-flight.
    while time.time() < deadline and not models_in(lake):
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fake_hub.clear_faults()
    landed = models_in(lake)
    assert 1 <= landed < 4

    rerun = spawn(["scan", *repos, "--endpoint", fake_hub.endpoint, "--lake", str(lake)], {})
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"skipped {landed}" in out
    con = connect(Lake.open(lake))
    duplicates = con.execute("SELECT repo_id, name, count(*) FROM layers GROUP BY ALL HAVING count(*) > 1").fetchall()
    assert duplicates == []
    assert con.execute("SELECT count(*) FROM layers").fetchall()[0][0] == 16
    assert con.execute("SELECT count(*) FROM models").fetchall()[0][0] == 4
    assert con.execute("SELECT count(*) FROM evals").fetchall()[0][0] == 4


def test_cache_source_scans_offline(fake_hub, tmp_path, monkeypatch):
    folder = write_model(
        tmp_path / "c",
        {"a.weight": np.random.default_rng(1).standard_t(3, (200, 80))},
        card={"model-index": model_index("cached", 0.77)},
    )
    sha = fake_hub.add_folder("acme/cached-7m", folder)
    cache = tmp_path / "hf-cache"
    snapshot_download("acme/cached-7m", cache_dir=cache, endpoint=fake_hub.endpoint)
    fake_hub.stop()  # the network is gone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from flows.cli import main

    lake = tmp_path / "lake"
    assert main(["scan", "--source", "cache", str(cache), "--lake", str(lake)]) == 0
    con = connect(Lake.open(lake))
    rows = con.execute("SELECT repo_id, revision, family, status FROM models").fetchall()
    assert rows == [("acme/cached-7m", sha, "cached", "scanned")]
    assert con.execute("SELECT value FROM evals").fetchall() == [(0.77,)]
    assert (cache / "models--acme--cached-7m").exists()  # the user's cache is left alone
