"""compressed-tensors integer weights: ``int-quantized`` (int8 codes) and ``pack-quantized`` (1–8-bit codes packed
into int32), per tensor, channel, group (with act-order ``weight_g_idx``) or block.

Tensors of a module ``X`` (float8 ``X.weight`` is :mod:`.fp8`'s):

* ``int-quantized`` / ``naive-quantized``: ``X.weight`` int8 ``(out, in)``, ``X.weight_scale``, optional
  ``X.weight_zero_point`` (asymmetric);
* ``pack-quantized``: ``X.weight_packed`` int32 ``(out, ⌈in·b/32⌉)``, ``X.weight_shape`` (``[out, in]``),
  ``X.weight_scale``, optional ``X.weight_zero_point`` (packed the same way along the output dimension for group
  and channel strategies) and ``X.weight_g_idx``.

``W = (q − z) · s`` (compressed-tensors ``quantization/lifecycle/forward_helpers.py: _dequantize``), where the
packed codes are unpacked from a dense little-endian bit stream and offset by ``2^(b−1)``
(``compressors/pack_quantized/helpers.py: unpack_from_int32``).

A ``weight_shape`` whose header gives other than 2 values skips the module; values (read with the layer) that are
not whole, negative, or not what ``weight_packed`` holds fail it with a reason naming ``weight_shape``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ...errors import WeightsError
from ...tensors import TensorInfo
from ..contract import Claim, MatrixSpec, ModelConfig
from ._common import (
    as_float32,
    check_shape,
    compressed_tensors_weights,
    configured_block,
    dequantize_scaled,
    is_known,
    missing_parts,
    module_tensors,
    scale_layout,
    skipped,
    unpack_bitstream,
)

SCHEME = "compressed-tensors"


class CompressedTensorsDecoder:
    """compressed-tensors ``int-quantized`` and ``pack-quantized`` weights, dequantized to float32."""

    name = "compressed-tensors"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        weights_args = compressed_tensors_weights(config.quantization_config) or {}
        block = configured_block(config)
        for name, info in tensors.items():
            if name.endswith(".weight_packed"):
                prefix = name[: -len(".weight_packed")]
                spec = _packed_spec(prefix, tensors, weights_args, block)
            elif name.endswith(".weight") and info.dtype == "I8" and name + "_scale" in tensors:
                prefix = name[: -len(".weight")]
                spec = _int8_spec(prefix, tensors, block)
            else:
                continue
            claim.consumed.update(module_tensors(tensors, prefix))
            claim.matrices.append(spec)
        return claim


def _int8_spec(prefix: str, tensors: Mapping[str, TensorInfo], block: tuple[int, int] | None) -> MatrixSpec:
    name, scale_name, zero_name = prefix + ".weight", prefix + ".weight_scale", prefix + ".weight_zero_point"
    shape = tuple(tensors[name].shape)
    scale_info = tensors[scale_name]
    layout = scale_layout(tuple(scale_info.shape), shape, block) if is_known(scale_info) else "channel"
    if len(shape) != 2 or layout is None:
        why = f"scale {scale_name} of shape {tuple(scale_info.shape)} does not fit weight {shape}"
        return skipped(name, (name, scale_name), shape, SCHEME, why)
    has_zero = zero_name in tensors
    sources = (name, scale_name) + ((zero_name,) if has_zero else ())

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        codes = arrays[name]
        check_shape(name, codes, shape, "weight")
        scale = np.asarray(arrays[scale_name])
        found = _layout_or_error(name, scale, shape, block)
        zero = np.asarray(arrays[zero_name]) if has_zero else None
        return dequantize_scaled(lambda rows: as_float32(codes[rows]), shape, scale, found, block, zero)

    return MatrixSpec(name=name, sources=sources, shape=shape, decode=decode, quantization=f"int8-{layout}")


def _packed_spec(
    prefix: str, tensors: Mapping[str, TensorInfo], weights_args: Mapping, block: tuple[int, int] | None
) -> MatrixSpec:
    packed_name, shape_name = prefix + ".weight_packed", prefix + ".weight_shape"
    scale_name, zero_name = prefix + ".weight_scale", prefix + ".weight_zero_point"
    g_idx_name, name = prefix + ".weight_g_idx", prefix + ".weight"
    packed = tensors[packed_name]
    if is_known(packed) and packed.dtype != "I32":
        why = f"{packed.dtype}-packed weights (the nvfp4 / mxfp4 formats) not supported"
        return skipped(name, (packed_name,), tuple(packed.shape), SCHEME, why)
    missing = missing_parts(tensors, prefix, (shape_name, scale_name))
    if missing:
        return skipped(name, (packed_name,), tuple(packed.shape), SCHEME, f"missing {', '.join(missing)}")
    stored_shape = tensors[shape_name]
    if is_known(stored_shape) and math.prod(stored_shape.shape) != 2:
        why = f"weight_shape has shape {tuple(stored_shape.shape)}, expected 2 values [rows, columns]"
        return skipped(name, (packed_name, shape_name), tuple(packed.shape), SCHEME, why)
    bits = int(weights_args.get("num_bits") or 0) or None
    shape = _planned_shape(packed, tensors[scale_name], bits, weights_args.get("group_size"))
    sources = tuple(n for n in (packed_name, shape_name, scale_name, zero_name, g_idx_name) if n in tensors)

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        words = arrays[packed_name]
        rows, cols = _weight_shape(shape_name, arrays[shape_name])
        nbits = _code_width(packed_name, words.shape, shape_name, rows, cols, bits)
        scale = np.asarray(arrays[scale_name])
        found = _layout_or_error(name, scale, (rows, cols), block)
        g_idx = np.asarray(arrays[g_idx_name]).astype(np.int64) if g_idx_name in arrays else None
        if g_idx is not None:
            check_shape(name, g_idx, (cols,), g_idx_name)
        zero = _zero_point(arrays.get(zero_name), nbits, rows, scale.shape)
        offset = np.float32(1 << (nbits - 1))

        def codes_of_rows(tile: slice) -> np.ndarray:
            return unpack_bitstream(words[tile], nbits, cols).astype(np.float32) - offset

        return dequantize_scaled(codes_of_rows, (rows, cols), scale, found, block, zero, g_idx)

    label = f"int{bits}" if bits else "int"
    layout = scale_layout(tuple(tensors[scale_name].shape), shape, block) if is_known(tensors[scale_name]) else None
    return MatrixSpec(
        name=name, sources=sources, shape=shape, decode=decode, quantization=f"{label}-{layout or 'group'}"
    )


def _planned_shape(packed: TensorInfo, scale: TensorInfo, bits: int | None, group_size) -> tuple[int, ...]:
    """The logical shape as far as the plan tells (the exact one is in ``weight_shape``, read at decode time)."""
    if not is_known(packed) or len(packed.shape) != 2:
        return tuple(packed.shape)
    rows, words = packed.shape
    if group_size and is_known(scale) and len(scale.shape) == 2 and scale.shape[1] > 1:
        return rows, int(scale.shape[1]) * int(group_size)
    return rows, words * 32 // (bits or 4)


def _weight_shape(shape_name: str, stored: np.ndarray) -> tuple[int, int]:
    """``[rows, columns]`` from the ``weight_shape`` side tensor, or WeightsError naming it and what is wrong."""
    values = np.asarray(stored).reshape(-1)
    listed = values.tolist()
    if values.size != 2:
        raise WeightsError(f"{shape_name} holds {values.size} values {listed}, expected 2: [rows, columns]")
    if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) or np.any(values != np.floor(values)):
        raise WeightsError(f"{shape_name} holds {listed}, expected two whole numbers [rows, columns]")
    if np.any(values < 0):
        raise WeightsError(f"{shape_name} holds {listed}: a negative number of rows or columns")
    rows, cols = (int(v) for v in values)
    return rows, cols


def _code_width(
    packed_name: str, packed: tuple[int, ...], shape_name: str, rows: int, cols: int, bits: int | None
) -> int:
    """The bits per code of ``packed_name`` (shape ``packed``) holding a ``rows``×``cols`` weight: the config's
    ``num_bits`` or, without one, the width whose dense packing fits; WeightsError saying which side disagrees."""
    if len(packed) != 2 or packed[0] != rows:
        raise WeightsError(f"{shape_name} says {rows} rows, but {packed_name} has shape {packed}")
    if bits is None:
        found = _infer_bits(packed[1], cols)
        if found is None:
            raise WeightsError(
                f"{shape_name} says {cols} columns, but no code width of 1 to 8 bits packs them into the "
                f"{packed[1]} int32 words per row of {packed_name} {packed}"
            )
        return found
    needed = -(-cols * bits // 32)
    if packed[1] != needed:
        raise WeightsError(
            f"{shape_name} says {cols} columns, which take {needed} int32 words of {bits}-bit codes per row, "
            f"but {packed_name} has shape {packed}"
        )
    return bits


def _infer_bits(words: int, cols: int) -> int | None:
    """The code width whose dense packing of ``cols`` values takes ``words`` int32 words."""
    fits = [b for b in range(8, 0, -1) if -(-cols * b // 32) == words]
    return fits[0] if fits else None


def _zero_point(stored: np.ndarray | None, bits: int, rows: int, scale_shape: tuple[int, ...]) -> np.ndarray | None:
    """The zero point as signed values: packed along the output dimension (group/channel) or stored plain."""
    if stored is None:
        return None
    stored = np.asarray(stored)
    if stored.dtype == np.int32 and stored.ndim == 2 and stored.shape[0] != rows:
        unpacked = unpack_bitstream(np.ascontiguousarray(stored.T), bits, rows).T
        return unpacked.astype(np.float32) - np.float32(1 << (bits - 1))
    return stored.reshape(scale_shape) if stored.size == int(np.prod(scale_shape)) else stored


def _layout_or_error(name: str, scale: np.ndarray, shape: tuple[int, int], block: tuple[int, int] | None) -> str:
    layout = scale_layout(tuple(scale.shape), shape, block)
    if layout is None:
        raise WeightsError(f"{name}: scale of shape {scale.shape} does not fit weight {shape}")
    return layout
