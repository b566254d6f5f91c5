"""How far one weight tensor moved from another: WeightWatcher 0.7.7's ``distances()`` and the spectrum of the update.

For a layer ``W`` of a model and the same layer ``W_base`` of its base, with ``dW = W - W_base``:

* ``delta_W``, by ``method`` as WeightWatcher 0.7.7 defines it (``WeightWatcher.distances`` / ``matrix_distance``):
  ``raw``: ``||W - W_base||_F`` over the whole tensor; ``euclidean``: the same per weight matrix, averaged over the
  matrices of the layer (one for Linear/Embedding, one per kernel position for Conv); ``cka``: the uncentered CKA
  ratio ``||W^T W_base||_F / sqrt(||W^T W||_F ||W_base W_base^T||_F)`` averaged the same way (1 = same up to a
  rotation; WeightWatcher adds 1e-6 to a denominator below 1e-6, and so do we);
* ``relative_change = ||dW||_F / ||W_base||_F``, which WeightWatcher does not report;
* the spectrum of the update itself, ``dW^T dW`` (its ESD, with the layer's own conventions: eigenvalues are squared
  singular values, Conv2D pooled and normalized as in the analysis): ``dW_lambda_max``, ``dW_stable_rank`` =
  ``sum(lambda) / lambda_max``, ``dW_rank`` (numerical rank), ``dW_effective_rank`` (Roy & Vetterli 2007,
  ``exp(-sum p ln p)`` with ``p = sigma / sum(sigma)`` over the nonzero singular values) and ``dW_alpha`` (the
  power-law fit of :mod:`ww_core.powerlaw` on the eigenvalues above the rank threshold, when there are at least
  ``min_evals``). A low-rank nudge (a merged LoRA) has a small ``dW_rank``; a rewrite has a full-rank, heavy-tailed dW.

WeightWatcher computes all of this in float32 (it casts every state-dict tensor with ``.float()``) and forms the
N x N matrix ``W_base W_base^T`` for a tall layer (30522^2 for a BERT embedding): its CKA of a 30522 x 384
embedding is off by 8e-3 (it exceeds 1). Here the sums are float64 and the N x N product is never formed:
``||A A^T||_F = ||A^T A||_F``, and for a wide layer ``||W^T W_base||_F^2 = <W W^T, W_base W_base^T>_F``, both from
the M x M Gram matrices accumulated over row blocks of the tall orientation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .eigen import gram_eigenvalues
from .matrices import (
    NotAWeightMatrix,
    empty_tensor_reason,
    layer_matrices,
    layer_type_for,
    tensor_dims,
    to_numpy_float,
)
from .norms import matrix_rank
from .powerlaw import PowerLawFitError, fit_power_law
from .records import FIT_FAILED, FIT_OK, FIT_SKIPPED, NAN, LayerDistance

DISTANCE_METHODS = ("raw", "euclidean", "cka")
# WeightWatcher's guard against a zero denominator in its CKA ratio.
_CKA_FLOOR = 1e-6
# Rows of the tall orientation converted to float64 at a time: 4M elements (32 MB) per temporary.
_BLOCK_ELEMENTS = 1 << 22
# Layers named in a note of the layers one model has and the other lacks, at most.
_SHOWN_UNPAIRED = 5


@dataclass
class DistanceSummary:
    """Model-level means over ``ok`` rows: ``avg_dW`` is WeightWatcher's (the mean ``delta_W``)."""

    method: str = "euclidean"
    avg_dW: float = NAN
    mean_relative_change: float = NAN
    max_relative_change: float = NAN
    mean_dW_alpha: float = NAN
    num_layers: int = 0
    num_ok: int = 0
    num_failed: int = 0
    num_skipped: int = 0

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else NAN


def summarize_distances(rows: list[LayerDistance], method: str = "euclidean") -> DistanceSummary:
    """Means over ``ok`` rows (WeightWatcher's ``avg_dW`` averages every row it produced; it has no failed rows)."""
    ok = [r for r in rows if r.fit_status == FIT_OK]
    changes = [r.relative_change for r in ok if math.isfinite(r.relative_change)]
    return DistanceSummary(
        method=method,
        avg_dW=_mean([r.delta_W for r in ok]),
        mean_relative_change=_mean(changes),
        max_relative_change=max(changes) if changes else NAN,
        mean_dW_alpha=_mean([r.dW_alpha for r in ok]),
        num_layers=len(rows),
        num_ok=len(ok),
        num_failed=sum(r.fit_status == FIT_FAILED for r in rows),
        num_skipped=sum(r.fit_status == FIT_SKIPPED for r in rows),
    )


