"""``wwhub smooth`` / ``wwhub sharpen``: write a transformed copy of a safetensors checkpoint, never touching it.

The copy has the same files, tensor names, dtypes, shapes, file order and ``__metadata__``, so the index (copied
as is) still holds. Tensors are read and written one at a time: each output shard's header is known from the
input's before any weight is read, so every tensor streams straight into its place. A transformed layer is cast
back to its stored dtype (bf16/fp16 checkpoints round the smoothed matrix as they rounded the original). The copy
is assembled in a hidden folder beside ``out`` and renamed into place when complete: a failure leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

from ww_core.smoothing import LayerTransform

from .describe import plan_layers
from .selection import LayerSelection
from .weights import WeightsError, plan_local, read_safetensors_header

Transform = Callable[[str, object], tuple[object, LayerTransform]]


def _tensor_bytes(tensor) -> bytes:
    """The stored bytes of a tensor (torch or numpy, any dtype, little-endian as safetensors stores them)."""
    if hasattr(tensor, "numpy") and tensor.__class__.__module__.startswith("torch"):
        import torch

        return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return tensor.tobytes()


def _cast_like(array, like):
    """A float64 result in the dtype of the stored tensor it replaces."""
    if like.__class__.__module__.startswith("torch"):
        import torch

        return torch.from_numpy(array).to(like.dtype)
    return array.astype(like.dtype)


def _header(metadata: dict | None, tensors: list[tuple[str, str, tuple, int]]) -> bytes:
    """A safetensors header: tensors in file order with contiguous offsets, padded with spaces to 8 bytes."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, dtype, shape, size in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


_ITEM_SIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}


def _transform_shard(
    source: Path,
    target: Path,
    transform: Transform,
    selection: LayerSelection,
    layer_ids: dict[str, int],
    on_layer: Callable[[str], None] | None,
) -> list[LayerTransform]:
    from safetensors import SafetensorError, safe_open

    infos = read_safetensors_header(source)
    rows = []
    try:
        with safe_open(str(source), framework="pt") as handle, open(target, "wb") as out:
            sizes = [(i.name, i.dtype, i.shape, _ITEM_SIZE.get(i.dtype, 1) * _count(i.shape)) for i in infos]
            out.write(_header(handle.metadata(), sizes))
            for info, (_, _, _, size) in zip(infos, sizes, strict=True):
                tensor = handle.get_tensor(info.name)
                if len(info.shape) >= 2 and selection.keeps(info, layer_ids):
                    result, row = transform(info.name, tensor)
                    rows.append(row)
                    if result is not None:
                        tensor = _cast_like(result, tensor)
                    if on_layer is not None:
                        on_layer(info.name)
                data = _tensor_bytes(tensor)
                if len(data) != size:
                    raise WeightsError(f"{source}: {info.name}: {info.dtype} is not a dtype this copy can write")
                out.write(data)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise WeightsError(f"{source}: cannot read tensors ({err})") from err
    return rows


def _count(shape: tuple) -> int:
    total = 1
    for d in shape:
        total *= int(d)
    return total


def transform_checkpoint(
    path: Path,
    out: Path,
    transform: Transform,
    selection: LayerSelection | None = None,
    on_layer: Callable[[str], None] | None = None,
) -> list[LayerTransform]:
    """Write the transformed copy of the checkpoint at ``path`` (folder or ``.safetensors`` file) to the folder
    ``out``, which must not exist yet (or be empty). Raises :class:`WeightsError` for bad input; nothing is written
    then."""
    folder, plan = plan_local(Path(path))
    if plan.fmt != "safetensors":
        raise WeightsError(f"{path}: smoothing writes safetensors and reads them: this checkpoint is pickled .bin")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WeightsError(f"{out}: exists and is not an empty folder (the copy needs a new folder)")
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        raise WeightsError(f"{out}: inside the input folder {folder}; write the copy elsewhere")
    selection = selection or LayerSelection()
    selection.select(layer for layer, _ in plan_layers(plan))  # an empty selection is an error, before writing
    layer_ids = plan.layer_ids()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        rows = []
        shard_names = {shard.filename for shard in plan.shards}
        for shard in plan.shards:
            rows += _transform_shard(
                folder / shard.filename, staging / shard.filename, transform, selection, layer_ids, on_layer
            )
        if Path(path).is_dir():
            # Config, tokenizer, card, index and subfolders (e.g. sentence-transformers' pooling) come along.
            for other in sorted(p for p in folder.iterdir() if p.name not in shard_names):
                if other.is_dir():
                    shutil.copytree(other, staging / other.name)
                else:
                    shutil.copy2(other, staging / other.name)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows
