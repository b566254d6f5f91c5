"""bitsandbytes weights: LLM.int8() (``weight`` int8 + ``SCB``) and 4-bit NF4 / FP4 (``weight`` uint8 packed +
``weight.absmax`` + ``weight.quant_map`` + the ``weight.quant_state.bitsandbytes__nf4|fp4`` JSON blob, with
optional nested quantization of ``absmax``).

* int8 (``Linear8bitLt`` state dict): ``W[j, i] = q[j, i] · SCB[j] · (1/127)`` in float32 (bitsandbytes
  ``_ops.py: int8_vectorwise_dequant``: ``A * stats.view(-1, 1) * 7.874015718698502e-3``).
* 4-bit (``Linear4bit`` / ``Params4bit`` state dict, ``QuantState.from_dict``): element k of the flattened
  weight is ``quant_map[c_k] · absmax[k // blocksize]`` where the codes c are two per byte, high nibble first
  (bitsandbytes ``backends/default/ops.py: _dequantize_4bit_compute``). With nested quantization ``absmax`` is
  itself stored as uint8 codes: ``absmax = nested_quant_map[a] · nested_absmax[i // nested_blocksize] + offset``
  (``functional.py: dequantize_4bit`` → ``dequantize_blockwise``, ``absmax += quant_state.offset``). The quant
  state (``blocksize``, ``shape``, ``quant_type``, ``nested_*``) is JSON stored as uint8, so the logical shape is
  known only when it is read: a 4-bit spec's ``shape`` is ``()`` in the plan.

Everything in float32; bitsandbytes casts the result to the model's compute dtype, which we do not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from ...errors import WeightsError
from ...tensors import TensorInfo, is_number, is_positive_whole, is_whole
from ..contract import Claim, MatrixSpec, ModelConfig
from ._common import as_float32, check_shape, missing_parts, module_tensors, row_tiles, skipped

INT8_SCALE = np.float32(7.874015718698502e-3)  # bitsandbytes' float32 1/127
QUANT_STATE = ".weight.quant_state.bitsandbytes__"


class BitsAndBytesDecoder:
    """bitsandbytes int8 (``SCB``) and NF4/FP4 (``absmax`` + quant state) weights, dequantized to float32."""

    name = "bitsandbytes"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        for name in tensors:
            if name.endswith(".SCB"):
                prefix = name[: -len(".SCB")]
                spec = int8_spec(prefix, tensors)
            elif QUANT_STATE in name:
                prefix, quant_type = name.split(QUANT_STATE)
                spec = four_bit_spec(prefix, quant_type, tensors)
            elif name.endswith(".weight.absmax") and not any(
                QUANT_STATE in n for n in module_tensors(tensors, name[: -len(".absmax")])
            ):
                prefix = name[: -len(".weight.absmax")]
                spec = skipped(prefix + ".weight", (name,), (), "bnb-4bit", "missing weight.quant_state")
            else:
                continue
            claim.consumed.update(module_tensors(tensors, prefix))
            claim.matrices.append(spec)
        return claim


def int8_spec(prefix: str, tensors: Mapping[str, TensorInfo]) -> MatrixSpec:
    name, scb = prefix + ".weight", prefix + ".SCB"
    weight = tensors.get(name)
    if weight is None:
        return skipped(name, (scb,), (), "bnb-int8", "missing weight beside SCB")
    shape = tuple(weight.shape)
    if weight.dtype != "I8" or len(shape) != 2 or (tensors[scb].shape and tuple(tensors[scb].shape) != shape[:1]):
        why = f"weight {weight.dtype} {shape} and SCB {tuple(tensors[scb].shape)} do not fit together"
        return skipped(name, (name, scb), shape, "bnb-int8", why)
    layout_name = prefix + ".weight_format"
    sources = (name, scb) + ((layout_name,) if layout_name in tensors else ())

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        check_shape(name, arrays[name], shape, "weight")
        check_shape(name, arrays[scb], shape[:1], "SCB")
        if layout_name in arrays and int(np.asarray(arrays[layout_name]).reshape(-1)[0]) != 0:
            raise WeightsError(f"{name}: bnb-int8 weight_format is not 'row' (a GPU tile layout); not supported")
        return dequantize_int8(arrays[name], arrays[scb])

    return MatrixSpec(name, sources, shape, decode=decode, quantization="bnb-int8")


def dequantize_int8(codes: np.ndarray, scb: np.ndarray) -> np.ndarray:
    """``W = q · SCB[:, None] · (1/127)`` in float32, in that order (bitsandbytes ``int8_vectorwise_dequant``)."""
    out = np.empty(codes.shape, dtype=np.float32)
    row_scale = as_float32(scb).reshape(-1, 1)
    for tile in row_tiles(codes.shape[0], codes.shape[1]):
        values = as_float32(codes[tile])
        values *= row_scale[tile]
        values *= INT8_SCALE
        out[tile] = values
    return out


def four_bit_spec(prefix: str, quant_type: str, tensors: Mapping[str, TensorInfo]) -> MatrixSpec:
    scheme = f"bnb-{quant_type}"
    name = prefix + ".weight"
    state_name = name + ".quant_state.bitsandbytes__" + quant_type
    parts = {key: f"{name}.{key}" for key in ("absmax", "quant_map", "nested_absmax", "nested_quant_map")}
    needed = [name, parts["absmax"], parts["quant_map"]]
    missing = missing_parts(tensors, prefix, needed)
    if quant_type not in ("nf4", "fp4"):
        return skipped(name, (state_name,), (), "bnb-4bit", f"unknown 4-bit quant type {quant_type!r}")
    if missing:
        return skipped(name, (state_name,), (), scheme, f"missing {', '.join(missing)}")
    sources = (
        tuple(needed)
        + (state_name,)
        + tuple(parts[k] for k in ("nested_absmax", "nested_quant_map") if parts[k] in tensors)
    )

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        state = _quant_state(name, arrays[state_name])
        absmax = arrays[parts["absmax"]]
        if "nested_absmax" in state or parts["nested_absmax"] in arrays:
            if parts["nested_absmax"] not in arrays or parts["nested_quant_map"] not in arrays:
                raise WeightsError(f"{name}: nested quantization without nested_absmax / nested_quant_map")
            absmax = dequantize_nested_absmax(
                absmax,
                arrays[parts["nested_absmax"]],
                arrays[parts["nested_quant_map"]],
                _positive_int(name, state, "nested_blocksize"),
                _number(name, state, "nested_offset"),
            )
        return dequantize_4bit(
            arrays[name],
            absmax,
            arrays[parts["quant_map"]],
            _positive_int(name, state, "blocksize"),
            _shape(name, state),
        )

    return MatrixSpec(name, sources, (), decode=decode, quantization=scheme)


def _quant_state(name: str, blob: np.ndarray) -> dict:
    """The JSON quant state bitsandbytes stores as a uint8 tensor (``utils.py: pack_dict_to_tensor``)."""
    try:
        state = json.loads(bytes(np.asarray(blob, dtype=np.uint8).reshape(-1)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{name}: unreadable bitsandbytes quant_state ({err.__class__.__name__}: {err})") from err
    if not isinstance(state, dict) or any(key not in state for key in ("blocksize", "shape")):
        raise WeightsError(f"{name}: bitsandbytes quant_state lacks blocksize or shape")
    return state


def _positive_int(name: str, state: Mapping, key: str) -> int:
    # A block size of 0 or less would leave the output unfilled or divide by zero: the state is corrupt.
    value = state.get(key)
    if not is_positive_whole(value):
        raise WeightsError(f"{name}: bitsandbytes quant_state {key} is {value!r}, not a positive integer")
    return value


def _number(name: str, state: Mapping, key: str) -> float:
    value = state.get(key)
    if not is_number(value):
        raise WeightsError(f"{name}: bitsandbytes quant_state {key} is {value!r}, not a number")
    return float(value)


def _shape(name: str, state: Mapping) -> tuple[int, int]:
    """The logical shape: a Linear4bit weight is a matrix, ``[out, in]``."""
    shape = state["shape"]
    if not isinstance(shape, list) or len(shape) != 2 or not all(is_whole(d) and d >= 0 for d in shape):
        raise WeightsError(f"{name}: bitsandbytes quant_state shape is {shape!r}, not a matrix's [rows, columns]")
    return shape[0], shape[1]


def dequantize_nested_absmax(
    codes: np.ndarray, nested_absmax: np.ndarray, nested_map: np.ndarray, blocksize: int, offset: float
) -> np.ndarray:
    """``absmax[i] = nested_map[a_i] · nested_absmax[i // blocksize] + offset`` in float32 (bitsandbytes
    ``dequantize_blockwise`` then ``absmax += offset``)."""
    codes = np.asarray(codes).reshape(-1)
    values = as_float32(nested_map)[codes.astype(np.int64)]
    values *= as_float32(nested_absmax).reshape(-1)[np.arange(codes.size) // blocksize]
    values += np.float32(offset)
    return values


def dequantize_4bit(
    packed: np.ndarray, absmax: np.ndarray, quant_map: np.ndarray, blocksize: int, shape: tuple[int, ...]
) -> np.ndarray:
    """``w_k = quant_map[c_k] · absmax[k // blocksize]`` in float32, reshaped to ``shape`` (codes two per byte,
    high nibble first), a few blocks of rows at a time."""
    count = int(np.prod(shape))
    data = np.asarray(packed).reshape(-1).view(np.uint8)
    absmax = as_float32(absmax).reshape(-1)
    quant_map = as_float32(quant_map).reshape(-1)
    if data.size * 2 < count or absmax.size < -(-count // blocksize) or quant_map.size != 16:
        raise WeightsError(
            f"4-bit weight of {data.size} bytes, {absmax.size} absmax and a {quant_map.size}-entry quant_map "
            f"cannot hold shape {shape} with blocksize {blocksize}"
        )
    out = np.empty(count, dtype=np.float32)
    # Whole blocks per tile: a block holds an even number of codes, so no byte is split between tiles.
    for blocks in row_tiles(-(-count // blocksize), blocksize):
        start, stop = blocks.start * blocksize, min(count, blocks.stop * blocksize)
        pairs = data[start // 2 : -(-stop // 2)]
        codes = np.stack((pairs >> 4, pairs & 0x0F), axis=-1).reshape(-1)[: stop - start]
        values = quant_map[codes]
        values *= absmax[np.arange(start, stop) // blocksize]
        out[start:stop] = values
    return out.reshape(shape)
