"""Eigenvalues of X = W^T W: the ESD of a layer.

We form the Gram matrix of the *smaller* dimension (M x M) and call a symmetric eigensolver (LAPACK ``syevd``),
never a full SVD: ``N M^2 + (4/3) M^3`` flops instead of an SVD's larger constant, and a 30522 x 384 embedding costs
no more than a 384 x 384 eigenproblem after one ``syrk``. Squaring the condition number only affects eigenvalues
below ~1e-16 lambda_max, far left of any power-law tail (see ``matrix_rank`` in :mod:`ww_core.norms`).

Eigenvalues are the squared singular values of W with no 1/N normalization (WeightWatcher's convention).

Speed (measured by ``benchmarks/calibrate_eigen.py``; see docs/speed.md):

- The Gram matrix is accumulated over blocks of rows upcast to the working precision, ``G = sum_b W_b^T W_b``, each
  block product a BLAS ``syrk`` (numpy dispatches ``a.T @ a`` on one buffer to it: half a general product's flops;
  torch has no ``syrk``). A bf16 layer is never copied whole into float64: memory is the stored layer plus a block
  and two M x M matrices. The block split depends only on the shape and the precision, so a bf16 layer and its
  float64 copy give bit-identical Gram matrices.
- The eigensolver is chosen per size class: numpy's ``eigvalsh`` (OpenBLAS ``syevd``) for small M, torch's
  (MKL ``syevd``, in the torch CPU wheel) from the measured crossover up. Both release the GIL, so layers run side by
  side on threads, each solver pinned to ``threads`` threads. LAPACK's 2-stage ``syevd_2stage`` (not exposed by
  scipy; reached through numpy's OpenBLAS in the calibration) was within noise of the best at M = 1536-2048 and
  9-23% slower than MKL above.
- No pass over W checks for NaN/Inf: every element of W enters exactly one diagonal entry ``G_jj = sum_i W_ij^2``,
  so the diagonal is finite if and only if W is finite and its Gram matrix did not overflow (checked in O(M)).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

DEVICES = ("cpu", "cuda")
PRECISIONS = ("float64", "float32")
SOLVERS = ("numpy", "torch")

# torch.linalg.eigvalsh (MKL) is used from this M up, numpy.linalg.eigvalsh (OpenBLAS) below: the smallest size from
# which MKL was at least 10% faster at every larger size, one thread each, on heavy-tailed Gram matrices (AMD EPYC,
# 2 cores, numpy 2.4.6 / OpenBLAS 0.3.31, torch 2.13.0 / MKL 2024.2; `python benchmarks/calibrate_eigen.py`
# re-measures). Below it the two are within noise of each other, and importing torch (~1 s) would not pay.
TORCH_EIGVALSH_MIN_M = {"float64": 3072, "float32": 1536}
# Rows of W upcast at a time: at least M rows (so adding each block's M x M product costs little next to the
# product), and ~64 MiB otherwise.
_GRAM_BLOCK_BYTES = 64 * 2**20

_OVERFLOW = "the Gram matrix overflowed (weights too large for this precision)"


class NonFiniteWeights(FloatingPointError):
    """W holds NaN or Inf values (found from the Gram matrix's diagonal, counted only then)."""


def compute_dtype(precision: str) -> np.dtype:
    return np.dtype(np.float64 if precision == "float64" else np.float32)


def choose_solver(m: int, dtype: np.dtype) -> str:
    """The faster CPU eigensolver for an M x M Gram matrix in ``dtype``: ``"numpy"`` or ``"torch"``."""
    precision = "float64" if np.dtype(dtype) == np.float64 else "float32"
    return "torch" if m >= TORCH_EIGVALSH_MIN_M[precision] else "numpy"


def _block_rows(m: int, dtype: np.dtype) -> int:
    return max(m, _GRAM_BLOCK_BYTES // max(1, m * np.dtype(dtype).itemsize))


def _tall(matrix):
    """W oriented so that its rows are the longer side: the Gram matrix of the columns is then M x M."""
    return matrix if matrix.shape[0] >= matrix.shape[1] else matrix.T


def row_blocks(matrix: np.ndarray, dtype) -> Iterator[np.ndarray]:
    """Blocks of rows of the tall orientation of ``matrix`` (n >= m), in ``dtype``: views of ``matrix`` when it is
    already in ``dtype``, else upcast into one reused buffer (each block is overwritten by the next: consume it
    before asking for the next one). Never write into a block."""
    dtype = np.dtype(dtype)
    tall = _tall(matrix)
    n, m = tall.shape
    rows = _block_rows(m, dtype)
    # BLAS needs aligned memory (a safetensors memory map may not be) and a unit stride on one side (a Conv2D kernel
    # slice has neither); numpy's matmul would otherwise fall back to its slow loop.
    contiguous = tall.flags.c_contiguous or tall.flags.f_contiguous
    convert = tall.dtype != dtype or not tall.flags.aligned or not contiguous
    # A wide matrix's tall view is Fortran-ordered: a Fortran buffer keeps the copy a run of contiguous reads.
    buffer = np.empty((min(rows, n), m), dtype, order="F" if tall.flags.f_contiguous else "C") if convert else None
    for start in range(0, n, rows):
        block = tall[start : start + rows]
        if buffer is not None:
            target = buffer[: block.shape[0]]
            np.copyto(target, block, casting="unsafe")
            block = target
        yield block


def gram_matrix(matrix: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The M x M Gram matrix ``W^T W`` (``W W^T`` when W is wide) in ``dtype``, for W of any float dtype
    (ml_dtypes bf16/fp8 included), accumulated over row blocks: ``G = sum_b W_b^T W_b``.

    Overflow gives Inf entries, not a warning: :func:`gram_eigenvalues` checks the diagonal.
    """
    dtype = np.dtype(dtype)
    gram = part = None
    with np.errstate(over="ignore", invalid="ignore"):
        for block in row_blocks(matrix, dtype):
            if gram is None:
                gram = block.T @ block
            else:
                if part is None:
                    part = np.empty_like(gram)
                np.matmul(block.T, block, out=part)
                gram += part
    if gram is None:
        m = min(matrix.shape)
        gram = np.zeros((m, m), dtype)
    return gram


def _count_nonfinite(matrix: np.ndarray, dtype: np.dtype) -> int:
    return sum(int(block.size - np.count_nonzero(np.isfinite(block))) for block in row_blocks(matrix, dtype))


def _check_finite(diagonal_finite: bool, matrix, count_nonfinite) -> None:
    if diagonal_finite:
        return
    bad = count_nonfinite(matrix)
    if bad:
        raise NonFiniteWeights(f"{bad} NaN/Inf values in the weights")
    raise FloatingPointError(_OVERFLOW)


@contextmanager
def _torch_threads(torch, threads: int | None):
    # torch's thread count is per OS thread (OpenMP and MKL's thread-local setting): a layer worker thread starts
    # with the library default (all cores), whatever the main thread set, so we set it around each call.
    previous = torch.get_num_threads() if threads is not None else None
    if previous is not None and previous != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if previous is not None and previous != threads:
            torch.set_num_threads(previous)


def symmetric_eigenvalues(gram: np.ndarray, solver: str | None = None, threads: int | None = 1) -> np.ndarray:
    """All eigenvalues, ascending, of a symmetric matrix (or a stack of them) in its own precision.

    ``solver``: ``"numpy"`` (LAPACK ``syevd`` from numpy's OpenBLAS), ``"torch"`` (MKL ``syevd``), or None for
    :func:`choose_solver`'s pick by size. ``threads`` caps torch's threads for this call (None: leave it); numpy's
    OpenBLAS is capped by the caller (``threadpoolctl``: its limit is per process). Both read the lower triangle.
    Raises ``numpy.linalg.LinAlgError`` when LAPACK does not converge.
    """
    solver = solver or choose_solver(gram.shape[-1], gram.dtype)
    if solver == "numpy":
        return np.linalg.eigvalsh(gram)
    if solver != "torch":
        raise ValueError(f"solver={solver!r}: expected one of {SOLVERS}")
    import torch

    with _torch_threads(torch, threads):
        try:
            return torch.linalg.eigvalsh(torch.from_numpy(gram)).numpy()
        except torch.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError(str(err)) from err


def _finish(evals: np.ndarray, scale: float, per_matrix: bool = False) -> np.ndarray:
    evals = evals.astype(np.float64, copy=False)
    if per_matrix:
        evals = np.sort(evals.reshape(-1, evals.shape[-1]), axis=1) * (scale * scale)
    else:
        evals = np.sort(evals.ravel()) * (scale * scale)
    # Tiny negative eigenvalues are rounding: the Gram matrix is positive semi-definite.
    np.maximum(evals, 0.0, out=evals)
    return evals


def gram_eigenvalues(
    matrices: Sequence[np.ndarray],
    scale: float = 1.0,
    device: str = "cpu",
    dtype=None,
    threads: int | None = 1,
    per_matrix: bool = False,
) -> np.ndarray:
    """Sorted eigenvalues of ``(scale W)^T (scale W)`` for every W in ``matrices``, concatenated (pooled ESD), or
    with ``per_matrix`` one sorted row per W (matrices of the same shape).

    W may be any float dtype (numpy, ml_dtypes bf16/fp8, read-only memory maps). Computed in ``dtype`` (float64 or
    float32; None: the matrices' own when float32/float64, else float64), Gram matrix and eigensolve alike.
    Raises :class:`NonFiniteWeights` for NaN/Inf in W, ``FloatingPointError`` when the Gram matrix overflows,
    ``numpy.linalg.LinAlgError`` when LAPACK fails.
    """
    if dtype is None:
        own = np.dtype(matrices[0].dtype)
        dtype = own if own in (np.float32, np.float64) else np.float64
    dtype = np.dtype(dtype)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was requested but torch sees no CUDA device")
        return _finish(_torch_eigenvalues(matrices, dtype, device), scale, per_matrix)
    grams = []
    for matrix in matrices:
        gram = gram_matrix(matrix, dtype)
        _check_finite(bool(np.isfinite(np.diagonal(gram)).all()), matrix, lambda m: _count_nonfinite(m, dtype))
        grams.append(gram)
    evals = symmetric_eigenvalues(grams[0] if len(grams) == 1 else np.stack(grams), threads=threads)
    return _finish(evals, scale, per_matrix)


_SAME_WIDTH_INT = {1: np.uint8, 2: np.int16}
# ml_dtypes types torch also has (same bits): shared through a same-width integer view, which torch reinterprets.
_TORCH_REINTERPRETED = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")


def _as_torch(array: np.ndarray):
    """A CPU torch tensor sharing ``array``'s memory in its stored dtype (other ml_dtypes floats, such as fp4 and
    fp6, are upcast to float32, which holds them exactly)."""
    import torch

    name = array.dtype.name
    with warnings.catch_warnings():
        # A read-only memory map: torch warns that writing through the tensor would be undefined; we only read.
        warnings.simplefilter("ignore", UserWarning)
        if name in ("float64", "float32", "float16"):
            return torch.from_numpy(array)
        if name in _TORCH_REINTERPRETED and hasattr(torch, name):
            return torch.from_numpy(array.view(_SAME_WIDTH_INT[array.itemsize])).view(getattr(torch, name))
        return torch.from_numpy(array.astype(np.float32))


def _torch_eigenvalues(matrices: Sequence[np.ndarray], dtype: np.dtype, device: str) -> np.ndarray:
    """The same with torch on ``device`` (the GPU path): the stored weights are uploaded as they are (bf16 stays 2
    bytes), upcast there in row blocks (never cast through fp16), and the matrices of one layer (Conv2D slices) are
    solved as one batch. On a GPU the eigensolver is always torch's (cuSOLVER): no CPU/GPU crossover was measured.

    Batching across layers (e.g. the experts of a MoE block) is not done: for M > 32, torch's CUDA ``eigvalsh``
    loops over the batch calling cuSOLVER's ``syevd`` (or ``syevj`` for float32 up to 512) one matrix at a time
    (``linalg_eigh_cusolver`` in ATen's BatchLinearAlgebraLib.cpp), so a batch would only save a Python call each.
    """
    import torch

    target = torch.float64 if dtype == np.float64 else torch.float32
    grams = []
    with torch.no_grad():
        for matrix in matrices:
            weights = _tall(_as_torch(np.asarray(matrix)).to(device))
            rows = _block_rows(weights.shape[1], dtype)
            blocks = [weights[start : start + rows] for start in range(0, weights.shape[0], rows)]
            gram = torch.zeros((weights.shape[1],) * 2, dtype=target, device=device)
            for block in blocks:
                upcast = block.to(target)
                gram.addmm_(upcast.T, upcast)
            _check_finite(
                bool(torch.isfinite(torch.diagonal(gram)).all()),
                blocks,
                lambda parts: sum(int((~torch.isfinite(part.to(target))).sum()) for part in parts),
            )
            grams.append(gram)
        try:
            evals = torch.linalg.eigvalsh(grams[0] if len(grams) == 1 else torch.stack(grams))
        except torch.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError(str(err)) from err
        return evals.double().cpu().numpy()
