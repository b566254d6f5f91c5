"""compressed-tensors ``pack-quantized`` weights (1–8-bit codes densely packed into int32), checked against
compressed-tensors' own compressor: it packs, its ``decompress`` is the reference (fed float32 scales so it
computes in float32 as we do). Its ``int-quantized`` int8 layout is checked in test_quant_fp8.py beside the
float8 one (same ``_dequantize``)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import ww_core
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
    decoded,
    heavy,
    plan_of,
    write_checkpoint,
)
from ww_core.matrices import empty_tensor_reason

ct = pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor  # noqa: E402
from compressed_tensors.quantization import (  # noqa: E402
    QuantizationArgs,
    QuantizationConfig,
    QuantizationScheme,
    apply_quantization_config,
)

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


def config_of(*weights, targets: tuple[str, ...] | None = ("Linear",)) -> dict:
    """config.json of a pack-quantized model, one config group per ``weights`` (QuantizationArgs or a dict), each
    with ``targets`` (None: none, which the decoder reads as one width for every module)."""
    groups = {}
    for i, w in enumerate(weights):
        groups[f"group_{i}"] = {"weights": w if isinstance(w, dict) else w.model_dump(mode="json")}
        if targets is not None:
            groups[f"group_{i}"]["targets"] = list(targets)
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


def synthetic_module(
    bits: int, rows: int, cols: int, strategy: str, group_size: int = 32, seed: int = 0, prefix: str = PREFIX
):
    """A symmetric pack-quantized module ``prefix`` built here (random codes, scales per channel or per group) and
    the matrix it stands for, (q · s) in float32 as compressed-tensors' ``_dequantize`` computes it."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(rows, cols))
    groups = cols // group_size if strategy == "group" else 1
    scale = rng.uniform(0.001, 0.01, size=(rows, groups)).astype(np.float32)
    arrays = {
        f"{prefix}.weight_packed": pack_codes(codes, bits),
        f"{prefix}.weight_shape": np.array([rows, cols], dtype=np.int64),
        f"{prefix}.weight_scale": scale,
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


PLAIN = "lm_head.weight"


def beside_a_plain_layer(folder, arrays: dict[str, np.ndarray], config: dict) -> str:
    """The folder of a model of the module ``arrays`` (layer 0) and a float layer PLAIN (layer 1)."""
    return str(write_checkpoint(folder, dict(arrays, **{PLAIN: heavy(96, 48, seed=1)}), config))


@pytest.fixture
def undecodable(tmp_path):
    """Layer 0 packed at 4 bits in a model whose config gives no num_bits: only its weight_shape, read as it is
    decoded, shows that it is undecodable (SKIP_4_BIT_CHANNEL)."""
    arrays, _ = synthetic_module(4, 24, 96, "channel")
    return beside_a_plain_layer(tmp_path / "m", arrays, config_of(NO_NUM_BITS))


def test_get_esd_of_a_module_found_undecodable_as_it_is_read_says_the_analysis_skips_it(undecodable):
    """An UndecodableWeights escaped, where a layer the plan skips raises ValueError with its reason."""
    watcher = ww_core.WeightWatcher(undecodable)
    for call in (watcher.get_ESD, watcher.get_Weights):
        with pytest.raises(ValueError) as raised:
            call(layer=0)
        assert str(raised.value) == (
            f"layer=0 ('{PREFIX}.weight') has no weight matrix: the analysis skips it: {SKIP_4_BIT_CHANNEL}"
        )
    (plain,) = watcher.get_Weights(layer=1)
    np.testing.assert_array_equal(plain, heavy(96, 48, seed=1))
    esd = watcher.get_ESD(layer=1)
    assert esd.size == 48 and esd[-1] == pytest.approx(np.linalg.svd(plain, compute_uv=False)[0] ** 2)


def test_distances_give_a_module_found_undecodable_as_it_is_read_a_skipped_row(undecodable, tmp_path):
    """As `wwhub distance` skips it; as model_2's, it raises the error a layer model_2 has no matrix for raises."""
    avg_dW, _, frame = ww_core.WeightWatcher().distances(undecodable, undecodable)
    assert list(zip(frame.tensor, frame.fit_status, frame.reason, strict=True)) == [
        (f"{PREFIX}.weight", "skipped", SKIP_4_BIT_CHANNEL),
        (PLAIN, "ok", ""),
    ]
    assert avg_dW == 0.0
    dense = write_checkpoint(tmp_path / "dense", {f"{PREFIX}.weight": heavy(24, 96), PLAIN: heavy(96, 48, seed=1)})
    with pytest.raises(ValueError) as raised:
        ww_core.WeightWatcher().distances(str(dense), undecodable)
    assert str(raised.value) == (
        f"model_2 has no weight matrix for layer 0 ('{PREFIX}.weight'): the analysis skips it: {SKIP_4_BIT_CHANNEL}"
    )


def test_svd_smoothing_leaves_a_module_found_undecodable_as_it_is_read_unchanged_saying_why(undecodable, caplog):
    """One such module made SVDSmoothing and SVDSharpness raise for the whole model."""
    watcher = ww_core.WeightWatcher(undecodable)
    with caplog.at_level(logging.WARNING, logger="ww_core.watcher"):
        smoothed = watcher.SVDSmoothing(method="svd", percent=0.5, svd_method="exact")
        sharpened = watcher.SVDSharpness()
    assert list(smoothed) == [PLAIN] and np.linalg.matrix_rank(smoothed[PLAIN]) == 24
    assert set(sharpened) <= {PLAIN}
    unchanged = f"layer 0 ('{PREFIX}.weight') left unchanged, the analysis skips it: {SKIP_4_BIT_CHANNEL}"
    assert [r.getMessage() for r in caplog.records] == [
        f"{call}: {unchanged}" for call in ("SVDSmoothing", "SVDSharpness")
    ]


def test_a_base_model_whose_module_is_found_undecodable_names_why_its_delta_is_skipped(undecodable, tmp_path):
    """analyze(base_model=…) said "not in base_model" for a layer the base has but gives no matrix for."""
    tuned = write_checkpoint(tmp_path / "tuned", {f"{PREFIX}.weight": heavy(24, 96), PLAIN: heavy(96, 48, seed=2)})
    frame = ww_core.WeightWatcher(str(tuned)).analyze(base_model=undecodable, min_evals=2)
    reason = f"base_model has no weight matrix for it: the analysis skips it: {SKIP_4_BIT_CHANNEL}"
    rows = list(zip(frame.layer_id, frame.status, frame.reason, strict=True))
    assert rows == [(0, "skipped", reason), (1, "success", "")]


def test_a_module_whose_decoding_fails_is_an_error_in_the_notebook_not_a_skipped_layer(tmp_path):
    """Only an undecodable module is skipped: a weight_shape that contradicts the packed codes (a failed row in the
    analysis) raises from every call that reads the module."""
    arrays, config = group_packed(config_bits=True)
    arrays[WEIGHT_SHAPE] = np.array([32, 128], dtype=np.int64)
    folder = beside_a_plain_layer(tmp_path / "m", arrays, config)
    watcher = ww_core.WeightWatcher(folder)
    reason = f"{WEIGHT_SHAPE} says 32 rows, but {PACKED} has shape (64, 16)"
    for call in (lambda: watcher.get_ESD(layer=0), watcher.SVDSmoothing, lambda: watcher.distances(folder, folder)):
        with pytest.raises(WeightsError) as raised:
            call()
        assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("groups", "targets", "reason"),
    [
        (
            [dict(NO_NUM_BITS, num_bits=4), dict(NO_NUM_BITS, num_bits=8, strategy="group", group_size=32)],
            None,
            "pack-quantized config groups give num_bits 4 and 8 and no targets to tell which module packs which",
        ),
        ([dict(NO_NUM_BITS, num_bits=4), NO_NUM_BITS], None, "pack-quantized config groups give num_bits 4 and 8 "
         "(the default) and no targets to tell which module packs which"),
        ([dict(NO_NUM_BITS, num_bits=16)], ("Linear",), "num_bits 16: pack-quantized codes are 1 to 8 bits"),
        ([dict(NO_NUM_BITS, num_bits=0)], ("Linear",), "num_bits 0: pack-quantized codes are 1 to 8 bits"),
        ([dict(NO_NUM_BITS, num_bits=16)], None, "num_bits 16: pack-quantized codes are 1 to 8 bits"),
    ],
    ids=["mixed-without-targets", "mixed-default-without-targets", "16", "0", "16-without-targets"],
)  # fmt: skip
def test_a_config_without_one_packing_width_is_a_skipped_row(tmp_path, groups, targets, reason):
    """Config groups with different num_bits and no targets to match modules by, or a width compressed-tensors does
    not pack: skipped (they were inferred from the shapes, or a num_bits of 0 as none)."""
    arrays, _ = synthetic_module(4, 24, 96, "channel")
    config = config_of(*groups, targets=targets)
    (spec,) = CompressedTensorsDecoder().claim(plan_of(arrays), ModelConfig(config)).matrices
    assert spec.skip_reason == f"compressed-tensors: {reason}"
    rows = analyze_rows(write_checkpoint(tmp_path / "m", arrays, config))
    assert (rows[f"{PREFIX}.weight"]["fit_status"], rows[f"{PREFIX}.weight"]["reason"]) == ("skipped", spec.skip_reason)


