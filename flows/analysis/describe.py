"""``wwhub analyze --describe``: every layer an analysis would cover, from the plan alone (no eigenvalue computed).

:func:`plan_layers` is the one place that turns a plan into the layers wwhub analyzes: the logical matrices of the
decoding pipeline (:func:`flows.weights.plan_model`: fused experts split, quantized weights to be dequantized,
buffers dropped), in depth order. Selection, describe, distances and smoothing all read layers through it.
"""

from __future__ import annotations

from pathlib import Path

import ww_core
from ww_core.describe import STATUS_FAIL, STATUS_SKIP, LayerDescription, describe_layer
from ww_core.matrices import layer_type_for

from ..weights import MatrixSpec, MatrixStream, ModelPlan, open_shard, plan_model
from .selection import LayerInfo, LayerSelection


def layer_info(layer_id: int, spec: MatrixSpec) -> LayerInfo:
    return LayerInfo(layer_id, spec.name, spec.layer_type or layer_type_for(spec.name, len(spec.shape)), spec.expert)


def plan_layers(plan: ModelPlan) -> list[tuple[LayerInfo, MatrixSpec]]:
    """The layers (logical matrices) of a planned model, in depth order, each with its decoding spec."""
    decoding = plan_model(plan)
    return [(layer_info(decoding.layer_ids[spec.name], spec), spec) for spec in decoding.specs]


def reveal_local(folder: Path, plan: ModelPlan) -> None:
    """Open the local shards whose tensors the plan does not know yet (pickles have no header) to learn them."""
    for shard in plan.shards:
        # An unknown safetensors shard is one whose header could not be read: left for the analysis to report.
        if MatrixStream.unknown(shard) and plan.shard_format(shard) != "safetensors":
            reader = open_shard(shard.location or folder / shard.filename, plan.shard_format(shard))
            try:
                shard.tensors = list(reader.infos())
            finally:
                reader.close()


def describe_plan(
    plan: ModelPlan, options: dict, selection: LayerSelection | None = None, folder: Path | None = None
) -> list[LayerDescription]:
    """One description per selected layer. ``options`` are analysis options (``min_evals``, ``max_evals``, ``pool``).
    Shards the plan does not know (pickles) are opened to learn their tensors, which needs ``folder``."""
    opts = ww_core.AnalysisOptions.from_kwargs(**options)
    if folder is not None:
        reveal_local(folder, plan)
    layers = plan_layers(plan)
    selection = selection or LayerSelection()
    chosen = {layer.name for layer in selection.select(layer for layer, _ in layers)}
    dtypes = {t.name: t.dtype for shard in plan.shards for t in shard.tensors}
    rows = []
    for layer, spec in layers:
        if layer.name not in chosen:
            continue
        dtype = ",".join(dict.fromkeys(dtypes.get(source, "") for source in spec.sources))
        row = describe_layer(layer.layer_id, spec.name, spec.shape, dtype, True, opts)
        row.layer_type, row.expert, row.quantization = layer.layer_type, spec.expert, spec.quantization
        missing = plan.missing_tensor(spec.sources)
        if spec.skip_reason is not None:
            row.status, row.reason = STATUS_SKIP, spec.skip_reason
        elif missing is not None:  # as the analysis fails it
            row.status, row.reason = STATUS_FAIL, missing
        rows.append(row)
    return rows
