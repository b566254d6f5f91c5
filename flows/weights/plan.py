"""A model's plan: which shard holds which stored tensor (name, dtype, shape), known from the index or the
safetensors headers (a few KB) before any weight is read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import WeightsError
from .readers import TensorInfo, read_safetensors_header

SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
# Integer dtypes in a weight file are quantized blocks (packed int4/int8 plus scales) or index buffers.
INTEGER_DTYPES = {"I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL"}


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
        shard_filename(filename, label)
        shards.setdefault(filename, Shard(filename)).tensors.append(TensorInfo(str(name), "", ()))
    return list(shards.values())


def shard_filename(filename: object, label: str) -> str:
    """A shard file name from an index: a relative path inside the model folder (an index is data from the
    network or a download; ``../../x.safetensors`` or ``/etc/x`` must never become a path). Raises WeightsError."""
    parts = filename.split("/") if isinstance(filename, str) else []
    if not parts or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts) or len(filename) > 1000:
        raise WeightsError(f"{label}: weight_map names {str(filename)[:200]!r}, not a file inside the model folder")
    return filename


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


def quantized_reason(plan: ModelPlan) -> str | None:
    """Why a model is quantized (packed integer weights next to their scales or zero points), or None.

    Integer tensors alone are not enough: index buffers such as ``position_ids`` are integers too."""
    names = {t.name for shard in plan.shards for t in shard.tensors}
    packed = [t for shard in plan.shards for t in shard.tensors if t.dtype in INTEGER_DTYPES and len(t.shape) >= 2]
    scaled = [t for t in packed if any(t.name.rsplit(".", 1)[0] + suffix in names for suffix in _QUANT_SIDECARS)]
    if scaled:
        return (
            f"quantized weights ({len(scaled)} packed {scaled[0].dtype} tensors with scales, "
            f"e.g. {scaled[0].name}): not analyzable as float matrices"
        )
    return None


_QUANT_SIDECARS = (".scales", ".qzeros", ".SCB", ".weight_scale", ".g_idx", ".absmax")