def test_groups_that_pack_no_int_codes_do_not_count_toward_the_width():
    """An fp8 group (float codes are never packed) and an int8 group stored int-quantized beside a 4-bit
    pack-quantized one, all targeting Linear: the packed module takes the last group's scheme, as compressed-tensors
    gives it (one scheme per target), and its 4 bits are the only packing width."""
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


ATTENTION = "model.layers.0.self_attn.q_proj"
MLP = "model.layers.0.mlp.down_proj"
INT8_CHANNEL = {"num_bits": 8, "type": "int", "symmetric": True, "strategy": "channel"}
INT4_GROUP = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32}
FP8 = {"num_bits": 8, "type": "float", "symmetric": True, "strategy": "channel"}
# Attention at 8 bits, the MLP at 4, as llm-compressor's mixed-precision recipes select them: by re: targets.
ATTENTION_8_MLP_4 = {"attention": (["re:.*self_attn\\."], INT8_CHANNEL), "mlp": (["re:.*mlp\\."], INT4_GROUP)}


def mixed_precision_config(groups: dict[str, tuple[list[str], dict | None]], ignore: list[str] | None = None) -> dict:
    """config.json of a pack-quantized model whose config groups are ``{name: (targets, weights)}`` (None: the group
    quantizes no weights)."""
    config_groups = {name: {"targets": targets, "weights": weights} for name, (targets, weights) in groups.items()}
    qc = {"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": config_groups}
    return {"quantization_config": dict(qc, ignore=ignore or [])}


