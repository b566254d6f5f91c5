"""Analyze weight tensors: arrays in, :class:`LayerMetrics` out.

The public entry points are :func:`analyze_matrix` (one tensor) and :func:`analyze_model` (an iterable of
``(name, tensor)``, consumed lazily so that a caller can stream shards through it).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np
from threadpoolctl import ThreadpoolController

from . import powerlaw
from .describe import size_skip_reason
from .eigen import DEVICES, PRECISIONS, compute_dtype, gram_eigenvalues, row_blocks
from .marchenko_pastur import marchenko_pastur_fit, random_matrix_edge
from .matrices import CHANNELS, LayerMatrices, NotAWeightMatrix, layer_matrices, layer_type_for, tensor_dims
from .norms import detx_condition, jensen_shannon_distance, matrix_entropy, matrix_rank
from .records import (
    FIT_FAILED,
    FIT_SKIPPED,
    OVER_TRAINED,
    OVER_TRAINED_ALPHA,
    UNDER_TRAINED,
    UNDER_TRAINED_ALPHA,
    LayerMetrics,
)

logger = logging.getLogger(__name__)

FIX_FINGERS = (None, "clip_xmax", "xmin_peak")
FITS = ("PL", "TPL", "E_TPL")
PL_PACKAGES = ("ww", "powerlaw")
# WeightWatcher's default weak_rank_loss tolerance on eigenvalues.
WEAK_RANK_LOSS_TOLERANCE = 1e-6
# A randomized ESD whose largest eigenvalue lies this many Tracy-Widom widths right of the MP edge is a trap.
# The TW1 law puts less than 1e-4 of its mass beyond +4 (Tracy & Widom 1996).
TRAP_TW_WIDTHS = 4.0
# WeightWatcher draws 5 randomized copies when a layer has fewer than 100 eigenvalues, for a steadier estimate.
_FEW_EVALS = 100
_FEW_EVALS_REPLICAS = 5
# Layers queued behind a slow one, at most (so that a model of many tiny tensors keeps a short queue).
_MAX_QUEUED_LAYERS = 64


@dataclass(frozen=True)
class AnalysisOptions:
    """The switches of WeightWatcher's ``analyze()`` that change the numbers, plus where and how to compute.

    ``max_evals=None`` analyzes every layer whatever its size; WeightWatcher's defaults (8, 15000) are kept, but a
    layer outside them becomes a ``skipped`` row with its reason instead of vanishing. There is no ``max_N``: the
    Gram matrix is M x M, so embeddings and lm_heads with N > 50 000 cost little and are always analyzed.

    WeightWatcher's per-layer options, each defined in the module that computes it: ``vectors``
    (:mod:`ww_core.vectors`), ``glorot_fix``, ``conv2d_norm``, ``channels``, ``fft`` (:mod:`ww_core.matrices`),
    ``conv2d_fft`` (:mod:`ww_core.convolution`), ``fit='E_TPL'``, ``xmax``, ``pl_package`` (:mod:`ww_core.powerlaw`);
    ``tolerance`` counts ``weak_rank_loss``; ``inverse`` analyzes the ESD of X^-1 (``1/lambda`` for the eigenvalues
    above the rank threshold). ``keep_evals`` keeps each row's eigenvalues (and eigenvector metrics) for plots.
    """

    min_evals: int = 8
    max_evals: int | None = 15000
    randomize: bool = False
    mp_fit: bool = False
    detX: bool = False
    fix_fingers: str | None = None
    xmin_max: float | None = None
    max_fingers: int = 10
    finger_thresh: float = 1.0
    pool: bool = True
    fit: str = "PL"
    seed: int = 0
    device: str = "cpu"
    precision: str = "float64"
    blas_threads: int | None = 1
    keep_evals: bool = False
    vectors: bool = False
    glorot_fix: bool = False
    conv2d_norm: bool = True
    channels: str | None = None
    conv2d_fft: bool = False
    fft: bool = False
    xmax: int | str | None = None
    pl_package: str = "ww"
    tolerance: float = WEAK_RANK_LOSS_TOLERANCE
    inverse: bool = False

    def __post_init__(self) -> None:
        if self.fix_fingers not in FIX_FINGERS:
            raise ValueError(f"fix_fingers={self.fix_fingers!r}: expected one of {FIX_FINGERS}")
        if self.fit not in FITS:
            raise ValueError(f"fit={self.fit!r}: expected one of {FITS}")
        if self.fit != "PL" and self.fix_fingers == "clip_xmax":
            raise ValueError(f"fit={self.fit!r} cannot be combined with fix_fingers='clip_xmax'")
        if self.pl_package not in PL_PACKAGES:
            raise ValueError(f"pl_package={self.pl_package!r}: expected one of {PL_PACKAGES}")
        if (
            self.xmax is not None
            and self.xmax != "force"
            and (isinstance(self.xmax, bool) or not isinstance(self.xmax, int) or self.xmax == 0)
        ):
            raise ValueError(
                f"xmax={self.xmax!r}: expected None, 'force' or a nonzero count of top eigenvalues to clip"
            )
        if isinstance(self.xmax, int) and self.fix_fingers is not None:
            raise ValueError(f"xmax={self.xmax} cannot be combined with fix_fingers")
        if self.channels not in CHANNELS:
            raise ValueError(f"channels={self.channels!r}: expected one of {CHANNELS}")
        if self.conv2d_fft and not self.pool:
            raise ValueError("conv2d_fft needs pool=True (the operator's spectrum pools every frequency)")
        if self.conv2d_fft and self.fft:
            raise ValueError("conv2d_fft and fft cannot both be set")
        if self.inverse and self.vectors:
            raise ValueError("inverse cannot be combined with vectors")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance={self.tolerance}: must be >= 0")
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device!r}: expected one of {DEVICES}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("device='cuda': torch sees no CUDA device (install a CUDA build of torch, or use cpu)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.min_evals < 2:
            raise ValueError(f"min_evals={self.min_evals}: a fit needs at least 2 eigenvalues")
        if self.max_evals is not None and self.max_evals < self.min_evals:
            raise ValueError(f"max_evals={self.max_evals} is below min_evals={self.min_evals}")
        if self.max_fingers < 2:
            raise ValueError(f"max_fingers={self.max_fingers}: must be at least 2")
        if self.blas_threads is not None and self.blas_threads < 1:
            raise ValueError(f"blas_threads={self.blas_threads}: must be >= 1 or None (library default)")

    @classmethod
    def from_kwargs(cls, **options) -> AnalysisOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown analysis option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)


def _layer_seed(seed: int, name: str, slice_id: int) -> np.random.Generator:
    # Seeded by name, not position, so a layer gets the same randomized copy whatever shard order or worker.
    return np.random.default_rng([seed, zlib.crc32(name.encode()), slice_id + 1])


def _fit_power_law(positive: np.ndarray, options: AnalysisOptions) -> powerlaw.PowerLawFit:
    xmin_peak = options.fix_fingers == "xmin_peak" or options.fit == "E_TPL"
    if options.pl_package == "powerlaw":
        return powerlaw.fit_with_powerlaw_package(
            positive,
            truncated=options.fit != "PL",
            xmin_peak=xmin_peak,
            xmin_max=options.xmin_max,
            force_xmax=options.xmax == "force",
            clip_xmax=options.fix_fingers == "clip_xmax",
            max_fingers=options.max_fingers,
            finger_thresh=options.finger_thresh,
        )
    if options.fit != "PL":
        start = powerlaw.fit_power_law_xmin_peak(positive, options.xmin_max) if xmin_peak else None
        return powerlaw.fit_truncated_power_law(positive, start)
    if options.fix_fingers == "clip_xmax":
        return powerlaw.fit_power_law_clip_xmax(positive, options.max_fingers, options.finger_thresh)
    if xmin_peak:
        return powerlaw.fit_power_law_xmin_peak(positive, options.xmin_max)
    return powerlaw.fit_power_law(positive)


def _apply_norms(row: LayerMetrics, evals: np.ndarray, eps: float) -> None:
    lambda_max = float(evals[-1])
    total = float(np.sum(evals))
    row.lambda_max = lambda_max
    row.norm = total
    row.log_norm = math.log10(total)
    row.spectral_norm = lambda_max
    row.log_spectral_norm = math.log10(lambda_max)
    row.stable_rank = total / lambda_max
    row.matrix_rank = matrix_rank(evals, row.N, eps)
    row.entropy = matrix_entropy(evals, row.matrix_rank)


def _log10_sum_of_powers(evals: np.ndarray, alpha: float) -> float:
    """``log10 sum(lambda^alpha)`` by log-sum-exp, ``m + ln sum exp(alpha ln lambda - m)`` with m the largest term,
    so that ``lambda_max^alpha`` cannot overflow (scipy's ``logsumexp`` without importing scipy on the default path).
    """
    with np.errstate(divide="ignore"):
        logs = alpha * np.log(evals)
    top = float(np.max(logs))
    return (top + math.log(float(np.sum(np.exp(logs - top))))) / math.log(10)


def _apply_power_law(row: LayerMetrics, evals: np.ndarray, options: AnalysisOptions) -> None:
    all_evals = evals
    if isinstance(options.xmax, int):
        # WeightWatcher's integer xmax: the |xmax| largest eigenvalues are left out of the fit (and its tail count).
        clipped = abs(options.xmax)
        if clipped > evals.size / 2:
            row.fit_status = FIT_FAILED
            row.reason = f"xmax={options.xmax} clips more than half of the {evals.size} eigenvalues"
            return
        evals = evals[:-clipped]
    positive = evals[evals > powerlaw.EVALS_THRESHOLD]
    if positive.size < 2:  # the threshold is absolute: small weights can have positive eigenvalues below it
        row.fit_status = FIT_FAILED
        row.reason = (
            f"power-law fit failed: {positive.size} eigenvalue(s) above {powerlaw.EVALS_THRESHOLD:g} "
            "(weightwatcher's threshold), at least 2 needed"
        )
        return
    try:
        fit = _fit_power_law(positive, options)
    except powerlaw.PowerLawFitError as err:
        row.fit_status = FIT_FAILED
        row.reason = f"power-law fit failed: {err}"
        return
    row.alpha = fit.alpha
    row.xmin = fit.xmin
    row.xmax = fit.xmax
    row.D = fit.D
    row.sigma = fit.sigma
    row.Lambda = fit.Lambda
    row.num_fingers = fit.num_fingers
    row.raw_alpha = fit.raw_alpha
    row.num_pl_spikes = int(np.count_nonzero(evals >= fit.xmin))
    row.alpha_weighted = fit.alpha * row.log_spectral_norm
    row.log_alpha_norm = _log10_sum_of_powers(all_evals, fit.alpha)
    if fit.alpha < OVER_TRAINED_ALPHA:
        row.warning = OVER_TRAINED
    elif fit.alpha > UNDER_TRAINED_ALPHA:
        row.warning = UNDER_TRAINED


def _note(row: LayerMetrics, message: str) -> None:
    row.reason = f"{row.reason}; {message}" if row.reason else message


def _apply_marchenko_pastur(row: LayerMetrics, evals: np.ndarray) -> None:
    try:
        mp = marchenko_pastur_fit(evals, row.N, row.M)
    except (ValueError, FloatingPointError) as err:
        _note(row, f"MP fit failed: {err}")
        return
    row.num_spikes = mp.num_spikes
    row.sigma_mp = mp.sigma_mp
    row.mp_softrank = mp.mp_softrank
    row.bulk_min = mp.bulk_min
    row.bulk_max = mp.bulk_max
    row.W_scale = mp.scale


def _apply_randomization(
    row: LayerMetrics, layer: LayerMatrices, evals: np.ndarray, options: AnalysisOptions
) -> np.ndarray:
    """Shuffle W's elements (destroying correlations, keeping the element distribution) and compare ESDs.

    WeightWatcher's rand_* columns come from the Marchenko-Pastur fit of the shuffled ESD (``num_traps`` is its
    spike count, ``rand_bulk_max`` its fitted bulk edge). ``correlation_trap`` instead compares each shuffled
    matrix's largest eigenvalue with the MP edge that its i.i.d. entries imply, ``var(w) (sqrt N + sqrt M)^2``
    (``rand_iid_bulk_max``), in Tracy-Widom widths: no fitted sigma is involved, so a Gaussian layer is not flagged
    by fitting noise, and a few huge elements are.
    """
    rng = _layer_seed(options.seed, row.name, row.slice_id)
    replicas = _FEW_EVALS_REPLICAS if evals.size < _FEW_EVALS else 1
    draws = []
    trap_score = -math.inf
    for replica in range(replicas):
        per_matrix = []
        for matrix in layer.matrices:
            # One shuffled copy, in the stored dtype or the working one, whichever is smaller (a bf16 layer's copy is
            # bf16, a float64 layer's is float32 in float32), upcast block by block like W itself.
            copy_dtype = matrix.dtype if matrix.dtype.itemsize <= layer.dtype.itemsize else layer.dtype
            shuffled = np.array(matrix, dtype=copy_dtype).reshape(-1)
            rng.shuffle(shuffled)
            slice_evals = _eigenvalues([shuffled.reshape(matrix.shape)], layer, options)
            del shuffled
            per_matrix.append(slice_evals)
            if replica == 0:
                variance = _element_variance(matrix) * layer.scale**2
                edge, width = random_matrix_edge(variance, max(matrix.shape), min(matrix.shape))
                row.rand_iid_bulk_max = edge if math.isnan(row.rand_iid_bulk_max) else max(edge, row.rand_iid_bulk_max)
                if width > 0:
                    trap_score = max(trap_score, (float(slice_evals[-1]) - edge) / width)
        draws.append(_transform(np.sort(np.concatenate(per_matrix)), layer, options))
    rand_evals = np.sort(np.concatenate(draws))
    first = draws[0]
    row.rand_lambda_max = float(rand_evals[-1])
    row.ww_softrank = float(first[-1] / evals[-1])
    row.ww_maxdist = float(evals[-1] - first[-1])
    if first.size == evals.size:
        row.rand_distance = jensen_shannon_distance(evals, first)
    try:
        mp = marchenko_pastur_fit(rand_evals, row.N, row.M)
    except (ValueError, FloatingPointError) as err:
        _note(row, f"MP fit of the randomized ESD failed: {err}")
    else:
        row.rand_num_spikes = row.num_traps = mp.num_spikes
        row.rand_sigma_mp = mp.sigma_mp
        row.rand_mp_softrank = mp.mp_softrank
        row.rand_W_scale = mp.scale
        row.rand_bulk_min = mp.bulk_min
        row.rand_bulk_max = mp.bulk_max
    row.correlation_trap = bool(trap_score > TRAP_TW_WIDTHS)
    return rand_evals


def _element_variance(matrix: np.ndarray) -> float:
    """``var(w) = mean(w^2) - mean(w)^2`` over W's elements in float64, from row blocks (no full-size temporary).

    The one-pass form loses digits only when ``mean(w)^2`` dwarfs ``var(w)``, which weight matrices never approach.
    """
    total = squares = 0.0
    for block in row_blocks(matrix, np.float64):
        flat = block.ravel(order="K")  # a view: blocks are contiguous in one order or the other
        total += float(flat.sum())
        squares += float(np.dot(flat, flat))
    mean = total / matrix.size
    return max(squares / matrix.size - mean * mean, 0.0)


def _eigenvalues(matrices: list[np.ndarray], layer: LayerMatrices, options: AnalysisOptions, per_matrix=False):
    if layer.gram is not None:
        evals = np.maximum(np.linalg.eigvalsh(layer.gram)[-layer.M :], 0.0) * layer.scale**2
        return evals[None, :] if per_matrix else evals
    if options.inverse and layer.kernel is None:
        # 1/lambda magnifies the smallest eigenvalues, which the Gram matrix holds only to ~eps lambda_max absolute:
        # an SVD gives them to ~eps relative (a cost paid only with inverse).
        rows = [np.linalg.svd(np.asarray(m, dtype=np.float64), compute_uv=False) ** 2 for m in matrices]
        evals = np.sort(np.stack(rows), axis=1) * layer.scale**2
        return evals if per_matrix else np.sort(evals.ravel())
    if layer.kernel is not None:
        from .convolution import operator_eigenvalues

        evals = operator_eigenvalues(layer.kernel, options.channels, dtype=layer.dtype) * layer.scale**2
        return evals if per_matrix else np.sort(evals.ravel())
    return gram_eigenvalues(matrices, layer.scale, options.device, layer.dtype, options.blas_threads, per_matrix)


def _transform(evals: np.ndarray, layer: LayerMatrices, options: AnalysisOptions) -> np.ndarray:
    """The ESD analyzed, from the sorted eigenvalues of X: singular values for an intra-layer product (WeightWatcher
    fits those), ``1/lambda`` over X's range with ``inverse``."""
    if layer.singular_values:
        evals = np.sqrt(evals)
    if options.inverse:
        evals = np.sort(1.0 / evals[evals > float(evals[-1]) * max(layer.N, 1) * float(np.finfo(layer.dtype).eps)])
    return evals


