"""What the format tests share: heavy-tailed matrices, checkpoint writers, and the dense-twin comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import ww_core
from flows.analysis.model_analysis import analyze_path

# The tolerances for a decoded matrix against its dense twin analyzed by the plain path, where decoding is
# exact up to float32 rounding: λmax within 1e-4 relative, alpha within 1e-3 relative.
LAMBDA_RTOL = 1e-4
ALPHA_RTOL = 1e-3


def heavy(rows: int, cols: int, seed: int, df: float = 3.0) -> np.ndarray:
    """A heavy-tailed float32 matrix (Student t), whose power-law fit is well defined."""
    return (np.random.default_rng(seed).standard_t(df, size=(rows, cols)) / np.sqrt(rows)).astype(np.float32)


def write_checkpoint(folder: Path, tensors: dict[str, np.ndarray], config: dict | None = None) -> Path:
    """``folder/model.safetensors`` (numpy arrays in their dtype, ml_dtypes included) and ``config.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()}, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def analyze_rows(path: Path, **options) -> dict[str, dict]:
    """``wwhub analyze``'s records of a local model, by name."""
    return {record["name"]: record for record in analyze_path(path, options).records()}


def twin(matrix: np.ndarray, name: str = "W", **options) -> ww_core.LayerMetrics:
    """The dense twin: the logical matrix in float64, analyzed by the plain path."""
    return ww_core.analyze_matrix(np.asarray(matrix, dtype=np.float64), name=name, **options)


def assert_matches_twin(record: dict, truth: ww_core.LayerMetrics, lambda_rtol=LAMBDA_RTOL, alpha_rtol=ALPHA_RTOL):
    assert record["fit_status"] == truth.fit_status == "ok", (record["name"], record["reason"], truth.reason)
    assert (record["N"], record["M"]) == (truth.N, truth.M), record["name"]
    assert math.isclose(record["lambda_max"], truth.lambda_max, rel_tol=lambda_rtol), record["name"]
    assert math.isclose(record["alpha"], truth.alpha, rel_tol=alpha_rtol), record["name"]


def tensor_infos(tensors: dict[str, np.ndarray]):
    from flows.weights.tensors import TensorInfo

    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8"}
    out = []
    for name, array in tensors.items():
        dtype = names.get(array.dtype) or {"bfloat16": "BF16", "int32": "I32", "int64": "I64"}[array.dtype.name]
        out.append(TensorInfo(name, dtype, tuple(array.shape)))
    return out


def decoded(tensors: dict[str, np.ndarray], config: dict | None = None, adapter_config: dict | None = None):
    """The decoding pipeline on in-memory arrays: {matrix name: (spec, decoded matrix or None when skipped)}."""
    from flows.weights import ModelConfig, plan_matrices

    decoding = plan_matrices(tensor_infos(tensors), ModelConfig(config or {}, adapter_config))
    return {
        spec.name: (spec, None if spec.skip_reason else np.asarray(spec.decode(tensors), dtype=np.float64))
        for spec in decoding.specs
    }
