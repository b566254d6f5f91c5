"""Schemes wwhub cannot decode: one skipped row per quantized layer naming the scheme, side tensors consumed,
float layers the scheme left alone untouched, and nothing claimed in a plain model."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from flows.weights.decoders.contract import ModelConfig
from flows.weights.decoders.quant import DECODERS
from flows.weights.decoders.quant.unsupported import UnsupportedDecoder
from tests.flows.weights.helpers import plan_of


def run_registry(arrays: dict[str, np.ndarray], config: dict) -> tuple[list, set[str]]:
    """All quantized decoders in registry order, each seeing only what the ones before left (as the pipeline)."""
    remaining = plan_of(arrays)
    specs, consumed = [], set()
    for decoder in DECODERS:
        claim = decoder.claim(remaining, ModelConfig(config))
        specs += claim.matrices
        consumed |= claim.consumed
        remaining = {k: v for k, v in remaining.items() if k not in claim.consumed}
    return specs, consumed


def hqq_layer(prefix: str) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.W_q": np.zeros((2048, 1), dtype=np.uint8),
        f"{prefix}.scale": np.ones((64, 1), dtype=np.float16),
        f"{prefix}.zero": np.ones((64, 1), dtype=np.float16),
        f"{prefix}.bias": np.zeros(64, dtype=np.float16),
    }


def test_hqq_named_in_the_config_gives_skipped_rows_and_leaves_float_layers_alone():
    arrays = {**hqq_layer("model.layers.0.mlp.up_proj"), **hqq_layer("model.layers.0.mlp.down_proj")}
    arrays["lm_head.weight"] = np.ones((100, 64), dtype=np.float16)
    arrays["model.norm.weight"] = np.ones(64, dtype=np.float16)
    specs, consumed = run_registry(arrays, {"quantization_config": {"quant_method": "hqq", "nbits": 4}})
    assert [s.name for s in specs] == ["model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"]
    assert all(s.skip_reason.startswith("hqq: quantization scheme not supported") for s in specs)
    assert all(s.quantization == "hqq" and s.decode is None for s in specs)
    assert consumed == set(arrays) - {"lm_head.weight", "model.norm.weight"}


def test_schemes_recognised_by_tensor_names_without_a_config():
    arrays = {
        "model.layers.0.self_attn.q_proj.q_weight": np.zeros((64, 128), dtype=np.int32),
        "model.layers.0.self_attn.q_proj.q_scale": np.zeros((4, 16), dtype=np.int32),
        "model.layers.0.self_attn.q_proj.q_groups": np.zeros(8, dtype=np.int16),
        "model.layers.0.mlp.up_proj.codes": np.zeros((128, 16, 1), dtype=np.int16),
        "model.layers.0.mlp.up_proj.codebooks": np.zeros((1, 65536, 1, 8), dtype=np.float16),
        "model.layers.0.mlp.up_proj.scales": np.zeros((128, 1, 1, 1), dtype=np.float16),
        "model.layers.0.mlp.gate_proj.weight._data": np.zeros((64, 64), dtype=np.int8),
        "model.layers.0.mlp.gate_proj.weight._scale": np.zeros((64, 1), dtype=np.float16),
    }
    specs, consumed = run_registry(arrays, {})
    schemes = {s.name: s.skip_reason.split(":")[0] for s in specs}
    assert schemes == {
        "model.layers.0.self_attn.q_proj.weight": "exllamav2",
        "model.layers.0.mlp.up_proj.weight": "aqlm",
        "model.layers.0.mlp.gate_proj.weight": "quanto",
    }
    assert consumed == set(arrays)  # codebooks (float, 4-D) and scales never become rows


def test_unknown_method_with_integer_weights_names_the_method():
    arrays = {
        "model.layers.0.mlp.up_proj.weight": np.zeros((64, 64), dtype=np.int8),
        "model.layers.0.mlp.up_proj.weight_scale_2": np.zeros((64,), dtype=np.float16),
        "model.embed_tokens.weight": np.zeros((100, 64), dtype=np.float16),
    }
    specs, consumed = run_registry(arrays, {"quantization_config": {"quant_method": "brand-new-quant"}})
    (spec,) = specs
    assert spec.skip_reason.startswith("brand-new-quant: quantization scheme not supported")
    assert consumed == {"model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight_scale_2"}


def test_plain_models_and_mxfp4_are_left_to_the_other_decoders():
    plain = {"a.weight": np.ones((8, 8), dtype=ml_dtypes.bfloat16), "a.position_ids": np.zeros((1, 8), np.int64)}
    assert run_registry(plain, {}) == ([], set())
    mxfp4 = {
        "model.layers.0.mlp.experts.gate_up_proj_blocks": np.zeros((4, 16, 2, 16), dtype=np.uint8),
        "model.layers.0.mlp.experts.gate_up_proj_scales": np.zeros((4, 16, 2), dtype=np.uint8),
    }
    assert run_registry(mxfp4, {"quantization_config": {"quant_method": "mxfp4"}}) == ([], set())


def test_unsupported_decoder_alone_ignores_decoded_methods():
    arrays = {"a.qweight": np.zeros((8, 64), dtype=np.int32)}
    claim = UnsupportedDecoder().claim(plan_of(arrays), ModelConfig({"quantization_config": {"quant_method": "gptq"}}))
    assert claim.matrices == [] and claim.consumed == set()


def test_compressed_tensors_nvfp4_packing_is_a_skipped_row():
    arrays = {
        "m.weight_packed": np.zeros((64, 32), dtype=np.uint8),
        "m.weight_scale": np.zeros((64, 4), dtype=ml_dtypes.float8_e4m3fn),
        "m.weight_global_scale": np.ones(1, dtype=np.float32),
    }
    specs, consumed = run_registry(arrays, {"quantization_config": {"quant_method": "compressed-tensors"}})
    (spec,) = specs
    assert spec.skip_reason.startswith("compressed-tensors: U8-packed weights") and consumed == set(arrays)
