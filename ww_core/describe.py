"""WeightWatcher's ``describe()``: which layers an analysis would cover, with their sizes, from shapes alone.

No weight is read and no eigenvalue computed: a layer's type, ``N >= M``, receptive field and number of eigenvalues
follow from its shape and the ``channels`` option (:func:`ww_core.matrices.tensor_dims`, as in the analysis), and
whether it would be skipped from its dtype and the ``min_evals`` / ``max_evals`` options, with the same reasons the
analysis gives.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from .matrices import NotAWeightMatrix, _not_float, empty_tensor_reason, layer_type_for, tensor_dims

if TYPE_CHECKING:
    from .analysis import AnalysisOptions

STATUS_ANALYZE = "analyze"
STATUS_SKIP = "skip"
STATUS_FAIL = "fail"  # what the caller's reader knows will fail (a stored tensor its file lacks): a failed row


@dataclass
class LayerDescription:
    """One layer as an analysis would see it. ``status`` is ``analyze``, ``skip`` or ``fail`` (``reason`` says
    why)."""

    layer_id: int
    name: str
    layer_type: str = ""
    N: int = 0
    M: int = 0
    rf: int = 1
    num_evals: int = 0
    dtype: str = ""
    quantization: str = ""
    expert: int | None = None
    status: str = STATUS_ANALYZE
    reason: str = ""

    def as_row(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DESCRIBE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LayerDescription))


def size_skip_reason(num_evals: int, N: int, M: int, min_evals: int, max_evals: int | None) -> str | None:
    """Why a layer of ``num_evals`` eigenvalues is not analyzed, or None (WeightWatcher's min/max_evals limits)."""
    if num_evals == 0 or N == 0:
        return f"empty matrix {N}x{M}"
    if num_evals < min_evals:
        return f"{num_evals} eigenvalues < min_evals={min_evals}"
    if max_evals is not None and num_evals > max_evals:
        return f"{num_evals} eigenvalues > max_evals={max_evals} (pass max_evals=None to analyze it)"
    return None


def describe_layer(
    layer_id: int, name: str, shape: tuple[int, ...], dtype: str, is_float: bool, options: AnalysisOptions
) -> LayerDescription:
    """The description of one stored tensor of 2 or more dimensions (``dtype`` is shown as given)."""
    row = LayerDescription(layer_id=layer_id, name=name, layer_type=layer_type_for(name, len(shape)), dtype=dtype)
    shape = tuple(int(d) for d in shape)
    try:
        row.N, row.M, row.rf = tensor_dims(shape, options.channels)  # a conv kernel read as the analysis reads it
    except NotAWeightMatrix as err:
        row.status, row.reason = STATUS_SKIP, str(err)
        return row
    empty = empty_tensor_reason(shape)
    if empty is not None:  # as the analysis skips it (unpooled, a kernel of 0 positions is no slice at all)
        row.status, row.reason = STATUS_SKIP, empty
        return row
    # WeightWatcher's describe(): M eigenvalues per matrix, pooled over the kernel positions unless pool=False.
    row.num_evals = row.M * (row.rf if options.pool else 1)
    reason = (
        _not_float(dtype)
        if not is_float
        else size_skip_reason(row.num_evals, row.N, row.M, options.min_evals, options.max_evals)
    )
    if reason:
        row.status, row.reason = STATUS_SKIP, reason
    return row
