"""Read model weights from local files, one shard at a time, without trusting them.

A *plan* lists a model's shards and the tensors each one holds, read from ``model.safetensors.index.json`` or the
safetensors headers alone (a few KB), before any weight is loaded. Shards are then opened one at a time and their
tensors yielded lazily, so a caller holds at most one tensor (plus the memory map of one shard).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
# safetensors caps headers at 100 MB; anything larger is a corrupt length prefix.
_MAX_HEADER_BYTES = 100_000_000
# Integer dtypes in a weight file are quantized blocks (packed int4/int8 plus scales) or index buffers.
INTEGER_DTYPES = {"I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL"}


class WeightsError(Exception):
    """A weight file is missing, corrupt or truncated. The message names the file."""


class UnsupportedWeights(WeightsError):
    """The model has weights, but none that may be analyzed as asked (e.g. only pickles and --no-pickle)."""


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass
class Shard:
    filename: str
    tensors: list[TensorInfo] = field(default_factory=list)
    size: int | None = None


@dataclass
class ModelPlan:
    """Which shard holds which tensor, in layer order, known before any weight is read."""

    shards: list[Shard]
    fmt: str = "safetensors"  # or "pickle"

    @property
    def tensor_names(self) -> list[str]:
        return [t.name for shard in self.shards for t in shard.tensors]

    def layer_ids(self) -> dict[str, int]:
        """Layer ids in plan order over tensors that are layers (2-D or more), as ww_core numbers them."""
        ids: dict[str, int] = {}
        for shard in self.shards:
            for info in shard.tensors:
                if len(info.shape) >= 2:
                    ids[info.name] = len(ids)
        return ids


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


def plan_local(path: Path) -> tuple[Path, ModelPlan]:
    """Plan a local model: a folder of ``*.safetensors`` (ordered by the index when present), a single
    ``.safetensors`` file, or, when no safetensors exist, ``pytorch_model*.bin`` pickles. Returns (folder, plan)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix == ".safetensors":
            return path.parent, ModelPlan([Shard(path.name, read_safetensors_header(path), path.stat().st_size)])
        if path.suffix in (".bin", ".pt", ".pth"):
            return path.parent, ModelPlan([Shard(path.name, size=path.stat().st_size)], fmt="pickle")
        raise WeightsError(f"{path}: not a .safetensors or .bin weight file")
    index = path / SAFETENSORS_INDEX
    if index.exists():
        return path, ModelPlan(_plan_from_index(index, path))
    files = sorted(p for p in path.glob("*.safetensors"))
    if files:
        return path, ModelPlan([Shard(f.name, read_safetensors_header(f), f.stat().st_size) for f in files])
    pickles = sorted(path.glob("pytorch_model*.bin"))
    if pickles:
        return path, ModelPlan([Shard(f.name, size=f.stat().st_size) for f in pickles], fmt="pickle")
    raise WeightsError(f"{path}: no *.safetensors or pytorch_model*.bin weights in this folder")


def shards_from_index(index: dict, label: str) -> list[Shard]:
    """Shards in order of first appearance in the index's ``weight_map``, each with its tensor names."""
    try:
        weight_map = index["weight_map"]
        items = list(weight_map.items())
    except (KeyError, TypeError, AttributeError) as err:
        raise WeightsError(f"{label}: no weight_map in the safetensors index") from err
    shards: dict[str, Shard] = {}
    for name, filename in items:
        shards.setdefault(filename, Shard(filename)).tensors.append(TensorInfo(name, "", ()))
    return list(shards.values())


def _plan_from_index(index_path: Path, folder: Path) -> list[Shard]:
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"{index_path}: unreadable index ({err})") from err
    shards = shards_from_index(index, str(index_path))
    for shard in shards:
        shard_path = folder / shard.filename
        try:
            header = {t.name: t for t in read_safetensors_header(shard_path)}
            shard.size = shard_path.stat().st_size
        except WeightsError:
            # Keep the index's view of a bad shard: its tensors are reported failed when the shard is read.
            continue
        shard.tensors = [header.get(t.name, t) for t in shard.tensors]
    return shards


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
