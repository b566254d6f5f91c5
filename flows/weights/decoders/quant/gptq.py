"""GPTQ weights (AutoGPTQ / GPTQModel / optimum ``QuantLinear``): ``qweight``, ``qzeros``, ``scales``, ``g_idx``.

Tensors of a module ``X`` with ``b``-bit codes (2, 3, 4 or 8), ``in`` inputs, ``out`` outputs, ``G`` groups:

* ``X.qweight`` int32 ``(in·b/32, out)``: codes packed along the *input* dimension, a little-endian bit stream
  per column (3-bit fields straddle words; AutoGPTQ ``qlinear_cuda_old.QuantLinear.pack``);
* ``X.qzeros`` int32 ``(G, out·b/32)``: zero points packed the same way along the *output* dimension;
* ``X.scales`` float16 ``(G, out)``; ``X.g_idx`` int32 ``(in,)``: the group of each input (act-order /
  ``desc_act``), else input i is in group ``i // group_size``; ``X.bias`` is a side tensor.

``W[j, i] = scales[g(i), j] · (q[i, j] − z[g(i), j])`` (AutoGPTQ ``qlinear_cuda.QuantLinear.forward``'s torch
path, ``scales[g_idx] * (weight - zeros[g_idx])``), transposed to ``(out, in)``. The checkpoint format decides the
zero: the v1 format (``checkpoint_format: gptq``, the default) stores ``zero − 1``, so ``z = (stored + 1) mod 2^b``
(AutoGPTQ ``qlinear_cuda_old``: ``zeros + 1`` then ``& (2^b − 1)``; a true zero of 0 is the v1 format's known defect:
packing −1 sets the higher fields of its word too); ``gptq_v2`` stores the zero itself. Computed in float32; the
reference multiplies in the checkpoint's float16 and we do not.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...errors import WeightsError
from ...tensors import TensorInfo
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

SCHEME = "gptq"
SUPPORTED_BITS = (2, 3, 4, 8)
# Formats whose qweight is repacked for a kernel (Marlin tiles, exllama v2 shuffles): not the GPTQ layout.
REPACKED_FORMATS = {"marlin", "gptq_marlin", "bitblas", "exllamav2", "qqq"}


class GPTQDecoder:
    """GPTQ ``qweight``/``qzeros``/``scales`` modules, dequantized to float32."""

    name = "gptq"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        return claim_qweight_modules(tensors, config, "gptq", "input", gptq_spec)


def gptq_spec(prefix: str, tensors: Mapping[str, TensorInfo], qc: Mapping) -> MatrixSpec:
    """The matrix of one GPTQ module, or a skipped spec saying what is missing or unsupported."""
    name = prefix + ".weight"
    qweight, qzeros, scales, g_idx = (prefix + s for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    stored_shape = tuple(tensors[qweight].shape)
    fmt = str(config_value(qc, "checkpoint_format", default="gptq")).lower()
    if fmt in REPACKED_FORMATS or qc.get("is_marlin_format"):
        return skipped(name, (qweight,), stored_shape, SCHEME, f"{fmt or 'marlin'}-repacked qweight not supported")
    missing = missing_parts(tensors, prefix, (qzeros, scales))
    if missing:
        return skipped(name, (qweight,), stored_shape, SCHEME, f"missing {' and '.join(missing)} beside qweight")
    infos = [tensors[n] for n in (qweight, qzeros, scales)]
    if not all(is_known(i) for i in infos):
        return skipped(name, (qweight, qzeros, scales), (), SCHEME, "shapes unknown: the shard header is unreadable")
    layout = _layout(tensors, prefix, qc)
    if isinstance(layout, str):
        return skipped(name, (qweight, qzeros, scales), stored_shape, SCHEME, layout)
    bits, rows, cols, group_size = layout
    has_g_idx = g_idx in tensors
    sources = (qweight, qzeros, scales) + ((g_idx,) if has_g_idx else ())
    v1 = fmt != "gptq_v2"

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        for n in (qweight, qzeros, scales):
            check_shape(name, arrays[n], tuple(tensors[n].shape), n)
        groups = tensors[scales].shape[0]
        index = np.asarray(arrays[g_idx]).astype(np.int64) if has_g_idx else np.arange(cols) // group_size
        check_shape(name, index, (cols,), g_idx)
        if index.size and (index.min() < 0 or index.max() >= groups):
            raise WeightsError(f"{name}: {g_idx} names groups outside 0..{groups - 1}")
        return dequantize_gptq(arrays[qweight], arrays[qzeros], arrays[scales], index, bits, v1)

    return MatrixSpec(name, sources, (rows, cols), decode=decode, quantization=f"gptq-int{bits}")


def _layout(tensors: Mapping[str, TensorInfo], prefix: str, qc: Mapping) -> tuple[int, int, int, int] | str:
    """(bits, out, in, group_size) from the shapes (checked against the config), or why they do not fit."""
    qweight, qzeros, scales = (tensors[prefix + s] for s in (".qweight", ".qzeros", ".scales"))
    if qweight.dtype != "I32" or qzeros.dtype != "I32":
        return f"qweight/qzeros stored as {qweight.dtype}/{qzeros.dtype}, only int32 packing is supported"
    for role, info, axes in (
        ("qweight", qweight, "(inputs·bits/32, outputs)"),
        ("qzeros", qzeros, "(groups, outputs·bits/32)"),
        ("scales", scales, "(groups, outputs)"),
    ):
        if len(info.shape) != 2:
            return f"{role} has shape {tuple(info.shape)}, expected 2-D {axes}"
    if qzeros.shape[0] != scales.shape[0]:
        return f"scales {tuple(scales.shape)} and qzeros {tuple(qzeros.shape)} do not fit together"
    groups, rows = scales.shape
    if rows == 0 or (32 * qzeros.shape[1]) % rows:
        return f"qzeros {tuple(qzeros.shape)} does not pack {rows} outputs"
    bits = 32 * qzeros.shape[1] // rows
    configured = int(config_value(qc, "bits", "w_bit", default=bits))
    if bits not in SUPPORTED_BITS or configured != bits:
        return f"{bits}-bit codes from the shapes (config says {configured}); supported: 2, 3, 4, 8"
    if qweight.shape[1] != rows:
        return f"qweight {tuple(qweight.shape)} does not match scales {tuple(scales.shape)}"
    cols = qweight.shape[0] * 32 // bits
    g_idx = tensors.get(prefix + ".g_idx")
    if g_idx is not None and is_known(g_idx) and tuple(g_idx.shape) != (cols,):
        return f"g_idx {tuple(g_idx.shape)} does not match {cols} inputs"
    group_size = int(config_value(qc, "group_size", "q_group_size", default=0))
    if group_size <= 0:
        group_size = cols if groups == 1 else cols // groups if cols % groups == 0 else 0
    if group_size <= 0 or -(-cols // group_size) != groups:
        return f"{groups} groups do not cover {cols} inputs with group_size {group_size}"
    return bits, rows, cols, group_size


def dequantize_gptq(
    qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray, g_idx: np.ndarray, bits: int, v1: bool = True
) -> np.ndarray:
    """``W[j, i] = s[g(i), j] · (q[i, j] − z[g(i), j])`` as float32 ``(out, in)``, input tile by input tile.

    ``q`` unpacked from ``qweight`` along the input dimension, ``z`` from ``qzeros`` along the output dimension
    (v1: ``z = (stored + 1) mod 2^bits``), ``g = g_idx`` (see the module docstring for the reference)."""
    rows = scales.shape[1]
    cols = g_idx.shape[0]
    zeros = unpack_bitstream(qzeros, bits, rows)
    if v1:
        zeros = (zeros + 1) & ((1 << bits) - 1)
    zeros_t = np.ascontiguousarray(zeros.T).astype(np.float32)
    scales_t = np.ascontiguousarray(as_float32(scales).T)
    out = np.empty((rows, cols), dtype=np.float32)
    # A tile spans whole groups of ``bits`` words (32 codes), so 3-bit fields never straddle two tiles.
    for words in row_tiles(qweight.shape[0], rows * 32 // bits, multiple=bits):
        first, last = words.start * 32 // bits, min(cols, words.stop * 32 // bits)
        codes = unpack_bitstream(np.ascontiguousarray(qweight[words].T), bits, last - first).astype(np.float32)
        group = g_idx[first:last]
        codes -= zeros_t[:, group]
        codes *= scales_t[:, group]
        out[:, first:last] = codes
    return out
