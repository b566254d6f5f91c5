"""Buffers give no rows (recognised by name and shape); the plain path keeps every float matrix as stored and turns
what still looks quantized into one skipped row per module."""

import numpy as np

from flows.weights import ModelConfig, TensorInfo, plan_matrices
from tests.flows.weights.helpers import analyze_rows, heavy, write_checkpoint


def test_gpt2_buffers_give_no_rows(tmp_path):
    n = 64
    tensors = {
        "transformer.wte.weight": heavy(300, 32, 1),
        "transformer.h.0.attn.bias": np.tril(np.ones((n, n), np.float32))[None, None],  # the causal mask
        "transformer.h.0.attn.masked_bias": np.array(-1e4, np.float32),
        "transformer.h.0.attn.c_attn.weight": heavy(32, 96, 2),
        "transformer.h.0.attn.c_attn.bias": np.zeros(96, np.float32),
        "bert.embeddings.position_ids": np.arange(n, dtype=np.int64)[None],
        "model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(8, np.float32),
        "encoder.bn.running_mean": np.zeros(32, np.float32),
        "encoder.bn.running_var": np.ones(32, np.float32),
        "encoder.bn.num_batches_tracked": np.array(3, np.int64),
        "encoder.attn_mask": np.ones((n, n), bool),
    }
    rows = analyze_rows(write_checkpoint(tmp_path / "m", tensors))
    assert set(rows) == {"transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"}
    assert all(r["fit_status"] == "ok" for r in rows.values())


def test_square_float_tensors_named_bias_without_broadcast_dims_are_weights():
    # A 2-D [n, n] tensor called "bias" could be a real parameter: only the broadcast [1, 1, n, n] form is a mask.
    decoding = plan_matrices(
        [TensorInfo("pos.bias", "F32", (64, 64)), TensorInfo("rel.relative_attention_bias.weight", "F32", (32, 8))],
        ModelConfig(),
    )
    assert [s.name for s in decoding.specs] == ["pos.bias", "rel.relative_attention_bias.weight"]


def test_leftover_quantized_modules_are_one_skipped_row_each_never_ok():
    # What the quantized decoders (flows.weights.decoders.quant) leave of a checkpoint without a quantization_config:
    # codes
    # beside scales under names no scheme owns, and a bare integer matrix.
    infos = [
        TensorInfo("model.layers.0.mlp.gate_proj.codes", "U8", (256, 512)),
        TensorInfo("model.layers.0.mlp.gate_proj.codes_scale", "F32", (256, 4)),
        TensorInfo("model.layers.0.mlp.gate_proj.scales", "F16", (256,)),
        TensorInfo("model.layers.0.mlp.gate_proj.bias", "F16", (256,)),
        TensorInfo("model.embed.weight", "I16", (1000, 256)),
        TensorInfo("lm_head.weight", "BF16", (1000, 256)),
        TensorInfo("model.norm.weight", "BF16", (256,)),
    ]
    decoding = plan_matrices(infos, ModelConfig())
    by_name = {spec.name: spec for spec in decoding.specs}
    assert list(by_name) == ["model.embed", "model.layers.0.mlp.gate_proj", "lm_head.weight"]
    gate = by_name["model.layers.0.mlp.gate_proj"]
    assert gate.skip_reason == "quantized weights (codes U8, codes_scale F32, scales F16) that no decoder reads"
    assert gate.quantization == "unknown" and "bias" not in ",".join(gate.sources)
    assert by_name["model.embed"].skip_reason == "quantized weights (weight I16) that no decoder reads"
    assert by_name["lm_head.weight"].skip_reason is None
    # Logical parameters: lm_head, the norm and the float bias (undecodable layers cannot be counted).
    assert decoding.num_params == 1000 * 256 + 256 + 256


def test_dtypes_that_are_no_float_weights_are_skipped_with_the_dtype():
    decoding = plan_matrices([TensorInfo("codes.weight", "F8_E8M0", (64, 64))], ModelConfig())
    (spec,) = decoding.specs
    assert "F8_E8M0" in spec.skip_reason
