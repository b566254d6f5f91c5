"""GGUF's decoder: quantized GGML tensors dequantized with the ``gguf`` package.

:class:`GGUFDecoder` claims quantized tensors and dequantizes them with ``gguf.quants.dequantize`` (gguf's own
reference implementation of every GGML type) row tile by row tile into float32; fused expert tensors
(``blk.N.ffn_*_exps.weight``, ``(experts, out, in)``) become one matrix per expert, decoded one at a time. A
tensor or expert with a 0-size axis holds no block: it is skipped with ww_core's reason for any empty tensor.
F32/F16/BF16 tensors are the plain path's: they are read exactly. The file format is
:mod:`flows.weights.gguf_file`'s; which file of a GGUF-only repo is read is :mod:`flows.weights.layout`'s decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

import numpy as np

from ww_core.matrices import empty_tensor_reason

from ..gguf_file import EXACT_TYPES, INTEGER_TYPES
from ..tensors import TensorInfo
from .contract import Claim, MatrixSpec, ModelConfig
from .quant._common import row_tiles

_EXPERTS = re.compile(r"_exps\.weight$")


@cache
def _dequantizable(type_name: str) -> bool:
    """Whether ``gguf.quants`` implements this GGML type's dequantization (probed on one zero block)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    ggml_type = GGMLQuantizationType[type_name]
    try:
        dequantize(np.zeros((1, GGML_QUANT_SIZES[ggml_type][1]), dtype=np.uint8), ggml_type)
    except NotImplementedError:
        return False
    return True


def is_quantized_ggml_type(type_name: str) -> bool:
    """A GGML type name other than the exact float and integer ones (``Q4_K``, ``IQ2_XXS``, ``TQ1_0``, ...)."""
    from gguf import GGMLQuantizationType

    exact = type_name in EXACT_TYPES or type_name in INTEGER_TYPES
    return type_name in GGMLQuantizationType.__members__ and not exact


def dequantize_gguf(raw: np.ndarray, type_name: str) -> np.ndarray:
    """Raw GGML blocks ``(rows, bytes_per_row)`` → float32 ``(rows, cols)`` with ``gguf.quants.dequantize``
    (gguf-py's numpy port of ggml's ``dequantize_row_*``), a few rows at a time."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    ggml_type = GGMLQuantizationType[type_name]
    first = dequantize(np.asarray(raw[:1]), ggml_type)
    cols = first.shape[-1]
    out = np.empty((raw.shape[0], cols), dtype=np.float32)
    for tile in row_tiles(raw.shape[0], cols):
        out[tile] = dequantize(np.asarray(raw[tile]), ggml_type)
    return out


class GGUFDecoder:
    """Quantized GGML tensors (and fused expert tensors of any type), decoded with the ``gguf`` package."""

    name = "gguf"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        for name, info in tensors.items():
            quantized = is_quantized_ggml_type(info.dtype)
            experts = len(info.shape) == 3 and _EXPERTS.search(name) and (quantized or info.dtype in EXACT_TYPES)
            if not (quantized and len(info.shape) >= 2) and not experts:
                continue
            claim.consumed.add(name)
            label = info.dtype if quantized else ""
            if quantized and not _dequantizable(info.dtype):
                why = f"GGML type {info.dtype} cannot be dequantized by the gguf package"
                claim.matrices.append(MatrixSpec(name, (name,), info.shape, quantization=label, skip_reason=why))
            elif experts and info.shape[0] > 0:
                claim.matrices += [_expert_spec(name, info, e, label) for e in range(info.shape[0])]
            else:
                claim.matrices.append(_matrix_spec(name, info, label))
        return claim


def _matrix_spec(name: str, info: TensorInfo, label: str) -> MatrixSpec:
    empty = empty_tensor_reason(info.shape)
    if empty is not None:
        # A 0-size axis holds no block to dequantize: ww_core's one decision, as for a stored float tensor.
        return MatrixSpec(name, (name,), info.shape, quantization=label, skip_reason=empty)
    rows = int(np.prod(info.shape[:-1]))

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        raw = arrays[name]
        return dequantize_gguf(raw.reshape(rows, raw.shape[-1]), info.dtype).reshape(info.shape)

    return MatrixSpec(name, (name,), info.shape, decode=decode, quantization=label)


def _expert_spec(name: str, info: TensorInfo, expert: int, label: str) -> MatrixSpec:
    """Expert ``expert`` of a fused ``(experts, out, in)`` tensor, named ``blk.N.ffn_up_exps.E.weight``."""
    stem = name[: -len(".weight")]
    empty = empty_tensor_reason(info.shape[1:])
    if empty is not None:
        return MatrixSpec(
            f"{stem}.{expert}.weight", (name,), info.shape[1:], expert=expert, quantization=label, skip_reason=empty
        )

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        slab = arrays[name][expert]
        return dequantize_gguf(slab, info.dtype) if label else slab.astype(np.float32)

    return MatrixSpec(
        f"{stem}.{expert}.weight", (name,), info.shape[1:], decode=decode, expert=expert, quantization=label
    )
