"""The seam between the notebook API (:mod:`ww_core.watcher`) and whatever reads files and draws figures.

ww_core reads no file and writes none. A :class:`~ww_core.watcher.WeightWatcher` given a path or a hub repo id, or
asked for plots, finds an implementation through an entry point (``importlib.metadata``): the ``wwhub``
distribution registers ``flows.analysis.notebook_source:open_source`` under :data:`SOURCES_GROUP` and
``flows.analysis.layer_plots:write_layer_plots`` under :data:`PLOTS_GROUP` (pyproject.toml). Another package may
register
its own; without one, the error says what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol

from .records import LayerMetrics

SOURCES_GROUP = "ww_core.sources"
PLOTS_GROUP = "ww_core.plots"


@dataclass(frozen=True)
class SourceLayer:
    """One logical matrix of a model read from files: its id in depth order, tensor name, shape, dtype, why it is
    not analyzed (``skip_reason``) and why its analysis will fail (``fail_reason``: a stored tensor the reader knows
    its file lacks), each None when it does not apply."""

    layer_id: int
    name: str
    shape: tuple[int, ...]
    dtype: str = ""
    skip_reason: str | None = None
    fail_reason: str | None = None


@dataclass(frozen=True)
class SkippedMatrix:
    """What :meth:`ModelSource.tensors` gives for a layer whose stored values show, only as they are decoded, that it
    cannot be decoded honestly: the analysis skips it with ``reason``, as it skips a layer with a ``skip_reason``.
    (Yielded rather than raised, so that the layers after it are still read.)"""

    reason: str


class ModelSource(Protocol):
    """A model read from a path or a hub repo (what an entry point of :data:`SOURCES_GROUP` returns)."""

    label: str

    def layers(self) -> list[SourceLayer]:
        """Every logical matrix, in depth order, without reading a weight."""

    def tensors(self, names: Collection[str] | None = None) -> Iterator[tuple[str, object]]:
        """The decoded matrices (``names``: only these), lazily, in depth order, one shard at a time; a layer with a
        ``skip_reason`` or a ``fail_reason`` has none, and one whose stored values show only as they are decoded that
        it has none gives a :class:`SkippedMatrix` in its place. A file that cannot be read raises."""

    def analyze(self, options: dict, names: Collection[str] | None = None, workers: int = 1) -> list[LayerMetrics]:
        """Every (selected) layer analyzed with ww_core's ``options``, as ``wwhub analyze`` does it."""


class NoAdapterInstalled(RuntimeError):
    """No package provides the reader or plotter an entry point group names."""


def _load(group: str, what: str) -> Callable:
    found = list(entry_points(group=group))
    if not found:
        raise NoAdapterInstalled(
            f"{what} needs an adapter registered under the entry point group {group!r}; none is installed "
            "(install wwhub, which provides it, e.g. pip install -e . in its checkout)"
        )
    return found[0].load()


def open_source(model: str, **kwargs) -> ModelSource:
    """A path (folder or weight file, PEFT adapter, GGUF) or hub repo id, through the installed reader."""
    return _load(SOURCES_GROUP, f"reading {model!r}")(str(model), **kwargs)


def plotter() -> Callable:
    """The installed per-layer plot writer: ``write_layer_plots(rows, folder, model, **what) -> list of paths``."""
    return _load(PLOTS_GROUP, "plot=True")
