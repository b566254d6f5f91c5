"""A model named on the command line: a local folder or file, or a hub repo id (``org/name[@revision]``).

:func:`open_model` plans it without reading a weight (safetensors headers: on the hub by Range requests);
:class:`ShardFiles` brings its shards to local disk one at a time (a hub shard is downloaded into a work folder and
deleted when no longer kept; local files are used in place and never touched).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..sources import HubError, ModelRef
from ..weights import ModelPlan, Shard, WeightsError, plan_local

if TYPE_CHECKING:
    from ..sources import HubSource

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass
class OpenedModel:
    """A planned model: where its shards are (``folder``, or ``source`` + ``ref`` on the hub) and its card facts."""

    label: str
    plan: ModelPlan
    folder: Path | None = None
    source: HubSource | None = None
    ref: ModelRef | None = None
    facts: dict = field(default_factory=dict)

    @property
    def repo_id(self) -> str:
        return self.ref.repo_id if self.ref else self.label

    @property
    def revision(self) -> str:
        return self.ref.revision if self.ref else ""

    def shard_by_tensor(self) -> dict[str, Shard]:
        return {info.name: shard for shard in self.plan.shards for info in shard.tensors}


def is_repo_id(text: str) -> bool:
    return bool(_REPO_ID.match(text)) and not Path(text).exists()


def open_model(text: str, endpoint: str | None = None) -> OpenedModel:
    """Plan a local path or a hub repo id. Raises :class:`WeightsError` / :class:`HubError` with a clear message."""
    if Path(text).exists():
        folder, plan = plan_local(Path(text))
        return OpenedModel(text, plan, folder=folder)
    if not is_repo_id(text):
        raise WeightsError(f"{text}: no such file or folder, and not a hub repo id (org/name[@revision])")
    from ..sources import HubSource

    repo_id, _, revision = text.partition("@")
    source = HubSource(endpoint=endpoint)
    description = source.describe(source.resolve(ModelRef(repo_id, revision or "main", "")))
    return OpenedModel(text, description.plan, source=source, ref=description.ref, facts=description.facts)


class ShardFiles:
    """Local paths of a model's shards, fetched on demand and kept up to ``keep`` at a time (None: all of them,
    until :meth:`close`; a scan keeps a base model this way, fetched once for all its fine-tunes)."""

    def __init__(self, model: OpenedModel, keep: int | None = 2, workdir: Path | None = None):
        self.model = model
        self.keep = keep
        self._workdir = workdir
        self._owns_workdir = False
        self._paths: OrderedDict[str, Path] = OrderedDict()
        # Models scanned side by side share their base's files: one download per shard, whoever asks first.
        self._lock = threading.Lock()

    def path(self, shard: Shard) -> Path:
        if self.model.folder is not None:
            return self.model.folder / shard.filename
        with self._lock:
            return self._fetch(shard)

    def _fetch(self, shard: Shard) -> Path:
        if shard.filename in self._paths:
            self._paths.move_to_end(shard.filename)
            return self._paths[shard.filename]
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="wwhub-shards-"))
            self._owns_workdir = True
        path = self.model.source.fetch_shard(self.model.ref, shard, self._workdir)
        self._paths[shard.filename] = path
        while self.keep is not None and len(self._paths) > self.keep:
            _, oldest = self._paths.popitem(last=False)
            self.model.source.release_shard(oldest)
        return path

    def close(self) -> None:
        with self._lock:
            self._release_all()

    def _release_all(self) -> None:
        for path in self._paths.values():
            self.model.source.release_shard(path)
        self._paths.clear()
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> ShardFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["HubError", "OpenedModel", "ShardFiles", "is_repo_id", "open_model"]
