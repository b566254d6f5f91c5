"""ww_core: WeightWatcher-style spectral analysis of weight matrices. Arrays in, metrics out; no I/O.

The records (``LayerMetrics``, ``summarize``, the column names) import nothing heavy; the analysis is imported on
first use of ``analyze_matrix``/``analyze_model``/``WeightWatcher`` (PEP 562), so that the lake, the queries and
``wwhub --help`` do not pay for it. Within it, scipy is imported only by the MP and TPL fits, and torch only for
eigensolves large enough to go to MKL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ww_core.records import (
    FIT_FAILED,
    FIT_OK,
    FIT_SKIPPED,
    LAYER_COLUMNS,
    SUMMARY_METRICS,
    LayerMetrics,
    ModelSummary,
    summarize,
)

if TYPE_CHECKING:
    from ww_core.analysis import AnalysisOptions, analyze_matrix, analyze_model
    from ww_core.watcher import Watcher, WeightWatcher

_LAZY = {
    "AnalysisOptions": ".analysis",
    "analyze_matrix": ".analysis",
    "analyze_model": ".analysis",
    "Watcher": ".watcher",
    "WeightWatcher": ".watcher",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AnalysisOptions",
    "analyze_matrix",
    "analyze_model",
    "summarize",
    "Watcher",
    "WeightWatcher",
    "LayerMetrics",
    "ModelSummary",
    "LAYER_COLUMNS",
    "SUMMARY_METRICS",
    "FIT_OK",
    "FIT_FAILED",
    "FIT_SKIPPED",
]
__version__ = "0.1.0"
