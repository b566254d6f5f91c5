"""``wwhub analyze --describe``: every layer an analysis would cover, from the plan alone (no eigenvalue computed).

:func:`plan_layers` is the one place that turns a plan into the layers wwhub analyzes (today: each stored tensor
of 2 or more dimensions, in plan order); selection, describe and distances all read layers through it.
"""

from __future__ import annotations

from pathlib import Path

import ww_core
from ww_core.describe import LayerDescription, describe_layer
from ww_core.matrices import layer_type_for

from .selection import LayerInfo, LayerSelection
from .weights import ModelPlan, TensorInfo, iter_shard_tensors

# safetensors dtypes that hold floats (fp8 codes are upcast exactly; scaled fp8 is the decoding step's business).
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def plan_layers(plan: ModelPlan) -> list[tuple[LayerInfo, TensorInfo]]:
    """The layers of a planned model, in layer order, with the stored tensor each one is."""
    ids = plan.layer_ids()
    return [
        (LayerInfo(ids[info.name], info.name, layer_type_for(info.name, len(info.shape))), info)
        for shard in plan.shards
        for info in shard.tensors
        if info.name in ids
    ]


def _pickle_tensors(folder: Path, plan: ModelPlan) -> list[TensorInfo]:
    """A pickle has no header: its tensors' shapes and dtypes come from loading it (memory-mapped, weights_only)."""
    infos = []
    for shard in plan.shards:
        for name, tensor in iter_shard_tensors(folder / shard.filename, None, plan.fmt):
            infos.append(TensorInfo(name, str(tensor.dtype).removeprefix("torch."), tuple(tensor.shape)))
    return infos


def describe_plan(
    plan: ModelPlan, options: dict, selection: LayerSelection | None = None, folder: Path | None = None
) -> list[LayerDescription]:
    """One description per selected layer. ``options`` are analysis options (``min_evals``, ``max_evals``, ``pool``).

    A pickled model (no headers) is described from its loaded tensors, which needs ``folder``."""
    opts = ww_core.AnalysisOptions.from_kwargs(**options)
    if plan.fmt == "pickle":
        infos = _pickle_tensors(folder, plan)
        layers = [
            (LayerInfo(position, info.name, layer_type_for(info.name, len(info.shape))), info)
            for position, info in enumerate(i for i in infos if len(i.shape) >= 2)
        ]
        is_float = {info.name: info.dtype.startswith(("float", "bfloat")) for info in infos}
    else:
        layers = plan_layers(plan)
        is_float = {info.name: info.dtype in FLOAT_DTYPES for _, info in layers}
    chosen = {layer.name for layer in (selection or LayerSelection()).select([layer for layer, _ in layers])}
    return [
        describe_layer(layer.layer_id, info.name, info.shape, info.dtype, is_float[info.name], opts)
        for layer, info in layers
        if selection is None or selection.is_all or layer.name in chosen
    ]
