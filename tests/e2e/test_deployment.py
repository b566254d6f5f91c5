"""prefect.yaml end to end on a real Prefect server: deploy, schedule, trigger, a process worker runs the nightly
flow against the fake hub, and the lake, the flow run state and the artifacts are read back."""

from __future__ import annotations

import json
import re
import subprocess
import time

import httpx
import numpy as np
import pytest
import yaml

from flows.lake.sql import run_query
from tests.e2e.conftest import BIN, ROOT
from tests.fakehub import model_index, write_model

pytestmark = pytest.mark.e2e


def prefect(args: list[str], env: dict, timeout: float = 180) -> str:
    result = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def api(env: dict, path: str, body: dict | None = None):
    url = env["PREFECT_API_URL"] + path
    response = httpx.post(url, json=body or {}, timeout=30) if body is not None else httpx.get(url, timeout=30)
    response.raise_for_status()
    return response.json()


def test_nightly_deployment_runs_on_a_process_worker(prefect_server, fake_hub, tmp_path):
    env = dict(prefect_server, WWHUB_HOME=str(ROOT))
    rng = np.random.default_rng(3)
    for i in range(3):
        folder = write_model(
            tmp_path / f"m{i}",
            {"w.weight": rng.standard_t(3, (160, 64)).astype(np.float32)},
            card={"model-index": model_index(f"m{i}", 0.6 + i / 10)},
        )
        fake_hub.add_folder(f"acme/e2e-{i}m", folder)
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  e2e:\n    author: acme\n")
    lake = tmp_path / "lake"

    prefect(["work-pool", "create", "wwhub-process", "--type", "process"], env)
    prefect(["--no-prompt", "deploy", "--all"], env)

    deployments = api(env, "/deployments/filter", {"limit": 10, "offset": 0})
    nightly = next(d for d in deployments if d["name"] == "nightly")
    declared = next(
        d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"] if d["name"] == "nightly"
    )["schedules"][0]
    stored = nightly["schedules"][0]["schedule"]
    assert (stored["cron"], stored["timezone"]) == (declared["cron"], declared["timezone"])
    assert nightly["concurrency_limit"] == 1 or nightly.get("global_concurrency_limit")

    params = {"families_file": str(families), "lake": str(lake), "endpoint": fake_hub.endpoint}
    args = ["deployment", "run", "nightly-scan/nightly"]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    # The server's scheduler also creates the next nights' runs (Scheduled, in the future): follow ours by id.
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", prefect(args, env)).group(1)
    prefect(["worker", "start", "--pool", "wwhub-process", "--run-once"], env, timeout=300)

    run = api(env, f"/flow_runs/{run_id}")
    assert run["deployment_id"] == nightly["id"]
    deadline = time.time() + 60
    while run["state_type"] not in ("COMPLETED", "FAILED", "CRASHED") and time.time() < deadline:
        time.sleep(1)
        run = api(env, f"/flow_runs/{run_id}")
    assert run["state_type"] == "COMPLETED", run["state"]
    scheduled = api(
        env, "/flow_runs/filter", {"limit": 10, "offset": 0, "flow_runs": {"deployment_id": {"any_": [nightly["id"]]}}}
    )
    assert all(r["state_type"] == "SCHEDULED" for r in scheduled if r["id"] != run_id)

    models = run_query(lake, "SELECT repo_id FROM models WHERE repo_id LIKE 'acme/e2e-%' ORDER BY 1")
    assert [m["repo_id"] for m in models] == ["acme/e2e-0m", "acme/e2e-1m", "acme/e2e-2m"]
    assert (lake / "reports" / "leaderboard.html").exists()
    artifacts = api(env, "/artifacts/filter", {"limit": 50, "offset": 0, "sort": "CREATED_DESC"})
    subflows = api(
        env, "/flow_runs/filter", {"limit": 10, "offset": 0, "flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    )
    ours = {run_id, *(r["id"] for r in subflows)}
    by_key = {a["key"]: a for a in artifacts if a["flow_run_id"] in ours}
    assert {"wwhub-scan-progress", "wwhub-leaderboard", "wwhub-nightly-changes"} <= set(by_key)
    table = by_key["wwhub-leaderboard"]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert {r["repo_id"] for r in rows} == {"acme/e2e-0m", "acme/e2e-1m", "acme/e2e-2m"}
    assert "acme/e2e-2m" in by_key["wwhub-nightly-changes"]["data"]
