"""A model's plan: which shard holds which stored tensor (name, dtype, shape), known from the index or the
safetensors headers (a few KB) before any weight is read, plus what decoders read besides the tensors
(``config.json``, ``adapter_config.json``). Which files are read is :mod:`.layout`'s decision, the same for every
source; :func:`plan_layout` turns it into a plan with the source's own way of reading an index and headers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .decoders.contract import ModelConfig, validate_model_config
from .decoders.lora import ADAPTER_CONFIG, validate_adapter_config
from .errors import UnsupportedWeights, WeightsError
from .layout import GGUF_SUFFIX, SAFETENSORS_SUFFIX, WeightLayout, weight_layout
from .readers import read_safetensors_header
from .tensors import TensorInfo

MODEL_CONFIG = "config.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")


@dataclass
class Shard:
    filename: str
    tensors: list[TensorInfo] = field(default_factory=list)
    size: int | None = None
    # A shard outside the model's own files (the base checkpoint of --merge-base): read from here, never deleted.
    location: Path | None = None
    fmt: str | None = None  # None: the plan's format
    # Tensors the index promised and the file's header lacks (known once the header is read): kept in ``tensors`` by
    # name, so that their matrices fail naming the file (ModelPlan.missing_tensor) instead of vanishing.
    missing: set[str] = field(default_factory=set)


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

    def missing_tensor(self, names: Iterable[str]) -> str | None:
        """Why a matrix made of the stored tensors ``names`` cannot be read, or None: the first of them an index
        promised and its shard's file lacks. The analysis fails that matrix with this reason; describe says so."""
        for name in names:
            for shard in self.shards:
                if name in shard.missing:
                    return f"{shard.filename}: stored tensor {name!r} is not in the file (the index promised it)"
        return None


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
    return validate_model_config(data, label)


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


def plan_layout(
    layout: WeightLayout,
    sizes: Mapping[str, int | None],
    read_index: Callable[[str], list[Shard]],
    read_headers: Callable[[list[str]], dict[str, list[TensorInfo]]],
) -> ModelPlan:
    """The plan of ``layout``, whatever the source: ``read_index(name)`` gives an index file's shards (in its
    order, tensor names only) and ``read_headers(filenames)`` each safetensors file's tensors (a file it leaves out
    keeps the index's view, and its tensors fail when it is read). Pickles and GGUF files are planned when opened;
    ``sizes`` are the files' sizes in bytes."""
    order = read_index(layout.index) if layout.index else None
    if layout.fmt == "safetensors":
        filenames = [s.filename for s in order] if order else list(layout.files)
        plan = plan_from_headers(read_headers(filenames), order)
    else:
        plan = ModelPlan(order if order is not None else [Shard(f) for f in layout.files], fmt=layout.fmt)
    plan.note = layout.note
    for shard in plan.shards:
        shard.size = sizes.get(shard.filename)
    return plan


def plan_from_headers(headers: dict[str, list[TensorInfo]], order: list[Shard] | None) -> ModelPlan:
    """A plan from per-file tensor lists, in index order when an index gave one."""
    if order:
        for shard in order:
            if shard.filename not in headers:
                continue  # its header could not be read: the index's view, failed when the file is read
            known = {t.name: t for t in headers[shard.filename]}
            shard.tensors = [known.get(t.name, t) for t in shard.tensors]
            shard.missing = {t.name for t in shard.tensors if t.name not in known}
        return ModelPlan(order)
    return ModelPlan([Shard(name, tensors) for name, tensors in headers.items()])


def list_model_files(folder: Path) -> dict[str, int | None]:
    """A local model folder's files as the hub lists a repo's: paths relative to the folder (``/``-separated) with
    their sizes (None for a link to nowhere, e.g. an incomplete cache entry). Hidden folders (``.git``, the
    client's ``.cache``) are bookkeeping, not the model's files."""
    files: dict[str, int | None] = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        relative = Path(root).relative_to(folder)
        for name in sorted(names):
            try:
                size: int | None = (Path(root) / name).stat().st_size
            except OSError:
                size = None
            files[(relative / name).as_posix()] = size
    return files


def plan_local(path: Path, gguf_file: str | None = None, allow_pickle: bool = True) -> tuple[Path, ModelPlan]:
    """Plan a local model: a single ``.safetensors`` / ``.bin`` / ``.gguf`` file, or a folder whose weight files
    :func:`flows.weights.layout.weight_layout` chooses (safetensors, else pickles when ``allow_pickle``, else one
    GGUF file: ``gguf_file`` or the one it picks; a PEFT adapter's ``adapter_model.*``). Returns (folder, plan)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: no such file or directory")
    if path.is_file():
        return path.parent, _single_file_plan(path, allow_pickle)
    config = read_model_config(path)
    files = list_model_files(path)
    layout = weight_layout(files, allow_pickle=allow_pickle, gguf_file=gguf_file, label=str(path))
    plan = plan_layout(
        layout,
        files,
        lambda name: _read_index(path / name),
        lambda names: _local_headers(path, names, keep_bad=layout.index is not None),
    )
    plan.config = config
    return path, plan


def _single_file_plan(path: Path, allow_pickle: bool) -> ModelPlan:
    config = read_model_config(path.parent)
    if path.suffix == SAFETENSORS_SUFFIX:
        return ModelPlan([Shard(path.name, read_safetensors_header(path), path.stat().st_size)], config=config)
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UnsupportedWeights(f"{path}: a pickled checkpoint, and --no-pickle forbids loading pickles")
        return ModelPlan([Shard(path.name, size=path.stat().st_size)], fmt="pickle", config=config)
    if path.suffix == GGUF_SUFFIX:
        # Planned when opened: a GGUF header (with its tokenizer) is read once, by the reader.
        return ModelPlan([Shard(path.name, size=path.stat().st_size)], fmt="gguf", config=config)
    raise WeightsError(f"{path}: not a .safetensors, .bin or .gguf weight file")


def _local_headers(folder: Path, filenames: list[str], keep_bad: bool) -> dict[str, list[TensorInfo]]:
    """Each local safetensors file's tensors. With ``keep_bad`` (an index named the files), a file whose header
    cannot be read is left out: its tensors keep the index's view and are reported failed when it is read."""
    headers = {}
    for filename in filenames:
        try:
            headers[filename] = read_safetensors_header(folder / filename)
        except WeightsError:
            if not keep_bad:
                raise
    return headers


def plan_merged(adapter: Path, base: Path) -> tuple[Path, ModelPlan]:
    """An adapter folder merged into a local base checkpoint (``--merge-base``): the adapter's shards, then the
    base's (read from the base folder). The base's ``config.json`` describes the merged model."""
    folder, adapter_plan = plan_local(adapter)
    if adapter_plan.config.adapter_config is None:
        raise WeightsError(f"{adapter}: --merge-base needs a PEFT adapter folder (with {ADAPTER_CONFIG})")
    return folder, merge_plans(adapter_plan, base)


def merge_plans(adapter_plan: ModelPlan, base: Path, allow_pickle: bool = True) -> ModelPlan:
    """``adapter_plan`` followed by the shards of the local base checkpoint ``base`` (its pickles refused, as
    :class:`UnsupportedWeights`, unless ``allow_pickle``)."""
    base_folder, base_plan = plan_local(base, allow_pickle=allow_pickle)
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
        raise WeightsError(f"{label}: no weight_map in the index") from err
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


def _read_index(index_path: Path) -> list[Shard]:
    try:
        index = json.loads(index_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{index_path}: unreadable index ({err})") from err
    return shards_from_index(index, str(index_path))
