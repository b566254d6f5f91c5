"""The Prefect flow is a thin recipe over the same functions: same lake as the CLI, tasks per model."""

import re

import numpy as np
import pytest

from flows.cli import main
from flows.lake import Lake, connect
from flows.lake.sql import run_query
from flows.scanning.options import ScanOptions, SourceSpec
from tests.fakehub import model_index, write_model


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


def scan_task_runs() -> int:
    """How many scan-model task runs the Prefect server knows of."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    runs = httpx.post(f"{PREFECT_API_URL.value()}/task_runs/filter", json={"limit": 200, "offset": 0}).json()
    return sum(r["name"].startswith("scan ") for r in runs)


def read_artifacts(api_url: str | None = None) -> list[dict]:
    """All artifacts, newest first, straight from the REST API: Prefect 3.8's client sends null filters that its
    own server rejects (422), and empty filters match nothing."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = (api_url or PREFECT_API_URL.value()).rstrip("/")
    response = httpx.post(f"{url}/artifacts/filter", json={"limit": 200, "offset": 0, "sort": "CREATED_DESC"})
    response.raise_for_status()
    return response.json()


@pytest.mark.slow
@pytest.mark.e2e
def test_scan_family_flow_fills_the_lake(prefect_harness, fake_hub, tmp_path):
    from flows.scan import scan_family

    rng = np.random.default_rng(0)
    for i in range(3):
        folder = write_model(
            tmp_path / f"r{i}",
            {"w.weight": rng.standard_t(3, (120, 60)).astype(np.float32)},
            shards=1,
            card={"model-index": model_index(f"r{i}", 0.6 + i / 10)},
        )
        fake_hub.add_folder(f"acme/flow-{i}m", folder)
    fake_hub.hide("acme/flow-9m")
    lake = str(tmp_path / "lake")
    report = scan_family("flows", {"author": "acme"}, lake, source=SourceSpec("hub", fake_hub.endpoint))
    assert report.listed == 3 and report.count("scanned") == 3
    con = connect(Lake.open(tmp_path / "lake"))
    assert con.execute("SELECT count(*), min(family) FROM models").fetchall() == [(3, "flows")]
    assert con.execute("SELECT count(*) FROM scans").fetchall() == [(1,)]
    again = scan_family("flows", {"author": "acme"}, lake, source=SourceSpec("hub", fake_hub.endpoint))
    assert again.count("skipped") == 3


@pytest.mark.slow
@pytest.mark.e2e
def test_scan_families_flow_selects_layers_and_compares_with_the_base(prefect_harness, fake_hub, tmp_path):
    """The flow (the path `--task-runner dask` takes) honours --layers and --base like the threads path."""
    from flows.scan import scan_families

    rng = np.random.default_rng(1)
    base = {"embed.weight": rng.standard_t(3, (300, 40)).astype(np.float32)}
    base["w.weight"] = rng.standard_t(3, (120, 60)).astype(np.float32)
    tune = {name: w + 0.01 * rng.standard_normal(w.shape).astype(np.float32) for name, w in base.items()}
    for repo, tensors in (("acme/base-1m", base), ("acme/tune-1m", tune)):
        fake_hub.add_folder(repo, write_model(tmp_path / repo.split("/")[1], tensors, shards=1))
    lake = str(tmp_path / "lake")
    families = {"tunes": {"repos": ["acme/tune-1m"]}}
    spec = SourceSpec("hub", fake_hub.endpoint)
    options = ScanOptions(layers="dense", base="acme/base-1m")
    report = scan_families(families, lake, spec, options, progress=False)
    assert report.count("scanned") == 1
    con = connect(Lake.open(tmp_path / "lake"))
    assert con.execute("SELECT layer_selection, num_layers FROM models").fetchall() == [("dense", 1)]
    distances = con.execute("SELECT name, base_repo_id, relative_change FROM distances").fetchall()
    assert [(name, base_repo) for name, base_repo, _ in distances] == [("w.weight", "acme/base-1m")]
    assert 0 < distances[0][2] < 0.1  # a 1% perturbation, measured against the base


