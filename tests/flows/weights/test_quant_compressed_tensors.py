"""compressed-tensors ``pack-quantized`` weights (1–8-bit codes densely packed into int32), checked against
compressed-tensors' own compressor: it packs, its ``decompress`` is the reference (fed float32 scales so it
computes in float32 as we do). Its ``int-quantized`` int8 layout is checked in test_quant_fp8.py beside the
float8 one (same ``_dequantize``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flows.weights.decoders.contract import ModelConfig
from flows.weights.decoders.quant.compressed_tensors import CompressedTensorsDecoder
from flows.weights.errors import WeightsError
from tests.flows.weights.helpers import (
    WEIGHT_SCALE,
    analyze_rows,
    assert_same_spectrum,
    claim_and_decode,
    heavy,
    plan_of,
    write_checkpoint,
)
from ww_core.matrices import empty_tensor_reason

ct = pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor  # noqa: E402
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme  # noqa: E402

PREFIX = "model.layers.0.mlp.up_proj"


def packed_checkpoint(w: np.ndarray, args: QuantizationArgs):
    """Quantize ``w`` (min/max scales per the strategy) and pack it with compressed-tensors' own compressor."""
    x = torch.from_numpy(w)
    qmax, qmin = 2 ** (args.num_bits - 1) - 1, -(2 ** (args.num_bits - 1))
    if args.strategy == "group":
        view = x.unflatten(-1, (-1, args.group_size))
        lo, hi = view.amin(-1), view.amax(-1)
    elif args.strategy == "channel":
        lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    else:
        lo, hi = x.amin().reshape(1), x.amax().reshape(1)
    if args.symmetric:
        scale, zero = torch.maximum(lo.abs(), hi.abs()) / qmax, None
    else:
        scale = (hi - lo) / (qmax - qmin)
        zero = torch.clamp(torch.round(qmin - lo / scale), qmin, qmax).to(torch.int8)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    state = {"weight": x, "weight_scale": scale}
    if zero is not None:
        state["weight_zero_point"] = zero
    compressed = PackedQuantizationCompressor.compress(state, scheme)
    reference = PackedQuantizationCompressor.decompress(dict(compressed), scheme)["weight"]
    arrays = {f"{PREFIX}.{k}": v.numpy() for k, v in compressed.items()}
    return arrays, reference.numpy(), scheme


@pytest.mark.parametrize(
    ("bits", "strategy", "symmetric"),
    [(4, "group", True), (4, "channel", False), (3, "group", False), (8, "group", True), (2, "tensor", True)],
)
def test_pack_quantized_matches_compressed_tensors_decompress(bits, strategy, symmetric):
    w = heavy(192, 256, seed=bits, scale=WEIGHT_SCALE)
    args = QuantizationArgs(
        num_bits=bits,
        type="int",
        strategy=strategy,
        symmetric=symmetric,
        group_size=64 if strategy == "group" else None,
    )
    arrays, reference, _ = packed_checkpoint(w, args)
    config = {
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": args.model_dump(mode="json")}},
        }
    }
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config)
    (spec,) = claim.matrices
    assert spec.name == f"{PREFIX}.weight" and spec.shape == (192, 256)
    assert spec.quantization == f"int{bits}-{strategy}"
    assert claim.consumed == set(arrays)  # packed codes, shape, scales, zero points: no rows
    np.testing.assert_array_equal(decoded[spec.name], reference)


def test_pack_quantized_without_config_infers_the_code_width():
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=True, group_size=64)
    arrays, reference, _ = packed_checkpoint(heavy(64, 128, scale=WEIGHT_SCALE), args)
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, {})
    np.testing.assert_array_equal(decoded[f"{PREFIX}.weight"], reference)


def test_act_order_group_index_picks_each_columns_group():
    """``weight_g_idx`` (actorder=group): column j uses group g_idx[j]. compressed-tensors' reference
    decompressor ignores g_idx, so the truth here is the definition, (q − z)·s[:, g_idx[j]], on known codes."""
    rng = np.random.default_rng(7)
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=True, group_size=32)
    arrays, _, _ = packed_checkpoint(heavy(48, 128, scale=WEIGHT_SCALE), args)
    g_idx = rng.permutation(np.arange(128) // 32).astype(np.int32)
    arrays[f"{PREFIX}.weight_g_idx"] = g_idx
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, {})
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    codes = unpack_from_int32(torch.from_numpy(arrays[f"{PREFIX}.weight_packed"]), 4, torch.Size([48, 128])).numpy()
    scale = arrays[f"{PREFIX}.weight_scale"].astype(np.float32)
    expected = codes.astype(np.float32) * scale[:, g_idx]
    np.testing.assert_array_equal(decoded[f"{PREFIX}.weight"], expected)
    assert claim.consumed == set(arrays)


def test_pack_quantized_end_to_end_against_the_dense_twin():
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=False, group_size=128)
    w = heavy(384, 768, seed=11, scale=WEIGHT_SCALE)
    arrays, reference, _ = packed_checkpoint(w, args)
    _, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, {})
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    codes = unpack_from_int32(torch.from_numpy(arrays[f"{PREFIX}.weight_packed"]), 4, torch.Size([384, 768]))
    zeros = unpack_from_int32(torch.from_numpy(arrays[f"{PREFIX}.weight_zero_point"]), 4, torch.Size([384, 6]), 0)
    scale = arrays[f"{PREFIX}.weight_scale"].astype(np.float64)
    twin = (codes.numpy().astype(np.float64) - np.repeat(zeros.numpy(), 128, 1)) * np.repeat(scale, 128, 1)
    assert_same_spectrum(decoded[f"{PREFIX}.weight"], twin)


