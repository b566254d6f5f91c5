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
from tests.flows.weights.helpers import assert_same_spectrum, claim_and_decode, plan_of

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


def test_gemv_layout_and_missing_zeros_are_skipped_rows_naming_awq():
    arrays = {f"{PREFIX}.{name}": REFERENCE[f"awq_g32/{name}"] for name in ("qweight", "qzeros", "scales")}
    claim, _ = claim_and_decode(AWQDecoder(), arrays, awq_config(32, version="gemv"))
    assert claim.matrices[0].skip_reason == "awq: the gemv layout is not supported (GEMM only)"
    del arrays[f"{PREFIX}.qzeros"]
    claim, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(32))
    assert claim.matrices[0].skip_reason == f"awq: missing qzeros for {PREFIX}.qweight" and decoded == {}
    assert claim.consumed == set(arrays)


def test_scales_that_do_not_fit_are_a_skipped_row():
    arrays = {f"{PREFIX}.{name}": REFERENCE[f"awq_g32/{name}"] for name in ("qweight", "qzeros", "scales")}
    arrays[f"{PREFIX}.scales"] = arrays[f"{PREFIX}.scales"][:2]
    claim, decoded = claim_and_decode(AWQDecoder(), arrays, awq_config(32))
    assert claim.matrices[0].skip_reason.startswith("awq: 4-bit GEMM layout does not fit") and decoded == {}
