"""The Prefect flow is a thin recipe over the same functions: same lake as the CLI, tasks per model."""

import numpy as np
import pytest

from flows.lake import Lake, connect
from flows.pipeline import SourceSpec
from tests.fakehub import model_index, write_model


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


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
    report = scan_families(families, lake, spec, progress=False, layers="dense", base="acme/base-1m")
    assert report.count("scanned") == 1
    con = connect(Lake.open(tmp_path / "lake"))
    assert con.execute("SELECT layer_selection, num_layers FROM models").fetchall() == [("dense", 1)]
    distances = con.execute("SELECT name, base_repo_id, relative_change FROM distances").fetchall()
    assert [(name, base_repo) for name, base_repo, _ in distances] == [("w.weight", "acme/base-1m")]
    assert 0 < distances[0][2] < 0.1  # a 1% perturbation, measured against the base


@pytest.mark.slow
@pytest.mark.e2e
def test_nightly_flow_scans_only_what_changed_and_publishes_artifacts(prefect_harness, fake_hub, tmp_path):
    from flows.scan import nightly_scan

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
    first = nightly_scan(**params)
    assert first["scanned"] == 3 and first["failed"] == 0
    assert (tmp_path / "lake" / "reports" / "leaderboard.html").exists()

    add("acme/night-9m", 0.95)  # a new model
    add("acme/night-1m", 0.72)  # a new commit of an old one
    second = nightly_scan(**params)
    assert second["scanned"] == 2 and second["skipped"] == 2
    assert sorted(second["changed"]) == ["acme/night-1m", "acme/night-9m"]

    # Third night, nothing new: the models the ledger holds are answered from Prefect's cache (repo@commit).
    third = nightly_scan(**params)
    assert third["scanned"] == 0 and third["skipped"] == 4
    import httpx
    from prefect.settings import PREFECT_API_URL

    runs = httpx.post(f"{PREFECT_API_URL.value()}/task_runs/filter", json={"limit": 200, "offset": 0}).json()
    assert any(r["state_name"] == "Cached" and r["name"].startswith("scan acme/night-0m") for r in runs)

    found = read_artifacts()
    keys = {a["key"] for a in found}
    assert {"wwhub-scan-progress", "wwhub-leaderboard", "wwhub-nightly-changes"} <= keys
    summaries = [a["data"] for a in found if a["key"] == "wwhub-nightly-changes"]  # newest first
    assert len(summaries) == 3
    assert "## New models (1)\n- `acme/night-9m`" in summaries[1]
    assert "## New commits (1)\n- `acme/night-1m`" in summaries[1]
    assert "## New models (0)" in summaries[0] and "## New commits (0)" in summaries[0]
