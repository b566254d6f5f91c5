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

Each module's code width is the ``num_bits`` of the config group whose scheme compressed-tensors gives it
(``quantization/lifecycle/apply.py: apply_quantization_config``): a module matches a target that is its exact name,
a ``re:`` regex that ``re.match``-es its name (anchored at the start only), or a class name; an ``ignore`` entry
matching it (the same forms) leaves it unquantized (a plain weight is the plain path's; an entry naming a class
other than ``Linear`` is not matched). Of several matching targets the first in ``match_targets``' order wins
(``utils/match.py``): exact names, then regexes, each in sorted order, then class names; a target that several
groups name is the last group's (the reference keys schemes by target). A checkpoint names modules but not their
classes: ``Linear`` is taken to match every module with packed codes, and a module that no name or regex matches is
skipped when another class target, which might be its class, would come first with another packing width. A module
that matches no group, whose group packs no int codes, or that is ignored yet stores packed codes is skipped with a
reason naming the cause. A config whose groups give no targets at all keeps one width for every module (skipped when
its groups give different ones).

A group without ``num_bits`` packs 8-bit codes, the default of compressed-tensors' ``QuantizationArgs``
(``quantization/quant_args.py``), with which its ``decompress`` unpacks them. The width is never inferred from the
shapes: packed codes that do not fit the default width skip the module, as does a width outside the 1–8 bits
``pack_to_int32`` packs. The plan sees a misfit when group scales fix the columns; otherwise ``weight_shape`` says
it, read with the layer, and decode raises UndecodableWeights (a skipped row all the same).

A ``weight_shape`` whose header gives other than 2 values skips the module; values (read with the layer) that are
not whole, negative, or not what ``weight_packed`` holds at a configured ``num_bits`` fail it with a reason naming
``weight_shape``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

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
# The class target taken to match every module with packed codes: a checkpoint does not store a module's class, and
# packed codes are a 2-D linear weight (compressed-tensors quantizes the weights of Linear and Embedding modules).
LINEAR = "Linear"
NO_GROUP_GIVES_NUM_BITS = "no pack-quantized config group gives num_bits"


@dataclass(frozen=True)
class _Packing:
    """How a module's codes are packed: ``bits`` each, with the ``weights`` arguments of its config group, and why
    that width is compressed-tensors' default ('' when a ``num_bits`` gives it)."""

    bits: int
    weights: Mapping[str, Any]
    # Words for a skipped row's reason: two groups that pack alike are the same packing.
    default_why: str = field(default="", compare=False)


class CompressedTensorsDecoder:
    """compressed-tensors ``int-quantized`` and ``pack-quantized`` weights, dequantized to float32."""

    name = "compressed-tensors"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        schemes = _ModuleSchemes(config.quantization_config, tensors)
        block = configured_block(config)
        for name, info in tensors.items():
            if name.endswith(".weight_packed"):
                prefix = name[: -len(".weight_packed")]
                spec = _packed_spec(prefix, tensors, schemes.packing_of(prefix), block)
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
    packing: _Packing | str,
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
    if isinstance(packing, str):
        return skipped(name, (packed_name,), tuple(packed.shape), SCHEME, packing)
    nbits, default_why = packing.bits, packing.default_why
    group_size = packing.weights.get("group_size")
    grouped = _grouped_columns(tensors[scale_name], group_size)
    if default_why and grouped is not None and is_known(packed) and len(packed.shape) == 2:
        if packed.shape[1] != _packed_words(grouped, nbits):
            whose = f"the scales' {grouped // group_size} groups of {group_size} cover"
            why = _not_default_width(tuple(packed.shape), grouped, whose, default_why)
            return skipped(name, (packed_name, scale_name), tuple(packed.shape), SCHEME, why)
    shape = _planned_shape(packed, grouped, nbits)
    sources = tuple(n for n in (packed_name, shape_name, scale_name, zero_name, g_idx_name) if n in tensors)

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        words = arrays[packed_name]
        rows, cols = _weight_shape(shape_name, arrays[shape_name])
        _check_packed_width(packed_name, words.shape, shape_name, rows, cols, nbits, default_why)
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


