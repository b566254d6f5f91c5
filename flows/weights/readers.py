"""Read stored tensors from local files, one shard at a time, without trusting them.

A shard is opened as a :class:`ShardReader`: its tensor list (names, dtypes, shapes) and each tensor as a numpy
array in the file's dtype (ml_dtypes for bf16/fp8), read lazily:

* safetensors: one read-only memory map per file, every tensor a view into it (no torch import, no copy; a page is
  read when the analysis touches it, and :meth:`ShardReader.evict` drops a tensor's pages again, so a 4 GB fused
  expert tensor analyzed one expert at a time never becomes resident as a whole);
* ``.bin`` pickles: ``torch.load(weights_only=True)``: memory-mapped for zip checkpoints (torch >= 1.6), loaded
  whole for legacy pre-1.6 pickles (they cannot be mapped); no code in a pickle is ever executed.
"""

from __future__ import annotations

import json
import math
import mmap
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import gguf_file
from .errors import WeightsError
from .tensors import TensorInfo, check_tensor_entry, corrupt_header, numpy_dtype

# The largest header we parse, checked before it is read: huggingface_hub's limit for remote headers
# (SAFETENSORS_MAX_HEADER_LENGTH); a 100k-tensor shard needs ~15 MB. A larger length prefix is corrupt or hostile.
MAX_HEADER_BYTES = 25_000_000


@dataclass
class _Located:
    info: TensorInfo
    begin: int
    end: int


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of two entries with one name: a tensor would silently stand for another's bytes.
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"{twice!r} is listed twice")
    return found


# The keys of a tensor's entry in a safetensors header (the format's spec: https://huggingface.co/docs/safetensors).
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")


def _json_kind(value: object) -> str:
    """What a JSON value is, in words ("a list", "a string"), for a message naming what a header holds instead."""
    kinds = ((dict, "an object"), (list, "a list"), (str, "a string"), (bool, "a boolean"), (int | float, "a number"))
    return next((kind for types, kind in kinds if isinstance(value, types)), "null")


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _entry(label: str, name: str, meta: object) -> _Located:
    """One tensor's entry, each key of the type the format says, its shape filling its data offsets exactly."""
    if not isinstance(meta, dict):
        raise corrupt_header(
            label, f"tensor {name!r} is {_json_kind(meta)}, not an object with {', '.join(_ENTRY_KEYS)}"
        )
    missing = [key for key in _ENTRY_KEYS if key not in meta]
    if missing:
        raise corrupt_header(label, f"tensor {name!r} has no {' and no '.join(missing)}")
    dtype, shape, offsets = (meta[key] for key in _ENTRY_KEYS)
    if not isinstance(dtype, str):
        raise corrupt_header(label, f"tensor {name!r} has dtype {_short(dtype)}, not a dtype name")
    if not isinstance(shape, list):
        raise corrupt_header(label, f"tensor {name!r} has shape {_short(shape)}, not a list of dimensions")
    if not (isinstance(offsets, list) and len(offsets) == 2):
        raise corrupt_header(label, f"tensor {name!r} has data_offsets {_short(offsets)}, not a pair [begin, end]")
    check_tensor_entry(label, name, dtype, tuple(shape), *offsets)
    return _Located(TensorInfo(name, dtype, tuple(shape)), *offsets)