def _apply_spectrum(row: LayerMetrics, layer: LayerMatrices, options: AnalysisOptions) -> np.ndarray | None:
    """Eigenvalues, singular-value extremes and rank losses; returns the ESD (None when the layer failed)."""
    try:
        per_matrix = _eigenvalues(layer.matrices, layer, options, per_matrix=True)
    except FloatingPointError as err:  # NaN/Inf weights, or an overflow: the message says which
        row.fit_status, row.reason = FIT_FAILED, str(err)
        return None
    except np.linalg.LinAlgError as err:
        row.fit_status, row.reason = FIT_FAILED, f"the eigensolver failed: {err}"
        return None
    if per_matrix[:, -1].max() <= 0.0:
        underflow = math.sqrt(float(np.finfo(layer.dtype).tiny))
        row.fit_status = FIT_FAILED
        row.reason = (
            f"all eigenvalues are zero (the weights are all zero, or all below {underflow:.0e}, whose squares "
            f"underflow in {np.dtype(layer.dtype).name})"
        )
        return None
    eps = float(np.finfo(layer.dtype).eps)
    singular = np.sqrt(per_matrix)
    if layer.singular_values:
        singular = np.sqrt(singular)
    row.sv_max = float(singular[:, -1].max())
    row.sv_min = float(singular[:, 0].max())
    thresholds = per_matrix[:, -1:] * row.N * eps
    below = per_matrix <= thresholds
    row.rank_loss = int(np.count_nonzero(below))
    # Eigenvalues at the rounding level of the working precision (lambda_max N eps) are zero to that precision: what
    # the eigensolver returns there is noise (in float32, ~1e-7 lambda_max, far above weightwatcher's 1e-5
    # threshold), and a power law fitted on it described no matrix. They enter the ESD as zeros.
    evals = _transform(np.sort(np.where(below, 0.0, per_matrix).ravel()), layer, options)
    row.num_evals = int(evals.size)
    row.has_esd = True
    row.weak_rank_loss = int(np.count_nonzero(evals < options.tolerance))
    return evals


