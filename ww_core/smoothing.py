"""SVD smoothing and sharpness: WeightWatcher 0.7.7's ``SVDSmoothing`` and ``SVDSharpness`` transforms of a layer.

Both rebuild a weight matrix from part of its singular value decomposition ``W = U S V^T``:

* **smoothing** keeps the ``k`` largest singular components, ``W_k = U_k S_k V_k^T`` (the best rank-k approximation,
  Eckart & Young 1936), with ``k`` chosen from the layer's ESD by ``method`` (WeightWatcher's names):
  ``detX`` (default): the SETOL detX = 1 tail size, :func:`ww_core.norms.detx_condition`;
  ``alpha_min``: the power-law tail, the eigenvalues ``>= xmin`` of the fit (``num_pl_spikes``);
  ``rmt``: the spikes right of the Marchenko-Pastur bulk (``num_spikes``);
  ``svd``: ``int(percent * M * rf)`` components.
* **sharpness** removes the ``k`` largest components, ``W - W_k``, where ``k`` is the number of Marchenko-Pastur
  spikes of a randomly permuted copy of W: spikes that survive shuffling the elements come from a few huge elements
  (correlation traps), not from learned correlations. WeightWatcher draws the permutation unseeded; it is seeded
  here (by ``seed`` and the layer name), so a rerun gives the same checkpoint.

The ESD that picks ``k`` is that of the layer's matrices without the Conv2D normalization (WeightWatcher's
``apply_esd`` before ``SVDSmoothing``; all four counts are scale-free but the power-law fit's 1e-5 threshold). A
Conv layer is transformed per kernel position with ``ceil(k / rf)`` components (``floor`` when removing), as
WeightWatcher does.

``solver='exact'`` computes the truncation from a full float64 SVD. WeightWatcher 0.7.7 calls scikit-learn's
``TruncatedSVD(n_components=k, n_iter=7, random_state=42)``, a randomized solver (Halko, Martinsson & Tropp 2011,
Alg. 4.4 with LU-normalized power iterations) that returns ``X V V^T`` for an approximate top-k right singular
basis ``V``: on MiniLM its layers are 1-10% (Frobenius) away from the true ``W_k``. ``solver='randomized'``
reproduces that computation step for step (same seed, same oversampling, same normalizers) for users who need
WeightWatcher's numbers; the default is the exact truncation.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields

import numpy as np

from .describe import size_skip_reason
from .eigen import gram_eigenvalues
from .marchenko_pastur import marchenko_pastur_fit
from .matrices import NotAWeightMatrix, layer_type_for, tensor_dims, to_numpy_float
from .norms import detx_condition
from .powerlaw import EVALS_THRESHOLD, PowerLawFitError, fit_power_law
from .records import FIT_FAILED, FIT_OK, FIT_SKIPPED

SMOOTH_METHODS = ("detX", "alpha_min", "rmt", "svd")
SVD_SOLVERS = ("exact", "randomized")
# scikit-learn TruncatedSVD's settings as WeightWatcher 0.7.7 calls it (RMT_Util._smooth_W_accurate).
_RANDOMIZED_SEED = 42
_RANDOMIZED_ITERATIONS = 7
_RANDOMIZED_OVERSAMPLES = 10


@dataclass
class LayerTransform:
    """What a smoothing or sharpening did to one tensor: ``kept`` (smooth) or ``removed`` (sharpen) singular
    components per matrix (per kernel position for a Conv), out of ``M``."""

    name: str
    layer_type: str = ""
    N: int = 0
    M: int = 0
    rf: int = 1
    num_evals: int = 0
    method: str = ""
    count: int = 0  # the ESD count that chose k (detX tail, power-law tail, MP spikes, percent of M*rf)
    kept: int | None = None
    removed: int | None = None
    status: str = FIT_OK  # ok (transformed) | skipped (left unchanged, reason says why) | failed
    reason: str = ""

    def as_row(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _matrices(array: np.ndarray) -> list[np.ndarray]:
    """The stored matrices (views): the 2-D tensor itself, or one ``(out, in)`` slice per kernel position."""
    if array.ndim == 2:
        return [array]
    slices = array.reshape(array.shape[0], array.shape[1], -1)
    return [slices[:, :, k] for k in range(slices.shape[2])]


def _esd(matrices: list[np.ndarray]) -> np.ndarray:
    return gram_eigenvalues(matrices, 1.0)


def components_count(evals: np.ndarray, N: int, M: int, rf: int, method: str, percent: float) -> int:
    """How many top singular components ``method`` keeps, from the layer's ESD (all kernel positions pooled)."""
    if method == "detX":
        return detx_condition(evals)[0]
    if method == "alpha_min":
        fit = fit_power_law(evals[evals > EVALS_THRESHOLD])
        return int(np.count_nonzero(evals >= fit.xmin))
    if method == "rmt":
        return marchenko_pastur_fit(evals, N, M).num_spikes
    return int(percent * M * rf)


def truncate_svd(matrix: np.ndarray, k: int, solver: str = "exact") -> np.ndarray:
    """The rank-``k`` part ``U_k S_k V_k^T`` of a float64 matrix (``solver``: see the module docstring)."""
    if solver == "randomized":
        return _randomized_truncation(matrix, k)
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vt[:k]