def _parse_header(raw: bytes, label: str) -> list[_Located]:
    """The tensors of a safetensors header (the bytes after its 8-byte length), in file order, each entry checked
    and their bytes following one another from the start of the data, as the format requires (no overlap, no hole:
    a tensor never stands for another's bytes). WeightsError naming the problem."""
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as err:
        raise corrupt_header(label, f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise corrupt_header(label, f"not JSON ({err})") from err
    except ValueError as err:  # a name listed twice
        raise corrupt_header(label, str(err)) from err
    if not isinstance(header, dict):
        raise corrupt_header(label, f"{_json_kind(header)}, not an object of tensors")
    located = [_entry(label, name, meta) for name, meta in header.items() if name != "__metadata__"]
    # File order is what the exporter wrote (safetensors sorts by dtype, then name); depth order comes later.
    located.sort(key=lambda t: (t.begin, t.end))
    reached = 0
    for tensor in located:
        if tensor.begin != reached:
            where = "the start of the data" if reached == 0 else f"byte {reached}, where the tensor before it ends"
            raise corrupt_header(
                label,
                f"tensor {tensor.info.name!r} has data_offsets [{tensor.begin}, {tensor.end}], but should begin at "
                f"{where} (no overlap, no hole)",
            )
        reached = tensor.end
    return located


def _data_end(raw: bytes, located: list[_Located]) -> int:
    """The byte a file with this header (``raw``, after its 8-byte length) and these tensors (in file order, one
    after the other, as ``_parse_header`` checks them) ends at."""
    return 8 + len(raw) + (located[-1].end if located else 0)


def parse_safetensors_header(raw: bytes, file_size: int | None, label: str) -> list[TensorInfo]:
    """Validate a safetensors header (the bytes after the 8-byte length) of a file of ``file_size`` bytes (a hub
    file's listed size) and list its tensors in file order: every entry as the format defines it, every tensor's
    byte span matching its dtype and shape, the spans following one another and the file holding them all.
    WeightsError ``LABEL: corrupt safetensors header: PROBLEM``."""
    located = _parse_header(raw, label)
    end = _data_end(raw, located)
    if file_size is not None and end > file_size:
        raise corrupt_header(label, f"its tensors' data runs to byte {end}, past the end of the {file_size}-byte file")
    return [t.info for t in located]


def _read_header(path: Path) -> tuple[int, list[_Located]]:
    """(data start, tensors) of a local safetensors file, validated against its size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise WeightsError(f"{path}: truncated: {size} bytes, not even a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or length > size - 8:
                instead = text_instead_of_weights(prefix + handle.read(56))
                if instead:
                    raise WeightsError(f"{path}: {instead}")
            if length > MAX_HEADER_BYTES:
                raise WeightsError(f"{path}: header length {length} is more than the {MAX_HEADER_BYTES} bytes allowed")
            if length > size - 8:
                raise WeightsError(f"{path}: corrupt or truncated: header length {length} for a {size}-byte file")
            raw = handle.read(length)
    except FileNotFoundError as err:
        raise WeightsError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise WeightsError(f"{path}: is a directory, expected a .safetensors file") from err
    located = _parse_header(raw, str(path))
    expected = _data_end(raw, located)
    if size < expected:
        raise WeightsError(f"{path}: truncated: {size} bytes on disk, header promises {expected}")
    return 8 + len(raw), located


def read_safetensors_header(path: Path) -> list[TensorInfo]:
    """The tensors of a local ``.safetensors`` file, validated against its size."""
    return [t.info for t in _read_header(Path(path))[1]]


class ShardReader:
    """One open shard: its tensors' infos and, lazily, each tensor as a numpy array in the file's dtype."""

    path: Path

    def infos(self) -> list[TensorInfo]:
        raise NotImplementedError

    def array(self, name: str) -> np.ndarray:
        """The stored tensor (numpy, file dtype, possibly a read-only memory map). KeyError when absent."""
        raise NotImplementedError

    def evict(self, name: str) -> None:
        """Let the operating system drop the tensor's pages from this process (they are read again if needed)."""

    def close(self) -> None:
        """Release the file. Arrays handed out stay valid while referenced (the map closes with the last one)."""


class SafetensorsShard(ShardReader):
    """A safetensors file as one read-only memory map; tensors are views into it (no torch, no copy)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._data_start, located = _read_header(self.path)
        self._tensors = {t.info.name: t for t in located}
        self._map = map_file(self.path)

    def infos(self) -> list[TensorInfo]:
        return [t.info for t in self._tensors.values()]

    def array(self, name: str) -> np.ndarray:
        located = self._tensors[name]
        info = located.info
        dtype = numpy_dtype(info.dtype)
        if dtype is None:
            raise WeightsError(f"{self.path}: tensor {name!r} has dtype {info.dtype}, which wwhub cannot read")
        count = math.prod(info.shape)
        flat = np.frombuffer(self._map, dtype=dtype, count=count, offset=self._data_start + located.begin)
        return flat.reshape(info.shape)

    def evict(self, name: str) -> None:
        located = self._tensors.get(name)
        if located is not None:
            drop_pages(self._map, self._data_start + located.begin, self._data_start + located.end)

    def close(self) -> None:
        close_map(self._map)


def text_instead_of_weights(head: bytes) -> str | None:
    """What a weight file holds instead, when its first bytes are text: an HTML or JSON page (a download that got
    an error page) or a Git LFS pointer (a clone without the LFS files). None for anything else."""
    text = head.lstrip()
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the weights (fetch them: git lfs pull)"
    if text[:1] == b"<":
        return "an HTML page, not a checkpoint (a failed download? download it again)"
    if text[:1] == b"{":
        return "a JSON document, not a checkpoint (a failed download? download it again)"
    return None


def map_file(path: Path) -> mmap.mmap:
    """The whole file as one read-only memory map; :class:`WeightsError` naming it when it cannot be mapped."""
    try:
        with open(path, "rb") as handle:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as err:
        raise WeightsError(f"{path}: cannot map the file ({err})") from err


def drop_pages(mapped: mmap.mmap, start: int, end: int) -> None:
    """Let the operating system drop the pages of bytes ``start:end`` from this process's resident memory."""
    if end <= start or not hasattr(mmap, "MADV_DONTNEED"):
        return
    aligned = start - start % mmap.PAGESIZE
    # A private read-only file mapping: dropped pages are read back from the file on the next touch.
    mapped.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)


def close_map(mapped: mmap.mmap) -> None:
    try:
        mapped.close()
    except BufferError:
        # Arrays still refer to the map (e.g. kept for a matrix completed by a later shard); it closes with them.
        pass


