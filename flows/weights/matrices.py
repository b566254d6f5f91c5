"""The decoding pipeline: a model's stored tensors (its plan) → its logical matrices in depth order, then, shard by
shard, which matrices a shard completes and the arrays they need.

Decoders run in a fixed order, each claiming from what the earlier ones left (see :mod:`.decoders.contract`):

1. the quantized schemes (:data:`flows.weights.decoders.quant.DECODERS`);
2. MXFP4 experts (:mod:`.decoders.quant.mxfp4`), fused float experts (:mod:`.decoders.moe`), LoRA adapters
   (:mod:`.decoders.lora`);
3. buffers and scalars (:mod:`.buffers`): claimed and dropped;
4. the plain path (:mod:`.decoders.plain`): any float tensor of 2+ dimensions is its own matrix; leftover quantized
   modules are one ``skipped`` row each.

Adding a scheme is one module and one line in :data:`DECODERS`. Everything here works on names, dtypes and shapes;
no weight is read until :class:`MatrixStream` hands a shard's arrays to a spec's ``decode``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .buffers import Buffers
from .decoders.contract import Claim, Decoder, MatrixSpec, ModelConfig
from .decoders.lora import LoraAdapter, merge_adapter, module_name
from .decoders.moe import FusedExperts
from .decoders.plain import Plain
from .decoders.quant import DECODERS as QUANT_DECODERS
from .decoders.quant.mxfp4 import Mxfp4Experts
from .depth import depth_keys
from .plan import ModelPlan
from .tensors import READABLE_DTYPES, TensorInfo


class GgufTensors:
    """GGUF's decoder (:class:`flows.weights.decoders.gguf.GGUFDecoder`: GGML quantized types, fused ``*_exps``
    experts),
    offered only tensors that can be GGUF's, so that a safetensors model never pays for importing ``gguf``."""

    name = "gguf"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        candidates = {
            name: info
            for name, info in tensors.items()
            if (info.dtype and info.dtype not in READABLE_DTYPES) or name.endswith("_exps.weight")
        }
        if not candidates:
            return Claim()
        from .decoders.gguf import GGUFDecoder

        return GGUFDecoder().claim(candidates, config)


# After the quantized schemes (which may dequantize fused experts themselves); Plain is always last.
DECODERS: list[Decoder] = [GgufTensors(), Mxfp4Experts(), FusedExperts(), LoraAdapter(), Buffers()]

MODEL_KIND_MODEL = "model"
MODEL_KIND_ADAPTER = "adapter"
MODEL_KIND_MERGED = "merged"


def all_decoders() -> list[Decoder]:
    return [*QUANT_DECODERS, *DECODERS, Plain()]


def _run_decoders(tensors: Sequence[TensorInfo], config: ModelConfig) -> tuple[list[MatrixSpec], int]:
    remaining = {t.name: t for t in tensors}
    specs: list[MatrixSpec] = []
    params = 0
    for decoder in all_decoders():
        claim = decoder.claim(MappingProxyType(dict(remaining)), config)
        taken = set(claim.consumed).union(*(spec.sources for spec in claim.matrices))
        stray = taken - remaining.keys()
        if stray:
            raise ValueError(f"decoder {decoder.name!r} claimed tensors it was not offered: {sorted(stray)[:3]}")
        for name in taken:
            del remaining[name]
        specs += claim.matrices
        if claim.num_params is None:
            params += sum(math.prod(spec.shape) for spec in claim.matrices if spec.shape)
        else:
            params += claim.num_params
    return specs, params


@dataclass
class Decoding:
    """A model's logical matrices, in depth order, known before any weight is read."""

    specs: list[MatrixSpec]
    num_params: int
    model_kind: str = MODEL_KIND_MODEL
    layer_ids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layer_ids = {spec.name: index for index, spec in enumerate(self.specs)}
        self.by_name = {spec.name: spec for spec in self.specs}

    @property
    def quantization(self) -> str:
        """The schemes seen, comma-separated ('' for a plain model)."""
        return ",".join(sorted({spec.quantization for spec in self.specs if spec.quantization}))


def _in_depth_order(specs: list[MatrixSpec], positions: Mapping[str, int]) -> list[MatrixSpec]:
    # Plan order first (so that words the depth vocabulary does not know keep the order the model stores them
    # in), then depth order; names are made unique in case two decoders chose the same one.
    ordered = sorted(specs, key=lambda s: min((positions.get(n, len(positions)) for n in s.sources), default=0))
    seen: set[str] = set()
    for spec in ordered:
        if spec.name in seen:
            spec.name = f"{spec.name} ({spec.sources[0]})"
        seen.add(spec.name)
    keys = depth_keys([spec.name for spec in ordered])
    return sorted(ordered, key=lambda s: keys[s.name])


