"""MXFP4 fused experts (GPT-OSS): ``<proj>_blocks`` (uint8, two FP4 E2M1 codes per byte) + ``<proj>_scales``
(uint8 E8M0 exponents, one per block of 32 values).

Dequantized exactly as transformers' ``integrations/mxfp4.py: _convert_moe_packed_tensors`` (copied there from
OpenAI's gpt-oss reference) does, but into float32 instead of bf16:

    value[..., 2j]   = FP4_VALUES[byte & 0x0F] · 2^(scale − 127)
    value[..., 2j+1] = FP4_VALUES[byte >> 4]   · 2^(scale − 127)

for ``blocks`` ``[E, rows, G, 16]`` and ``scales`` ``[E, rows, G]``, giving ``[E, rows, 32·G]``; the reference then
transposes the last two axes into the bf16 layout (``gate_up_proj`` ``[E, H, 2I]``, ``down_proj`` ``[E, I, H]``),
which :mod:`flows.weights.decoders.moe` splits into gate / up / down per expert. Every product is exact in float32 (a
3-bit significand times a power of two ≥ 2^-127); the E8M0 code 255 is NaN (OCP MX spec v1.0), so such a block
makes its layer fail instead of being silently infinite. One expert is dequantized at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ...tensors import TensorInfo
from ..contract import Claim, ModelConfig
from ..moe import DOWN, GATE_UP, GPT_OSS_LAYOUT, LAYOUTS, expert_specs, fused_role, skipped_expert_specs

QUANTIZATION = "mxfp4"
# FP4 E2M1 code → value (OCP Microscaling Formats v1.0, table 5; the order of transformers' FP4_VALUES).
FP4_VALUES = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32
)
_E8M0_NAN = 255
_BLOCK_BYTES = 16  # 32 FP4 values per block


def dequantize_mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``blocks`` ``[..., G, 16]`` uint8 and ``scales`` ``[..., G]`` uint8 → float32 ``[..., 32·G]``.

    Low nibble first, each value ``FP4_VALUES[code] · 2^(scale − 127)`` (transformers' ``_convert_moe_packed_tensors``
    without its final cast to bf16 and transpose)."""
    blocks, scales = _bytes(blocks), _bytes(scales)
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != _BLOCK_BYTES:
        raise ValueError(f"MXFP4 blocks {list(blocks.shape)} do not match scales {list(scales.shape)}")
    out = np.empty((*blocks.shape[:-1], 2 * _BLOCK_BYTES), dtype=np.float32)
    out[..., 0::2] = FP4_VALUES[blocks & 0x0F]
    out[..., 1::2] = FP4_VALUES[blocks >> 4]
    exponents = scales.astype(np.int32) - 127
    with np.errstate(over="ignore"):  # 2^128 (code 255) is NaN below, not infinity
        factors = np.ldexp(np.float32(1.0), exponents).astype(np.float32)
    factors[scales == _E8M0_NAN] = np.nan
    out *= factors[..., None]
    return out.reshape(*blocks.shape[:-2], blocks.shape[-2] * 2 * _BLOCK_BYTES)


def _bytes(array: np.ndarray) -> np.ndarray:
    # Codes are bit patterns: an E8M0 scale read as ml_dtypes' float8_e8m0fnu is reinterpreted, never converted.
    array = np.asarray(array)
    return array if array.dtype == np.uint8 else array.view(np.uint8)


def _stem(name: str, suffix: str) -> str | None:
    return name[: -len(suffix)] if name.endswith(suffix) else None


class Mxfp4Experts:
    """GPT-OSS's MXFP4 expert tensors, dequantized per expert and split like the bf16 layout."""

    name = QUANTIZATION

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim(num_params=0)
        groups: dict[str, dict[str, tuple[TensorInfo, TensorInfo]]] = {}
        for name, info in tensors.items():
            stem = _stem(name, "_blocks")
            scales = tensors.get(f"{stem}_scales") if stem else None
            found = fused_role(stem) if stem else None
            if scales is None or found is None:
                continue
            groups.setdefault(found[0], {})[found[1]] = (info, scales)
        # MXFP4 experts exist only in GPT-OSS-style models (transformers' Mxfp4GptOssExperts): its layout unless the
        # model type names another one.
        layout = LAYOUTS.get(config.model_type, GPT_OSS_LAYOUT)
        for prefix, members in groups.items():
            for role, (blocks, scales) in members.items():
                sources = (blocks.name, scales.name)
                claim.consumed.update(sources)
                reason = _shape_problem(blocks, scales, members)
                # The float layout's shape: the reference transposes [E, rows, 32·G] into [E, 32·G, rows].
                experts, rows, groups_, _ = blocks.shape if len(blocks.shape) == 4 else (0, 0, 0, 0)
                float_shape = (experts, groups_ * 32, rows) if layout.transposed else (experts, rows, groups_ * 32)
                claim.num_params += math.prod(float_shape)
                if reason:
                    claim.matrices += skipped_expert_specs(prefix, role, blocks.shape, sources, reason, QUANTIZATION)
                    continue

                def expert_matrix(expert, arrays, b=blocks.name, s=scales.name):
                    dense = dequantize_mxfp4(arrays[b][expert], arrays[s][expert])  # [rows, 32·G]
                    return dense.T if layout.transposed else dense

                claim.matrices += expert_specs(prefix, role, float_shape, layout, sources, expert_matrix, QUANTIZATION)
        return claim


def _shape_problem(blocks: TensorInfo, scales: TensorInfo, members: dict) -> str:
    if blocks.dtype != "U8" or scales.dtype not in ("U8", "F8_E8M0"):
        return f"MXFP4 blocks/scales stored as {blocks.dtype}/{scales.dtype}, expected uint8"
    if len(blocks.shape) != 4 or blocks.shape[-1] != _BLOCK_BYTES or blocks.shape[:-1] != scales.shape:
        expected = "[E, rows, G, 16] / [E, rows, G]"
        return f"MXFP4 blocks {list(blocks.shape)} do not match scales {list(scales.shape)} ({expected})"
    if GATE_UP in members and DOWN in members:
        gate_up, down = members[GATE_UP][0].shape, members[DOWN][0].shape
        # gate_up rows = 2I, its inputs = 32·G = H; down rows = H, its inputs = I.
        if len(gate_up) == len(down) == 4 and (gate_up[1] != 2 * down[2] * 32 or down[1] != gate_up[2] * 32):
            return f"MXFP4 experts {list(gate_up)} / {list(down)} match no GPT-OSS layout"
    return ""
