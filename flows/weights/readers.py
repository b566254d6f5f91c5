"""Read stored tensors from local files, one shard at a time, without trusting them.

Shards are opened one at a time and their tensors yielded lazily, so a caller holds at most one tensor (plus the
memory map of one shard).
"""

from __future__ import annotations

import json
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


# safetensors caps headers at 100 MB; anything larger is a corrupt length prefix.
_MAX_HEADER_BYTES = 100_000_000


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
            begin, end = (int(v) for v in meta["data_offsets"])
            located.append((begin, TensorInfo(name, str(meta["dtype"]), tuple(int(d) for d in meta["shape"]))))
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(f"{label}: corrupt safetensors header entry for {name!r}") from err
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
            if length > _MAX_HEADER_BYTES or length > size - 8:
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
        raise WeightsError(f"{path}: cannot load the pickle safely with weights_only=True ({err})") from err
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: the pickle holds a {type(state).__name__}, not a state dict")
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor):
            yield name, tensor
