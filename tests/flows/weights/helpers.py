"""What the format tests share: heavy-tailed matrices, checkpoint writers (safetensors, GGUF), plans from arrays, the
decoding pipeline on arrays, and the one comparison with the dense twin."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import ml_dtypes
import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize
from safetensors.numpy import save_file

import ww_core
from flows.analysis.model_analysis import analyze_path
from flows.weights.decoders.contract import Claim, ModelConfig
from flows.weights.tensors import TensorInfo

# The tolerances for a decoded matrix against its dense twin analyzed by the plain path. Decoding is exact up
# to float32 rounding of each element (relative 6e-8), which moves λmax by about that much and alpha (a fit over the
# same tail) by far less: λmax within 1e-4 relative, alpha within 1e-3 relative.
LAMBDA_RTOL = 1e-4
ALPHA_RTOL = 1e-3

# The size of the entries of a trained checkpoint: what the quantizers under test fit their scales to.
WEIGHT_SCALE = 0.02

SAFETENSORS_DTYPES = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(ml_dtypes.float8_e4m3fn): "F8_E4M3",
    np.dtype(ml_dtypes.float8_e5m2): "F8_E5M2",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.int16): "I16",
    np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64",
}


def heavy(rows: int, cols: int, seed: int = 0, df: float = 3.0, scale: float | None = None) -> np.ndarray:
    """A heavy-tailed float32 matrix (Student t entries), whose power-law fit is well defined: entries times
    ``scale`` (``WEIGHT_SCALE`` for a weight-sized matrix), or divided by sqrt(rows) when none is given."""
    entries = np.random.default_rng(seed).standard_t(df, size=(rows, cols))
    return (entries / np.sqrt(rows) if scale is None else entries * scale).astype(np.float32)


def write_checkpoint(folder: Path, tensors: dict[str, np.ndarray], config: dict | None = None) -> Path:
    """``folder/model.safetensors`` (numpy arrays in their dtype, ml_dtypes included) and ``config.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()}, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def write_gguf(path: Path, tensors: dict[str, tuple[np.ndarray, GGMLQuantizationType]]) -> Path:
    """A GGUF file written by gguf's GGUFWriter, with a vocabulary (a metadata string array) to skip. Values of a
    quantized type are quantized with gguf's ``quantize``, unless given as uint8: then they are its raw blocks."""
    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_token_list([f"token{i}" for i in range(500)])
    writer.add_token_scores([0.0] * 500)
    for name, (values, qtype) in tensors.items():
        if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            writer.add_tensor(name, values)
        elif values.dtype == np.uint8:
            writer.add_tensor(name, values, raw_dtype=qtype)
        else:
            writer.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def analyze_rows(path: Path, **options) -> dict[str, dict]:
    """``wwhub analyze``'s records of a local model, by name."""
    return {record["name"]: record for record in analyze_path(path, options).records()}


def plan_of(arrays: Mapping[str, np.ndarray]) -> dict[str, TensorInfo]:
    """The plan a safetensors header would give for these arrays."""
    return {name: TensorInfo(name, SAFETENSORS_DTYPES[a.dtype], tuple(a.shape)) for name, a in arrays.items()}


def decoded(tensors: dict[str, np.ndarray], config: dict | None = None, adapter_config: dict | None = None):
    """The decoding pipeline on in-memory arrays: {matrix name: (spec, decoded matrix or None when skipped)}."""
    from flows.weights import plan_matrices

    decoding = plan_matrices(list(plan_of(tensors).values()), ModelConfig(config or {}, adapter_config))
    return {
        spec.name: (spec, None if spec.skip_reason else np.asarray(spec.decode(tensors), dtype=np.float64))
        for spec in decoding.specs
    }


def claim_and_decode(decoder, arrays: Mapping[str, np.ndarray], config: Mapping | None = None):
    """Run a decoder as the pipeline does: claim from the plan alone, then decode each spec from its sources."""
    claim: Claim = decoder.claim(plan_of(arrays), ModelConfig(config or {}))
    matrices = {}
    for spec in claim.matrices:
        if spec.skip_reason is None:
            matrices[spec.name] = spec.decode({name: arrays[name] for name in spec.sources})
    return claim, matrices


def twin(matrix: np.ndarray, name: str = "W", **options) -> ww_core.LayerMetrics:
    """The dense twin: the logical matrix in float64, analyzed by the plain path."""
    return ww_core.analyze_matrix(np.asarray(matrix, dtype=np.float64), name=name, **options)


def assert_matches_twin(record: dict, truth: ww_core.LayerMetrics) -> None:
    """A layer's row (as ``wwhub analyze`` writes it) against its dense twin, within the tolerances above."""
    assert record["fit_status"] == truth.fit_status == "ok", (record["name"], record["reason"], truth.reason)
    assert (record["N"], record["M"]) == (truth.N, truth.M), record["name"]
    assert math.isclose(record["lambda_max"], truth.lambda_max, rel_tol=LAMBDA_RTOL), record["name"]
    assert math.isclose(record["alpha"], truth.alpha, rel_tol=ALPHA_RTOL), record["name"]


def assert_same_spectrum(matrix: np.ndarray, twin_matrix: np.ndarray) -> None:
    """The issue's end-to-end check for a decoder's output: the float32 matrix analyzed as wwhub does vs its dense
    twin (the float64 product of codes and scales) through the plain path."""
    assert matrix.dtype == np.float32
    assert_matches_twin(ww_core.analyze_matrix(matrix, name="decoded").as_row(), twin(twin_matrix, name="twin"))