def not_compared_note(names: list[str], where: str) -> str:
    """What a comparison says of the layers only ``where`` has (a new classification head), left out: their count
    and the first names, as ``wwhub distance`` prints it and ``WeightWatcher.distances()`` logs it."""
    shown = ", ".join(names[:_SHOWN_UNPAIRED]) + (", ..." if len(names) > _SHOWN_UNPAIRED else "")
    return f"{len(names)} layers only in {where}, not compared: {shown}"


def _shape(tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(tensor, "shape", ()))


def _tall(matrix):
    """The matrix with at least as many rows as columns (a view: numpy ``.T`` / torch ``.T``)."""
    return matrix.T if matrix.shape[0] < matrix.shape[1] else matrix


def _row_blocks(tall) -> list[slice]:
    rows = max(1, _BLOCK_ELEMENTS // max(1, int(tall.shape[1])))
    return [slice(start, min(start + rows, int(tall.shape[0]))) for start in range(0, int(tall.shape[0]), rows)]


@dataclass
class _Sums:
    """What one pass over a pair of matrices accumulates (float64)."""

    dW: np.ndarray | None  # the update, tall orientation, in the analysis precision (when its spectrum is wanted)
    dW_sq: float
    base_sq: float
    gram: np.ndarray | None = None  # W^T W (tall orientation)
    base_gram: np.ndarray | None = None
    cross: np.ndarray | None = None  # W^T W_base (tall orientation), only when WeightWatcher's product is M x M


def _squared_norm(block: np.ndarray) -> float:
    flat = block.ravel(order="K")  # no copy for C- or F-ordered blocks
    return float(np.dot(flat, flat))


def _accumulate(matrix, base, dtype, cka: bool, cross: bool, keep_delta: bool) -> _Sums:
    """One pass over row blocks of the tall orientation of two same-shape matrices (numpy or torch, any float)."""
    tall, tall_base = _tall(matrix), _tall(base)
    n, m = int(tall.shape[0]), int(tall.shape[1])
    sums = _Sums(np.empty((n, m), dtype=dtype) if keep_delta else None, 0.0, 0.0)
    if cka:
        sums.gram = np.zeros((m, m))
        sums.base_gram = np.zeros((m, m))
        sums.cross = np.zeros((m, m)) if cross else None
    for rows in _row_blocks(tall):
        block = to_numpy_float(tall[rows], np.float64)
        block_base = to_numpy_float(tall_base[rows], np.float64)
        delta = block - block_base
        sums.dW_sq += _squared_norm(delta)
        sums.base_sq += _squared_norm(block_base)
        if keep_delta:
            sums.dW[rows] = delta
        if cka:
            sums.gram += block.T @ block
            sums.base_gram += block_base.T @ block_base
            if cross:
                sums.cross += block.T @ block_base
    return sums


def _cka(sums: _Sums) -> float:
    """WeightWatcher's uncentered CKA from the Gram matrices (see the module docstring)."""
    if sums.cross is not None:
        numerator = float(np.linalg.norm(sums.cross))
    else:
        numerator = math.sqrt(max(0.0, float(np.einsum("ij,ij->", sums.gram, sums.base_gram))))
    denominator = math.sqrt(float(np.linalg.norm(sums.gram)) * float(np.linalg.norm(sums.base_gram)))
    if denominator < _CKA_FLOOR:
        denominator += _CKA_FLOOR
    return numerator / denominator


def _layer_matrices_of(name: str, tensor, stored_2d: bool) -> list:
    """The weight matrices WeightWatcher compares: the stored matrix, or one per kernel position (oriented tall,
    as its Conv2D slicing does)."""
    if stored_2d:
        return [tensor]
    shape = _shape(tensor)
    slices = tensor.reshape(shape[0], shape[1], -1)
    return [_tall(slices[:, :, k]) for k in range(slices.shape[2])]


def _spectrum_of_update(row: LayerDistance, name: str, dW_tensor: np.ndarray, min_evals: int, max_evals) -> None:
    layer = layer_matrices(name, dW_tensor, pool=True, dtype=dW_tensor.dtype)
    num_evals = layer.M * len(layer.matrices)
    row.dW_num_evals = num_evals
    if max_evals is not None and num_evals > max_evals:
        row.reason = f"spectrum of dW not computed: {num_evals} eigenvalues > max_evals={max_evals}"
        return
    evals = gram_eigenvalues(layer.matrices, layer.scale)
    lambda_max = float(evals[-1])
    row.dW_lambda_max = lambda_max
    if lambda_max <= 0.0:
        row.dW_rank = 0
        row.dW_effective_rank = 0.0
        row.reason = "the layer did not change (dW = 0)"
        return
    row.dW_stable_rank = float(np.sum(evals)) / lambda_max
    # The rounding level of the precision dW is held in: in float32 (a scan's), float64's eps counted the noise
    # of the null space as rank (a rank-8 update: dW_rank 130, dW_alpha fitted on noise).
    rank = matrix_rank(evals, row.N, float(np.finfo(dW_tensor.dtype).eps))
    row.dW_rank = rank
    nonzero = evals[evals.size - rank :]
    singular = np.sqrt(nonzero)
    p = singular / np.sum(singular)
    row.dW_effective_rank = float(np.exp(-np.sum(p * np.log(p))))
    if rank < min_evals:
        row.reason = f"dW has rank {rank} < min_evals={min_evals}: a low-rank update, no power-law fit"
        return
    try:
        row.dW_alpha = fit_power_law(nonzero).alpha
    except PowerLawFitError as err:
        row.reason = f"power-law fit of dW failed: {err}"


def layer_distance(
    tensor,
    base_tensor,
    name: str = "W",
    layer_id: int = 0,
    method: str = "euclidean",
    spectrum: bool = True,
    min_evals: int = 8,
    max_evals: int | None = None,
    precision: str = "float64",
) -> LayerDistance:
    """The distance of ``tensor`` (a model's layer) from ``base_tensor`` (the same layer of its base).

    Both are numpy or torch arrays of any float dtype and the same shape (2-D Linear/Embedding, 3-D/4-D Conv).
    ``method`` picks what ``delta_W`` reports (``raw``, ``euclidean``, ``cka``: see the module docstring);
    ``relative_change`` and, with ``spectrum``, the spectrum of ``dW`` (held in ``precision``) are always computed.
    Raises ``ValueError`` for different shapes or an unknown method; a non-float tensor or a 0-size one (no matrix:
    the analysis skips it, :func:`ww_core.matrices.empty_tensor_reason`) gives a ``skipped`` row, NaN/Inf a
    ``failed`` one.
    """
    if method not in DISTANCE_METHODS:
        raise ValueError(f"method={method!r}: expected one of {DISTANCE_METHODS}")
    shape, base_shape = _shape(tensor), _shape(base_tensor)
    if shape != base_shape:
        raise ValueError(f"{name}: shapes differ: {list(shape)} vs base {list(base_shape)}")
    row = LayerDistance(layer_id=layer_id, name=name, layer_type=layer_type_for(name, len(shape)), method=method)
    dtype = np.float64 if precision == "float64" else np.float32
    try:
        row.N, row.M, row.rf = tensor_dims(shape)
        empty = empty_tensor_reason(shape)
        if empty is not None:  # its sums are 0: an ok row of delta_W 0 would measure nothing
            raise NotAWeightMatrix(empty)
        stored_2d = len(shape) == 2
        pairs = list(
            zip(
                _layer_matrices_of(name, tensor, stored_2d),
                _layer_matrices_of(name, base_tensor, stored_2d),
                strict=True,
            )
        )
        # WeightWatcher's CKA numerator W^T W_base is M x M when the stored matrix is tall (and for every Conv
        # slice, which it orients tall); for a wide stored matrix it is N x N and we use the Gram identity instead.
        cross = not stored_2d or shape[0] >= shape[1]
        per_matrix = [_accumulate(a, b, dtype, method == "cka", cross, spectrum) for a, b in pairs]
    except NotAWeightMatrix as err:
        row.fit_status, row.reason = FIT_SKIPPED, str(err)
        return row
    dW_sq = sum(s.dW_sq for s in per_matrix)
    base_sq = sum(s.base_sq for s in per_matrix)
    if not (math.isfinite(dW_sq) and math.isfinite(base_sq)):
        row.fit_status, row.reason = FIT_FAILED, "NaN/Inf values in the weights"
        return row
    row.dW_norm = math.sqrt(dW_sq)
    row.base_norm = math.sqrt(base_sq)
    row.relative_change = row.dW_norm / row.base_norm if row.base_norm > 0 else NAN
    if method == "raw":
        row.delta_W = row.dW_norm
    elif method == "euclidean":
        row.delta_W = sum(math.sqrt(s.dW_sq) for s in per_matrix) / len(per_matrix)
    else:
        row.delta_W = sum(_cka(s) for s in per_matrix) / len(per_matrix)
    if spectrum:
        dW = per_matrix[0].dW if stored_2d else _restack(shape, [s.dW for s in per_matrix])
        try:
            _spectrum_of_update(row, name, dW, min_evals, max_evals)
        except (FloatingPointError, np.linalg.LinAlgError) as err:
            row.reason = f"spectrum of dW failed: {err}"
    return row


def _restack(shape: tuple[int, ...], tall_slices: list[np.ndarray]) -> np.ndarray:
    """A Conv update back in its stored layout ``(out, in, k...)`` from its slices oriented tall."""
    out, inp = shape[0], shape[1]
    slices = [s if s.shape == (out, inp) else s.T for s in tall_slices]
    return np.stack(slices, axis=-1).reshape(shape)
