"""The reader behind ``ww_core.WeightWatcher(PATH_OR_REPO)``: registered under the ``ww_core.sources`` entry point.

A local folder or weight file (safetensors, .bin pickles, a PEFT adapter folder, a GGUF file) or a hub repo id goes
through the same planning and decoding as ``wwhub analyze`` (:func:`flows.analysis.named_model.open_model`,
:func:`flows.analysis.describe.plan_layers`, :class:`flows.analysis.model_analysis.ModelAnalysis`): the notebook sees
the logical matrices,
numbered in depth order, shard by shard.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from ww_core.records import LayerMetrics
from ww_core.sources import SkippedMatrix, SourceLayer

from ..weights import MatrixSpec, MatrixStream, UndecodableWeights, open_shard
from .describe import plan_layers, reveal_local
from .model_analysis import ModelAnalysis
from .named_model import ShardFiles, open_model
from .selection import LayerSelection


class FileSource:
    """One model read from files (see the module docstring); ``ww_core.sources.ModelSource``."""

    def __init__(self, text: str, endpoint: str | None = None):
        self.model = open_model(text, endpoint)
        if self.model.folder is not None:
            reveal_local(self.model.folder, self.model.plan)
        self.label = Path(text).name if Path(text).exists() else text
        self._layers = plan_layers(self.model.plan)

    def layers(self) -> list[SourceLayer]:
        plan = self.model.plan
        dtypes = {t.name: t.dtype for shard in plan.shards for t in shard.tensors}
        return [
            SourceLayer(
                info.layer_id,
                spec.name,
                tuple(int(d) for d in spec.shape),
                ",".join(dict.fromkeys(dtypes.get(source, "") for source in spec.sources)),
                spec.skip_reason,
                plan.missing_tensor(spec.sources),  # as ModelAnalysis fails it and describe_plan lists it
            )
            for info, spec in self._layers
        ]

    def _selection(self, names: Collection[str] | None) -> LayerSelection | None:
        if names is None:
            return None
        ids = frozenset(info.layer_id for info, spec in self._layers if spec.name in names)
        return LayerSelection(text="notebook layers", ids=ids or frozenset({-1}))

    def tensors(self, names: Collection[str] | None = None) -> Iterator[tuple[str, object]]:
        plan = self.model.plan
        stream = MatrixStream(plan)
        with ShardFiles(self.model) as files:
            for index, shard in enumerate(plan.shards):
                reader = open_shard(shard.location or files.path(shard), plan.shard_format(shard))
                try:
                    if stream.unknown(shard):
                        stream.reveal(index, reader.infos())
                    for spec in stream.ready(index):
                        # Like a skipped layer, a failing one (a stored tensor its file lacks) has no matrix to give.
                        readable = spec.skip_reason is None and plan.missing_tensor(spec.sources) is None
                        if readable and (names is None or spec.name in names):
                            yield spec.name, _decoded(spec, stream.arrays(spec, reader))
                    stream.end_shard(index, reader)
                finally:
                    reader.close()

    def analyze(self, options: dict, names: Collection[str] | None = None, workers: int = 1) -> list[LayerMetrics]:
        plan = self.model.plan
        analysis = ModelAnalysis(plan, options, workers, model=self.label, selection=self._selection(names))
        with ShardFiles(self.model) as files:
            for index, shard in enumerate(plan.shards):
                try:
                    path = shard.location or files.path(shard)
                except Exception as err:  # noqa: BLE001 - a shard that cannot be fetched fails its layers only
                    analysis.shard_failure(index, err)
                    continue
                analysis.analyze_shard(index, path)
        analysis.finish()
        return sorted(analysis.rows, key=lambda row: (row.layer_id, row.slice_id))


def _decoded(spec: MatrixSpec, arrays) -> object:
    """The matrix of ``spec``, or a SkippedMatrix when its stored values show that it cannot be decoded honestly, as
    ModelAnalysis skips it; any other error (a corrupt or truncated file) is raised."""
    try:
        return spec.decode(arrays)
    except UndecodableWeights as err:
        return SkippedMatrix(str(err))


def open_source(text: str, endpoint: str | None = None) -> FileSource:
    return FileSource(text, endpoint)
