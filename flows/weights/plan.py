"""A model's plan: which shard holds which stored tensor (name, dtype, shape), known from the index or the
safetensors headers (a few KB) before any weight is read, plus what decoders read besides the tensors
(``config.json``, ``adapter_config.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .decoding import ModelConfig
from .errors import WeightsError
from .lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, validate_adapter_config
from .readers import TensorInfo, gguf_support, read_safetensors_header

SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_INDEX = "pytorch_model.bin.index.json"
MODEL_CONFIG = "config.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
GGUF_SUFFIX = ".gguf"


@dataclass
class Shard:
    filename: str
    tensors: list[TensorInfo] = field(default_factory=list)
    size: int | None = None
    # A shard outside the model's own files (the base checkpoint of --merge-base): read from here, never deleted.
    location: Path | None = None
    fmt: str | None = None  # None: the plan's format


@dataclass
class ModelPlan:
    """Which shard holds which tensor, known before any weight is read, and the model's configs."""

    shards: list[Shard]
    fmt: str = "safetensors"  # or "pickle", "gguf"
    config: ModelConfig = field(default_factory=ModelConfig)
    merge: bool = False  # adapter shards (own files) merged into base shards (with a location)
    note: str = ""  # what the user should know about the plan (e.g. which GGUF file of a repo is analyzed)

    @property
    def tensor_names(self) -> list[str]:
        return [t.name for shard in self.shards for t in shard.tensors]

    def shard_format(self, shard: Shard) -> str:
        return shard.fmt or self.fmt


def parse_model_config(text: str | None, label: str) -> dict:
    """``config.json`` as a dict ({} when absent). Raises WeightsError naming ``label`` when it is not JSON."""
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise WeightsError(f"{label}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise WeightsError(f"{label}: expected a JSON object")
    return data


def parse_adapter_config(text: str | None, label: str) -> dict | None:
    """``adapter_config.json`` validated (None when absent). Raises WeightsError naming ``label``."""
    if text is None:
        return None
    return validate_adapter_config(parse_model_config(text, label), label)


def read_model_config(folder: Path) -> ModelConfig:
    """``config.json`` and ``adapter_config.json`` of a local model folder."""

    def text(name: str) -> str | None:
        path = folder / name
        return path.read_text(errors="replace") if path.is_file() else None

    return ModelConfig(
        parse_model_config(text(MODEL_CONFIG), str(folder / MODEL_CONFIG)),
        parse_adapter_config(text(ADAPTER_CONFIG), str(folder / ADAPTER_CONFIG)),
    )


def _local_shard(path: Path) -> Shard:
    return Shard(path.name, read_safetensors_header(path), path.stat().st_size)


def plan_local(path: Path, gguf_file: str | None = None) -> tuple[Path, ModelPlan]:
    """Plan a local model: a folder of ``*.safetensors`` (ordered by the index when present), a single
    ``.safetensors`` / ``.bin`` / ``.gguf`` file, or, when no safetensors exist, ``pytorch_model*.bin`` pickles, else
    one of its GGUF files (``gguf_file``, or the one :func:`gguf_plan` picks); a folder with ``adapter_config.json``
    is a PEFT adapter (its ``adapter_model.*``). Returns (folder, plan)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file or directory")
    if path.is_file():
        config = read_model_config(path.parent)
        if path.suffix == ".safetensors":
            return path.parent, ModelPlan([_local_shard(path)], config=config)
        if path.suffix in PICKLE_SUFFIXES:
            return path.parent, ModelPlan([Shard(path.name, size=path.stat().st_size)], fmt="pickle", config=config)
        if path.suffix == GGUF_SUFFIX:
            # Planned when opened: a GGUF header (with its tokenizer) is read once, by the reader.
            return path.parent, ModelPlan([Shard(path.name, size=path.stat().st_size)], fmt="gguf", config=config)
        raise WeightsError(f"{path}: not a .safetensors, .bin or .gguf weight file")
    config = read_model_config(path)
    if config.adapter_config is not None:
        return path, _adapter_plan(path, config)
    index = path / SAFETENSORS_INDEX
    if index.exists():
        return path, ModelPlan(_plan_from_index(index, path), config=config)
    files = sorted(p for p in path.glob("*.safetensors"))
    if files:
        return path, ModelPlan([_local_shard(f) for f in files], config=config)
    pickles = sorted(path.glob("pytorch_model*.bin"))
    if pickles:
        return path, ModelPlan([Shard(f.name, size=f.stat().st_size) for f in pickles], fmt="pickle", config=config)
    ggufs = {f.name: f.stat().st_size for f in sorted(path.glob(f"*{GGUF_SUFFIX}"))}
    if ggufs:
        plan = gguf_plan(ggufs, gguf_file, str(path))
        plan.config = config
        return path, plan
    raise WeightsError(f"{path}: no *.safetensors, pytorch_model*.bin or *.gguf weights in this folder")


def gguf_plan(files: dict[str, int | None], chosen: str | None, label: str) -> ModelPlan:
    """A GGUF-only model: one file of ``files`` (name → size), ``chosen`` or the one flows.weights.gguf picks (the
    largest non-split file of at most 8 bits per weight), planned when opened; the plan's note says which."""
    gguf = gguf_support(label)
    name = gguf.choose_gguf_file(files, chosen)
    note = f"analyzed {name} ({'chosen' if chosen else 'picked'} among {len(files)} GGUF files)"
    return ModelPlan([Shard(name, size=files.get(name))], fmt="gguf", note=note)


def _adapter_plan(folder: Path, config: ModelConfig) -> ModelPlan:
    for filename in ADAPTER_WEIGHTS:
        weights = folder / filename
        if weights.is_file():
            if weights.suffix == ".safetensors":
                return ModelPlan([_local_shard(weights)], config=config)
            return ModelPlan([Shard(filename, size=weights.stat().st_size)], fmt="pickle", config=config)
    raise WeightsError(f"{folder}: {ADAPTER_CONFIG} but no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")


def plan_merged(adapter: Path, base: Path) -> tuple[Path, ModelPlan]:
    """An adapter folder merged into a local base checkpoint (``--merge-base``): the adapter's shards, then the
    base's (read from the base folder). The base's ``config.json`` describes the merged model."""
    folder, adapter_plan = plan_local(adapter)
    if adapter_plan.config.adapter_config is None:
        raise WeightsError(f"{adapter}: --merge-base needs a PEFT adapter folder (with {ADAPTER_CONFIG})")
    return folder, merge_plans(adapter_plan, base)


def merge_plans(adapter_plan: ModelPlan, base: Path) -> ModelPlan:
    """``adapter_plan`` followed by the shards of the local base checkpoint ``base``."""
    base_folder, base_plan = plan_local(base)
    if base_plan.config.adapter_config is not None:
        raise WeightsError(f"{base}: --merge-base must name a full model, not another adapter")
    for shard in base_plan.shards:
        shard.location = (base_folder / shard.filename).resolve()
        shard.fmt = base_plan.fmt
    config = ModelConfig(base_plan.config.config or adapter_plan.config.config, adapter_plan.config.adapter_config)
    for shard in adapter_plan.shards:
        shard.fmt = adapter_plan.fmt
    return ModelPlan(adapter_plan.shards + base_plan.shards, adapter_plan.fmt, config, merge=True)


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
