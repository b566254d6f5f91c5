"""ww_core: WeightWatcher-style spectral analysis of weight matrices. Arrays in, metrics out; no I/O."""

from .analysis import AnalysisOptions, analyze_matrix, analyze_model
from .frame import Watcher
from .records import (
    FIT_FAILED,
    FIT_OK,
    FIT_SKIPPED,
    LAYER_COLUMNS,
    SUMMARY_METRICS,
    LayerMetrics,
    ModelSummary,
    summarize,
)

__all__ = [
    "AnalysisOptions",
    "analyze_matrix",
    "analyze_model",
    "summarize",
    "Watcher",
    "LayerMetrics",
    "ModelSummary",
    "LAYER_COLUMNS",
    "SUMMARY_METRICS",
    "FIT_OK",
    "FIT_FAILED",
    "FIT_SKIPPED",
]
__version__ = "0.1.0"
