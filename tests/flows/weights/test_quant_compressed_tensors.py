"""compressed-tensors ``pack-quantized`` weights (1–8-bit codes densely packed into int32), checked against
compressed-tensors' own compressor: it packs, its ``decompress`` is the reference (fed float32 scales so it
computes in float32 as we do). Its ``int-quantized`` int8 layout is checked in test_quant_fp8.py beside the
float8 one (same ``_dequantize``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flows.analysis.model_analysis import analyze_path
from flows.cli import main
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


def config_of(*weights) -> dict:
    """config.json of a pack-quantized model, one config group per ``weights`` (QuantizationArgs or a dict)."""
    groups = {
        f"group_{i}": {"targets": ["Linear"], "weights": w if isinstance(w, dict) else w.model_dump(mode="json")}
        for i, w in enumerate(weights)
    }
    qc = {"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": groups}
    return {"quantization_config": qc}


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
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config_of(args))
    (spec,) = claim.matrices
    assert spec.name == f"{PREFIX}.weight" and spec.shape == (192, 256)
    assert spec.quantization == f"int{bits}-{strategy}"
    assert claim.consumed == set(arrays)  # packed codes, shape, scales, zero points: no rows
    np.testing.assert_array_equal(decoded[spec.name], reference)


def test_act_order_group_index_picks_each_columns_group():
    """``weight_g_idx`` (actorder=group): column j uses group g_idx[j]. compressed-tensors' reference
    decompressor ignores g_idx, so the truth here is the definition, (q − z)·s[:, g_idx[j]], on known codes."""
    rng = np.random.default_rng(7)
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=True, group_size=32)
    arrays, _, _ = packed_checkpoint(heavy(48, 128, scale=WEIGHT_SCALE), args)
    g_idx = rng.permutation(np.arange(128) // 32).astype(np.int32)
    arrays[f"{PREFIX}.weight_g_idx"] = g_idx
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config_of(args))
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
    _, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config_of(args))
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
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), without_scale, config_of(args))
    (spec,) = claim.matrices
    assert spec.skip_reason == "compressed-tensors: missing weight_scale" and decoded == {}
    assert claim.consumed == set(without_scale)
    claim, _ = claim_and_decode(CompressedTensorsDecoder(), arrays, config_of(args))
    bad = dict(arrays, **{f"{PREFIX}.weight_scale": arrays[f"{PREFIX}.weight_scale"][:, :1].repeat(3, 1)})
    with pytest.raises(WeightsError, match=PREFIX):
        claim.matrices[0].decode(bad)


WEIGHT_SHAPE = f"{PREFIX}.weight_shape"
PACKED = f"{PREFIX}.weight_packed"


def group_packed(config_bits: bool):
    """A 64×128 4-bit group-quantized module and its config (or none: compressed-tensors' default of 8 bits)."""
    args = QuantizationArgs(num_bits=4, type="int", strategy="group", symmetric=True, group_size=64)
    arrays, _, _ = packed_checkpoint(heavy(64, 128, scale=WEIGHT_SCALE), args)
    return arrays, config_of(args) if config_bits else {}


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
        ([64, 2**40], True, f"{WEIGHT_SHAPE} says 1099511627776 columns, which take 137438953472 int32 words of "
         f"4-bit codes per row, but {PACKED} has shape (64, 16)"),
    ],
    ids=["negative-rows", "negative-columns", "fraction", "rows", "zero-rows", "columns", "huge"],
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


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Signed ``bits``-bit codes ``(rows, cols)`` packed as compressed-tensors documents its pack-quantized format
    (``pack_to_int32``): each code offset by 2^(bits-1), each row one little-endian bit stream (code k in bits
    k·bits … k·bits+bits-1, codes straddling words), ⌈cols·bits/32⌉ int32 words, the last one zero-padded."""
    rows, cols = codes.shape
    words = -(-cols * bits // 32)
    unsigned = (codes.astype(np.int64) + (1 << (bits - 1))).astype(np.uint64)
    stream = ((unsigned[:, :, None] >> np.arange(bits, dtype=np.uint64)) & 1).reshape(rows, cols * bits)
    stream = np.pad(stream, ((0, 0), (0, words * 32 - cols * bits)))
    packed = (stream.reshape(rows, words, 32) << np.arange(32, dtype=np.uint64)).sum(axis=-1)
    return packed.astype(np.uint32).view(np.int32)


def synthetic_module(bits: int, rows: int, cols: int, strategy: str, group_size: int = 32, seed: int = 0):
    """A symmetric pack-quantized module built here (random codes, scales per channel or per group) and the matrix it
    stands for, (q · s) in float32 as compressed-tensors' ``_dequantize`` computes it."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(rows, cols))
    groups = cols // group_size if strategy == "group" else 1
    scale = rng.uniform(0.001, 0.01, size=(rows, groups)).astype(np.float32)
    arrays = {
        PACKED: pack_codes(codes, bits),
        WEIGHT_SHAPE: np.array([rows, cols], dtype=np.int64),
        f"{PREFIX}.weight_scale": scale,
    }
    matrix = codes.astype(np.float32) * np.repeat(scale, cols // groups, axis=1)
    return arrays, matrix


def test_the_tests_packing_is_compressed_tensors_own():
    """pack_codes follows the documented packing; here it is checked once against the library's own packer, for a
    width whose codes straddle words (3) and one that fills them (8)."""
    from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32

    codes = np.random.default_rng(3).integers(-4, 4, size=(5, 70))
    for bits in (3, 8):
        theirs = pack_to_int32(torch.from_numpy(codes.astype(np.int8)), bits).numpy()
        np.testing.assert_array_equal(pack_codes(codes, bits), theirs)


NO_NUM_BITS = {"type": "int", "symmetric": True, "strategy": "channel"}


@pytest.mark.parametrize("strategy", ["channel", "group"])
def test_without_num_bits_the_codes_are_8_bit_compressed_tensors_default(strategy):
    """compressed-tensors' QuantizationArgs defaults num_bits to 8, and its decompress unpacks with that: a config
    group without num_bits is read as 8-bit codes (exact: integer codes times float32 scales)."""
    assert QuantizationArgs().num_bits == 8  # the reference's default, which the decoder follows
    arrays, matrix = synthetic_module(8, 24, 96, strategy)
    weights = dict(NO_NUM_BITS, strategy=strategy, group_size=32 if strategy == "group" else None)
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config_of(weights))
    (spec,) = claim.matrices
    assert (spec.shape, spec.quantization, spec.skip_reason) == ((24, 96), f"int8-{strategy}", None)
    np.testing.assert_array_equal(decoded[f"{PREFIX}.weight"], matrix)


