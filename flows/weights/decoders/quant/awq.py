"""AWQ weights in the GEMM layout (AutoAWQ ``WQLinear_GEMM``, transformers' ``awq`` integration).

Tensors of a module ``X`` with 4-bit codes, ``in`` inputs, ``out`` outputs and ``G = in / group_size`` groups:

* ``X.qweight`` int32 ``(in, out/8)``: codes packed along the *output* dimension, 8 per word, nibble k of word c
  holding output ``8c + [0, 2, 4, 6, 1, 3, 5, 7][k]`` (AutoAWQ ``WQLinear_GEMM.from_linear``, ``AWQ_ORDER``);
* ``X.qzeros`` int32 ``(G, out/8)``: zero points packed the same way; ``X.scales`` float16 ``(G, out)``.

``W[j, i] = (q[i, j] − z[i // group_size, j]) · s[i // group_size, j]`` (AutoAWQ
``awq/utils/packing_utils.py: dequantize_gemm``: ``unpack_awq``, ``reverse_awq_order``, ``(iweight - izeros) *
scales``), transposed to ``(out, in)``; computed in float32 where the reference multiplies in float16.
The GEMV layouts (``version: gemv`` / ``gemv_fast``) and kernel-repacked ones are skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...tensors import TensorInfo
from ..contract import Claim, MatrixSpec, ModelConfig
from ._common import (
    as_float32,
    check_shape,
    claim_qweight_modules,
    config_value,
    is_known,
    row_tiles,
    skipped,
    unpack_bitstream,
)

SCHEME = "awq"
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
    missing = [n.rsplit(".", 1)[1] for n in (qzeros, scales) if n not in tensors]
    if missing:
        return skipped(name, (qweight,), stored_shape, SCHEME, f"missing {' and '.join(missing)} for {qweight}")
    infos = {n: tensors[n] for n in (qweight, qzeros, scales)}
    if not all(is_known(i) for i in infos.values()):
        return skipped(name, tuple(infos), (), SCHEME, "shapes unknown: the shard header is unreadable")
    groups, rows = infos[scales].shape if len(infos[scales].shape) == 2 else (0, 0)
    cols = infos[qweight].shape[0]
    bits = 32 * infos[qweight].shape[1] // rows if rows else 0
    group_size = int(config_value(qc, "group_size", "q_group_size", default=cols // groups if groups else 0))
    fits = (
        bits == 4
        and int(config_value(qc, "bits", "w_bit", default=4)) == 4
        and infos[qweight].dtype == infos[qzeros].dtype == "I32"
        and tuple(infos[qzeros].shape) == (groups, infos[qweight].shape[1])
        and group_size > 0
        and cols == groups * group_size
    )
    if not fits:
        shapes = ", ".join(f"{n.rsplit('.', 1)[1]} {tuple(i.shape)}" for n, i in infos.items())
        return skipped(name, tuple(infos), stored_shape, SCHEME, f"4-bit GEMM layout does not fit {shapes}")

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        for n, info in infos.items():
            check_shape(name, arrays[n], tuple(info.shape), n)
        return dequantize_awq(arrays[qweight], arrays[qzeros], arrays[scales], group_size)

    return MatrixSpec(name, tuple(infos), (rows, cols), decode=decode, quantization="awq-int4")


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