def test_missing_scale_is_a_skipped_row_and_mismatched_shapes_fail_naming_the_tensor():
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=True, group_size=64)
    arrays, _, _ = packed_checkpoint(heavy(64, 128, scale=WEIGHT_SCALE), args)
    without_scale = {k: v for k, v in arrays.items() if not k.endswith("weight_scale")}
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), without_scale, {})
    (spec,) = claim.matrices
    assert spec.skip_reason == "compressed-tensors: missing weight_scale" and decoded == {}
    assert claim.consumed == set(without_scale)
    claim, _ = claim_and_decode(CompressedTensorsDecoder(), arrays, {})
    bad = dict(arrays, **{f"{PREFIX}.weight_scale": arrays[f"{PREFIX}.weight_scale"][:, :1].repeat(3, 1)})
    with pytest.raises(WeightsError, match=PREFIX):
        claim.matrices[0].decode(bad)


WEIGHT_SHAPE = f"{PREFIX}.weight_shape"
PACKED = f"{PREFIX}.weight_packed"


def group_packed(config_bits: bool):
    """A 64×128 4-bit group-quantized module and its config (``num_bits`` given or, without one, inferred)."""
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=True, group_size=64)
    arrays, _, _ = packed_checkpoint(heavy(64, 128, scale=WEIGHT_SCALE), args)
    groups = {"group_0": {"targets": ["Linear"], "weights": args.model_dump(mode="json")}}
    config = {"quantization_config": {"quant_method": "compressed-tensors", "config_groups": groups}}
    return arrays, config if config_bits else {}


@pytest.mark.parametrize("stored", [[64, 128, 1], [64], [[64, 128], [64, 128]]], ids=["3", "1", "2x2"])
def test_a_weight_shape_of_other_than_two_values_is_a_skipped_row_naming_it(stored):
    """Its length is in the header: the plan skips the module (it once failed with 'too many values to unpack')."""
    arrays, config = group_packed(config_bits=True)
    arrays[WEIGHT_SHAPE] = np.array(stored, dtype=np.int64)
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config)
    (spec,) = claim.matrices
    shape = np.array(stored).shape
    assert spec.skip_reason == f"compressed-tensors: weight_shape has shape {shape}, expected 2 values [rows, columns]"
    assert decoded == {} and claim.consumed == set(arrays)


@pytest.mark.parametrize(
    ("stored", "config_bits", "reason"),
    [
        ([-64, 128], True, f"{WEIGHT_SHAPE} holds [-64, 128]: a negative number of rows or columns"),
        ([64, -128], False, f"{WEIGHT_SHAPE} holds [64, -128]: a negative number of rows or columns"),
        ([64.5, 128.0], True, f"{WEIGHT_SHAPE} holds [64.5, 128.0], expected two whole numbers [rows, columns]"),
        ([32, 128], True, f"{WEIGHT_SHAPE} says 32 rows, but {PACKED} has shape (64, 16)"),
        ([0, 128], True, f"{WEIGHT_SHAPE} says 0 rows, but {PACKED} has shape (64, 16)"),
        ([64, 120], True, f"{WEIGHT_SHAPE} says 120 columns, which take 15 int32 words of 4-bit codes per row, but "
         f"{PACKED} has shape (64, 16)"),
        ([64, 120], False, f"{WEIGHT_SHAPE} says 120 columns, but no code width of 1 to 8 bits packs them into the "
         f"16 int32 words per row of {PACKED} (64, 16)"),
        ([64, 2**40], True, f"{WEIGHT_SHAPE} says 1099511627776 columns, which take 137438953472 int32 words of "
         f"4-bit codes per row, but {PACKED} has shape (64, 16)"),
    ],
    ids=["negative-rows", "negative-columns", "fraction", "rows", "zero-rows", "columns", "columns-no-config",
         "huge"],
)  # fmt: skip
def test_a_weight_shape_that_does_not_fit_the_packed_codes_fails_naming_it(tmp_path, stored, config_bits, reason):
    """Its values are read with the layer: a failed row whose reason names weight_shape and what it says against
    the packed codes (it once said 'packed shape (64, 16) does not hold a -64×128 weight', and 64.5 rows were read
    as 64)."""
    arrays, config = group_packed(config_bits)
    arrays[WEIGHT_SHAPE] = np.array(stored, dtype=np.float32 if isinstance(stored[0], float) else np.int64)
    (spec,) = CompressedTensorsDecoder().claim(plan_of(arrays), ModelConfig(config)).matrices
    with pytest.raises(WeightsError) as caught:
        spec.decode(arrays)
    assert str(caught.value) == reason
    rows = analyze_rows(write_checkpoint(tmp_path / "m", arrays, config))
    assert (rows[f"{PREFIX}.weight"]["fit_status"], rows[f"{PREFIX}.weight"]["reason"]) == ("failed", reason)


def test_an_empty_module_whose_weight_shape_agrees_is_ww_cores_empty_matrix(tmp_path):
    """0 rows packed and 0 rows in weight_shape: no error of the side tensor, the one empty-matrix decision."""
    arrays, config = group_packed(config_bits=True)
    arrays.update({PACKED: arrays[PACKED][:0], f"{PREFIX}.weight_scale": arrays[f"{PREFIX}.weight_scale"][:0]})
    arrays[WEIGHT_SHAPE] = np.array([0, 128], dtype=np.int64)
    row = analyze_rows(write_checkpoint(tmp_path / "m", arrays, config))[f"{PREFIX}.weight"]
    assert (row["fit_status"], row["reason"]) == ("skipped", empty_tensor_reason((0, 128)))
