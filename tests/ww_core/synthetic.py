"""Deterministic synthetic weight tensors shared by scripts/make_ww_reference.py and the tests.

Pure numpy (no test-framework imports, no ml_dtypes): the reference script runs in its own virtual environment
(weightwatcher 0.7.7 + torch) and the tests run in the project's, and both must see bit-identical arrays. Every
case draws from its own ``numpy.random.default_rng(seed)``, so adding or reordering cases never changes another.
All arrays are float32 unless noted; together they take about 3 MB.

Cases and what each is for (N x M is rows x columns; WeightWatcher analyses the min(N, M) eigenvalues of W^T W):

- ``gauss_300x100``: N(0,1)/sqrt(300), tall (Q = 3). A pure Marchenko-Pastur bulk: random-like layer, MP fit.
- ``gauss_100x300``: the same law, wide (100 x 300). Exercises the transpose path (WW works on the smaller side).
- ``gauss_square_256``: N(0,1)/16, square (Q = 1). The MP edge case where the bulk touches zero.
- ``student_t3_500x200``: Student-t, 3 degrees of freedom, / sqrt(500). Heavy tail, alpha in the "fat" range.
- ``student_t2p5_1000x400``: Student-t, 2.5 degrees of freedom, / sqrt(1000). Heavier tail, infinite variance.
- ``spike_rank1_400x200``: N(0,1)/sqrt(400) plus 5 * u v^T with unit vectors u, v. The planted singular value 5
  (eigenvalue ~ 26.5) sits far outside the MP bulk edge (1 + sqrt(1/2))^2 ~ 2.91: one spike for rank-one
  detection, num_spikes and the MP fit.
- ``gauss_fp16_300x150``: N(0,1)/sqrt(300) stored as **float16** (the array dtype is float16). Low-precision
  storage; the reference script hands WeightWatcher the float32 upcast of the same values.
- ``student_t4_bf16_512x256``: Student-t, 4 degrees of freedom, / sqrt(512), rounded to bfloat16 and stored as
  float32. Rounding is round-to-nearest-even done with numpy bit arithmetic (``_round_to_bfloat16``), which is
  bit-identical to ``ml_dtypes.bfloat16`` casting for finite values; it is *not* truncation. ml_dtypes is not
  used so the values cannot depend on whether it is installed.
- ``conv_64x32x3x3``: Student-t, 4 degrees of freedom, / sqrt(32 * 9), a 4-D Conv2D kernel in PyTorch layout
  (out, in, kh, kw). Conv handling: pooled (default) and per-slice (pool=False).
- ``small_40x30``: Student-t, 3 degrees of freedom, / sqrt(40). Only 30 eigenvalues: a small but standard fit.
- ``small_60x12``: Student-t, 3 degrees of freedom, / sqrt(60). M = 12 < 20 eigenvalues, so the power-law fit
  has fewer than 20 candidates and WeightWatcher takes its small-N path (WW_powerlaw SMALL_N_CUTOFF = 20);
  still above WeightWatcher's default min_evals = 8, so it is analysed.
"""

from __future__ import annotations

import numpy as np

SPIKE_STRENGTH = 5.0


def _round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even) and return them as float32.

    bfloat16 is the top 16 bits of a float32. Adding 0x7FFF plus the lowest kept bit before clearing the low 16
    bits rounds to nearest, ties to even. Inputs here are finite, so NaN handling is not needed.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def _gauss(seed: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) / scale


def _student_t(seed: int, df: float, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(df, shape) / scale


def _spike(seed: int, n: int, m: int, strength: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, m)) / np.sqrt(n)
    u = rng.standard_normal(n)
    v = rng.standard_normal(m)
    u /= np.linalg.norm(u)
    v /= np.linalg.norm(v)
    return noise + strength * np.outer(u, v)


def synthetic_cases() -> dict[str, np.ndarray]:
    """Return the synthetic weight tensors by name (fresh arrays on every call; see the module docstring)."""
    f32 = np.float32
    return {
        "gauss_300x100": _gauss(101, (300, 100), np.sqrt(300)).astype(f32),
        "gauss_100x300": _gauss(102, (100, 300), np.sqrt(300)).astype(f32),
        "gauss_square_256": _gauss(103, (256, 256), 16.0).astype(f32),
        "student_t3_500x200": _student_t(104, 3.0, (500, 200), np.sqrt(500)).astype(f32),
        "student_t2p5_1000x400": _student_t(105, 2.5, (1000, 400), np.sqrt(1000)).astype(f32),
        "spike_rank1_400x200": _spike(106, 400, 200, SPIKE_STRENGTH).astype(f32),
        "gauss_fp16_300x150": _gauss(107, (300, 150), np.sqrt(300)).astype(np.float16),
        "student_t4_bf16_512x256": _round_to_bfloat16(_student_t(108, 4.0, (512, 256), np.sqrt(512)).astype(f32)),
        "conv_64x32x3x3": _student_t(109, 4.0, (64, 32, 3, 3), np.sqrt(32 * 9)).astype(f32),
        "small_40x30": _student_t(110, 3.0, (40, 30), np.sqrt(40)).astype(f32),
        "small_60x12": _student_t(111, 3.0, (60, 12), np.sqrt(60)).astype(f32),
    }
