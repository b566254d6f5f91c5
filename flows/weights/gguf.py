"""GGUF files (llama.cpp): the tensor list, raw tensors, and their decoding with the ``gguf`` package.

* :func:`read_gguf_header` lists a file's tensors (:class:`TensorInfo`: ``dtype`` = the GGML type name, e.g.
  ``Q4_K``; ``shape`` in numpy order: GGUF stores dimensions fastest-first, so ``ne = [in, out]`` is ``(out, in)``;
  names as llama.cpp writes them, ``blk.0.attn_q.weight``) with their offsets in the file.
* :func:`tensor_array` views one tensor in the memory-mapped file: F32/F16/F64 and integer types as numpy arrays,
  BF16 as ``ml_dtypes.bfloat16``, quantized types as their raw uint8 blocks ``(*rows, bytes_per_row)``.
* :class:`GGUFDecoder` claims quantized tensors and dequantizes them with ``gguf.quants.dequantize`` (gguf's own
  reference implementation of every GGML type) row tile by row tile into float32; fused expert tensors
  (``blk.N.ffn_*_exps.weight``, ``(experts, out, in)``) become one matrix per expert, decoded one at a time.
  F32/F16/BF16 tensors are the plain path's: they are read exactly.
* :func:`choose_gguf_file` picks the file a GGUF-only repo is analyzed from.

The header is parsed here rather than with ``gguf.GGUFReader``: the reader builds a numpy view per element of
every metadata array, which takes 32 s for the 262 144-token vocabulary of Gemma 3 270M; skipping those arrays
takes well under a second. Everything the header promises is checked against the file before any tensor is read.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import ml_dtypes
import numpy as np

from .decoding import Claim, MatrixSpec, ModelConfig
from .errors import WeightsError
from .readers import TensorInfo

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# GGML types read exactly by the plain path; every other GGML type is quantized and decoded here.
EXACT_TYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": ml_dtypes.bfloat16}
INTEGER_TYPES = {"I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64}
# GGUF metadata value types: struct format of each scalar, 8 = string, 9 = array.
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_SPLIT_FILE = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
_EXPERTS = re.compile(r"_exps\.weight$")


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: its plan entry and where its bytes lie."""

    info: TensorInfo
    offset: int  # absolute, in bytes
    nbytes: int


@dataclass(frozen=True)
class GGUFHeader:
    metadata: dict[str, object]  # scalar and string values; arrays are skipped
    tensors: list[GGUFTensor]


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse and validate a GGUF header; :class:`WeightsError` naming the file when it is not a whole GGUF file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = path.stat().st_size
            if size < 24:
                raise WeightsError(f"{path}: truncated: {size} bytes, not even a GGUF header")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse_header(data, size, str(path))
    except FileNotFoundError as err:
        raise WeightsError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise WeightsError(f"{path}: is a directory, expected a .gguf file") from err