@pytest.mark.slow
@pytest.mark.e2e
def test_nightly_flow_scans_only_what_changed_and_publishes_artifacts(prefect_harness, fake_hub, tmp_path):
    from flows.nightly import nightly_scan

    rng = np.random.default_rng(1)

    def add(repo_id, accuracy):
        folder = write_model(
            tmp_path / repo_id / str(rng.integers(1 << 30)),
            {"w.weight": rng.standard_t(3, (150, 60)).astype(np.float32)},
            card={"model-index": model_index(repo_id, accuracy)},
        )
        return fake_hub.add_folder(repo_id, folder)

    for i in range(3):
        add(f"acme/night-{i}m", 0.6 + i / 10)
    families = tmp_path / "families.yaml"
    families.write_text("families:\n  night:\n    author: acme\n")
    lake = str(tmp_path / "lake")
    params = dict(families_file=str(families), lake=lake, source="hub", endpoint=fake_hub.endpoint, workers=2)
    tasks_at_start = scan_task_runs()
    first = nightly_scan(**params)
    assert first["scanned"] == 3 and first["failed"] == 0
    assert (tmp_path / "lake" / "reports" / "leaderboard.html").exists()

    add("acme/night-9m", 0.95)  # a new model
    add("acme/night-1m", 0.72)  # a new commit of an old one
    second = nightly_scan(**params)
    assert second["scanned"] == 2 and second["skipped"] == 2
    assert sorted(second["changed"]) == ["acme/night-1m", "acme/night-9m"]

    # Third night, nothing new: the ledger skips every listed commit before any task is made.
    assert scan_task_runs() - tasks_at_start == 3 + 2  # one task per model scanned, none for the skipped ones
    third = nightly_scan(**params)
    assert third["scanned"] == 0 and third["skipped"] == 4
    assert scan_task_runs() - tasks_at_start == 3 + 2

    found = read_artifacts()
    keys = {a["key"] for a in found}
    assert {"wwhub-scan-progress", "wwhub-leaderboard", "wwhub-nightly-changes"} <= keys
    summaries = [a["data"] for a in found if a["key"] == "wwhub-nightly-changes"]  # newest first
    assert len(summaries) == 3
    assert "## New models (1)\n- `acme/night-9m`" in summaries[1]
    assert "## New commits (1)\n- `acme/night-1m`" in summaries[1]
    assert "## New models (0)" in summaries[0] and "## New commits (0)" in summaries[0]


@pytest.mark.slow
@pytest.mark.e2e
def test_the_cli_and_the_prefect_flow_record_the_same_scan(prefect_harness, fake_hub, tmp_path, capsys):
    """One scan loop: the same fixture hub scanned by `wwhub scan` and by the Prefect flow gives the same counts and
    the same scans row (but its id and times), problems included: a missing repo, a corrupt shard, one already in
    the lake."""
    from flows.scan import scan_families

    rng = np.random.default_rng(3)
    for i in range(3):
        folder = write_model(tmp_path / f"s{i}", {"w.weight": rng.standard_t(3, (90, 45)).astype(np.float32)}, shards=1)
        if i == 2:
            shard = folder / "model.safetensors"
            shard.write_bytes(shard.read_bytes()[:200])
        fake_hub.add_folder(f"acme/same-{i}m", folder)
    families = {"same": {"repos": ["acme/same-0m", "acme/same-1m", "acme/same-2m", "acme/gone"]}}
    spec = SourceSpec("hub", fake_hub.endpoint)
    scans = {}
    for path in ("cli", "prefect"):
        lake = tmp_path / path
        # acme/same-0m is already in each lake: skipped by both.
        assert (
            main(["scan", "acme/same-0m", "--family", "same", "--endpoint", fake_hub.endpoint, "--lake", str(lake)])
            == 0
        )
        if path == "cli":
            families_file = tmp_path / "families.yaml"
            families_file.write_text(
                "families:\n  same:\n    repos: [acme/same-0m, acme/same-1m, acme/same-2m, acme/gone]\n"
            )
            code = main(
                ["scan", "--families", str(families_file), "--endpoint", fake_hub.endpoint, "--lake", str(lake)]
            )
            assert code == 1
        else:
            report = scan_families(families, str(lake), spec, ScanOptions(), progress=False)
            assert report.exit_code == 1
        rows = run_query(lake, "SELECT * EXCLUDE (scan_id, started_at, ended_at, seconds, wwhub_version) FROM scans")
        for row in rows:  # a shard's download folder is named by the process that fetched it
            row["errors"] = re.sub(r"/\S*wwhub-shards-[^/]+/", "WORKDIR/", row["errors"])
        scans[path] = sorted(rows, key=lambda r: r["listed"])
    assert scans["cli"] == scans["prefect"]
    last = scans["cli"][-1]
    assert (last["listed"], last["scanned"], last["skipped"], last["failed"]) == (4, 1, 1, 2)


def test_progress_updates_are_throttled_not_one_request_per_model(monkeypatch):
    import flows.scan

    sent = []
    monkeypatch.setattr(flows.scan, "create_progress_artifact", lambda *a, **k: "artifact-id")
    monkeypatch.setattr(flows.scan, "update_progress_artifact", lambda artifact, value: sent.append(value))
    now = [0.0]
    on_listed, on_model = flows.scan._progress_artifact(every_seconds=2.0, clock=lambda: now[0])
    on_listed(5000)
    for _ in range(4999):  # a quiet night: every model decided in a burst
        on_model(None)
    assert sent == [100.0 / 5000]
    now[0] = 2.5  # a model scanned later is reported once the interval has passed
    on_model(None)
    assert sent == [100.0 / 5000, 100.0]  # and the last model always is
