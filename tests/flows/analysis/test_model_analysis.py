"""ModelAnalysis: every matrix of the plan ends as exactly one row with its true reason, and a bad layer never
takes down the others."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flows.analysis.model_analysis import analyze_path
from tests.flows.weights.helpers import heavy, write_checkpoint

CONV = "model.layers.0.conv.weight"
NEXT = "model.layers.1.mlp.up_proj.weight"


def rows_by_name(path, **options) -> dict[str, dict]:
    return {record["name"]: record for record in analyze_path(path, options).records()}


@pytest.mark.parametrize("pool", [True, False])
def test_a_conv_kernel_with_a_zero_size_axis_is_one_skipped_row_and_the_next_layer_is_analyzed(tmp_path, pool):
    """Pooled, a (32, 16, 0, 3) kernel once reached np.stack([]) and failed the whole shard; unpooled it gave no row
    and was reported 'in no shard of the model'."""
    tensors = {CONV: np.zeros((32, 16, 0, 3), np.float32), NEXT: heavy(64, 32)}
    rows = rows_by_name(write_checkpoint(tmp_path / "m", tensors), pool=pool)
    assert rows[CONV]["fit_status"] == "skipped"
    assert rows[CONV]["reason"] == "empty matrix: a 32x16x0x3 tensor has no eigenvalues"
    assert rows[NEXT]["fit_status"] == "ok"


def test_a_tensor_the_index_promises_but_the_shard_lacks_is_a_failed_row_naming_the_file(tmp_path):
    """The shard's header replaced the index's view when it was opened, and the promised layer vanished (exit 0)."""
    shard = "model-00001-of-00001.safetensors"
    folder = write_checkpoint(tmp_path / "m", {"model.layers.0.mlp.up_proj.weight": heavy(64, 32), NEXT: heavy(64, 32)})
    (folder / "model.safetensors").rename(folder / shard)
    names = ["model.layers.0.mlp.up_proj.weight", NEXT, "model.layers.9.mlp.up_proj.weight"]
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, shard)}))
    rows = rows_by_name(folder)
    assert sorted(rows) == sorted(names)
    phantom = rows["model.layers.9.mlp.up_proj.weight"]
    assert phantom["fit_status"] == "failed"
    assert phantom["reason"] == (
        f"{shard}: stored tensor 'model.layers.9.mlp.up_proj.weight' is not in the file (the index promised it)"
    )
    assert [rows[name]["fit_status"] for name in names[:2]] == ["ok", "ok"]


def test_a_tensor_the_index_promises_for_a_later_shards_matrix_fails_that_matrix_alone(tmp_path):
    """A matrix split across shards (an fp8 weight in shard 2, its scale promised in shard 1): keeping shard 1's
    arrays for shard 2 read the missing scale, and the KeyError failed shard 1 with every matrix still pending."""
    import ml_dtypes
    from safetensors.numpy import save_file

    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    up = "model.layers.{}.mlp.up_proj.weight"
    codes = {i: (heavy(256, 128, seed=i) / 4).astype(ml_dtypes.float8_e4m3fn) for i in (1, 2)}
    scale = np.ones((2, 1), np.float32)  # one per 128x128 tile of a 256x128 weight, all 1: the codes are the weights
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({up.format(0): heavy(64, 32, seed=0), up.format(2) + "_scale_inv": scale}, str(folder / first))
    save_file(
        {up.format(1): codes[1], up.format(2): codes[2], up.format(3): heavy(64, 32, seed=3)}, str(folder / second)
    )
    weight_map = {up.format(0): first, up.format(1) + "_scale_inv": first, up.format(2) + "_scale_inv": first}
    weight_map |= dict.fromkeys([up.format(1), up.format(2), up.format(3)], second)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    config = {"model_type": "llama", "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    (folder / "config.json").write_text(json.dumps(config))
    analyzed = analyze_path(folder, {})
    rows = {record["name"]: record for record in analyzed.records()}
    assert {name: rows[name]["fit_status"] for name in rows} == {
        up.format(0): "ok",
        up.format(1): "failed",
        up.format(2): "ok",
        up.format(3): "ok",
    }
    assert rows[up.format(1)]["reason"] == (
        f"{first}: stored tensor '{up.format(1)}_scale_inv' is not in the file (the index promised it)"
    )
    assert rows[up.format(2)]["quantization"] == "fp8-block"
    assert [(shard.shard, shard.error) for shard in analyzed.shards] == [(first, None), (second, None)]


def test_a_matrix_that_decodes_to_a_vector_fails_with_that_reason(tmp_path, monkeypatch):
    """A decoder that hands back a 1-D array got no row from ww_core and was reported 'in no shard of the model'."""
    from flows.weights.decoders import plain

    monkeypatch.setattr(plain, "_identity", lambda name: lambda arrays: np.asarray(arrays[name]).reshape(-1))
    rows = rows_by_name(write_checkpoint(tmp_path / "m", {NEXT: heavy(64, 32)}))
    assert rows[NEXT]["fit_status"] == "failed"
    assert rows[NEXT]["reason"] == f"{NEXT}: decodes to a 1-D array (2048,), not a weight matrix"


def test_a_bug_met_by_one_layer_fails_that_layer_alone(tmp_path, monkeypatch, caplog):
    """Any exception out of ww_core once failed every layer still pending in the shard."""
    import ww_core.analysis

    real = ww_core.analysis.gram_eigenvalues

    def broken_for_small(matrices, *args, **kwargs):
        if matrices[0].shape[0] == 48:
            raise RuntimeError("simulated bug")
        return real(matrices, *args, **kwargs)

    monkeypatch.setattr(ww_core.analysis, "gram_eigenvalues", broken_for_small)
    tensors = {"model.layers.0.mlp.up_proj.weight": heavy(48, 32), NEXT: heavy(64, 32)}
    rows = rows_by_name(write_checkpoint(tmp_path / "m", tensors))
    assert rows["model.layers.0.mlp.up_proj.weight"]["fit_status"] == "failed"
    assert rows["model.layers.0.mlp.up_proj.weight"]["reason"] == "unexpected RuntimeError: simulated bug"
    assert rows[NEXT]["fit_status"] == "ok"
    assert "unexpected error analyzing a 48x32 tensor" in caplog.text  # logged with its traceback, as a bug