class _Cursor:
    def __init__(self, data: mmap.mmap, label: str):
        self.data, self.offset, self.label = data, 0, label

    def unpack(self, fmt: str):
        try:
            values = struct.unpack_from("<" + fmt, self.data, self.offset)
        except struct.error as err:
            raise WeightsError(f"{self.label}: truncated GGUF header at byte {self.offset}") from err
        self.offset += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.unpack("Q")
        raw = self.data[self.offset : self.offset + length]
        if len(raw) != length:
            raise WeightsError(f"{self.label}: truncated GGUF header at byte {self.offset}")
        self.offset += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise WeightsError(f"{self.label}: corrupt GGUF header (a string that is not UTF-8)") from err

    def value(self, kind: int):
        if kind in _SCALAR_FORMATS:
            return self.unpack(_SCALAR_FORMATS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("IQ")
            if item_kind in _SCALAR_FORMATS:
                self.offset += count * struct.calcsize("<" + _SCALAR_FORMATS[item_kind])
            else:
                for _ in range(count):
                    self.value(item_kind)
            return None
        raise WeightsError(f"{self.label}: corrupt GGUF header (unknown value type {kind} at byte {self.offset})")


def _parse_header(data: mmap.mmap, size: int, label: str) -> GGUFHeader:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    cursor = _Cursor(data, label)
    if data[:4] != GGUF_MAGIC:
        raise WeightsError(f"{label}: not a GGUF file (magic {bytes(data[:4])!r}, expected b'GGUF')")
    cursor.offset = 4
    version = cursor.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        why = "a big-endian file" if version & 0xFFFF == 0 else f"version {version}"
        raise WeightsError(f"{label}: unsupported GGUF {why} (supported versions: 2, 3)")
    tensor_count, kv_count = cursor.unpack("QQ")
    if tensor_count > size or kv_count > size:
        raise WeightsError(f"{label}: corrupt GGUF header ({tensor_count} tensors, {kv_count} keys)")
    metadata: dict[str, object] = {}
    for _ in range(kv_count):
        key = cursor.string()
        kind = cursor.unpack("I")
        value = cursor.value(kind)
        if value is not None:
            metadata[key] = value
    entries = []
    for _ in range(tensor_count):
        name = cursor.string()
        n_dims = cursor.unpack("I")
        if n_dims > 8:
            raise WeightsError(f"{label}: corrupt GGUF header ({n_dims} dimensions for {name!r})")
        dims = [cursor.unpack("Q") for _ in range(n_dims)]
        raw_type, offset = cursor.unpack("IQ")
        try:
            ggml_type = GGMLQuantizationType(raw_type)
        except ValueError as err:
            raise WeightsError(f"{label}: unknown GGML type {raw_type} for tensor {name!r}") from err
        block_size, type_size = GGML_QUANT_SIZES[ggml_type]
        if dims and dims[0] % block_size:
            raise WeightsError(f"{label}: {name}: row of {dims[0]} is not a whole number of {ggml_type.name} blocks")
        nbytes = int(np.prod(dims, dtype=np.uint64)) // block_size * type_size
        entries.append((name, ggml_type.name, tuple(reversed(dims)), offset, nbytes))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    if alignment <= 0 or alignment & (alignment - 1):
        raise WeightsError(f"{label}: corrupt GGUF header (alignment {alignment})")
    data_start = -(-cursor.offset // alignment) * alignment
    tensors = []
    for name, type_name, shape, offset, nbytes in entries:
        end = data_start + offset + nbytes
        if end > size:
            raise WeightsError(f"{label}: truncated: {size} bytes on disk, tensor {name} ends at byte {end}")
        tensors.append(GGUFTensor(TensorInfo(name, type_name, shape), data_start + offset, nbytes))
    return GGUFHeader(metadata, tensors)


def tensor_array(data: np.ndarray, tensor: GGUFTensor) -> np.ndarray:
    """One tensor as a view into ``data``, the whole file as uint8 (see the module docstring for dtypes)."""
    raw = data[tensor.offset : tensor.offset + tensor.nbytes]
    info = tensor.info
    numpy_type = EXACT_TYPES.get(info.dtype) or INTEGER_TYPES.get(info.dtype)
    if numpy_type is not None:
        return raw.view(numpy_type).reshape(info.shape)
    rows = info.shape[:-1]
    return raw.reshape(*rows, tensor.nbytes // max(1, int(np.prod(rows, dtype=np.int64))))


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

    return type_name in GGMLQuantizationType.__members__ and type_name not in EXACT_TYPES | INTEGER_TYPES


def dequantize_gguf(raw: np.ndarray, type_name: str) -> np.ndarray:
    """Raw GGML blocks ``(rows, bytes_per_row)`` → float32 ``(rows, cols)`` with ``gguf.quants.dequantize``
    (gguf-py's numpy port of ggml's ``dequantize_row_*``), a few rows at a time."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    from .quant._common import row_tiles

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
            elif experts:
                claim.matrices += [_expert_spec(name, info, e, label) for e in range(info.shape[0])]
            else:
                claim.matrices.append(_matrix_spec(name, info, label))
        return claim


def _matrix_spec(name: str, info: TensorInfo, label: str) -> MatrixSpec:
    rows = int(np.prod(info.shape[:-1]))

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        raw = arrays[name]
        return dequantize_gguf(raw.reshape(rows, raw.shape[-1]), info.dtype).reshape(info.shape)

    return MatrixSpec(name, (name,), info.shape, decode=decode, quantization=label)


def _expert_spec(name: str, info: TensorInfo, expert: int, label: str) -> MatrixSpec:
    """Expert ``expert`` of a fused ``(experts, out, in)`` tensor, named ``blk.N.ffn_up_exps.E.weight``."""

    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        slab = arrays[name][expert]
        return dequantize_gguf(slab, info.dtype) if label else slab.astype(np.float32)

    stem = name[: -len(".weight")]
    return MatrixSpec(
        f"{stem}.{expert}.weight", (name,), info.shape[1:], decode=decode, expert=expert, quantization=label
    )


def gguf_precision_bits(filename: str) -> int | None:
    """Bits per weight that a GGUF file name announces (``model-Q4_K_M.gguf`` → 4, ``f16`` → 16), or None."""
    stem = Path(filename).name
    match = re.search(r"(?i)(?:^|[-_.])(I?Q|TQ)(\d)_", stem)
    if match:
        return int(match.group(2))
    match = re.search(r"(?i)(?:^|[-_.])(MXFP4|BF16|F16|FP16|F32|FP32)(?=[-_.])", stem)
    if match:
        return {"MXFP4": 4, "BF16": 16, "F16": 16, "FP16": 16, "F32": 32, "FP32": 32}[match.group(1).upper()]
    return None


def choose_gguf_file(files: Mapping[str, int | None], override: str | None = None) -> str:
    """The GGUF file a GGUF-only repo is analyzed from: ``override`` when given, else the largest file whose
    name announces a precision of at most 8 bits, leaving out split files (``-00001-of-00003.gguf``) and
    multimodal projectors (``mmproj``). ``files`` maps repo paths to sizes in bytes (None when unknown)."""
    ggufs = {f: s for f, s in files.items() if f.lower().endswith(".gguf")}
    if override is not None:
        if override not in ggufs:
            raise WeightsError(f"--gguf-file {override}: not among this repo's GGUF files ({', '.join(ggufs)})")
        if _SPLIT_FILE.search(override):
            raise WeightsError(f"--gguf-file {override}: one part of a split GGUF model cannot be analyzed alone")
        return override
    candidates = [
        f
        for f in ggufs
        if not _SPLIT_FILE.search(f)
        and "mmproj" not in Path(f).name.lower()
        and (bits := gguf_precision_bits(f)) is not None
        and bits <= 8
    ]
    if not candidates:
        listed = ", ".join(ggufs) or "none"
        raise WeightsError(f"no single-file GGUF of at most 8 bits to analyze (GGUF files: {listed}); pick one")
    return max(candidates, key=lambda f: (ggufs[f] or 0, gguf_precision_bits(f) or 0, f))