SKIP_4_BIT_CHANNEL = (
    "compressed-tensors: no pack-quantized config group gives num_bits, and weight_packed (24, 12) does not hold the "
    "96 columns weight_shape says as 8-bit codes, compressed-tensors' default (they take 24 int32 words per row)"
)
SKIP_4_BIT_GROUP = (
    "compressed-tensors: no pack-quantized config group gives num_bits, and weight_packed (24, 12) does not hold the "
    "96 columns the scales' 3 groups of 32 cover as 8-bit codes, compressed-tensors' default (they take 24 int32 "
    "words per row)"
)


@pytest.mark.parametrize(
    ("strategy", "config", "reason"),
    [
        ("channel", NO_NUM_BITS, SKIP_4_BIT_CHANNEL),
        ("group", dict(NO_NUM_BITS, strategy="group", group_size=32), SKIP_4_BIT_GROUP),
        ("channel", None, SKIP_4_BIT_CHANNEL),
    ],
    ids=["channel-weight-shape", "group-scales", "no-config"],
)
def test_without_num_bits_codes_packed_at_another_width_are_a_skipped_row_naming_why(
    tmp_path, strategy, config, reason
):
    """4-bit codes in a model whose config gives no num_bits: compressed-tensors would unpack them as 8-bit codes,
    so no width is known honestly (it was inferred from the shapes: 4, an ok row). For group scales the plan sees
    it; for channel scales only weight_shape's values say it, read with the layer: a skipped row either way."""
    arrays, _ = synthetic_module(4, 24, 96, strategy)
    config = config_of(config) if config is not None else {}
    analyzed = analyze_path(write_checkpoint(tmp_path / "m", arrays, config), {})
    (row,) = analyzed.records()
    assert (row["name"], row["fit_status"], row["reason"]) == (f"{PREFIX}.weight", "skipped", reason)
    assert analyzed.analysis.decoding_reasons() == [f"1 layer skipped: {reason}"]


