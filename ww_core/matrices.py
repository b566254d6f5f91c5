"""Turn a weight tensor into the matrices whose eigenvalues form its ESD.

This is the one place that knows tensor layouts and dtypes: 2-D (Linear, Embedding, lm_head, HF GPT-2 ``Conv1D``
stored ``(in, out)``: the ESD of W and W^T is the same), 3-D ``(out, in, k)`` Conv1d and 4-D ``(out, in, kh, kw)``
Conv2D, any float dtype (fp8, fp16 and bf16 are kept as stored here and upcast exactly, block by block, when the
Gram matrix is formed; integers are quantized data, not weights).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

LAYER_DENSE = "dense"
LAYER_EMBEDDING = "embedding"
LAYER_LM_HEAD = "lm_head"
LAYER_CONV1D = "conv1d"
LAYER_CONV2D = "conv2d"

_EMBEDDING_NAME = re.compile(r"(embed|wte|wpe|shared\.weight$|tok_embeddings)", re.IGNORECASE)
_LM_HEAD_NAME = re.compile(r"(lm_head|output\.weight$|embed_out)", re.IGNORECASE)


class NotAWeightMatrix(ValueError):
    """The tensor is not a layer weight (1-D bias or norm, integer or boolean data, a scalar)."""


@dataclass
class LayerMatrices:
    """The matrices of one layer, each of shape (n, m) with its own orientation, as numpy arrays *in their stored
    dtype* (views of the tensor: bf16/fp8 as ml_dtypes types, possibly read-only memory maps). They are upcast to
    ``dtype`` block by block where the work is done (:func:`ww_core.eigen.gram_matrix`), never copied whole."""

    layer_type: str
    matrices: list[np.ndarray]
    N: int
    M: int
    rf: int
    # Multiplies W before the eigensolve; 1 except for Conv2D (WeightWatcher's conv2d normalization).
    scale: float = 1.0
    # The working precision: float64 or float32.
    dtype: np.dtype = np.dtype(np.float64)


# torch float types numpy lacks, and the ml_dtypes type with the same bits (shared through a same-width int view).
_TORCH_AS_ML_DTYPES = {
    "torch.bfloat16": ("bfloat16", "int16"),
    "torch.float8_e4m3fn": ("float8_e4m3fn", "uint8"),
    "torch.float8_e5m2": ("float8_e5m2", "uint8"),
    "torch.float8_e4m3fnuz": ("float8_e4m3fnuz", "uint8"),
    "torch.float8_e5m2fnuz": ("float8_e5m2fnuz", "uint8"),
}


def _is_torch(tensor) -> bool:
    return tensor.__class__.__module__.startswith("torch") and hasattr(tensor, "detach")


def is_float_dtype(dtype) -> bool:
    """numpy floats and the ml_dtypes floats (bf16, fp8, fp6, fp4; they report kind 'V' and carry a finfo)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return True
    if dtype.kind != "V" or dtype.names is not None:
        return False
    import ml_dtypes

    try:
        ml_dtypes.finfo(dtype)
    except (TypeError, ValueError):
        return False
    return True


def stored_array(tensor) -> np.ndarray:
    """A numpy view of a float tensor in its stored dtype, without copying: numpy arrays as they are, torch tensors
    on the CPU through ``.numpy()`` (bf16/fp8, which numpy lacks, as the ml_dtypes type with the same bits).

    Raises :class:`NotAWeightMatrix` for integer, boolean or complex data.
    """
    if _is_torch(tensor):
        if not tensor.is_floating_point():
            raise NotAWeightMatrix(_not_float(tensor.dtype))
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        reinterpreted = _TORCH_AS_ML_DTYPES.get(str(tensor.dtype))
        if reinterpreted is None:
            return tensor.numpy()
        import ml_dtypes
        import torch

        ml_name, int_name = reinterpreted
        return tensor.view(getattr(torch, int_name)).numpy().view(getattr(ml_dtypes, ml_name))
    array = np.asarray(tensor)
    if not is_float_dtype(array.dtype):
        raise NotAWeightMatrix(_not_float(array.dtype))
    return array


def to_numpy_float(tensor, dtype=np.float64) -> np.ndarray:
    """Upcast any float tensor (numpy, ml_dtypes bf16/fp8, torch incl. bf16/fp8) to a numpy array of ``dtype``:
    a full copy; analysis itself upcasts block by block instead (:class:`LayerMatrices`)."""
    return stored_array(tensor).astype(dtype, copy=False)


def _not_float(dtype) -> str:
    return f"dtype {dtype} is not a float type (quantized blocks or an index buffer, not a weight matrix)"


def layer_type_for(name: str, ndim: int) -> str:
    if ndim == 4:
        return LAYER_CONV2D
    if ndim == 3:
        return LAYER_CONV1D
    if _LM_HEAD_NAME.search(name):
        return LAYER_LM_HEAD
    if _EMBEDDING_NAME.search(name):
        return LAYER_EMBEDDING
    return LAYER_DENSE


def tensor_dims(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(N, M, rf) of a weight tensor's shape: N >= M the matrix dimensions, rf the receptive field (kernel size)."""
    if len(shape) == 2:
        return max(shape), min(shape), 1
    if len(shape) in (3, 4):
        rf = int(math.prod(shape[2:]))
        return max(shape[:2]), min(shape[:2]), rf
    raise NotAWeightMatrix(
        f"a {len(shape)}-D tensor is not analyzed: only 2-D (Linear, Embedding), 3-D (Conv1d) and 4-D (Conv2D) weights"
    )


def layer_matrices(name: str, tensor, pool: bool = True, dtype=np.float64) -> LayerMatrices | list[LayerMatrices]:
    """Split a weight tensor into its matrices (views in the stored dtype, analyzed in ``dtype``). Conv kernels give
    one matrix per kernel position.

    With ``pool=False`` a Conv layer gives one :class:`LayerMatrices` per kernel position (a list).
    Conv2D matrices are scaled by ``sqrt(rf / 2)`` per slice and ``sqrt(1 / 2)`` pooled: WeightWatcher's default
    ``conv2d_norm``, kept so that our numbers are comparable with what users know.
    """
    shape = tuple(int(d) for d in getattr(tensor, "shape", ()))
    if len(shape) < 2:
        raise NotAWeightMatrix(f"a {len(shape)}-D tensor is a bias or norm, not a layer weight")
    N, M, rf = tensor_dims(shape)
    layer_type = layer_type_for(name, len(shape))
    array = stored_array(tensor)
    dtype = np.dtype(dtype)
    if array.ndim == 2:
        return LayerMatrices(layer_type, [array], N, M, 1, dtype=dtype)
    slices = array.reshape(shape[0], shape[1], rf)
    matrices = [slices[:, :, k] for k in range(rf)]
    if pool:
        return LayerMatrices(layer_type, matrices, N, M, rf, scale=math.sqrt(0.5), dtype=dtype)
    return [LayerMatrices(layer_type, [m], N, M, rf, scale=math.sqrt(rf / 2.0), dtype=dtype) for m in matrices]
