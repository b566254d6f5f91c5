"""AWQ weights in the GEMM layout (AutoAWQ ``WQLinear_GEMM``, transformers' ``awq`` integration).

Tensors of a module ``X`` with 4-bit codes, ``in`` inputs, ``out`` outputs and ``G = in / group_size`` groups:

* ``X.qweight`` int32 ``(in, out/8)``: codes packed along the *output* dimension, 8 per word, nibble k of word c
  holding output ``8c + [0, 2, 4, 6, 1, 3, 5, 7][k]`` (AutoAWQ ``WQLinear_GEMM.from_linear``, ``AWQ_ORDER``);
* ``X.qzeros`` int32 ``(G, out/8)``: zero points packed the same way; ``X.scales`` float16 ``(G, out)``.

``W[j, i] = (q[i, j] − z[i // group_size, j]) · s[i // group_size, j]`` (AutoAWQ
``awq/utils/packing_utils.py: dequantize_gemm``: ``unpack_awq``, ``reverse_awq_order``, ``(iweight - izeros) *
scales``), transposed to ``(out, in)``; computed in float32 where the reference multiplies in float16.
A ``group_size`` of -1 is one group of every input, as in AutoAWQ. The GEMV layouts (``version: gemv`` /
``gemv_fast``) and kernel-repacked ones are skipped with a reason, and so is a module whose tensors do not fit the
layout: the reason names the tensor (qweight, qzeros or scales) and what does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ww_core.matrices import empty_tensor_reason

from ...tensors import FLOAT_DTYPES, TensorInfo
from ..contract import Claim, MatrixSpec, ModelConfig
from ._common import (
    as_float32,
    check_shape,
    claim_qweight_modules,
    config_value,
    is_known,
    missing_parts,
    row_tiles,
    skipped,
    unpack_bitstream,
)

SCHEME = "awq"
BITS = 4
PER_WORD = 32 // BITS
ROLES = ("qweight", "qzeros", "scales")
AWQ_REVERSE_ORDER = np.array([0, 4, 1, 5, 2, 6, 3, 7])


class AWQDecoder:
    """AWQ GEMM ``qweight``/``qzeros``/``scales`` modules, dequantized to float32."""

    name = "awq"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        return claim_qweight_modules(tensors, config, "awq", "output", awq_spec)


def awq_spec(prefix: str, tensors: Mapping[str, TensorInfo], qc: Mapping) -> MatrixSpec:
    """The matrix of one AWQ GEMM module, or a skipped spec saying what is missing or unsupported."""
    name = prefix + ".weight"
    qweight, qzeros, scales = (prefix + s for s in (".qweight", ".qzeros", ".scales"))
    stored_shape = tuple(tensors[qweight].shape)
    version = str(config_value(qc, "version", default="gemm")).lower()
    if version != "gemm":
        return skipped(name, (qweight,), stored_shape, SCHEME, f"the {version} layout is not supported (GEMM only)")
    missing = missing_parts(tensors, prefix, (qzeros, scales))
    if missing:
        return skipped(name, (qweight,), stored_shape, SCHEME, f"missing {' and '.join(missing)} beside qweight")
    infos = {n: tensors[n] for n in (qweight, qzeros, scales)}
    if not all(is_known(i) for i in infos.values()):
        return skipped(name, tuple(infos), (), SCHEME, "shapes unknown: the shard header is unreadable")
    layout = _layout(dict(zip(ROLES, infos.values(), strict=True)), qc)
    if isinstance(layout, str):
        return skipped(name, tuple(infos), stored_shape, SCHEME, layout)
    rows, cols, group_size = layout

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        for n, info in infos.items():
            check_shape(name, arrays[n], tuple(info.shape), n)
        return dequantize_awq(arrays[qweight], arrays[qzeros], arrays[scales], group_size)

    return MatrixSpec(name, tuple(infos), (rows, cols), decode=decode, quantization="awq-int4")


def _layout(infos: Mapping[str, TensorInfo], qc: Mapping) -> tuple[int, int, int] | str:
    """(out, in, group_size) of a 4-bit GEMM module from the shapes of its ``qweight (in, out/8)`` and
    ``qzeros (G, out/8)`` int32 and ``scales (G, out)`` float tensors (``infos`` by those names), checked against the
    config; else what does not fit. The reason names each tensor by its role in the module, so one defect of many
    layers is one reason in the model's summary."""
    configured_bits = int(config_value(qc, "bits", "w_bit", default=BITS))
    if configured_bits != BITS:
        return f"quantization_config bits is {configured_bits}; the GEMM layout is read with 4-bit codes only"
    for role in ("qweight", "qzeros"):
        if infos[role].dtype != "I32":
            return f"{role} is stored as {infos[role].dtype}; AWQ packs its codes in int32 (I32)"
    if infos["scales"].dtype not in FLOAT_DTYPES:
        return f"scales is stored as {infos['scales'].dtype}, not as floating-point numbers"
    for role, axes in zip(ROLES, ("(inputs, outputs/8)", "(groups, outputs/8)", "(groups, outputs)"), strict=True):
        if len(infos[role].shape) != 2:
            return f"{role} has shape {tuple(infos[role].shape)}, expected 2-D {axes}"
    cols, words = infos["qweight"].shape
    groups, rows = infos["scales"].shape
    qweight, scales = f"qweight {(cols, words)}", f"scales {(groups, rows)}"
    if rows != PER_WORD * words:
        bits = 32 * words // rows if rows and (32 * words) % rows == 0 else 0
        if 0 < bits <= 8:
            return f"{qweight} holds {bits}-bit codes for the {rows} outputs of {scales}; GEMM is read as 4-bit only"
        return f"{qweight} does not pack the {rows} outputs of {scales} as 4-bit codes, 8 per int32"
    if tuple(infos["qzeros"].shape) != (groups, words):
        return (
            f"qzeros has shape {tuple(infos['qzeros'].shape)}, expected {(groups, words)}: one row per group of "
            f"{scales}, 8 zero points per int32"
        )
    empty = empty_tensor_reason((rows, cols))
    if empty is not None:
        return empty
    if groups == 0:
        return f"{scales} has no group for the {cols} inputs of {qweight}"
    configured = config_value(qc, "group_size", "q_group_size")
    if configured is None:
        if cols % groups:
            return f"the {cols} inputs of {qweight} do not split evenly into the {groups} groups of {scales}"
        return rows, cols, cols // groups
    if int(configured) == -1:
        # AutoAWQ's ``WQLinear_GEMM`` (and llm-awq's ``WQLinear``): a group size of -1 is ``in_features``.
        group_size, source = cols, "quantization_config group_size -1: one group"
    elif int(configured) > 0:
        group_size, source = int(configured), "quantization_config group_size"
    else:
        return f"quantization_config group_size is {configured}, expected a positive number of inputs per group or -1"
    if cols % group_size:
        return f"the {cols} inputs of {qweight} are not a whole number of groups of {group_size} ({source})"
    if cols // group_size != groups:
        made = cols // group_size
        return f"{scales} has {groups} groups, but {cols} inputs in groups of {group_size} ({source}) make {made}"
    return rows, cols, group_size