def test_distance_of_a_module_packed_at_another_width_than_the_default_is_a_skipped_row(tmp_path, capsys):
    """`wwhub distance` decodes both models' modules: the one whose weight_shape shows a width other than the
    default is skipped with the reason the analysis gives (it was compared at the inferred 4 bits)."""
    folders = []
    for seed in (0, 1):
        arrays, _ = synthetic_module(4, 24, 96, "channel", seed=seed)
        folders.append(str(write_checkpoint(tmp_path / f"m{seed}", arrays, config_of(NO_NUM_BITS))))
    assert main(["distance", *folders, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["fit_status"], row["reason"]) == (f"{PREFIX}.weight", "skipped", SKIP_4_BIT_CHANNEL)


@pytest.mark.parametrize(
    ("groups", "reason"),
    [
        (
            [dict(NO_NUM_BITS, num_bits=4), dict(NO_NUM_BITS, num_bits=8, strategy="group", group_size=32)],
            "pack-quantized config groups give num_bits 4 and 8: which group's targets match this module is not read",
        ),
        ([dict(NO_NUM_BITS, num_bits=4), NO_NUM_BITS], "pack-quantized config groups give num_bits 4 and 8 (the "
         "default): which group's targets match this module is not read"),
        ([dict(NO_NUM_BITS, num_bits=16)], "num_bits 16: pack-quantized codes are 1 to 8 bits"),
        ([dict(NO_NUM_BITS, num_bits=0)], "num_bits 0: pack-quantized codes are 1 to 8 bits"),
    ],
    ids=["mixed", "mixed-default", "16", "0"],
)  # fmt: skip
def test_a_config_without_one_packing_width_is_a_skipped_row(tmp_path, groups, reason):
    """Config groups with different num_bits (this decoder does not match a group's targets to modules), or a width
    compressed-tensors does not pack: skipped (they were inferred from the shapes, or a num_bits of 0 as none)."""
    arrays, _ = synthetic_module(4, 24, 96, "channel")
    (spec,) = CompressedTensorsDecoder().claim(plan_of(arrays), ModelConfig(config_of(*groups))).matrices
    assert spec.skip_reason == f"compressed-tensors: {reason}"
    rows = analyze_rows(write_checkpoint(tmp_path / "m", arrays, config_of(*groups)))
    assert (rows[f"{PREFIX}.weight"]["fit_status"], rows[f"{PREFIX}.weight"]["reason"]) == ("skipped", spec.skip_reason)


def test_groups_that_pack_no_int_codes_do_not_count_toward_the_width():
    """An fp8 group (float codes are never packed) and an int8 group stored int-quantized beside a 4-bit
    pack-quantized one: the packed module's width is the one packing group's 4 bits."""
    arrays, matrix = synthetic_module(4, 24, 96, "channel")
    config = config_of(
        dict(NO_NUM_BITS, num_bits=8, type="float"), dict(NO_NUM_BITS, num_bits=8), dict(NO_NUM_BITS, num_bits=4)
    )
    config["quantization_config"]["format"] = "mixed-precision"
    config["quantization_config"]["config_groups"]["group_1"]["format"] = "int-quantized"
    claim, decoded = claim_and_decode(CompressedTensorsDecoder(), arrays, config)
    (spec,) = claim.matrices
    assert (spec.quantization, spec.skip_reason) == ("int4-channel", None)
    np.testing.assert_array_equal(decoded[f"{PREFIX}.weight"], matrix)
