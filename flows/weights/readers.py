"""Read stored tensors from local files, one shard at a time, without trusting them.

Shards are opened one at a time and their tensors yielded lazily, so a caller holds at most one tensor (plus the
memory map of one shard).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsError


@dataclass
class TensorInfo:
    """A stored tensor as a file's header describes it (``dtype`` is the safetensors name, e.g. ``BF16``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


# The largest header we parse, checked before it is read: huggingface_hub's limit for remote headers
# (SAFETENSORS_MAX_HEADER_LENGTH); a 100k-tensor shard needs ~15 MB. A larger length prefix is corrupt or hostile.
MAX_HEADER_BYTES = 25_000_000
# Bits per element of each safetensors dtype (the format's spec), to check a shape against its data offsets.
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def check_tensor_entry(label: str, name: str, dtype: str, shape: tuple, begin: int, end: int) -> None:
    """A header entry that describes its own data: whole non-negative dimensions whose product, at the dtype's
    width, fills ``data_offsets`` exactly. Checked before anything is allocated from the shape (a shape claiming
    10¹² elements over a few bytes is corrupt or hostile). Raises WeightsError naming the tensor."""
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) or len(shape) > 8:
        raise WeightsError(f"{label}: tensor {name!r} has an invalid shape {list(shape)[:9]}")
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
        raise WeightsError(f"{label}: tensor {name!r} has invalid data offsets [{begin}, {end}]")
    numel = 1
    for dim in shape:
        numel *= dim
    need = (numel * _DTYPE_BITS.get(dtype, 1) + 7) // 8  # an unknown dtype has at least one bit per element
    if (need != end - begin) if dtype in _DTYPE_BITS else (need > end - begin):
        raise WeightsError(
            f"{label}: tensor {name!r} of shape {list(shape)} ({dtype}) needs {need} bytes, "
            f"but its data offsets hold {end - begin}: corrupt header"
        )


def parse_safetensors_header(raw: bytes, file_size: int | None, label: str) -> list[TensorInfo]:
    """Validate a safetensors header (the bytes after the 8-byte length) and list its tensors in file order.

    ``file_size`` (when known) is checked against the data offsets, which catches a truncated download.
    """
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{label}: corrupt safetensors header ({err.__class__.__name__}: {err})") from err
    if not isinstance(header, dict):
        raise WeightsError(f"{label}: corrupt safetensors header (not a JSON object)")
    located: list[tuple[int, TensorInfo]] = []
    data_end = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = meta["data_offsets"]
            info = TensorInfo(name, str(meta["dtype"]), tuple(meta["shape"]))
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(f"{label}: corrupt safetensors header entry for {name!r}") from err
        check_tensor_entry(label, name, info.dtype, info.shape, begin, end)
        located.append((begin, info))
        data_end = max(data_end, end)
    if file_size is not None:
        expected = 8 + len(raw) + data_end
        if file_size < expected:
            raise WeightsError(f"{label}: truncated: {file_size} bytes on disk, header promises {expected}")
    # File order is the order the exporter wrote the layers in; JSON key order is alphabetical.
    return [info for _, info in sorted(located, key=lambda item: item[0])]


def read_safetensors_header(path: Path) -> list[TensorInfo]:
    """The tensors of a local ``.safetensors`` file, validated against its size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise WeightsError(f"{path}: truncated: {size} bytes, not even a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                raise WeightsError(f"{path}: header length {length} is more than the {MAX_HEADER_BYTES} bytes allowed")
            if length > size - 8:
                raise WeightsError(f"{path}: corrupt or truncated: header length {length} for a {size}-byte file")
            raw = handle.read(length)
    except FileNotFoundError as err:
        raise WeightsError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise WeightsError(f"{path}: is a directory, expected a .safetensors file") from err
    return parse_safetensors_header(raw, size, str(path))


def iter_shard_tensors(path: Path, names: list[str] | None = None, fmt: str = "safetensors") -> Iterator[tuple]:
    """Yield ``(name, tensor)`` from one shard, lazily (torch tensors, any float dtype, kept in the file's dtype).

    Raises :class:`WeightsError` naming the file when it cannot be read.
    """
    if fmt == "pickle":
        yield from _iter_pickle(path)
        return
    from safetensors import SafetensorError, safe_open

    read_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            available = list(handle.keys())
            order = [n for n in names if n in available] if names else available
            for name in order:
                yield name, handle.get_tensor(name)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise WeightsError(f"{path}: cannot read tensors ({err})") from err


def _iter_pickle(path: Path) -> Iterator[tuple]:
    """A ``.bin`` checkpoint, loaded with ``weights_only=True``: no code in the pickle is ever executed."""
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: cannot load the pickle safely with weights_only=True ({_refusal(err)})") from err
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: the pickle holds a {type(state).__name__}, not a state dict")
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor):
            yield name, tensor


def _refusal(err: Exception) -> str:
    """Why the safe loader refused a pickle, without torch's advice to retry with ``weights_only=False`` (which
    would run the code inside): the global it would have called, else the first line of the error."""
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text) or re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe:
        return f"it would call {unsafe.group(1)}, which is not part of a state dict; such a file is never loaded"
    first = next((line.strip() for line in text.splitlines() if line.strip()), err.__class__.__name__)
    return re.sub(r"\s*(Re-running|In PyTorch|Please file|WeightsUnpickler).*", "", first)[:300]
