"""What every quantized-scheme test needs: a plan from arrays, and the end-to-end check against the dense twin."""

from __future__ import annotations

from collections.abc import Mapping

import ml_dtypes
import numpy as np

from flows.weights.decoders.contract import Claim, ModelConfig
from flows.weights.tensors import TensorInfo
from ww_core import analyze_matrix

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


def plan_of(arrays: Mapping[str, np.ndarray]) -> dict[str, TensorInfo]:
    """The plan a safetensors header would give for these arrays."""
    return {name: TensorInfo(name, SAFETENSORS_DTYPES[a.dtype], tuple(a.shape)) for name, a in arrays.items()}


def claim_and_decode(decoder, arrays: Mapping[str, np.ndarray], config: Mapping | None = None):
    """Run a decoder as the pipeline does: claim from the plan alone, then decode each spec from its sources."""
    claim: Claim = decoder.claim(plan_of(arrays), ModelConfig(config or {}))
    decoded = {}
    for spec in claim.matrices:
        if spec.skip_reason is None:
            decoded[spec.name] = spec.decode({name: arrays[name] for name in spec.sources})
    return claim, decoded


def assert_same_spectrum(decoded: np.ndarray, twin: np.ndarray) -> None:
    """The issue's end-to-end check: the decoded matrix analyzed as wwhub does vs its dense twin (the float64
    product of codes and scales) through the plain path. Decoding is exact up to float32 rounding of each element
    (relative 6e-8), which moves λmax by about that much and alpha (a fit over the same tail) by far less than
    the tolerances: λmax within 1e-4 relative, alpha within 1e-3 relative."""
    assert decoded.dtype == np.float32
    ours = analyze_matrix(decoded, name="decoded")
    truth = analyze_matrix(twin.astype(np.float64), name="twin")
    assert ours.fit_status == truth.fit_status == "ok", (ours.reason, truth.reason)
    np.testing.assert_allclose(ours.lambda_max, truth.lambda_max, rtol=1e-4)
    np.testing.assert_allclose(ours.alpha, truth.alpha, rtol=1e-3)


def heavy_tailed(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A weight-like matrix with a heavy-tailed spectrum (Student-t entries), so alpha is a real fit."""
    rng = np.random.default_rng(seed)
    return (rng.standard_t(3, size=(rows, cols)) * 0.02).astype(np.float32)