def plan_matrices(
    tensors: Sequence[TensorInfo],
    config: ModelConfig,
    adapter_tensors: Sequence[TensorInfo] | None = None,
) -> Decoding:
    """The logical matrices of a model whose stored tensors are ``tensors`` (in plan order).

    With ``adapter_tensors`` (and ``config.adapter_config``), ``tensors`` are a base checkpoint's and the result is
    the merged model: W + ΔW for every adapted module (see :func:`flows.weights.decoders.lora.merge_adapter`)."""
    positions = {t.name: i for i, t in enumerate([*tensors, *(adapter_tensors or ())])}
    if adapter_tensors is None:
        specs, params = _run_decoders(tensors, config)
        if config.adapter_config is None:
            return Decoding(_in_depth_order(specs, positions), params, MODEL_KIND_MODEL)
        for spec in specs:
            # A full weight an adapter stores (modules_to_save) is named as in the base model, like its ΔW rows.
            spec.name = module_name(spec.name)
        return Decoding(_in_depth_order(specs, positions), params, MODEL_KIND_ADAPTER)
    overlap = {t.name for t in tensors} & {t.name for t in adapter_tensors}
    if overlap:
        raise ValueError(f"the adapter and its base both store {sorted(overlap)[:3]}: cannot merge them")
    base_specs, params = _run_decoders(tensors, ModelConfig(config.config))
    adapter_specs, _ = _run_decoders(adapter_tensors, config)
    merged = merge_adapter(base_specs, adapter_specs)
    return Decoding(_in_depth_order(merged, positions), params, MODEL_KIND_MERGED)


def plan_model(plan: ModelPlan) -> Decoding:
    """:func:`plan_matrices` over a plan's shards (base and adapter shards apart when merging)."""
    if not plan.merge:
        return plan_matrices([t for shard in plan.shards for t in shard.tensors], plan.config)
    base = [t for shard in plan.shards if shard.location is not None for t in shard.tensors]
    adapter = [t for shard in plan.shards if shard.location is None for t in shard.tensors]
    return plan_matrices(base, plan.config, adapter)


def spec_columns(spec: MatrixSpec | None) -> dict:
    """The lake's per-layer decoding columns of a row's spec."""
    if spec is None:
        return {"expert": None, "quantization": "", "source_tensors": ""}
    return {"expert": spec.expert, "quantization": spec.quantization, "source_tensors": ",".join(spec.sources)}


def skip_counts(reasons: Sequence[str]) -> str:
    """JSON ``{reason: count}`` of the skipped rows' reasons, most frequent first."""
    return json.dumps(dict(Counter(reasons).most_common()))


class MatrixStream:
    """Streams a planned model shard by shard: which matrices each shard completes (a matrix is decoded when every
    stored tensor it needs has been read) and the arrays from earlier shards kept for matrices completed later.

    A shard whose tensors were not known when planning (a pickle, or an index entry whose header could not be read)
    is planned when it is opened (:meth:`reveal`); names of matrices already produced stay valid."""

    def __init__(self, plan: ModelPlan):
        self.plan = plan
        self.done: set[str] = set()
        self.kept: dict[str, np.ndarray] = {}
        self._replan()

    def _replan(self) -> None:
        self.decoding = plan_model(self.plan)
        shard_of = {t.name: index for index, shard in enumerate(self.plan.shards) for t in shard.tensors}
        self.completes: dict[int, list[MatrixSpec]] = {}
        self.orphans: list[MatrixSpec] = []  # a source in no shard: never complete
        self.needed_after: dict[str, int] = {}  # stored tensor → last shard whose matrices need it
        for spec in self.decoding.specs:
            shards = [shard_of.get(name) for name in spec.sources]
            if any(s is None for s in shards):
                self.orphans.append(spec)
                continue
            last = max(shards, default=0)
            self.completes.setdefault(last, []).append(spec)
            for name in spec.sources:
                self.needed_after[name] = max(self.needed_after.get(name, -1), last)

    @staticmethod
    def unknown(shard) -> bool:
        return not shard.tensors or any(t.dtype == "" for t in shard.tensors)

    def reveal(self, index: int, infos: list[TensorInfo]) -> None:
        """The tensors shard ``index`` really holds, learned when it was opened: plan the model again. A tensor the
        index promised and the file lacks stays planned by name, so that its matrix fails naming the file instead of
        vanishing from the model."""
        shard = self.plan.shards[index]
        held = {info.name for info in infos}
        promised = [info for info in shard.tensors if info.name not in held]
        shard.tensors = [*infos, *promised]
        shard.missing = {info.name for info in promised}
        self._replan()

    def ready(self, index: int) -> list[MatrixSpec]:
        """The matrices shard ``index`` completes that are not produced yet, in depth order."""
        return [spec for spec in self.completes.get(index, []) if spec.name not in self.done]

    def pending(self, index: int) -> list[MatrixSpec]:
        """Matrices not produced yet that need a tensor of shard ``index`` (what its failure takes down)."""
        names = {t.name for t in self.plan.shards[index].tensors}
        return [s for s in self.decoding.specs if s.name not in self.done and names.intersection(s.sources)]

    def arrays(self, spec: MatrixSpec, reader) -> dict[str, np.ndarray]:
        return {name: self.kept[name] if name in self.kept else reader.array(name) for name in spec.sources}

    def end_shard(self, index: int, reader) -> None:
        """Keep (as in-memory copies, so the shard's file can go) the arrays a later shard's matrices need. A tensor
        the index promised and the file lacks (``Shard.missing``) is not read: the matrix that needs it fails alone
        with :meth:`ModelPlan.missing_tensor`'s reason when its last shard is read."""
        shard = self.plan.shards[index]
        for info in shard.tensors:
            if info.name in shard.missing:
                continue
            if self.needed_after.get(info.name, -1) > index and info.name not in self.kept:
                self.kept[info.name] = np.array(reader.array(info.name))
        for name in [n for n in self.kept if self.needed_after.get(n, -1) <= index]:
            del self.kept[name]
