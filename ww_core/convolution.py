"""The spectrum of a convolution operator: WeightWatcher's ``conv2d_fft`` option, as it documents it.

A Conv2D layer with kernel ``K`` (``c_out x c_in x k_h x k_w``) maps an ``n x n`` image with ``c_in`` channels to
one with ``c_out`` channels. With circular padding this linear map is block doubly-circulant, and the 2-D discrete
Fourier transform block-diagonalizes it (Sedghi, Gupta & Long 2019, "The Singular Values of Convolutional Layers",
ICLR, Theorem 6): its singular values are the union over the ``n^2`` frequencies ``(u, v)`` of the singular values
of the ``c_out x c_in`` complex matrices

    P(u, v) = sum_{i,j} K[:, :, i, j] exp(-2 pi i (u i + v j) / n),

i.e. ``numpy.fft.fft2`` of the kernel zero-padded to ``n x n`` over its spatial axes. WeightWatcher 0.7.7 computes
these coefficients with ``n = 32`` and then cannot go on (it passes the 4-D complex array to a real SVD). Here each
frequency's M x M Hermitian Gram matrix ``P^H P`` is solved, so the ESD holds ``n^2 M`` eigenvalues (squared
singular values of the operator), scaled like the pooled kernel slices (conv2d_norm or glorot_fix).
"""

from __future__ import annotations

import numpy as np

from .matrices import LayerMatrices, stored_array

FFT_GRID = 32
# Frequencies solved at once: their complex matrices take ~64 MiB.
_CHUNK_BYTES = 64 * 2**20


def _torch_layout(kernel: np.ndarray, channels: str | None) -> np.ndarray:
    """The kernel as (c_out, c_in, k_h, k_w) (``channels='first'`` is Keras' (k_h, k_w, c_in, c_out))."""
    return kernel.transpose(3, 2, 0, 1) if channels == "first" else kernel


def operator_eigenvalues(kernel, channels: str | None = None, grid: int = FFT_GRID, dtype=np.float64) -> np.ndarray:
    """Squared singular values of the circular convolution by ``kernel`` on ``grid x grid`` inputs: one sorted row
    of M eigenvalues per frequency (``grid^2`` rows; a kernel larger than the grid widens it)."""
    k = _torch_layout(np.asarray(stored_array(kernel), dtype=np.float64), channels)
    c_out, c_in, k_h, k_w = k.shape
    n = max(grid, k_h, k_w)
    coefficients = np.fft.fft2(k, s=(n, n), axes=(2, 3)).reshape(c_out, c_in, n * n).transpose(2, 0, 1)
    complex_dtype = np.complex128 if np.dtype(dtype) == np.float64 else np.complex64
    coefficients = coefficients.astype(complex_dtype, copy=False)
    chunk = max(1, _CHUNK_BYTES // max(1, c_out * c_in * coefficients.itemsize))
    rows = []
    for start in range(0, n * n, chunk):
        p = coefficients[start : start + chunk]
        gram = np.conj(p).transpose(0, 2, 1) @ p if c_out >= c_in else p @ np.conj(p).transpose(0, 2, 1)
        rows.append(np.linalg.eigvalsh(gram))
    evals = np.concatenate(rows).astype(np.float64)
    np.maximum(evals, 0.0, out=evals)
    return np.sort(evals, axis=1)


def operator_layer(pooled: LayerMatrices | list[LayerMatrices], tensor, channels: str | None) -> LayerMatrices:
    """The layer whose ESD is the convolution operator's: the pooled slices' scale, ``grid^2`` frequencies."""
    layer = pooled if isinstance(pooled, LayerMatrices) else pooled[0]
    shape = tuple(int(d) for d in tensor.shape)
    spatial = shape[:2] if channels == "first" else shape[2:]
    n = max(FFT_GRID, *spatial)
    return LayerMatrices(
        layer.layer_type, [], layer.N, layer.M, n * n, scale=layer.scale, dtype=layer.dtype, kernel=tensor
    )
