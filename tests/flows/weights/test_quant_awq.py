"""AWQ GEMM (``qweight``/``qzeros``/``scales`` packed along the output dimension in AWQ's nibble order) against
AutoAWQ's own ``dequantize_gemm``. AutoAWQ does not install on a CPU-only machine, so
scripts/make_quant_reference.py ran ``WQLinear_GEMM.from_linear`` and ``dequantize_gemm`` (float32 scales) once and
stored the result in data/gptq_awq_reference.npz; bad inputs and the end-to-end check use a round trip of known
codes packed here in AWQ's order ([0, 2, 4, 6, 1, 3, 5, 7])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows.weights.decoders.contract import ModelConfig
from flows.weights.decoders.quant import DECODERS
from flows.weights.decoders.quant.awq import AWQDecoder
from tests.flows.weights.helpers import (
    analyze_rows,
    assert_same_spectrum,
    claim_and_decode,
    plan_of,
    write_checkpoint,
)

REFERENCE = np.load(Path(__file__).parent / "data" / "gptq_awq_reference.npz")
CASES = sorted({key.split("/")[0] for key in REFERENCE.files if key.startswith("awq_")})
PREFIX = "model.layers.1.mlp.gate_proj"
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_config(group_size: int, **extra) -> dict:
    qc = {"quant_method": "awq", "bits": 4, "group_size": group_size, "version": "gemm", "zero_point": True}
    return {"quantization_config": {**qc, **extra}}


@pytest.mark.parametrize("case", CASES)
def test_matches_autoawq_dequantize_gemm(case):
    group_size = int(case.split("_g")[1])
    arrays = {f"{PREFIX}.{name}": REFERENCE[f"{case}/{name}"] for name in ("qweight", "qzeros", "scales")}
    claim, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(group_size))
    (spec,) = claim.matrices
    assert spec.quantization == "awq-int4" and spec.shape == REFERENCE[f"{case}/reference"].shape
    assert claim.consumed == set(arrays)
    np.testing.assert_array_equal(decoded[spec.name], REFERENCE[f"{case}/reference"])


def test_recognised_from_tensor_shapes_without_a_config():
    """qweight narrower than scales (packed along the output dimension): AWQ, and only AWQ claims it."""
    arrays = {f"{PREFIX}.{name}": REFERENCE[f"awq_g32/{name}"] for name in ("qweight", "qzeros", "scales")}
    claiming = [d.name for d in DECODERS if d.claim(plan_of(arrays), ModelConfig({})).matrices]
    assert claiming == ["awq"]
    _, decoded = claim_and_decode(AWQDecoder(), arrays, {})
    np.testing.assert_array_equal(decoded[f"{PREFIX}.weight"], REFERENCE["awq_g32/reference"])


def pack_awq(values: np.ndarray) -> np.ndarray:
    """AutoAWQ's packing: 8 nibbles per int32 along the last axis, nibble i holding column 8c + AWQ_ORDER[i]."""
    words = np.zeros((values.shape[0], values.shape[1] // 8), dtype=np.uint32)
    for i, column in enumerate(AWQ_ORDER):
        words |= values[:, column::8].astype(np.uint32) << np.uint32(4 * i)
    return words.view(np.int32)


def test_end_to_end_against_the_dense_twin():
    rng = np.random.default_rng(4)
    rows, cols, group_size = 384, 768, 128
    codes = rng.integers(0, 16, size=(cols, rows))
    zeros = rng.integers(0, 16, size=(cols // group_size, rows))
    scales = rng.uniform(0.001, 0.01, size=zeros.shape).astype(np.float16)
    arrays = {f"{PREFIX}.qweight": pack_awq(codes), f"{PREFIX}.qzeros": pack_awq(zeros), f"{PREFIX}.scales": scales}
    _, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(group_size))
    group = np.arange(cols) // group_size
    twin = ((codes - zeros[group]) * scales.astype(np.float64)[group]).T
    np.testing.assert_allclose(decoded[f"{PREFIX}.weight"], twin, rtol=1e-7)  # one float32 rounding
    assert_same_spectrum(decoded[f"{PREFIX}.weight"], twin)


def test_group_size_minus_1_is_one_group_of_every_input():
    """AutoAWQ's ``WQLinear_GEMM`` (and llm-awq's ``WQLinear``) read ``group_size: -1`` as ``in_features``."""
    rng = np.random.default_rng(6)
    rows, cols = 64, 96
    codes, zeros = rng.integers(0, 16, size=(cols, rows)), rng.integers(0, 16, size=(1, rows))
    scales = rng.uniform(0.001, 0.01, size=zeros.shape).astype(np.float16)
    arrays = {f"{PREFIX}.qweight": pack_awq(codes), f"{PREFIX}.qzeros": pack_awq(zeros), f"{PREFIX}.scales": scales}
    _, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(-1))
    twin = ((codes - zeros) * scales.astype(np.float64)).T
    np.testing.assert_allclose(decoded[f"{PREFIX}.weight"], twin, rtol=1e-7)  # one float32 rounding


def test_gemv_layout_and_missing_zeros_are_skipped_rows_naming_awq():
    arrays = {f"{PREFIX}.{name}": REFERENCE[f"awq_g32/{name}"] for name in ("qweight", "qzeros", "scales")}
    claim, _ = claim_and_decode(AWQDecoder(), arrays, awq_config(32, version="gemv"))
    assert claim.matrices[0].skip_reason == "awq: the gemv layout is not supported (GEMM only)"
    del arrays[f"{PREFIX}.qzeros"]
    claim, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(32))
    assert claim.matrices[0].skip_reason == "awq: missing qzeros beside qweight" and decoded == {}
    assert claim.consumed == set(arrays)


Q, Z, S = (f"{PREFIX}.{name}" for name in ("qweight", "qzeros", "scales"))


@pytest.mark.parametrize(
    ("change", "config", "reason"),
    [
        ({S: np.ones((2, 64), np.float16), Z: np.zeros((2, 8), np.int32)}, {}, "scales (2, 64) has 2 groups, but 128 "
         "inputs in groups of 32 (quantization_config group_size) make 4"),
        ({}, {"group_size": 48}, "the 128 inputs of qweight (128, 8) are not a whole number of groups of 48 "
         "(quantization_config group_size)"),
        ({}, {"group_size": 0}, "quantization_config group_size is 0, expected a positive number of inputs per group "
         "or -1"),
        ({}, {"group_size": -1}, "scales (4, 64) has 4 groups, but 128 inputs in groups of 128 (quantization_config "
         "group_size -1: one group) make 1"),
        ({S: np.ones((3, 64), np.float16), Z: np.zeros((3, 8), np.int32)}, {"group_size": None}, "the 128 inputs of "
         "qweight (128, 8) do not split evenly into the 3 groups of scales (3, 64)"),
        ({Z: np.zeros((3, 8), np.int32)}, {}, "qzeros has shape (3, 8), expected (4, 8): one row per group of scales "
         "(4, 64), 8 zero points per int32"),
        ({Q: np.zeros((128, 16), np.int32), Z: np.zeros((4, 16), np.int32)}, {}, "qweight (128, 16) holds 8-bit codes "
         "for the 64 outputs of scales (4, 64); GEMM is read as 4-bit only"),
        ({Q: np.zeros((128, 7), np.int32)}, {}, "qweight (128, 7) does not pack the 64 outputs of scales (4, 64) as "
         "4-bit codes, 8 per int32"),
        ({Q: np.zeros(1024, np.int32)}, {}, "qweight has shape (1024,), expected 2-D (inputs, outputs/8)"),
        ({Q: np.zeros((128, 8), np.float16)}, {}, "qweight is stored as F16; AWQ packs its codes in int32 (I32)"),
        ({S: np.ones((4, 64), np.int32)}, {}, "scales is stored as I32, not as floating-point numbers"),
        ({S: np.ones((0, 64), np.float16), Z: np.zeros((0, 8), np.int32)}, {}, "scales (0, 64) has no group for the "
         "128 inputs of qweight (128, 8)"),
        ({Q: np.zeros((0, 8), np.int32)}, {}, "empty matrix: a 64x0 tensor has no eigenvalues"),
        ({}, {"bits": 8}, "quantization_config bits is 8; the GEMM layout is read with 4-bit codes only"),
        ({}, {"version": "gemv_fast"}, "the gemv_fast layout is not supported (GEMM only)"),
    ],
    ids=["groups", "group-size", "zero-group-size", "group-size-minus-1", "uneven-groups", "qzeros", "8-bit",
         "packing", "1-d", "dtype", "int-scales", "no-groups", "empty", "config-bits", "version"],
)  # fmt: skip
def test_a_module_that_does_not_fit_is_a_skipped_row_naming_the_tensor_and_the_cause(change, config, reason):
    """Every way the GEMM layout can fail to fit says which tensor of the module and what is wrong (it once said
    only '4-bit GEMM layout does not fit' and the three shapes); a 1-D qweight once stopped the whole plan with an
    IndexError. The tensor is named by its role (the row names the module), so a defect shared by many layers is one
    reason in the model's summary."""
    arrays = {f"{PREFIX}.{name}": REFERENCE[f"awq_g32/{name}"] for name in ("qweight", "qzeros", "scales")}
    arrays.update(change)
    claim, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(**{"group_size": 32, **config}))
    (spec,) = claim.matrices
    assert (spec.name, spec.skip_reason) == (f"{PREFIX}.weight", f"awq: {reason}") and decoded == {}
    assert claim.consumed == set(arrays)


def test_a_module_that_does_not_fit_is_a_skipped_row_of_wwhub_analyze(tmp_path):
    """The reason reaches the layer row as it is, beside an ok row of the module that fits."""
    good = {f"{PREFIX}.{name}": REFERENCE[f"awq_g32/{name}"] for name in ("qweight", "qzeros", "scales")}
    other = "model.layers.1.mlp.up_proj"
    bad = {name.replace(PREFIX, other): array for name, array in good.items()}
    bad[f"{other}.qzeros"] = bad[f"{other}.qzeros"][:3]
    rows = analyze_rows(write_checkpoint(tmp_path / "m", {**good, **bad}, awq_config(32)))
    assert rows[f"{PREFIX}.weight"]["fit_status"] == "ok"
    assert (rows[f"{other}.weight"]["fit_status"], rows[f"{other}.weight"]["reason"]) == (
        "skipped",
        "awq: qzeros has shape (3, 8), expected (4, 8): one row per group of scales (4, 64), 8 zero points per int32",
    )
