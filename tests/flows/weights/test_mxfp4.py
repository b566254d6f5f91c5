"""MXFP4 experts (GPT-OSS): dequantized exactly as transformers' reference, into float32, then split per expert.

The reference is transformers' own ``integrations/mxfp4.py: convert_moe_packed_tensors`` (the code that loads
GPT-OSS checkpoints), run here in float32 so that both sides are exact: MXFP4 values are a 3-bit significand
times a power of two, which float32 holds exactly.
"""

import json

import ml_dtypes
import numpy as np
import pytest
import torch
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

from flows.weights.decoders.quant.mxfp4 import dequantize_mxfp4
from tests.flows.weights.helpers import analyze_rows, assert_matches_twin, decoded, twin, write_checkpoint

H, INNER, E = 64, 32, 3  # H and INNER multiples of the 32-value block
PREFIX = "model.layers.0.mlp.experts"


def random_mxfp4(rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random codes and scales of E experts' [rows, cols] matrices: blocks [E, rows, cols/32, 16], scales [E, rows,
    cols/32] (exponents near 2^0, as trained weights have)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(E, rows, cols // 32, 16), dtype=np.uint8)
    scales = rng.integers(118, 130, size=(E, rows, cols // 32), dtype=np.uint8)
    return blocks, scales


def reference(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """transformers' dequantization, in float32: [E, cols, rows] (the bf16 layout of GPT-OSS)."""
    out = convert_moe_packed_tensors(torch.from_numpy(blocks), torch.from_numpy(scales), dtype=torch.float32)
    return out.numpy()


def test_dequantization_equals_transformers_reference_bit_for_bit():
    blocks, scales = random_mxfp4(2 * INNER, H, 1)
    scales[0, 0, 0] = 0  # 2^-127: a subnormal float32, still exact
    ours = dequantize_mxfp4(blocks, scales)  # [E, rows, cols]
    np.testing.assert_array_equal(ours, reference(blocks, scales).transpose(0, 2, 1))


def test_e8m0_nan_code_fails_the_layer_instead_of_an_infinite_weight():
    blocks, scales = random_mxfp4(2 * INNER, H, 2)
    scales[1, 3, 0] = 255
    values = dequantize_mxfp4(blocks[1], scales[1])
    assert np.isnan(values[3, :32]).all() and np.isfinite(values[4]).all()


def gpt_oss_tensors() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    gate_up_blocks, gate_up_scales = random_mxfp4(2 * INNER, H, 3)
    down_blocks, down_scales = random_mxfp4(H, INNER, 4)
    stored = {
        f"{PREFIX}.gate_up_proj_blocks": gate_up_blocks,
        f"{PREFIX}.gate_up_proj_scales": gate_up_scales,
        f"{PREFIX}.gate_up_proj_bias": np.zeros((E, 2 * INNER), ml_dtypes.bfloat16),
        f"{PREFIX}.down_proj_blocks": down_blocks,
        f"{PREFIX}.down_proj_scales": down_scales,
        f"{PREFIX}.down_proj_bias": np.zeros((E, H), ml_dtypes.bfloat16),
    }
    return stored, reference(gate_up_blocks, gate_up_scales), reference(down_blocks, down_scales)


def test_mxfp4_rows_equal_the_dense_twin_and_the_bf16_layout(tmp_path):
    stored, gate_up, down = gpt_oss_tensors()  # gate_up [E, H, 2I], down [E, INNER, H]: the model's float layout
    config = {"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}}
    rows = analyze_rows(write_checkpoint(tmp_path / "mxfp4", stored, config))
    float_layout = {f"{PREFIX}.gate_up_proj": gate_up, f"{PREFIX}.down_proj": down}
    float_rows = analyze_rows(write_checkpoint(tmp_path / "float", float_layout, {"model_type": "gpt_oss"}))
    assert set(rows) == set(float_rows) and len(rows) == 3 * E
    for e in range(E):
        # GptOssExperts: gate = gate_up[..., ::2], up = gate_up[..., 1::2], x @ W: nn.Linear's weight is W.T.
        truth = {"gate_proj": gate_up[e][:, 0::2].T, "up_proj": gate_up[e][:, 1::2].T, "down_proj": down[e].T}
        for proj, matrix in truth.items():
            row = rows[f"{PREFIX}.{e}.{proj}"]
            assert row["quantization"] == "mxfp4" and row["expert"] == e
            assert_matches_twin(row, twin(matrix))
            assert row["lambda_max"] == float_rows[f"{PREFIX}.{e}.{proj}"]["lambda_max"]


def test_expert_matrices_are_the_reference_values():
    stored, gate_up, down = gpt_oss_tensors()
    got = decoded(stored, {"model_type": "gpt_oss"})
    np.testing.assert_array_equal(got[f"{PREFIX}.1.up_proj"][1], gate_up[1][:, 1::2].T)
    np.testing.assert_array_equal(got[f"{PREFIX}.2.down_proj"][1], down[2].T)


@pytest.mark.parametrize("bad", ["scales_shape", "dtype"])
def test_mismatched_blocks_and_scales_are_skipped_with_the_reason(bad):
    stored, _, _ = gpt_oss_tensors()
    if bad == "scales_shape":
        stored[f"{PREFIX}.down_proj_scales"] = stored[f"{PREFIX}.down_proj_scales"][:, :-1]
        expected = "do not match scales"
    else:
        stored[f"{PREFIX}.down_proj_blocks"] = stored[f"{PREFIX}.down_proj_blocks"].astype(np.int32)
        expected = "expected uint8"
    got = decoded(stored, {"model_type": "gpt_oss"})
    down = [spec for spec, _ in got.values() if spec.name.endswith("down_proj")]
    assert len(down) == E and all(expected in spec.skip_reason for spec in down)
    assert not [name for name in got if "scales" in name or "blocks" in name]


def test_blocks_and_scales_in_different_shards_are_kept_until_both_are_read(tmp_path):
    from safetensors.numpy import save_file

    stored, _, _ = gpt_oss_tensors()
    config = {"model_type": "gpt_oss"}
    single = analyze_rows(write_checkpoint(tmp_path / "single", stored, config))
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    first = {k: v for k, v in stored.items() if k.endswith("_blocks")}
    second = {k: v for k, v in stored.items() if k not in first}
    save_file(first, str(sharded / "model-00001-of-00002.safetensors"))
    save_file(second, str(sharded / "model-00002-of-00002.safetensors"))
    weight_map = {k: "model-00001-of-00002.safetensors" for k in first}
    weight_map |= {k: "model-00002-of-00002.safetensors" for k in second}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (sharded / "config.json").write_text(json.dumps(config))
    rows = analyze_rows(sharded)
    assert {name: (r["lambda_max"], r["alpha"]) for name, r in rows.items()} == {
        name: (r["lambda_max"], r["alpha"]) for name, r in single.items()
    }
    assert {r["shard"] for r in rows.values()} == {"model-00002-of-00002.safetensors"}  # completed by the scales
    # The scales' shard lost: the experts whose blocks were read fail with that shard's reason, nothing crashes
    # (and the tensors only its index names, the biases here, are listed failed too: nothing says what they are).
    (sharded / "model-00002-of-00002.safetensors").write_bytes(b"\0" * 8)
    rows = analyze_rows(sharded)
    assert set(single) < set(rows) and all(r["fit_status"] == "failed" for r in rows.values())
    assert all("model-00002-of-00002.safetensors" in r["reason"] for r in rows.values())