def _unpack_awq_order(words: np.ndarray, count: int) -> np.ndarray:
    """4-bit fields of ``words`` along the last axis in output order (AutoAWQ ``unpack_awq`` +
    ``reverse_awq_order``: field ``8c + AWQ_REVERSE_ORDER[m]`` is output ``8c + m``)."""
    fields = unpack_bitstream(words, 4, count)
    order = (np.arange(count).reshape(-1, 8)[:, AWQ_REVERSE_ORDER]).reshape(-1)
    return fields[..., order]


def dequantize_awq(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray, group_size: int) -> np.ndarray:
    """``W[j, i] = (q[i, j] − z[i // group_size, j]) · s[i // group_size, j]`` as float32 ``(out, in)``,
    input tile by input tile (whole groups per tile)."""
    cols = qweight.shape[0]
    rows = scales.shape[1]
    zeros = _unpack_awq_order(qzeros, rows).astype(np.float32)
    scales32 = as_float32(scales)
    out = np.empty((rows, cols), dtype=np.float32)
    for tile in row_tiles(cols, rows, multiple=group_size):
        group = np.arange(tile.start, tile.stop) // group_size
        values = _unpack_awq_order(qweight[tile], rows).astype(np.float32)
        values -= zeros[group]
        values *= scales32[group]
        out[:, tile] = values.T
    return out
