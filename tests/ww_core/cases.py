"""Deterministic synthetic weight tensors shared by the conformance tests and scripts/ww_reference.py.

Pure numpy, seeded: the script that runs weightwatcher and the tests that compare with it see the same numbers.
Each case exercises one part of the analysis: shapes (tall, wide, square), tails (Gaussian, Student-t), a planted
spike, low-precision storage, a Conv2D kernel, and a layer small enough for WeightWatcher's small-sample fit.
"""

from __future__ import annotations

import numpy as np


def _bf16_round(x: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bfloat16 and back (ml_dtypes), as a bf16 checkpoint would store it."""
    import ml_dtypes

    return x.astype(ml_dtypes.bfloat16).astype(np.float32)


def synthetic_cases() -> dict[str, np.ndarray]:
    rng = lambda seed: np.random.default_rng(seed)  # noqa: E731
    cases = {
        "gauss_300x100": rng(1).standard_normal((300, 100)) / np.sqrt(300),
        "gauss_100x300": rng(2).standard_normal((100, 300)) / np.sqrt(300),
        "gauss_square_256": rng(3).standard_normal((256, 256)) / 16.0,
        "student_t3_500x200": rng(4).standard_t(3, (500, 200)) / np.sqrt(500),
        "student_t2p5_1000x400": rng(5).standard_t(2.5, (1000, 400)) / np.sqrt(1000),
        "gauss_fp16_300x150": (rng(7).standard_normal((300, 150)) / np.sqrt(300)).astype(np.float16),
        "student_t4_bf16_512x256": _bf16_round((rng(8).standard_t(4, (512, 256)) / np.sqrt(512)).astype(np.float32)),
        "conv_64x32x3x3": rng(9).standard_t(4, (64, 32, 3, 3)) / np.sqrt(32 * 9),
        "small_60x12": rng(10).standard_t(3, (60, 12)) / np.sqrt(60),
    }
    spike_rng = rng(6)
    noise = spike_rng.standard_normal((400, 200)) / np.sqrt(400)
    u, v = spike_rng.standard_normal(400), spike_rng.standard_normal(200)
    cases["spike_rank1_400x200"] = noise + 4 * np.outer(u, v) / np.sqrt(400 * 200)
    return {name: (a if a.dtype == np.float16 else a.astype(np.float32)) for name, a in cases.items()}


def perturbed_copy(tensors: dict[str, np.ndarray], seed: int = 0, scale: float = 0.01) -> dict[str, np.ndarray]:
    """A fine-tune stand-in: every float tensor of 2 or more dimensions plus Gaussian noise of ``scale`` times its
    own standard deviation (seeded by ``seed`` and the tensor name), in its own dtype; other tensors unchanged."""
    import zlib

    out = {}
    for name, array in tensors.items():
        if array.ndim >= 2 and array.dtype.kind == "f":
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            noise = rng.standard_normal(array.shape) * (scale * float(np.std(array, dtype=np.float64)))
            out[name] = (array.astype(np.float64) + noise).astype(array.dtype)
        else:
            out[name] = array
    return out


SKETCH_SIZE = 8


def sketch(matrix: np.ndarray) -> np.ndarray:
    """A fingerprint of a large matrix: ``G1 W G2`` with fixed Gaussian ``G1`` (8 x rows) and ``G2`` (cols x 8).

    For any matrix D, ``||G1 D G2||_F^2 / 64`` estimates ``||D||_F^2`` (Johnson-Lindenstrauss), so the relative
    difference of two sketches estimates the relative Frobenius difference of the matrices, from 64 stored numbers.
    A Conv kernel is sketched as its ``(out, in * k)`` unfolding."""
    w = np.asarray(matrix, dtype=np.float64).reshape(matrix.shape[0], -1)
    left = np.random.default_rng(1).standard_normal((SKETCH_SIZE, w.shape[0]))
    right = np.random.default_rng(2).standard_normal((w.shape[1], SKETCH_SIZE))
    return left @ w @ right


def small_conv_model():
    """A small CNN (torch ``nn.Sequential``: two Conv2D, two Linear) with seeded heavy-tailed weights, the same in
    every Python that has torch: the notebook tests run weightwatcher and ww_core on it."""
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(512, 96),
        nn.ReLU(),
        nn.Linear(96, 10),
    )
    rng = np.random.default_rng(11)
    with torch.no_grad():
        for parameter in model.parameters():
            fan_in = int(np.prod(parameter.shape[1:])) if parameter.ndim > 1 else parameter.shape[0]
            values = rng.standard_t(4, size=tuple(parameter.shape)) / np.sqrt(fan_in)
            parameter.copy_(torch.from_numpy(values.astype(np.float32)))
    return model