def reference_widths(modules: list[str], config: dict) -> dict[str, int | None]:
    """The num_bits compressed-tensors' apply_quantization_config gives each of ``modules`` (torch Linear modules at
    those names in an otherwise empty model), None for a module it leaves unquantized."""
    root = torch.nn.Module()
    for name in modules:
        *path, leaf = name.split(".")
        parent = root
        for part in path:
            if part not in parent._modules:
                parent.add_module(part, torch.nn.Module())
            parent = parent.get_submodule(part)
        parent.add_module(leaf, torch.nn.Linear(4, 4, bias=False))
    qc = QuantizationConfig.model_validate(config["quantization_config"])
    apply_quantization_config(root, qc, show_progress=False)
    schemes = {name: getattr(root.get_submodule(name), "quantization_scheme", None) for name in modules}
    return {name: scheme.weights.num_bits if scheme else None for name, scheme in schemes.items()}


def test_mixed_precision_modules_unpack_at_the_width_of_the_group_their_targets_match():
    """Attention packed at 8 bits and the MLP at 4, each group chosen by a re: target (compressed-tensors'
    match_name: re.match on the module's name), lm_head ignored and stored in float32. Each packed module is exactly
    (q · s) of its own codes (integer codes times float32 scales), lm_head exactly what it stores: the plain path, as
    compressed-tensors leaves an ignored module unquantized. (Every packed module was skipped: "config groups give
    num_bits 4 and 8".)"""
    attention, attention_matrix = synthetic_module(8, 48, 64, "channel", seed=1, prefix=ATTENTION)
    mlp, mlp_matrix = synthetic_module(4, 64, 96, "group", seed=2, prefix=MLP)
    lm_head = np.random.default_rng(3).standard_normal((40, 64)).astype(np.float32)
    arrays = {**attention, **mlp, "lm_head.weight": lm_head}
    config = mixed_precision_config(ATTENTION_8_MLP_4, ignore=["lm_head"])
    assert reference_widths([ATTENTION, MLP, "lm_head"], config) == {ATTENTION: 8, MLP: 4, "lm_head": None}
    matrices = decoded(arrays, config)
    assert set(matrices) == {f"{ATTENTION}.weight", f"{MLP}.weight", "lm_head.weight"}  # side tensors make no rows
    attention_spec, attention_decoded = matrices[f"{ATTENTION}.weight"]
    mlp_spec, mlp_decoded = matrices[f"{MLP}.weight"]
    assert (attention_spec.quantization, mlp_spec.quantization) == ("int8-channel", "int4-group")
    np.testing.assert_array_equal(attention_decoded, attention_matrix)
    np.testing.assert_array_equal(mlp_decoded, mlp_matrix)
    lm_head_spec, lm_head_decoded = matrices["lm_head.weight"]
    assert lm_head_spec.sources == ("lm_head.weight",) and not lm_head_spec.quantization
    np.testing.assert_array_equal(lm_head_decoded, lm_head)