def _randomized_truncation(matrix: np.ndarray, k: int) -> np.ndarray:
    """``X V V^T`` with ``V`` scikit-learn's randomized top-k right singular basis of ``X`` (X = W oriented tall),
    computed the way ``TruncatedSVD(n_components=k, n_iter=7, random_state=42).fit_transform`` does: a Gaussian
    test matrix of k + 10 columns from ``RandomState(42)``, 7 power iterations normalized by LU with partial
    pivoting, an economic QR, the SVD of the projected matrix (LAPACK gesdd)."""
    from scipy import linalg

    wide = matrix.shape[0] < matrix.shape[1]
    x = matrix.T if wide else matrix
    q = np.random.RandomState(_RANDOMIZED_SEED).normal(size=(x.shape[1], k + _RANDOMIZED_OVERSAMPLES))
    for _ in range(_RANDOMIZED_ITERATIONS):
        q, _ = linalg.lu(x @ q, permute_l=True, check_finite=False)
        q, _ = linalg.lu(x.T @ q, permute_l=True, check_finite=False)
    q, _ = linalg.qr(x @ q, mode="economic", check_finite=False)
    _, _, vt = linalg.svd(q.T @ x, full_matrices=False, lapack_driver="gesdd")
    components = vt[:k]
    smoothed = (x @ components.T) @ components
    return smoothed.T if wide else smoothed


def _permuted_spikes(matrices: list[np.ndarray], N: int, M: int, seed: int, name: str) -> int:
    """MP spikes of the ESD of W with its elements shuffled (each matrix on its own), seeded by layer name."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    shuffled = [rng.permutation(m.ravel()).reshape(m.shape) for m in matrices]
    return marchenko_pastur_fit(_esd(shuffled), N, M).num_spikes


def _describe(name: str, tensor, method: str) -> tuple[LayerTransform, np.ndarray | None]:
    shape = tuple(int(d) for d in tensor.shape)
    row = LayerTransform(name=name, layer_type=layer_type_for(name, len(shape)), method=method)
    try:
        row.N, row.M, row.rf = tensor_dims(shape)
        array = to_numpy_float(tensor, np.float64)
    except NotAWeightMatrix as err:
        row.status, row.reason = FIT_SKIPPED, str(err)
        return row, None
    row.num_evals = row.M * row.rf
    return row, array


def _rebuild(array: np.ndarray, per_matrix: int, keep: bool, solver: str) -> np.ndarray:
    """W_k (keep) or W - W_k (remove) for every matrix of the layer, in the stored layout, float64."""
    out = np.empty_like(array)
    targets = _matrices(out)
    for source, target in zip(_matrices(array), targets, strict=True):
        if keep:
            target[...] = truncate_svd(source, per_matrix, solver)
        else:
            target[...] = source - truncate_svd(source, per_matrix, "exact")
    return out


def smooth_tensor(
    tensor,
    name: str = "W",
    method: str = "detX",
    percent: float = 0.8,
    solver: str = "exact",
    min_evals: int = 8,
    max_evals: int | None = 15000,
) -> tuple[np.ndarray | None, LayerTransform]:
    """WeightWatcher's ``SVDSmoothing`` of one weight tensor: ``(smoothed float64 array or None, record)``.

    None means the tensor is left as it is (not a weight matrix, outside ``min_evals``/``max_evals`` as
    WeightWatcher's defaults leave it, ``k = 0``, or a failed count); the record says why.
    """
    if method not in SMOOTH_METHODS:
        raise ValueError(f"method={method!r}: expected one of {SMOOTH_METHODS}")
    if solver not in SVD_SOLVERS:
        raise ValueError(f"solver={solver!r}: expected one of {SVD_SOLVERS}")
    if method == "svd" and not 0.0 < percent <= 1.0:
        raise ValueError(f"percent={percent}: expected a fraction in (0, 1]")
    row, array = _describe(name, tensor, method)
    if array is None or _skip(row, array, min_evals, max_evals):
        return None, row
    matrices = _matrices(array)
    try:
        row.count = components_count(_esd(matrices), row.N, row.M, row.rf, method, percent)
    except (PowerLawFitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        row.status, row.reason = FIT_FAILED, f"cannot choose the kept components: {err}"
        return None, row
    row.kept = min(row.M, math.ceil(row.count / row.rf))
    if row.kept == 0:
        row.status, row.reason = FIT_SKIPPED, f"{method} keeps no component: left unchanged (as WeightWatcher does)"
        return None, row
    return _rebuild(array, row.kept, keep=True, solver=solver), row


def sharpen_tensor(
    tensor,
    name: str = "W",
    seed: int = 0,
    min_evals: int = 8,
    max_evals: int | None = 15000,
) -> tuple[np.ndarray | None, LayerTransform]:
    """WeightWatcher's ``SVDSharpness`` of one weight tensor: remove as many top singular components as a shuffled
    copy has Marchenko-Pastur spikes. Returns ``(sharpened float64 array or None, record)``."""
    row, array = _describe(name, tensor, "sharpness")
    if array is None or _skip(row, array, min_evals, max_evals):
        return None, row
    matrices = _matrices(array)
    try:
        row.count = _permuted_spikes(matrices, row.N, row.M, seed, name)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        row.status, row.reason = FIT_FAILED, f"cannot count the spikes of the shuffled layer: {err}"
        return None, row
    row.removed = row.count // row.rf
    if row.removed == 0:
        row.status, row.reason = FIT_SKIPPED, "the shuffled layer has no spike to remove: left unchanged"
        return None, row
    return _rebuild(array, row.removed, keep=False, solver="exact"), row


def _skip(row: LayerTransform, array: np.ndarray, min_evals: int, max_evals: int | None) -> bool:
    reason = size_skip_reason(row.num_evals, row.N, row.M, min_evals, max_evals)
    if reason:
        row.status, row.reason = FIT_SKIPPED, reason
    elif not np.isfinite(array).all():
        row.status, row.reason = FIT_FAILED, "NaN/Inf values in the weights"
    elif not array.any():
        row.status, row.reason = FIT_SKIPPED, "all weights are zero: left unchanged"
    else:
        return False
    return True
