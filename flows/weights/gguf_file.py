"""The GGUF file format (llama.cpp): the tensor list and raw tensors, no decoding.

* :func:`read_gguf_header` lists a file's tensors (:class:`TensorInfo`: ``dtype`` = the GGML type name, e.g.
  ``Q4_K``; ``shape`` in numpy order: GGUF stores dimensions fastest-first, so ``ne = [in, out]`` is ``(out, in)``;
  names as llama.cpp writes them, ``blk.0.attn_q.weight``) with their offsets in the file.
* :func:`tensor_array` views one tensor in the memory-mapped file: F32/F16/F64 and integer types as numpy arrays,
  BF16 as ``ml_dtypes.bfloat16``, quantized types as their raw uint8 blocks ``(*rows, bytes_per_row)``, which
  :mod:`.decoders.gguf` dequantizes.

The header is parsed here rather than with ``gguf.GGUFReader``: the reader builds a numpy view per element of
every metadata array, which takes 32 s for the 262 144-token vocabulary of Gemma 3 270M; skipping those arrays
takes well under a second. Everything the header promises is checked against the file before any tensor is read.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WeightsError
from .tensors import TensorInfo, is_positive_whole, numpy_dtype

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# GGML types stored as plain arrays, with the names and bits of the safetensors dtypes of the same names (read
# exactly by the plain path); every other GGML type is quantized (flows/weights/decoders/gguf.py).
EXACT_TYPES = frozenset({"F32", "F16", "F64", "BF16"})
INTEGER_TYPES = frozenset({"I8", "I16", "I32", "I64"})
# GGUF metadata value types: struct format of each scalar, 8 = string, 9 = array.
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# No file holds more bytes than an int64 offset reaches: a tensor claiming more is a corrupt header, not a truncation.
_MAX_FILE_BYTES = (1 << 63) - 1


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
        # Python integers: numpy's uint64 product of [2**32, 2**32] wraps to 0 bytes and passes the size check.
        nbytes = math.prod(dims) // block_size * type_size
        if nbytes > _MAX_FILE_BYTES:
            raise WeightsError(f"{label}: corrupt GGUF header (tensor {name!r} of dimensions {dims}: {nbytes} bytes)")
        entries.append((name, ggml_type.name, tuple(reversed(dims)), offset, nbytes))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not is_positive_whole(alignment) or alignment & (alignment - 1):
        raise WeightsError(f"{label}: corrupt GGUF header (general.alignment {alignment!r}, not a power of 2)")
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
    if info.dtype in EXACT_TYPES or info.dtype in INTEGER_TYPES:
        return raw.view(numpy_dtype(info.dtype)).reshape(info.shape)
    rows = info.shape[:-1]
    return raw.reshape(*rows, tensor.nbytes // max(1, int(np.prod(rows, dtype=np.int64))))