def test_a_module_that_no_group_targets_is_a_skipped_row(tmp_path):
    """A packed module that neither re: target matches: compressed-tensors gives it no scheme, so no width is
    known. Its row (named for the module) is skipped with a reason naming the cause, its side tensors make no rows,
    and its neighbour decodes."""
    unmatched = "model.vision_tower.proj"
    attention, _ = synthetic_module(8, 48, 64, "channel", prefix=ATTENTION)
    stray, _ = synthetic_module(4, 24, 96, "channel", prefix=unmatched)
    config = mixed_precision_config(ATTENTION_8_MLP_4)
    rows = analyze_rows(write_checkpoint(tmp_path / "m", {**attention, **stray}, config))
    assert set(rows) == {f"{ATTENTION}.weight", f"{unmatched}.weight"}
    stray_row, attention_row = rows[f"{unmatched}.weight"], rows[f"{ATTENTION}.weight"]
    reason = "compressed-tensors: no config group's targets match the module"
    assert (stray_row["fit_status"], stray_row["reason"]) == ("skipped", reason)
    assert (attention_row["fit_status"], attention_row["quantization"]) == ("ok", "int8-channel")


def test_of_several_matching_targets_exact_names_then_sorted_regexes_then_classes_win():
    """compressed-tensors' match_targets order, whatever the order of the groups in the config: the exact name of
    o_proj (3 bits) over the regexes; of two regexes matching q_proj the first sorted, ".*self_attn" (8 bits) before
    "model\\.layers" (2 bits); the regex over the class Linear for up_proj; Linear (4 bits) for lm_head alone. Each
    module decodes exactly at its group's width (a wrong width fails against weight_shape), the width
    compressed-tensors' own apply_quantization_config gives it."""
    channel = dict(INT8_CHANNEL)
    groups = {
        "linear": (["Linear"], dict(channel, num_bits=4)),
        "layers": (["re:model\\.layers\\."], dict(channel, num_bits=2)),
        "attention": (["re:.*self_attn\\."], channel),
        "output": (["model.layers.0.self_attn.o_proj"], dict(channel, num_bits=3)),
    }
    widths = {"model.layers.0.self_attn.o_proj": 3, ATTENTION: 8, "model.layers.0.mlp.up_proj": 2, "lm_head": 4}
    arrays, expected = {}, {}
    for seed, (module, bits) in enumerate(widths.items()):
        stored, expected[f"{module}.weight"] = synthetic_module(bits, 16, 64, "channel", seed=seed, prefix=module)
        arrays.update(stored)
    config = mixed_precision_config(groups)
    assert reference_widths(list(widths), config) == widths
    claim, matrices = claim_and_decode(CompressedTensorsDecoder(), arrays, config)
    assert {spec.name: spec.quantization for spec in claim.matrices} == {
        f"{module}.weight": f"int{bits}-channel" for module, bits in widths.items()
    }
    for name, matrix in expected.items():
        np.testing.assert_array_equal(matrices[name], matrix, err_msg=name)


SKIP_4_BIT_AS_GROUP_1_DEFAULT = (
    "compressed-tensors: config group group_1 gives no num_bits, and weight_packed (24, 12) does not hold the 96 "
    "columns weight_shape says as 8-bit codes, compressed-tensors' default (they take 24 int32 words per row)"
)


