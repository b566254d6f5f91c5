"""Decoding works in row tiles: a layer never needs much more than its float32 size (the issue asks for at most
~2×). Measured with tracemalloc (numpy reports its allocations to it) on a 2048×2048 layer with 256 KB tiles, so
the bound tested is: peak allocation during decode ≤ 1.25 × the float32 matrix (output + a few tiles)."""

from __future__ import annotations

import tracemalloc

import ml_dtypes
import numpy as np
import pytest

from flows.weights.decoders.contract import ModelConfig
from flows.weights.decoders.quant import _common
from flows.weights.decoders.quant.awq import AWQDecoder
from flows.weights.decoders.quant.bitsandbytes import BitsAndBytesDecoder
from flows.weights.decoders.quant.compressed_tensors import CompressedTensorsDecoder
from flows.weights.decoders.quant.fp8 import FP8Decoder
from flows.weights.decoders.quant.gptq import GPTQDecoder
from tests.flows.weights.helpers import plan_of

N = 2048


def fp8_block():
    codes = np.ones((N, N), dtype=ml_dtypes.float8_e4m3fn)
    return FP8Decoder(), {"m.weight": codes, "m.weight_scale_inv": np.ones((16, 16), np.float32)}, {}


def gptq():
    arrays = {
        "m.qweight": np.full((N // 8, N), 0x12345678, np.int32),
        "m.qzeros": np.full((N // 128, N // 8), 0x77777777, np.int32),
        "m.scales": np.ones((N // 128, N), np.float16),
    }
    return GPTQDecoder(), arrays, {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}


def awq():
    arrays = {
        "m.qweight": np.full((N, N // 8), 0x12345678, np.int32),
        "m.qzeros": np.full((N // 128, N // 8), 0x77777777, np.int32),
        "m.scales": np.ones((N // 128, N), np.float16),
    }
    return AWQDecoder(), arrays, {"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}


def bnb_nf4():
    state = b'{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2048, 2048]}'
    arrays = {
        "m.weight": np.full((N * N // 2, 1), 0x3C, np.uint8),
        "m.weight.absmax": np.ones(N * N // 64, np.float32),
        "m.weight.quant_map": np.linspace(-1, 1, 16, dtype=np.float32),
        "m.weight.quant_state.bitsandbytes__nf4": np.frombuffer(state, np.uint8),
    }
    return BitsAndBytesDecoder(), arrays, {}


def bnb_int8():
    return BitsAndBytesDecoder(), {"m.weight": np.ones((N, N), np.int8), "m.SCB": np.ones(N, np.float32)}, {}


def packed_int4():
    arrays = {
        "m.weight_packed": np.full((N, N // 8), 0x12345678, np.int32),
        "m.weight_shape": np.array([N, N], np.int64),
        "m.weight_scale": np.ones((N, N // 128), np.float32),
    }
    # The width is the config's: without num_bits, compressed-tensors' default is 8 bits, not these 4.
    weights = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 128}
    config = {
        "quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": weights}}}
    }
    return CompressedTensorsDecoder(), arrays, config


@pytest.mark.parametrize("case", [fp8_block, gptq, awq, bnb_nf4, bnb_int8, packed_int4])
def test_decode_peak_memory_stays_near_the_float32_size(case, monkeypatch):
    monkeypatch.setattr(_common, "TILE_ELEMENTS", 1 << 16)
    decoder, arrays, config = case()
    (spec,) = decoder.claim(plan_of(arrays), ModelConfig(config)).matrices
    tracemalloc.start()
    try:
        matrix = spec.decode({n: arrays[n] for n in spec.sources})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert matrix.shape == (N, N) and matrix.dtype == np.float32
    assert peak <= 1.25 * matrix.nbytes, f"peak {peak / matrix.nbytes:.2f}× the float32 matrix"