def _apply_vectors(row: LayerMetrics, layer: LayerMatrices, options: AnalysisOptions) -> None:
    from .vectors import bulk_tail_statistics, eigenvector_metrics

    if layer.kernel is not None or layer.gram is not None:
        _note(row, "vectors: not computed for a conv2d_fft or stacked layer")
        return
    _, metrics = eigenvector_metrics(layer.matrices, layer.scale)
    if options.keep_evals:
        row.eigenvector_metrics = metrics
    if row.num_pl_spikes is not None:
        for column, value in bulk_tail_statistics(metrics, row.num_pl_spikes).items():
            setattr(row, column, value)


def _apply_detx(row: LayerMetrics, evals: np.ndarray) -> None:
    row.detX_num, row.detX_val = detx_condition(evals)
    row.num_ERG_spikes = row.detX_num
    # WeightWatcher's "unrescaled" value is the one on the unit-mean scale its detX condition uses.
    row.detX_val_unrescaled = row.detX_val * evals.size / float(np.sum(evals))
    if row.num_pl_spikes is not None:
        row.ERG_gap = float(row.detX_num - row.num_pl_spikes)


def analyze_layer(row: LayerMetrics, layer: LayerMatrices, options: AnalysisOptions) -> LayerMetrics:
    """Every metric of one layer's matrices into ``row`` (which carries its identity: id, name, N, M, rf)."""
    precomputed = layer.kernel is not None or layer.gram is not None
    if layer.kernel is not None:
        num_evals = layer.M * layer.rf
    elif layer.gram is not None:
        num_evals = layer.M
    else:
        num_evals = layer.M * len(layer.matrices)
    row.num_evals = num_evals
    row.Q = row.N / row.M if row.M else math.nan
    skip = size_skip_reason(num_evals, layer.N, layer.M, options.min_evals, options.max_evals)
    if skip and not precomputed:
        row.fit_status, row.reason = FIT_SKIPPED, skip
        return row
    evals = _apply_spectrum(row, layer, options)
    if evals is None:
        return row
    _apply_norms(row, evals, float(np.finfo(layer.dtype).eps))
    _apply_power_law(row, evals, options)
    if options.mp_fit:
        _apply_marchenko_pastur(row, evals)
    if options.vectors:
        _apply_vectors(row, layer, options)
    rand_evals = None
    if options.randomize and (layer.kernel is not None or layer.gram is not None):
        _note(row, "randomize: not available with conv2d_fft or stacked")
    elif options.randomize:
        try:
            rand_evals = _apply_randomization(row, layer, evals, options)
        except (FloatingPointError, np.linalg.LinAlgError) as err:
            _note(row, f"randomization failed: {err}")
    if options.detX:
        _apply_detx(row, evals)
    if options.keep_evals:
        row.evals = evals
        row.rand_evals = rand_evals
    return row


