"""FP8 weights with scales: DeepSeek-V3 block scales, compressed-tensors and FBGEMM per-channel / per-tensor.

Layouts (a module ``X`` with a float8 ``X.weight`` of shape ``(out, in)``):

* DeepSeek-V3 / transformers ``FP8`` (``quant_method: fp8``): ``X.weight_scale_inv`` float32
  ``(⌈out/128⌉, ⌈in/128⌉)``, one scale per 128×128 tile (``weight_block_size``), ragged edge tiles included.
  Despite its name the scale multiplies: ``W = q · s`` (DeepSeek-V3 ``inference/kernel.py: weight_dequant``,
  ``y = x * s`` per block; transformers ``integrations/finegrained_fp8.py``).
* compressed-tensors ``float-quantized`` / ``naive-quantized``: ``X.weight_scale`` of shape ``(1,)`` (tensor),
  ``(out, 1)`` (channel), ``(out, in/g)`` (group) or block ``(⌈out/b0⌉, ⌈in/b1⌉)`` (``block_structure``), with
  optional ``X.weight_zero_point``: ``W = (q − z) · s`` (compressed-tensors
  ``quantization/lifecycle/forward_helpers.py: _dequantize``).
* FBGEMM (``quant_method: fbgemm_fp8``): ``X.weight_scale`` float32 ``(out, 1)``, ``W = q · s`` per row
  (transformers ``integrations/fbgemm_fp8.py``).

``X.input_scale``, ``X.input_scale_ub``, ``X.input_zero_point`` and the zero point are consumed and make no row.
A float8 weight that should have a scale and has none, or whose scale does not fit it, becomes a skipped row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...errors import WeightsError
from ...tensors import TensorInfo
from ..contract import Claim, MatrixSpec, ModelConfig
from ._common import (
    FLOAT8_DTYPES,
    as_float32,
    check_shape,
    configured_block,
    dequantize_scaled,
    is_known,
    module_tensors,
    quant_method,
    scale_layout,
    skipped,
)

SCALE_SUFFIXES = (".weight_scale_inv", ".weight_scale")
# DeepSeek-V3 and transformers' FP8 default when the config names no block size.
DEFAULT_BLOCK = (128, 128)
FP8_METHODS = {"fp8", "fbgemm_fp8", "compressed-tensors", "compressed_tensors"}


class FP8Decoder:
    """Float8 weights (``F8_E4M3`` / ``F8_E5M2``) with their scales, dequantized to float32."""

    name = "fp8"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        method = quant_method(config)
        block = configured_block(config)
        any_scale = any(name.endswith(SCALE_SUFFIXES) for name in tensors)
        for name, info in tensors.items():
            if not (name.endswith(".weight") and info.dtype in FLOAT8_DTYPES):
                continue
            prefix = name[: -len(".weight")]
            scale_name = next((prefix + s for s in SCALE_SUFFIXES if prefix + s in tensors), None)
            if scale_name is None and not (any_scale or method in FP8_METHODS):
                continue  # float8 weights with no scale anywhere in the model: the codes are the weights
            claim.consumed.update(module_tensors(tensors, prefix))
            claim.matrices.append(self._spec(name, info, scale_name, tensors, block))
        return claim

    def _spec(
        self,
        name: str,
        info: TensorInfo,
        scale_name: str | None,
        tensors: Mapping[str, TensorInfo],
        block: tuple[int, int] | None,
    ) -> MatrixSpec:
        shape = tuple(info.shape)
        if scale_name is None:
            return skipped(name, (name,), shape, "fp8", f"no weight_scale or weight_scale_inv for {name}")
        if len(shape) != 2:
            return skipped(
                name, (name, scale_name), shape, "fp8", f"{len(shape)}-D float8 tensor (fused experts) not supported"
            )
        scale_info = tensors[scale_name]
        if scale_name.endswith("_inv") and block is None:
            block = DEFAULT_BLOCK
        layout = "block" if not is_known(scale_info) else scale_layout(tuple(scale_info.shape), shape, block)
        if layout is None:
            return skipped(
                name,
                (name, scale_name),
                shape,
                "fp8",
                f"scale {scale_name} of shape {tuple(scale_info.shape)} does not fit weight {shape}",
            )
        zero_name = name + "_zero_point" if name + "_zero_point" in tensors else None
        sources = (name, scale_name) + ((zero_name,) if zero_name else ())
        block_size = block or DEFAULT_BLOCK

        def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
            codes = arrays[name]
            check_shape(name, codes, shape, "weight")
            scale = np.asarray(arrays[scale_name])
            found = scale_layout(tuple(scale.shape), shape, block_size)
            if found is None:
                raise WeightsError(f"{name}: scale {scale_name} of shape {scale.shape} does not fit weight {shape}")
            zero = np.asarray(arrays[zero_name]) if zero_name else None
            return dequantize_scaled(lambda rows: as_float32(codes[rows]), shape, scale, found, block_size, zero)

        return MatrixSpec(name=name, sources=sources, shape=shape, decode=decode, quantization=f"fp8-{layout}")
