"""FP8 weights with scales, checked against the reference code of each layout.

* compressed-tensors (tensor / channel / group / block, with and without zero point): its own ``dequantize``,
  installed from PyPI (dev extra), fed float32 scales so it computes in float32 as we do.
* DeepSeek-V3 block scales and FBGEMM per-row scales: their reference kernels are Triton / CUDA, so the reference
  here is the formula of DeepSeek-V3 ``inference/kernel.py: weight_dequant`` (``y = x * s`` per 128×128 block) and
  transformers ``fbgemm_fp8`` (``W = q · s`` per row) written in torch on the quantize→dequantize round trip of a
  known matrix (``act_quant``-style quantization: ``s = amax / 448`` per block, ``q = fp8(w / s)``).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

from flows.weights.decoders.quant import DECODERS
from flows.weights.decoders.quant.fp8 import FP8Decoder
from tests.flows.weights.helpers import WEIGHT_SCALE, assert_same_spectrum, claim_and_decode, heavy

FP8_MAX = 448.0
DEEPSEEK_CONFIG = {
    "model_type": "deepseek_v3",
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
}


def block_quantize(w: np.ndarray, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """DeepSeek-V3-style block quantization of a float matrix: one scale per block×block tile, ragged edges."""
    rows, cols = w.shape
    scales = np.zeros((-(-rows // block), -(-cols // block)), dtype=np.float32)
    codes = np.zeros_like(w, dtype=ml_dtypes.float8_e4m3fn)
    for i in range(scales.shape[0]):
        for j in range(scales.shape[1]):
            tile = w[i * block : (i + 1) * block, j * block : (j + 1) * block]
            scales[i, j] = np.abs(tile).max() / FP8_MAX
            codes[i * block : (i + 1) * block, j * block : (j + 1) * block] = (tile / scales[i, j]).astype(
                ml_dtypes.float8_e4m3fn
            )
    return codes, scales


def torch_fp8(codes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(codes.view(np.uint8).copy()).view(torch.float8_e4m3fn)


def test_deepseek_block_scales_match_weight_dequant_with_ragged_edges():
    w = heavy(300, 520, scale=WEIGHT_SCALE)  # neither dimension a multiple of 128: ragged edge tiles
    codes, scales = block_quantize(w)
    arrays = {"model.layers.0.mlp.down_proj.weight": codes, "model.layers.0.mlp.down_proj.weight_scale_inv": scales}
    claim, decoded = claim_and_decode(FP8Decoder(), arrays, DEEPSEEK_CONFIG)
    (spec,) = claim.matrices
    assert spec.quantization == "fp8-block" and spec.shape == (300, 520)
    assert claim.consumed == set(arrays)
    # DeepSeek-V3 weight_dequant: y = x * s with s broadcast over each 128×128 block, in float32.
    s = torch.from_numpy(scales).repeat_interleave(128, 0).repeat_interleave(128, 1)[:300, :520]
    reference = (torch_fp8(codes).to(torch.float32) * s).numpy()
    np.testing.assert_array_equal(decoded[spec.name], reference)  # bit for bit: same float32 operations
    twin = codes.astype(np.float64) * np.repeat(np.repeat(scales.astype(np.float64), 128, 0), 128, 1)[:300, :520]
    assert_same_spectrum(decoded[spec.name], twin)


def test_block_size_from_config_other_than_128():
    w = heavy(96, 160, seed=1, scale=WEIGHT_SCALE)
    codes, scales = block_quantize(w, block=64)
    config = {"quantization_config": {"quant_method": "fp8", "weight_block_size": [64, 64]}}
    arrays = {"l.weight": codes, "l.weight_scale_inv": scales}
    claim, decoded = claim_and_decode(FP8Decoder(), arrays, config)
    expected = codes.astype(np.float32) * np.repeat(np.repeat(scales, 64, 0), 64, 1)[:96, :160]
    np.testing.assert_array_equal(decoded["l.weight"], expected)


def test_fbgemm_per_row_scales():
    w = heavy(256, 384, seed=2, scale=WEIGHT_SCALE)
    scale = (np.abs(w).max(axis=1, keepdims=True) / FP8_MAX).astype(np.float32)
    codes = (w / scale).astype(ml_dtypes.float8_e4m3fn)
    arrays = {
        "model.layers.0.self_attn.q_proj.weight": codes,
        "model.layers.0.self_attn.q_proj.weight_scale": scale,
        "model.layers.0.self_attn.q_proj.input_scale_ub": np.array([1200.0], dtype=np.float32),
    }
    config = {"quantization_config": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}}
    claim, decoded = claim_and_decode(FP8Decoder(), arrays, config)
    (spec,) = claim.matrices
    assert spec.quantization == "fp8-channel"
    assert claim.consumed == set(arrays)  # the activation bound is consumed, not a row
    reference = (torch_fp8(codes).to(torch.float32) * torch.from_numpy(scale)).numpy()
    np.testing.assert_array_equal(decoded[spec.name], reference)
    assert_same_spectrum(decoded[spec.name], codes.astype(np.float64) * scale.astype(np.float64))


compressed_tensors = pytest.importorskip("compressed_tensors")


@pytest.mark.parametrize(
    ("strategy", "scale_shape", "extra"),
    [
        ("tensor", (1,), {}),
        ("channel", (192, 1), {}),
        ("group", (192, 256 // 64), {"group_size": 64}),
        ("block", (2, 2), {"block_structure": [128, 128]}),
    ],
)
@pytest.mark.parametrize("kind", ["float8", "int8-asymmetric"])
def test_compressed_tensors_matches_its_own_dequantize(strategy, scale_shape, extra, kind):
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import dequantize

    rng = np.random.default_rng(3)
    scale = rng.uniform(1e-3, 3e-3, size=scale_shape).astype(np.float32)
    if kind == "float8":
        codes = (rng.standard_normal((192, 256)) * 100).astype(ml_dtypes.float8_e4m3fn)
        zero = None
        args = QuantizationArgs(num_bits=8, type="float", strategy=strategy, symmetric=True, **extra)
        torch_codes = torch_fp8(codes)
    else:
        codes = rng.integers(-128, 128, size=(192, 256)).astype(np.int8)
        zero = rng.integers(-8, 8, size=scale_shape).astype(np.int8)
        args = QuantizationArgs(num_bits=8, type="int", strategy=strategy, symmetric=False, **extra)
        torch_codes = torch.from_numpy(codes)
    arrays = {"m.weight": codes, "m.weight_scale": scale, "m.input_scale": np.ones(1, np.float32)}
    if zero is not None:
        arrays["m.weight_zero_point"] = zero
    groups = {"group_0": {"targets": ["Linear"], "weights": args.model_dump(mode="json")}}
    config = {"quantization_config": {"quant_method": "compressed-tensors", "config_groups": groups}}
    decoders = {d.name: d for d in DECODERS}
    claim, decoded = claim_and_decode(decoders["fp8" if kind == "float8" else "compressed-tensors"], arrays, config)
    (spec,) = claim.matrices
    assert claim.consumed == set(arrays)
    reference = dequantize(
        torch_codes,
        torch.from_numpy(scale),
        None if zero is None else torch.from_numpy(zero),
        args=args,
        dtype=torch.float32,
    )
    np.testing.assert_array_equal(decoded["m.weight"], reference.numpy())


def test_missing_scale_is_a_skipped_row_naming_fp8():
    codes = np.ones((64, 64), dtype=ml_dtypes.float8_e4m3fn)
    claim, decoded = claim_and_decode(FP8Decoder(), {"a.weight": codes}, DEEPSEEK_CONFIG)
    (spec,) = claim.matrices
    assert spec.skip_reason.startswith("fp8:") and "no weight_scale" in spec.skip_reason
    assert decoded == {}


def test_scale_that_does_not_fit_the_weight_is_a_skipped_row():
    arrays = {
        "a.weight": np.ones((256, 256), dtype=ml_dtypes.float8_e4m3fn),
        "a.weight_scale_inv": np.ones((3, 5), dtype=np.float32),
    }
    claim, _ = claim_and_decode(FP8Decoder(), arrays, DEEPSEEK_CONFIG)
    (spec,) = claim.matrices
    assert spec.skip_reason.startswith("fp8:") and "(3, 5)" in spec.skip_reason
    assert claim.consumed == set(arrays)


def test_plain_float8_weights_without_any_scale_are_left_to_the_plain_path():
    codes = np.ones((64, 64), dtype=ml_dtypes.float8_e4m3fn)
    claim, _ = claim_and_decode(FP8Decoder(), {"a.weight": codes}, {})
    assert claim.matrices == [] and claim.consumed == set()


def test_decode_checks_the_stored_arrays_against_the_plan():
    from flows.weights.errors import WeightsError

    codes, scales = block_quantize(heavy(128, 128, scale=WEIGHT_SCALE))
    claim, _ = claim_and_decode(FP8Decoder(), {"a.weight": codes, "a.weight_scale_inv": scales}, DEEPSEEK_CONFIG)
    with pytest.raises(WeightsError, match="a.weight"):
        claim.matrices[0].decode({"a.weight": codes[:64], "a.weight_scale_inv": scales})