@pytest.mark.parametrize(
    ("bits", "groups", "status", "reason"),
    [
        (8, [dict(NO_NUM_BITS, num_bits=4), dict(NO_NUM_BITS, num_bits=8)], "ok", ""),
        (4, [dict(NO_NUM_BITS, num_bits=4), NO_NUM_BITS], "skipped", SKIP_4_BIT_AS_GROUP_1_DEFAULT),
    ],
    ids=["later-8", "later-default"],
)
def test_a_target_that_two_groups_name_is_the_later_groups(tmp_path, bits, groups, status, reason):
    """compressed-tensors maps each target to one scheme, the last group's that names it: with two groups targeting
    Linear, a module packs at the second group's width (8 bits, decoded exactly), or at its default when it gives no
    num_bits (these 4-bit codes do not fit it: skipped, the reason naming the group)."""
    arrays, matrix = synthetic_module(bits, 24, 96, "channel")
    config = config_of(*groups)
    assert reference_widths([PREFIX], config) == {PREFIX: 8}
    row = analyze_rows(write_checkpoint(tmp_path / "m", arrays, config))[f"{PREFIX}.weight"]
    assert (row["fit_status"], row["reason"]) == (status, reason)
    if status == "ok":
        _, decoded_matrices = claim_and_decode(CompressedTensorsDecoder(), arrays, config)
        np.testing.assert_array_equal(decoded_matrices[f"{PREFIX}.weight"], matrix)


UNSURE_OF_EMBEDDING = (
    "no config group's target names the module, and a checkpoint does not say whether its class is Embedding "
    "(config group embedding)"
)


@pytest.mark.parametrize(
    ("groups", "ignore", "reason"),
    [
        ({"embedding": (["Embedding"], INT8_CHANNEL), "linear": (["Linear"], INT4_GROUP)}, None, UNSURE_OF_EMBEDDING),
        ({"embedding": (["Embedding"], INT8_CHANNEL)}, None, UNSURE_OF_EMBEDDING),
        ({"embedding": (["re:.*embed_tokens"], INT8_CHANNEL)}, None, "no config group's targets match the module"),
        (ATTENTION_8_MLP_4, ["re:.*up_proj"], "the module is in the config's ignore list ('re:.*up_proj') yet stores "
         "packed codes: compressed-tensors gives an ignored module no scheme to unpack them with"),
        ({"fp8": (["re:.*mlp\\."], FP8), "linear": (["Linear"], INT4_GROUP)}, None, "the module takes config group "
         "fp8's scheme (target 're:.*mlp\\\\.'), which stores no pack-quantized int weights"),
        ({"mlp": (["re:.*mlp\\.(up"], INT4_GROUP)}, None, "config target 're:.*mlp\\\\.(up' is not a regular "
         "expression: missing ), unterminated subpattern at position 7"),
    ],
    ids=["class-before-linear", "class-only", "no-match", "ignored", "float-group", "bad-regex"],
)  # fmt: skip
def test_a_module_whose_scheme_the_checkpoint_cannot_tell_is_a_skipped_row_naming_why(groups, ignore, reason):
    """Never a guessed width: a class target other than Linear that sorts before it (and so would decide, were it
    this module's class, which a checkpoint does not store) with another width, only such class targets, no target
    that matches, an ignored module that stores packed codes anyway, a group that packs no int codes, a target that
    is no regex. The reason names the cause, the row the module (the summary counts identical reasons)."""
    arrays, _ = synthetic_module(4, 64, 96, "group")
    claim, decoded_matrices = claim_and_decode(
        CompressedTensorsDecoder(), arrays, mixed_precision_config(groups, ignore)
    )
    (spec,) = claim.matrices
    assert spec.skip_reason == f"compressed-tensors: {reason}"
    assert decoded_matrices == {} and claim.consumed == set(arrays)


def test_a_class_target_that_cannot_decide_the_width_does_not_make_the_module_unsure():
    """match_targets orders class matches by name: "MoE" after "Linear" cannot decide for a module Linear matches;
    "Embedding" before it can, but its group packs as Linear's does, so the width is the same either way; and
    "LlamaAttention" before it belongs to a group that quantizes no weights, which gave no module packed codes."""
    arrays, matrix = synthetic_module(4, 64, 96, "group")
    groups = {
        "moe": (["MoE"], INT8_CHANNEL),
        "embedding": (["Embedding"], INT4_GROUP),
        "attention": (["LlamaAttention"], None),
        "linear": (["Linear"], INT4_GROUP),
    }
    claim, decoded_matrices = claim_and_decode(CompressedTensorsDecoder(), arrays, mixed_precision_config(groups))
    assert claim.matrices[0].skip_reason is None
    np.testing.assert_array_equal(decoded_matrices[f"{PREFIX}.weight"], matrix)
