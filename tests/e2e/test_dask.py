"""Scale-out on a real Dask cluster (scheduler + 2 worker processes): the same lake rows as a local run, and a
worker killed mid-scan loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from flows.lake import Lake, connect
from flows.scanning.loop import run_scan
from flows.scanning.options import ScanOptions, SourceSpec
from tests.e2e.conftest import BIN, ROOT
from tests.fakehub import model_index, write_model

pytestmark = pytest.mark.e2e
COLUMNS = "repo_id, revision, name, layer_id, alpha, lambda_max, D, xmin, rand_lambda_max, fit_status"


def lake_layers(lake) -> list[tuple]:
    con = connect(Lake.open(lake))
    try:
        return con.execute(f"SELECT {COLUMNS} FROM layers ORDER BY repo_id, layer_id").fetchall()
    finally:
        con.close()


@pytest.fixture
def family(fake_hub, tmp_path):
    rng = np.random.default_rng(11)
    for i in range(8):
        tensors = {f"l{k}.weight": rng.standard_t(3, (400, 200)).astype(np.float32) for k in range(4)}
        folder = write_model(tmp_path / f"d{i}", tensors, shards=2, card={"model-index": model_index(f"d{i}", 0.5)})
        fake_hub.add_folder(f"acme/dask-{i}m", folder)
    return {"dask": {"author": "acme"}}


def test_dask_scan_matches_local_and_survives_a_killed_worker(prefect_server, dask_cluster, fake_hub, family, tmp_path):
    address, workers = dask_cluster
    spec = SourceSpec("hub", fake_hub.endpoint)
    local = tmp_path / "local"
    assert (
        run_scan(spec, family, str(local), ScanOptions(analysis={"randomize": True, "seed": 3}, workers=2)).count(
            "scanned"
        )
        == 8
    )

    remote = tmp_path / "remote"
    fake_hub.slow(0.3, match=".safetensors")  # long enough to kill a worker while models are in flight

    def kill_one_worker_when_the_first_model_lands():
        deadline = time.time() + 120
        while time.time() < deadline and not ((remote / "manifest.json").exists() and lake_layers(remote)):
            time.sleep(0.05)
        os.killpg(workers[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker_when_the_first_model_lands)
    killer.start()
    # The CLI in its own process, as a user runs it: Prefect's client services (events, logs) are per process,
    # so an in-process flow against this server would leave them pointed at it for the tests that follow.
    scan = subprocess.run(
        [
            str(BIN / "wwhub"),
            "scan",
            "--author",
            "acme",
            "--family",
            "dask",
            "--endpoint",
            fake_hub.endpoint,
            "--lake",
            str(remote),
            "--randomize",
            "--seed",
            "3",
            "--esd",
            "none",
            "--task-runner",
            "dask",
            "--dask-address",
            address,
        ],
        env=prefect_server,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    killer.join()
    fake_hub.clear_faults()
    assert scan.returncode == 0, scan.stdout[-3000:] + scan.stderr[-3000:]
    assert workers[0].poll() is not None  # the worker really died mid-scan
    summary = re.search(r"listed (\d+), scanned (\d+), skipped (\d+) .* failed (\d+)", scan.stdout)
    listed, scanned, skipped, failed = (int(v) for v in summary.groups())
    # A model whose worker died is rerun elsewhere; if it had landed already, the ledger skips it.
    assert (listed, scanned + skipped, failed) == (8, 8, 0), scan.stdout
    con = connect(Lake.open(remote))
    assert con.execute("SELECT count(*), count(DISTINCT repo_id) FROM models").fetchall() == [(8, 8)]
    assert lake_layers(remote) == lake_layers(local)  # identical rows: seeded per layer, whichever worker ran it
    # --esd none reaches the workers: no eigenvalues stored remotely.
    assert con.execute("SELECT count(*) FROM esd").fetchall() == [(0,)]
    assert connect(Lake.open(local)).execute("SELECT count(*) FROM esd").fetchall()[0][0] > 0
