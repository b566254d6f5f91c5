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

The code width is the config groups' ``num_bits``; a group without one packs 8-bit codes, the default of
compressed-tensors' ``QuantizationArgs`` (``quantization/quant_args.py``), with which its ``decompress`` unpacks them.
The width is never inferred from the shapes: packed codes that do not fit the default width skip the module, as do
groups that give different widths (which group's ``targets`` match a module is not read) and a width outside the
1–8 bits ``pack_to_int32`` packs. The plan sees a misfit when group scales fix the columns; otherwise ``weight_shape``
says it, read with the layer, and decode raises UndecodableWeights (a skipped row all the same).

A ``weight_shape`` whose header gives other than 2 values skips the module; values (read with the layer) that are
not whole, negative, or not what ``weight_packed`` holds at a configured ``num_bits`` fail it with a reason naming
``weight_shape``.
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
    undecodable,
    unpack_bitstream,
)

SCHEME = "compressed-tensors"
# compressed-tensors' QuantizationArgs.num_bits default: what a config group without num_bits packs.
DEFAULT_NUM_BITS = 8


class CompressedTensorsDecoder:
    """compressed-tensors ``int-quantized`` and ``pack-quantized`` weights, dequantized to float32."""

    name = "compressed-tensors"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        weights_args = compressed_tensors_weights(config.quantization_config) or {}
        width = _packing_width(config.quantization_config)
        block = configured_block(config)
        for name, info in tensors.items():
            if name.endswith(".weight_packed"):
                prefix = name[: -len(".weight_packed")]
                spec = _packed_spec(prefix, tensors, weights_args, width, block)
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
    prefix: str,
    tensors: Mapping[str, TensorInfo],
    weights_args: Mapping,
    width: tuple[int, bool] | str,
    block: tuple[int, int] | None,
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
    if isinstance(width, str):
        return skipped(name, (packed_name,), tuple(packed.shape), SCHEME, width)
    nbits, defaulted = width
    group_size = weights_args.get("group_size")
    grouped = _grouped_columns(tensors[scale_name], group_size)
    if defaulted and grouped is not None and is_known(packed) and len(packed.shape) == 2:
        if packed.shape[1] != -(-grouped * nbits // 32):
            whose = f"the scales' {grouped // group_size} groups of {group_size} cover"
            why = _not_default_width(tuple(packed.shape), grouped, whose)
            return skipped(name, (packed_name, scale_name), tuple(packed.shape), SCHEME, why)
    shape = _planned_shape(packed, grouped, nbits)
    sources = tuple(n for n in (packed_name, shape_name, scale_name, zero_name, g_idx_name) if n in tensors)

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        words = arrays[packed_name]
        rows, cols = _weight_shape(shape_name, arrays[shape_name])
        _check_packed_width(packed_name, words.shape, shape_name, rows, cols, nbits, defaulted)
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

    layout = scale_layout(tuple(tensors[scale_name].shape), shape, block) if is_known(tensors[scale_name]) else None
    return MatrixSpec(
        name=name, sources=sources, shape=shape, decode=decode, quantization=f"int{nbits}-{layout or 'group'}"
    )


def _packing_width(quantization_config: Mapping) -> tuple[int, bool] | str:
    """``(bits, defaulted)``: the bits per packed code of every module, and whether no config group that packs
    gives ``num_bits`` (compressed-tensors' default, :data:`DEFAULT_NUM_BITS`); or why the config gives no one
    width. A group packs int codes (PackedQuantizationCompressor.can_compress) stored as pack-quantized (its own
    ``format``, else the config's); groups of float codes or of another format are not counted."""
    groups = quantization_config.get("config_groups") or {}
    declared = []
    for group in groups.values():
        if not (isinstance(group, Mapping) and isinstance(group.get("weights"), Mapping)):
            continue
        packs = (group.get("format") or quantization_config.get("format")) in (
            None,
            "pack-quantized",
            "mixed-precision",
        )
        if packs and group["weights"].get("type", "int") == "int":
            declared.append(group["weights"].get("num_bits"))
    widths = sorted({DEFAULT_NUM_BITS if bits is None else int(bits) for bits in declared} or {DEFAULT_NUM_BITS})
    if len(widths) > 1:
        named = [f"{w} (the default)" if w == DEFAULT_NUM_BITS and None in declared else str(w) for w in widths]
        listed = f"{', '.join(named[:-1])} and {named[-1]}"
        return (
            f"pack-quantized config groups give num_bits {listed}: which group's targets match this module is not read"
        )
    if not 1 <= widths[0] <= 8:
        return f"num_bits {widths[0]}: pack-quantized codes are 1 to 8 bits"
    return widths[0], not declared or None in declared


def _grouped_columns(scale: TensorInfo, group_size) -> int | None:
    """The columns that group scales of ``group_size`` cover (compressed-tensors reads them so for group
    strategies), None when the scales are not grouped or their shape is unknown."""
    if group_size and is_known(scale) and len(scale.shape) == 2 and scale.shape[1] > 1:
        return int(scale.shape[1]) * int(group_size)
    return None


def _planned_shape(packed: TensorInfo, grouped: int | None, bits: int) -> tuple[int, ...]:
    """The logical shape as far as the plan tells (the exact one is in ``weight_shape``, read at decode time)."""
    if not is_known(packed) or len(packed.shape) != 2:
        return tuple(packed.shape)
    rows, words = packed.shape
    return rows, grouped if grouped is not None else words * 32 // bits


def _not_default_width(packed: tuple[int, ...], cols: int, whose: str) -> str:
    """Why a module whose config gives no num_bits is skipped: its packed codes are not of the default width."""
    needed = -(-cols * DEFAULT_NUM_BITS // 32)
    return (
        f"no pack-quantized config group gives num_bits, and weight_packed {packed} does not hold the {cols} columns "
        f"{whose} as {DEFAULT_NUM_BITS}-bit codes, compressed-tensors' default (they take {needed} int32 words per row)"
    )


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


def _check_packed_width(
    packed_name: str, packed: tuple[int, ...], shape_name: str, rows: int, cols: int, bits: int, defaulted: bool
) -> None:
    """That ``packed_name`` (shape ``packed``) holds a ``rows``×``cols`` weight of ``bits``-bit codes: WeightsError
    saying which side disagrees, or, for the default width (no ``num_bits`` in the config), UndecodableWeights."""
    if len(packed) != 2 or packed[0] != rows:
        raise WeightsError(f"{shape_name} says {rows} rows, but {packed_name} has shape {packed}")
    needed = -(-cols * bits // 32)
    if packed[1] == needed:
        return
    if defaulted:
        raise undecodable(SCHEME, _not_default_width(packed, cols, "weight_shape says"))
    raise WeightsError(
        f"{shape_name} says {cols} columns, which take {needed} int32 words of {bits}-bit codes per row, "
        f"but {packed_name} has shape {packed}"
    )


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
