"""bitsandbytes int8 and NF4/FP4 (plain and nested absmax) against bitsandbytes' own dequantization, installed
from PyPI in the dev extra: ``int8_vectorwise_dequant``, and for 4-bit ``functional.dequantize_4bit``'s nested
absmax step followed by its portable torch kernel ``backends/default/ops.py: _dequantize_4bit_compute`` (the one
that agrees with its CUDA kernel and its quantizer). Its CPU C kernel (``cdequantize_blockwise_cpu_nf4_fp32``,
0.50.2) assigns blocks per row and disagrees with both when a row is not a whole number of blocks (e.g. rows of
160 with blocksize 128), so it is not the reference here. Checkpoints are the state-dict entries bitsandbytes
itself writes (``QuantState.as_dict(packed=True)``, ``SCB``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flows.weights.decoders.quant._common import row_tiles
from flows.weights.decoders.quant.bitsandbytes import BitsAndBytesDecoder
from flows.weights.errors import WeightsError
from tests.flows.weights.helpers import (
    WEIGHT_SCALE,
    analyze_rows,
    assert_same_spectrum,
    claim_and_decode,
    heavy,
    write_checkpoint,
)

bnb_functional = pytest.importorskip("bitsandbytes.functional")
from bitsandbytes.backends.default import ops as bnb_default_ops  # noqa: E402

# The plain torch function under bitsandbytes' torch.compile wrapper: same operations, no compile time.
_dequantize_4bit_compute = getattr(bnb_default_ops._dequantize_4bit_compute, "__wrapped__", None) or (
    bnb_default_ops._dequantize_4bit_compute
)

PREFIX = "model.layers.2.mlp.down_proj"


def int8_checkpoint(w: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    codes, scb, _ = bnb_functional.int8_vectorwise_quant(torch.from_numpy(w))
    reference = bnb_functional.int8_vectorwise_dequant(codes, scb).numpy()
    arrays = {
        f"{PREFIX}.weight": codes.numpy(),
        f"{PREFIX}.SCB": scb.numpy(),
        f"{PREFIX}.weight_format": np.array(0, dtype=np.uint8),
        f"{PREFIX}.bias": np.zeros(w.shape[0], dtype=np.float16),
    }
    return arrays, reference


def four_bit_checkpoint(w: np.ndarray, quant_type: str, nested: bool, blocksize: int):
    packed, state = bnb_functional.quantize_4bit(
        torch.from_numpy(w), blocksize=blocksize, quant_type=quant_type, compress_statistics=nested
    )
    absmax = state.absmax
    if nested:
        absmax = bnb_functional.dequantize_blockwise(state.absmax, state.state2) + state.offset
    reference = _dequantize_4bit_compute(
        packed.reshape(-1), absmax, state.code, blocksize, state.shape, torch.float32
    ).numpy()
    arrays = {f"{PREFIX}.weight": packed.numpy()}
    for key, value in state.as_dict(packed=True).items():
        arrays[f"{PREFIX}.weight.{key}"] = value.numpy()
    return arrays, reference


def test_int8_matches_int8_vectorwise_dequant():
    arrays, reference = int8_checkpoint(heavy(192, 320, scale=WEIGHT_SCALE))
    claim, decoded = claim_and_decode(BitsAndBytesDecoder(), arrays, {})
    (spec,) = claim.matrices
    assert spec.quantization == "bnb-int8" and spec.shape == (192, 320)
    assert claim.consumed == set(arrays)  # SCB, weight_format, bias: no rows
    np.testing.assert_array_equal(decoded[spec.name], reference)


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize(("shape", "blocksize"), [((128, 256), 64), ((100, 30), 64), ((96, 160), 128)])
def test_four_bit_matches_dequantize_4bit(quant_type, nested, shape, blocksize):
    arrays, reference = four_bit_checkpoint(heavy(*shape, seed=1, scale=WEIGHT_SCALE), quant_type, nested, blocksize)
    claim, decoded = claim_and_decode(BitsAndBytesDecoder(), arrays, {})
    (spec,) = claim.matrices
    assert spec.name == f"{PREFIX}.weight" and spec.quantization == f"bnb-{quant_type}"
    assert claim.consumed == set(arrays)  # absmax, quant_map, nested_*, the quant state blob: no rows
    np.testing.assert_array_equal(decoded[spec.name], reference)


def test_four_bit_end_to_end_against_the_dense_twin():
    arrays, _ = four_bit_checkpoint(heavy(384, 768, seed=3, scale=WEIGHT_SCALE), "nf4", False, 64)
    _, decoded = claim_and_decode(BitsAndBytesDecoder(), arrays, {})
    packed = arrays[f"{PREFIX}.weight"].reshape(-1)
    codes = np.stack((packed >> 4, packed & 15), axis=-1).reshape(-1)
    quant_map = arrays[f"{PREFIX}.weight.quant_map"].astype(np.float64)
    absmax = arrays[f"{PREFIX}.weight.absmax"].astype(np.float64)
    twin = (quant_map[codes] * np.repeat(absmax, 64)).reshape(384, 768)
    assert_same_spectrum(decoded[f"{PREFIX}.weight"], twin)


def test_int8_end_to_end_against_the_dense_twin():
    arrays, _ = int8_checkpoint(heavy(384, 768, seed=4, scale=WEIGHT_SCALE))
    _, decoded = claim_and_decode(BitsAndBytesDecoder(), arrays, {})
    scb = arrays[f"{PREFIX}.SCB"].astype(np.float64)
    twin = arrays[f"{PREFIX}.weight"].astype(np.float64) * scb[:, None] / 127
    assert_same_spectrum(decoded[f"{PREFIX}.weight"], twin)


def test_missing_absmax_and_missing_quant_state_are_skipped_rows():
    arrays, _ = four_bit_checkpoint(heavy(64, 64, scale=WEIGHT_SCALE), "nf4", False, 64)
    without_absmax = {k: v for k, v in arrays.items() if not k.endswith(".absmax")}
    claim, decoded = claim_and_decode(BitsAndBytesDecoder(), without_absmax, {})
    assert claim.matrices[0].skip_reason == "bnb-nf4: missing weight.absmax" and decoded == {}
    assert claim.consumed == set(without_absmax)
    without_state = {k: v for k, v in arrays.items() if "quant_state" not in k}
    claim, _ = claim_and_decode(BitsAndBytesDecoder(), without_state, {})
    assert claim.matrices[0].skip_reason == "bnb-4bit: missing weight.quant_state"
    assert claim.consumed == set(without_state)


def test_corrupt_quant_state_and_mismatched_scb_fail_naming_the_matrix():
    arrays, _ = four_bit_checkpoint(heavy(64, 64, scale=WEIGHT_SCALE), "nf4", False, 64)
    claim, _ = claim_and_decode(BitsAndBytesDecoder(), arrays, {})
    state = f"{PREFIX}.weight.quant_state.bitsandbytes__nf4"
    with pytest.raises(WeightsError, match=f"{PREFIX}.weight: unreadable bitsandbytes quant_state"):
        claim.matrices[0].decode(dict(arrays, **{state: np.frombuffer(b"{not json", dtype=np.uint8)}))
    int8_arrays, _ = int8_checkpoint(heavy(64, 96, scale=WEIGHT_SCALE))
    int8_arrays[f"{PREFIX}.SCB"] = int8_arrays[f"{PREFIX}.SCB"][:10]
    claim, _ = claim_and_decode(BitsAndBytesDecoder(), int8_arrays, {})
    assert claim.matrices[0].skip_reason.startswith("bnb-int8: ")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"blocksize": -1}, "blocksize is -1, not a positive integer"),
        ({"blocksize": 0}, "blocksize is 0, not a positive integer"),
        ({"blocksize": "64"}, "blocksize is '64', not a positive integer"),
        ({"shape": 5}, "shape is 5, not a matrix's"),
        ({"shape": [4096]}, r"shape is \[4096\], not a matrix's"),
        ({"nested_blocksize": None}, "nested_blocksize is None, not a positive integer"),
    ],
)
def test_quant_state_with_a_bad_blocksize_or_shape_fails_naming_the_field(change, message):
    """A block size of -1 once left ``dequantize_4bit``'s output unfilled (np.empty, reported as an ok row from
    whatever memory held); 0 divided by zero; a shape of 5 was iterated."""
    arrays, _ = four_bit_checkpoint(heavy(64, 64, scale=WEIGHT_SCALE), "nf4", True, 64)
    claim, _ = claim_and_decode(BitsAndBytesDecoder(), arrays, {})
    state_name = f"{PREFIX}.weight.quant_state.bitsandbytes__nf4"
    state = json.loads(bytes(arrays[state_name]).decode())
    state.update(change)
    arrays[state_name] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    with pytest.raises(WeightsError, match=f"{PREFIX}.weight: bitsandbytes quant_state {message}"):
        claim.matrices[0].decode(arrays)


def test_a_corrupt_quant_state_is_a_failed_row_and_the_next_layer_is_analyzed(tmp_path):
    arrays, _ = four_bit_checkpoint(heavy(64, 64, scale=WEIGHT_SCALE), "nf4", False, 64)
    state_name = f"{PREFIX}.weight.quant_state.bitsandbytes__nf4"
    state = dict(json.loads(bytes(arrays[state_name]).decode()), blocksize=-1)
    arrays[state_name] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    arrays["model.layers.3.mlp.up_proj.weight"] = heavy(64, 32)
    rows = analyze_rows(
        write_checkpoint(tmp_path / "m", arrays, {"quantization_config": {"quant_method": "bitsandbytes"}})
    )
    assert rows[f"{PREFIX}.weight"]["fit_status"] == "failed"
    assert "blocksize is -1" in rows[f"{PREFIX}.weight"]["reason"]
    assert rows["model.layers.3.mlp.up_proj.weight"]["fit_status"] == "ok"


def test_row_tiles_refuse_a_negative_count_rather_than_leave_the_output_unfilled():
    assert list(row_tiles(0, 64)) == []
    with pytest.raises(ValueError, match="no row tiles for -4 rows"):
        list(row_tiles(-4, 64))
