"""``wwhub smooth`` / ``wwhub sharpen``: write a transformed copy of a safetensors checkpoint, never touching it.

The copy has the same files, tensor names, dtypes, shapes, file order and ``__metadata__``, so the index (copied
as is) still holds. Tensors are read and written one at a time: each output shard's header is known from the
input's before any weight is read, so every tensor streams straight into its place. A transformed layer is cast
back to its stored dtype (bf16/fp16 checkpoints round the smoothed matrix as they rounded the original). The copy
is assembled in a hidden folder beside ``out`` and renamed into place when complete: a failure leaves nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ww_core.smoothing import LayerTransform

from ..weights import WeightsError, open_shard, plan_local
from ..weights.tensors import READABLE_DTYPES, numpy_dtype
from .describe import plan_layers
from .selection import LayerSelection

Transform = Callable[[str, np.ndarray], tuple[np.ndarray | None, LayerTransform]]


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


def _metadata(path: Path) -> dict | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            return handle.metadata()
    except (SafetensorError, OSError) as err:
        raise WeightsError(f"{path}: cannot read the header's metadata ({err})") from err


def _transform_shard(
    source: Path, target: Path, transform: Transform, targets: set[str], on_layer: Callable[[str], None] | None
) -> list[LayerTransform]:
    reader = open_shard(source)
    rows = []
    try:
        infos = reader.infos()
        unknown = [i for i in infos if i.dtype not in READABLE_DTYPES]
        if unknown:
            raise WeightsError(
                f"{source}: {unknown[0].name} has dtype {unknown[0].dtype}, which this copy cannot write"
            )
        sizes = [(i.name, i.dtype, i.shape, numpy_dtype(i.dtype).itemsize * math.prod(i.shape)) for i in infos]
        with open(target, "wb") as out:
            out.write(_header(_metadata(source), sizes))
            for info in infos:
                array = reader.array(info.name)
                if info.name in targets:
                    result, row = transform(info.name, array)
                    rows.append(row)
                    if result is not None:
                        # Rounded to the stored dtype (ml_dtypes for bf16/fp8), as the original was.
                        array = result.astype(array.dtype)
                    if on_layer is not None:
                        on_layer(info.name)
                out.write(np.ascontiguousarray(array).tobytes())
                reader.evict(info.name)
    finally:
        reader.close()
    return rows


def _plain_layers(plan, selection: LayerSelection) -> set[str]:
    """The selected stored tensors that are their own matrix: what a transform rewrites. Quantized, fused and
    adapter tensors (whose matrices are decoded from several stored ones) are copied as they are."""
    return {
        spec.name
        for layer, spec in plan_layers(plan)
        if spec.sources == (spec.name,) and not spec.quantization and spec.skip_reason is None
        if selection.matches(layer)
    }


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
    targets = _plain_layers(plan, selection)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        rows = []
        shard_names = {shard.filename for shard in plan.shards}
        for shard in plan.shards:
            rows += _transform_shard(folder / shard.filename, staging / shard.filename, transform, targets, on_layer)
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