def _longname(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def _analyze_tensor(layer_id: int, name: str, tensor, options: AnalysisOptions) -> list[LayerMetrics]:
    shape = tuple(int(d) for d in tensor.shape)
    base = dict(layer_id=layer_id, name=name, layer_type=layer_type_for(name, len(shape)), longname=_longname(name))
    try:
        N, M, rf = tensor_dims(shape, options.channels)
        base.update(N=N, M=M, rf=rf)
        layers = layer_matrices(
            name,
            tensor,
            pool=options.pool,
            dtype=compute_dtype(options.precision),
            channels=options.channels,
            conv2d_norm=options.conv2d_norm,
            glorot_fix=options.glorot_fix,
            fft=options.fft,
        )
        if options.conv2d_fft and len(shape) == 4:
            from .convolution import operator_layer

            layers = operator_layer(layers, tensor, options.channels)
        if isinstance(layers, LayerMatrices):
            return [analyze_layer(LayerMetrics(**base), layers, options)]
        return [
            analyze_layer(LayerMetrics(**base, slice_id=slice_id), layer, options)
            for slice_id, layer in enumerate(layers)
        ]
    except NotAWeightMatrix as err:
        return [LayerMetrics(**base, fit_status=FIT_SKIPPED, reason=str(err))]
    except MemoryError:
        # One layer too large for this machine (e.g. a float64 copy of a huge lm_head) fails alone.
        return [LayerMetrics(**base, fit_status=FIT_FAILED, reason=_out_of_memory(shape, options))]
    except Exception as err:  # noqa: BLE001 - a bug met by one layer fails that layer, not the model's other layers
        if _is_device_out_of_memory(err):
            return [LayerMetrics(**base, fit_status=FIT_FAILED, reason=_out_of_memory(shape, options))]
        logger.exception("%s: unexpected error analyzing a %s tensor", name, "x".join(map(str, shape)))
        reason = f"unexpected {err.__class__.__name__}: {err}"
        return [LayerMetrics(**base, fit_status=FIT_FAILED, reason=reason)]


def _out_of_memory(shape, options: AnalysisOptions) -> str:
    return f"out of memory analyzing a {'x'.join(map(str, shape))} tensor in {options.precision} on {options.device}"


def _is_device_out_of_memory(err: Exception) -> bool:
    """torch's CUDA out-of-memory error (a RuntimeError, ``torch.cuda.OutOfMemoryError`` since 1.13): a layer too
    large for the GPU, not a bug. Recognized by class name so that ww_core never imports torch to ask."""
    return any(cls.__name__ == "OutOfMemoryError" for cls in type(err).__mro__)


_controller: ThreadpoolController | None = None


def _blas_limit(options: AnalysisOptions):
    # OpenBLAS with 2 threads on 2 cores turned a 384x384 eigvalsh from 15 ms into 1.3 s here (thread spin
    # contention); one thread per eigensolve is the measured best, and callers parallelize across layers.
    # The controller is built once: building it scans every loaded library (~2 ms), limiting is ~10 us.
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=options.blas_threads, user_api="blas")