class PickleShard(ShardReader):
    """A ``.bin`` checkpoint, loaded with ``weights_only=True``: no code in the pickle is ever executed.

    Zip checkpoints (torch >= 1.6) are memory-mapped; legacy pickles cannot be, so they are loaded whole (they
    predate large models). Tensors are handed out as numpy arrays in their dtype (bf16/fp8 reinterpreted as the
    ml_dtypes type, bit for bit)."""

    def __init__(self, path: Path):
        import pickle

        import torch

        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such file")
        mapped = zipfile.is_zipfile(self.path)
        if not mapped:
            with open(self.path, "rb") as handle:
                instead = text_instead_of_weights(handle.read(64))
            if instead:
                raise WeightsError(f"{self.path}: {instead}")
        try:
            state = torch.load(str(self.path), map_location="cpu", weights_only=True, mmap=mapped)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
            raise WeightsError(
                f"{self.path}: cannot load the pickle safely with weights_only=True ({_refusal(err)})"
            ) from err
        if not isinstance(state, dict):
            raise WeightsError(f"{self.path}: the pickle holds a {type(state).__name__}, not a state dict")
        self._tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
        nested = [str(k) for k, v in state.items() if isinstance(v, dict)]
        if not self._tensors and nested:
            # A training checkpoint (Lightning's state_dict, an optimizer's state): not a state dict of weights.
            raise WeightsError(f"{self.path}: no tensors at the top level, only dicts under {', '.join(nested[:3])}")

    def infos(self) -> list[TensorInfo]:
        return [TensorInfo(name, _torch_dtype_name(t), tuple(t.shape)) for name, t in self._tensors.items()]

    def array(self, name: str) -> np.ndarray:
        import torch

        tensor = self._tensors[name]
        # numpy has no view of a sparse tensor, and a meta tensor stores no values at all.
        if tensor.device.type == "meta":
            raise WeightsError(f"{self.path}: {name} is a meta tensor: the file stores its shape but no values")
        if tensor.layout != torch.strided:
            raise WeightsError(f"{self.path}: {name} is a {tensor.layout} tensor, not dense weights")
        return torch_to_numpy(tensor)

    def close(self) -> None:
        self._tensors = {}


_TORCH_DTYPE_NAMES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "int8": "I8",
    "uint8": "U8",
    "int16": "I16",
    "uint16": "U16",
    "int32": "I32",
    "uint32": "U32",
    "int64": "I64",
    "uint64": "U64",
    "bool": "BOOL",
}


def _torch_dtype_name(tensor) -> str:
    name = str(tensor.dtype).removeprefix("torch.")
    return _TORCH_DTYPE_NAMES.get(name, name)


def torch_to_numpy(tensor) -> np.ndarray:
    """A CPU torch tensor as numpy without changing a bit: bf16 and fp8 are viewed as their ml_dtypes types."""
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(numpy_dtype("BF16"))
    if tensor.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return tensor.view(torch.uint8).numpy().view(numpy_dtype(_torch_dtype_name(tensor)))
    return tensor.numpy()


class GgufShard(ShardReader):
    """A GGUF file (:mod:`.gguf_file`), one read-only memory map like a safetensors shard: llama.cpp tensor names,
    numpy-order shapes, ``dtype`` the GGML type name (F32/F16/BF16 read as they are; quantized types raw, for the
    GGUF decoder to dequantize)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tensors = {t.info.name: t for t in gguf_file.read_gguf_header(self.path).tensors}
        self._map = map_file(self.path)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)

    def infos(self) -> list[TensorInfo]:
        return [t.info for t in self._tensors.values()]

    def array(self, name: str) -> np.ndarray:
        return gguf_file.tensor_array(self._bytes, self._tensors[name])

    def evict(self, name: str) -> None:
        tensor = self._tensors.get(name)
        if tensor is not None:
            drop_pages(self._map, tensor.offset, tensor.offset + tensor.nbytes)

    def close(self) -> None:
        self._bytes = np.empty(0, dtype=np.uint8)  # the map closes once no tensor view refers to it
        close_map(self._map)


# One reader per storage format, chosen by the plan's ``fmt``.
READERS: dict[str, type[ShardReader]] = {"safetensors": SafetensorsShard, "pickle": PickleShard, "gguf": GgufShard}


def open_shard(path: Path, fmt: str = "safetensors") -> ShardReader:
    """Open one shard for reading. Raises :class:`WeightsError` naming the file when it cannot be read."""
    reader = READERS.get(fmt)
    if reader is None:
        raise WeightsError(f"{path}: no reader for weight format {fmt!r}")
    return reader(Path(path))


def _refusal(err: Exception) -> str:
    """Why the safe loader refused a pickle, without torch's advice to retry with ``weights_only=False`` (which
    would run the code inside): the global it would have called, else the first line of the error."""
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text) or re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe:
        return f"it would call {unsafe.group(1)}, which is not part of a state dict; such a file is never loaded"
    first = next((line.strip() for line in text.splitlines() if line.strip()), err.__class__.__name__)
    return re.sub(r"\s*(Re-running|In PyTorch|Please file|WeightsUnpickler).*", "", first)[:300]
