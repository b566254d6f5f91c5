"""Records that cross the ww_core boundary: one per layer, one per model.

Column names follow WeightWatcher 0.7.7 so that users can read our tables with what they already know.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

FIT_OK = "ok"
FIT_FAILED = "failed"
FIT_SKIPPED = "skipped"

OVER_TRAINED = "over-trained"
UNDER_TRAINED = "under-trained"
OVER_TRAINED_ALPHA = 2.0
UNDER_TRAINED_ALPHA = 6.0

NAN = math.nan


@dataclass
class LayerMetrics:
    """Spectral metrics of one weight tensor (or one Conv2D slice when ``pool=False``).

    Floats are NaN when a metric was not computed (an option switched off, or a failed fit);
    ``fit_status`` and ``reason`` say why.
    """

    layer_id: int
    name: str
    layer_type: str = ""
    N: int = 0
    M: int = 0
    rf: int = 1
    slice_id: int = -1
    # WeightWatcher's longname: the module path (the tensor name without ".weight"); Q = N / M.
    longname: str = ""
    Q: float = NAN
    num_evals: int = 0
    has_esd: bool = False
    # Largest singular value, and WeightWatcher's sv_min: the largest over the layer's matrices of each one's smallest
    # singular value (one matrix: its smallest).
    sv_max: float = NAN
    sv_min: float = NAN
    # Eigenvalues below the rank threshold (num_evals - matrix_rank, summed over the matrices) and below ``tolerance``.
    rank_loss: int | None = None
    weak_rank_loss: int | None = None
    lambda_max: float = NAN
    norm: float = NAN
    log_norm: float = NAN
    spectral_norm: float = NAN
    log_spectral_norm: float = NAN
    stable_rank: float = NAN
    matrix_rank: int | None = None
    entropy: float = NAN
    alpha: float = NAN
    alpha_weighted: float = NAN
    log_alpha_norm: float = NAN
    xmin: float = NAN
    xmax: float = NAN
    D: float = NAN
    sigma: float = NAN
    num_pl_spikes: int | None = None
    Lambda: float = NAN
    num_fingers: int = 0
    raw_alpha: float = NAN
    warning: str = ""
    num_spikes: int | None = None
    sigma_mp: float = NAN
    mp_softrank: float = NAN
    bulk_min: float = NAN
    bulk_max: float = NAN
    W_scale: float = NAN
    rand_lambda_max: float = NAN
    rand_distance: float = NAN
    # The MP fit of the randomized ESD (WeightWatcher's rand_* columns; num_traps is its spike count).
    rand_num_spikes: int | None = None
    num_traps: int | None = None
    rand_sigma_mp: float = NAN
    rand_mp_softrank: float = NAN
    rand_W_scale: float = NAN
    rand_bulk_min: float = NAN
    rand_bulk_max: float = NAN
    # Ours: the MP edge var(w) (sqrt N + sqrt M)^2 that W's i.i.d. entries imply, which correlation_trap tests against.
    rand_iid_bulk_max: float = NAN
    ww_softrank: float = NAN
    ww_maxdist: float = NAN
    correlation_trap: bool | None = None
    detX_num: int | None = None
    detX_val: float = NAN
    # WeightWatcher's names: detX_val on the unit-mean scale, detX_num again, detX_num - num_pl_spikes.
    detX_val_unrescaled: float = NAN
    num_ERG_spikes: int | None = None
    ERG_gap: float = NAN
    # Eigenvector localization (``vectors``): mean and variance over the bulk (eigenvalue < xmin) and the tail.
    bulk_mean_vec_entropy: float = NAN
    bulk_var_vec_entropy: float = NAN
    tail_mean_vec_entropy: float = NAN
    tail_var_vec_entropy: float = NAN
    bulk_mean_loc_ratio: float = NAN
    bulk_var_loc_ratio: float = NAN
    tail_mean_loc_ratio: float = NAN
    tail_var_loc_ratio: float = NAN
    bulk_mean_part_ratio: float = NAN
    bulk_var_part_ratio: float = NAN
    tail_mean_part_ratio: float = NAN
    tail_var_part_ratio: float = NAN
    # Rows of the cross-layer analyses: intra-layer products (Xflag) and LoRA updates (peft).
    Xflag: bool | None = None
    peft: bool | None = None
    fit_status: str = FIT_OK
    reason: str = ""
    evals: object = field(default=None, repr=False, compare=False)
    rand_evals: object = field(default=None, repr=False, compare=False)
    # Per-eigenvector metrics (``vectors`` with ``keep_evals``): arrays in ascending eigenvalue order.
    eigenvector_metrics: object = field(default=None, repr=False, compare=False)

    def as_row(self) -> dict:
        """The record as a flat dict of plain Python values (eigenvalue arrays left out)."""
        return {name: getattr(self, name) for name in LAYER_COLUMNS}


ARRAY_FIELDS = ("evals", "rand_evals", "eigenvector_metrics")
LAYER_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LayerMetrics) if f.name not in ARRAY_FIELDS)
VECTOR_COLUMNS: tuple[str, ...] = tuple(
    f"{part}_{stat}_{metric}"
    for metric in ("vec_entropy", "loc_ratio", "part_ratio")
    for part in ("bulk", "tail")
    for stat in ("mean", "var")
)

SUMMARY_METRICS: tuple[str, ...] = (
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "mp_softrank",
)


@dataclass
class ModelSummary:
    """Model averages over the layers whose fit is ``ok`` (WeightWatcher's ``get_summary()`` plus counts)."""

    alpha: float = NAN
    alpha_weighted: float = NAN
    log_alpha_norm: float = NAN
    log_norm: float = NAN
    log_spectral_norm: float = NAN
    stable_rank: float = NAN
    mp_softrank: float = NAN
    num_layers: int = 0
    num_ok: int = 0
    num_failed: int = 0
    num_skipped: int = 0
    num_over_trained: int = 0
    num_under_trained: int = 0
    # Layers whose randomized ESD is trapped (correlation_trap); a layer's own num_traps counts its spikes.
    num_trap_layers: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(layers: list[LayerMetrics]) -> ModelSummary:
    """Average the summary metrics over ``ok`` layers; a failed or skipped layer never enters a mean.

    WeightWatcher averages every row, including failed fits reported as alpha = -1; we do not.
    """
    ok = [layer for layer in layers if layer.fit_status == FIT_OK]
    summary = ModelSummary(
        num_layers=len(layers),
        num_ok=len(ok),
        num_failed=sum(layer.fit_status == FIT_FAILED for layer in layers),
        num_skipped=sum(layer.fit_status == FIT_SKIPPED for layer in layers),
        num_over_trained=sum(layer.warning == OVER_TRAINED for layer in ok),
        num_under_trained=sum(layer.warning == UNDER_TRAINED for layer in ok),
        num_trap_layers=sum(bool(layer.correlation_trap) for layer in layers),
    )
    for metric in SUMMARY_METRICS:
        values = [getattr(layer, metric) for layer in ok]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        setattr(summary, metric, sum(finite) / len(finite) if finite else NAN)
    return summary


@dataclass
class LayerDistance:
    """The distance between one layer of a model and the same layer of its base (:mod:`ww_core.distances`)."""

    layer_id: int
    name: str
    layer_type: str = ""
    N: int = 0
    M: int = 0
    rf: int = 1
    method: str = "euclidean"
    delta_W: float = NAN
    relative_change: float = NAN
    dW_norm: float = NAN
    base_norm: float = NAN
    dW_lambda_max: float = NAN
    dW_stable_rank: float = NAN
    dW_effective_rank: float = NAN
    dW_rank: int | None = None
    dW_num_evals: int = 0
    dW_alpha: float = NAN
    fit_status: str = FIT_OK
    reason: str = ""

    def as_row(self) -> dict:
        return {name: getattr(self, name) for name in DISTANCE_COLUMNS}


DISTANCE_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LayerDistance))
