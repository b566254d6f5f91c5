"""The GGUF seam: ``.gguf`` files are planned like any weight file and read through ``flows.weights.gguf`` (the
``quant`` branch's module) by the reader registry. Until that module is part of the build, a GGUF file is a clear
error and a GGUF-only repo an ``unsupported`` model (rescanned once support exists), never a crash."""

import importlib.util

import pytest

from flows.cli import main
from flows.weights import plan_local
from tests.flows.test_scan import lake_rows, scan

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("flows.weights.gguf") is not None, reason="GGUF support is in this build"
)


def test_a_gguf_file_is_planned_then_refused_with_the_reason(tmp_path, capsys):
    path = tmp_path / "model-Q4_K_M.gguf"
    path.write_bytes(b"GGUF" + bytes(60))
    folder, plan = plan_local(path)
    assert (folder, plan.fmt, [s.filename for s in plan.shards]) == (tmp_path, "gguf", [path.name])
    assert main(["analyze", str(path)]) == 2
    assert "GGUF weights need flows.weights.gguf" in capsys.readouterr().err


def test_a_gguf_only_repo_is_unsupported_not_failed(fake_hub, tmp_path):
    fake_hub.commit("acme/tiny-gguf", {"tiny-Q8_0.gguf": b"GGUF" + bytes(60), "README.md": b"# tiny\n"})
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/tiny-gguf") == 0
    (model,) = lake_rows(lake, "SELECT status, reason FROM models")
    assert model["status"] == "unsupported" and "GGUF weights need flows.weights.gguf" in model["reason"]