def is_layer_tensor(tensor) -> bool:
    """A tensor that becomes a row: 2-D or more (biases and norms are 1-D)."""
    return len(getattr(tensor, "shape", ())) >= 2


def _numbered_layers(
    named_tensors: Iterable[tuple[str, object]], layer_ids: Mapping[str, int] | None
) -> Iterator[tuple[int, str, object]]:
    position = 0
    for name, tensor in named_tensors:
        if not is_layer_tensor(tensor):
            continue
        yield (layer_ids.get(name, position) if layer_ids is not None else position), name, tensor
        position += 1


def analyze_model(
    named_tensors: Iterable[tuple[str, object]],
    layer_ids: Mapping[str, int] | None = None,
    workers: int = 1,
    **options,
) -> Iterator[LayerMetrics]:
    """Analyze every layer of a model, one tensor at a time, yielding one :class:`LayerMetrics` per layer.

    ``named_tensors`` is consumed lazily: pass a generator over a safetensors shard and only the current tensor is
    held in memory. 1-D tensors (biases, norms) and 0-D scalars are not layers and produce no row; every other
    tensor produces a row, ``skipped`` or ``failed`` with a ``reason`` when it cannot be analyzed.
    ``layer_ids`` fixes each tensor's ``layer_id`` (e.g. from a model's index when shards arrive out of order);
    by default layers are numbered in arrival order. Options: see :class:`AnalysisOptions`.

    ``workers > 1`` analyzes that many layers at once on threads (LAPACK and numpy release the GIL), each
    eigensolve on ``blas_threads`` BLAS threads; rows still come in input order. Tensors are read ahead only
    while the ones waiting behind the oldest unfinished layer add up to no more bytes than it holds, so memory
    stays near ``max(workers, 2)`` times the largest tensor. While the generator is open, the process's BLAS
    thread limit stays set (the limit is global to the process, so it cannot be set per thread).
    """
    opts = AnalysisOptions.from_kwargs(**options)
    if workers < 1:
        raise ValueError(f"workers={workers}: must be at least 1")
    layers = _numbered_layers(named_tensors, layer_ids)
    if workers == 1:
        for layer_id, name, tensor in layers:
            with _blas_limit(opts):
                rows = _analyze_tensor(layer_id, name, tensor, opts)
            yield from rows
        return
    with _blas_limit(opts), ThreadPoolExecutor(workers, thread_name_prefix="ww-layer") as pool:
        in_flight: deque[tuple[Future, int]] = deque()
        queued_bytes = 0
        for layer_id, name, tensor in layers:
            size = _nbytes(tensor)
            in_flight.append((pool.submit(_analyze_tensor, layer_id, name, tensor, opts), size))
            queued_bytes += size
            del tensor  # the future holds it until analyzed, no longer
            # Rows leave in input order. A large head (an embedding) would stall the other workers, so smaller
            # layers may queue behind it, up to its own size in bytes: memory stays within ~2x the largest tensor.
            while len(in_flight) >= workers and (
                queued_bytes - in_flight[0][1] >= in_flight[0][1] or len(in_flight) >= _MAX_QUEUED_LAYERS
            ):
                future, head_size = in_flight.popleft()
                queued_bytes -= head_size
                yield from future.result()
        while in_flight:
            yield from in_flight.popleft()[0].result()


def _nbytes(tensor) -> int:
    size = getattr(tensor, "nbytes", None)
    return int(size) if size is not None else 4 * math.prod(int(d) for d in tensor.shape)


def analyze_matrix(W, name: str = "W", layer_id: int = 0, **options) -> LayerMetrics | list[LayerMetrics]:
    """Analyze one weight tensor. Returns one :class:`LayerMetrics`, or one per kernel position when
    ``pool=False`` and W is a convolution kernel."""
    opts = AnalysisOptions.from_kwargs(**options)
    if not is_layer_tensor(W):
        raise ValueError(f"{name}: a {len(getattr(W, 'shape', ()))}-D tensor is not a weight matrix")
    with _blas_limit(opts):
        rows = _analyze_tensor(layer_id, name, W, opts)
    return rows[0] if len(rows) == 1 else rows