class _ModuleSchemes:
    """Which config group's scheme compressed-tensors gives a module with packed codes, told from the module's name
    as the module docstring says (``apply_quantization_config``, ``match_targets``, ``match_name``)."""

    def __init__(self, quantization_config: Mapping, tensors: Mapping[str, TensorInfo]) -> None:
        self._config = quantization_config
        groups = quantization_config.get("config_groups") or {}
        self._groups = {name: group for name, group in groups.items() if isinstance(group, Mapping)}
        # The reference maps each target to a scheme in one dict, so a target that two groups name is the later one's.
        self._group_of = {target: name for name, group in self._groups.items() for target in group.get("targets") or ()}
        # match_targets' order: exact names before regexes (by "re:" anywhere in the target), each sorted.
        self._targets = sorted(self._group_of, key=lambda target: ("re:" in target, target))
        self._ignore = list(quantization_config.get("ignore") or ())
        self._patterns, self._bad_pattern = _compiled_patterns(self._targets, self._ignore)
        # The num_bits of each group that packs int codes (None where it gives none).
        declared = [
            group["weights"].get("num_bits")
            for group in self._groups.values()
            if _packs_int_codes(group, quantization_config)
        ]
        self._model_wide = None if self._group_of else _model_wide_packing(declared, quantization_config)
        self._any_num_bits = any(bits is not None for bits in declared)
        self._tensors = tensors

    @cached_property
    def _classes(self) -> list[str]:
        """The targets that name no stored module: class names, in match_targets' order, LINEAR among them."""
        stored_modules = {name.rpartition(".")[0] for name in self._tensors}
        return [target for target in self._targets if target.isidentifier() and target not in stored_modules]

    def packing_of(self, module: str) -> _Packing | str:
        """How ``module``'s codes are packed, or why that is not known: the reason of its skipped row."""
        if self._bad_pattern:
            return self._bad_pattern
        ignored = next((entry for entry in self._ignore if entry == LINEAR or self._names(entry, module)), None)
        if ignored is not None:
            return (
                f"the module is in the config's ignore list ({ignored!r}) yet stores packed codes: "
                "compressed-tensors gives an ignored module no scheme to unpack them with"
            )
        if self._model_wide is not None:
            return self._model_wide
        by_name = next((target for target in self._targets if self._names(target, module)), None)
        if by_name is not None:
            return self._packing_by(by_name)
        # Class targets come after every name match. LINEAR matches; a class target sorted before it decides instead
        # if it is this module's class too, which matters when its group packs otherwise. A group that packs no int
        # codes (LlamaAttention's, quantizing activations) gave no module its packed codes, so it decides nothing.
        packing_classes = [target for target in self._classes if self._group_packing(target) is not None]
        if LINEAR in packing_classes:
            before = packing_classes[: packing_classes.index(LINEAR)]
            linear = self._group_packing(LINEAR)
            unsure = [target for target in before if self._group_packing(target) != linear]
            if not unsure:
                return self._packing_by(LINEAR)
        else:
            unsure = packing_classes
        if not unsure:
            return "no config group's targets match the module"
        classes = " or ".join(f"{target} (config group {self._group_of[target]})" for target in unsure)
        return (
            f"no config group's target names the module, and a checkpoint does not say whether its class is {classes}"
        )

    def _names(self, target: str, module: str) -> bool:
        """Whether ``target`` (or an ignore entry) names ``module``: exactly, or as a ``re:`` regex (``match_name``)."""
        pattern = self._patterns.get(target)
        return target == module if pattern is None else pattern.match(module) is not None

    def _group_packing(self, target: str) -> _Packing | str | None:
        name = self._group_of[target]
        default_why = f"config group {name} gives no num_bits" if self._any_num_bits else NO_GROUP_GIVES_NUM_BITS
        return _group_packing(self._groups[name], self._config, default_why)

    def _packing_by(self, target: str) -> _Packing | str:
        """The packing of the group whose ``target`` decides a module's scheme, or why it has none."""
        packing = self._group_packing(target)
        if packing is None:
            return (
                f"the module takes config group {self._group_of[target]}'s scheme (target {target!r}), which "
                "stores no pack-quantized int weights"
            )
        return packing


