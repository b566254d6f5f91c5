"""The Prefect flow is a thin recipe over the same functions: same lake as the CLI, tasks per model."""

import duckdb
import numpy as np
import pytest

from flows.lake import CATALOG
from flows.pipeline import SourceSpec
from tests.fakehub import model_index, write_model


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.mark.slow
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
    con = duckdb.connect(str(tmp_path / "lake" / CATALOG), read_only=True)
    assert con.execute("SELECT count(*), min(family) FROM models").fetchall() == [(3, "flows")]
    assert con.execute("SELECT count(*) FROM scans").fetchall() == [(1,)]
    again = scan_family("flows", {"author": "acme"}, lake, source=SourceSpec("hub", fake_hub.endpoint))
    assert again.count("skipped") == 3