def _compiled_patterns(targets: list[str], ignore: list[str]) -> tuple[dict[str, re.Pattern], str]:
    """The ``re:`` targets and ignore entries compiled, and why one is no regular expression ('' when all are)."""
    patterns = {}
    for where, entries in (("config target", targets), ("ignore entry", ignore)):
        for entry in entries:
            if not entry.startswith("re:"):
                continue
            try:
                patterns[entry] = re.compile(entry.removeprefix("re:"))
            except re.error as error:
                return patterns, f"{where} {entry!r} is not a regular expression: {error}"
    return patterns, ""


def _packs_int_codes(group: Mapping, quantization_config: Mapping) -> bool:
    """Whether a config group packs int codes (PackedQuantizationCompressor.can_compress) stored as pack-quantized
    (its own ``format``, else the config's)."""
    if not isinstance(group.get("weights"), Mapping):
        return False
    stored_as = group.get("format") or quantization_config.get("format")
    return stored_as in (None, "pack-quantized", "mixed-precision") and group["weights"].get("type", "int") == "int"


def _group_packing(group: Mapping, quantization_config: Mapping, default_why: str) -> _Packing | str | None:
    """How a config group packs its modules' codes (``default_why`` saying why, if the group gives no ``num_bits``),
    why its width cannot be packed, or None if it packs no int codes."""
    if not _packs_int_codes(group, quantization_config):
        return None
    bits = group["weights"].get("num_bits")
    width = DEFAULT_NUM_BITS if bits is None else int(bits)
    if not 1 <= width <= 8:
        return _unpackable_width(width)
    return _Packing(width, group["weights"], default_why if bits is None else "")


def _model_wide_packing(declared: list, quantization_config: Mapping) -> _Packing | str:
    """The packing of every module when no config group gives targets to match modules by: the one width of the
    groups that pack int codes, whose ``num_bits`` are ``declared`` (:data:`DEFAULT_NUM_BITS` when none gives one),
    the default when one of them gives none; or why the groups give no one width."""
    widths = sorted({DEFAULT_NUM_BITS if bits is None else int(bits) for bits in declared} or {DEFAULT_NUM_BITS})
    if len(widths) > 1:
        named = [f"{w} (the default)" if w == DEFAULT_NUM_BITS and None in declared else str(w) for w in widths]
        listed = f"{', '.join(named[:-1])} and {named[-1]}"
        return f"pack-quantized config groups give num_bits {listed} and no targets to tell which module packs which"
    if not 1 <= widths[0] <= 8:
        return _unpackable_width(widths[0])
    weights = compressed_tensors_weights(quantization_config) or {}
    if None not in declared and declared:
        return _Packing(widths[0], weights)
    default_why = (
        "a pack-quantized config group gives no num_bits" if set(declared) - {None} else NO_GROUP_GIVES_NUM_BITS
    )
    return _Packing(widths[0], weights, default_why)


def _unpackable_width(bits: int) -> str:
    return f"num_bits {bits}: pack-quantized codes are 1 to 8 bits"


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


def _packed_words(cols: int, bits: int) -> int:
    """The int32 words one row of ``cols`` codes of ``bits`` bits takes, densely packed (``pack_to_int32``)."""
    return -(-cols * bits // 32)


def _not_default_width(packed: tuple[int, ...], cols: int, whose: str, default_why: str) -> str:
    """Why a module whose config gives it no num_bits (``default_why``) is skipped: its packed codes are not of the
    default width."""
    needed = _packed_words(cols, DEFAULT_NUM_BITS)
    return (
        f"{default_why}, and weight_packed {packed} does not hold the {cols} columns "
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
    packed_name: str, packed: tuple[int, ...], shape_name: str, rows: int, cols: int, bits: int, default_why: str
) -> None:
    """That ``packed_name`` (shape ``packed``) holds a ``rows``×``cols`` weight of ``bits``-bit codes: WeightsError
    saying which side disagrees, or, for the default width (``default_why`` says why), UndecodableWeights."""
    if len(packed) != 2 or packed[0] != rows:
        raise WeightsError(f"{shape_name} says {rows} rows, but {packed_name} has shape {packed}")
    needed = _packed_words(cols, bits)
    if packed[1] == needed:
        return
    if default_why:
        raise undecodable(SCHEME, _not_default_width(packed, cols, "weight_shape says", default_why))
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
