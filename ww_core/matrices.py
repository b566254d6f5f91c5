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
    # The ESD is the singular values of the matrix, not their squares (WeightWatcher's intra-layer products).
    singular_values: bool = False
    # conv2d_fft: the Conv2D kernel whose convolution operator's spectrum is the ESD (ww_core.convolution).
    kernel: np.ndarray | None = None
    # A precomputed Gram matrix whose M largest eigenvalues are the ESD (the stacked layers: ww_core.crosslayer).
    gram: np.ndarray | None = None


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


CHANNELS = (None, "first", "last")


def tensor_dims(shape: tuple[int, ...], channels: str | None = None) -> tuple[int, int, int]:
    """(N, M, rf) of a weight tensor's shape: N >= M the matrix dimensions, rf the receptive field (kernel size).

    A 4-D kernel is ``(out, in, kh, kw)`` (``channels='last'``, torch's layout and the default) or ``(kh, kw, in,
    out)`` (``channels='first'``, Keras'): WeightWatcher's ``channels`` option names which two axes hold the kernel.
    """
    if len(shape) == 2:
        return max(shape), min(shape), 1
    if len(shape) == 4 and channels == "first":
        return max(shape[2:]), min(shape[2:]), int(shape[0] * shape[1])
    if len(shape) in (3, 4):
        rf = int(math.prod(shape[2:]))
        return max(shape[:2]), min(shape[:2]), rf
    raise NotAWeightMatrix(
        f"a {len(shape)}-D tensor is not analyzed: only 2-D (Linear, Embedding), 3-D (Conv1d) and 4-D (Conv2D) weights"
    )


def empty_tensor_reason(shape: tuple[int, ...]) -> str | None:
    """Why a tensor of 2 or more dimensions gives no eigenvalues: a 0-size axis leaves matrices without rows or
    columns, or (a kernel of 0 positions) no matrix at all, pooled or not. None otherwise. The analysis skips such a
    tensor with this reason and ``describe`` says so from the shape alone."""
    if 0 in shape:
        return f"empty matrix: a {'x'.join(map(str, shape))} tensor has no eigenvalues"
    return None


def kernel_slices(array: np.ndarray, channels: str | None = None) -> list[np.ndarray]:
    """The matrices of a Conv kernel, one per kernel position (views): ``W[:, :, i, j]`` in torch's layout,
    ``W[i, j, :, :]`` with ``channels='first'``."""
    if array.ndim == 4 and channels == "first":
        slices = array.reshape(array.shape[0] * array.shape[1], array.shape[2], array.shape[3])
        return [slices[k] for k in range(slices.shape[0])]
    slices = array.reshape(array.shape[0], array.shape[1], -1)
    return [slices[:, :, k] for k in range(slices.shape[2])]


def fourier_slices(matrices: list[np.ndarray]) -> list[np.ndarray]:
    """WeightWatcher's documented ``fft`` option: each kernel slice replaced by the real part of its 2-D discrete
    Fourier transform over the (out, in) channel axes, ``Re(F_N W F_M)``."""
    return [np.real(np.fft.fft2(np.asarray(m, dtype=np.float64))) for m in matrices]


def glorot_scale(N: int, M: int, rf: int) -> float:
    """``1 / kappa`` with ``kappa = sqrt(2 / ((N + M) rf))``, the Glorot (Xavier) standard deviation of a layer whose
    fans are N rf and M rf: WeightWatcher's ``glorot_fix`` rescales W to unit-variance Glorot units."""
    return math.sqrt((N + M) * rf / 2.0)


def layer_matrices(
    name: str,
    tensor,
    pool: bool = True,
    dtype=np.float64,
    channels: str | None = None,
    conv2d_norm: bool = True,
    glorot_fix: bool = False,
    fft: bool = False,
) -> LayerMatrices | list[LayerMatrices]:
    """Split a weight tensor into its matrices (views in the stored dtype, analyzed in ``dtype``). Conv kernels give
    one matrix per kernel position.

    With ``pool=False`` a Conv layer gives one :class:`LayerMatrices` per kernel position (a list).
    Conv2D matrices are scaled by ``sqrt(rf / 2)`` per slice and ``sqrt(1 / 2)`` pooled: WeightWatcher's default
    ``conv2d_norm``, kept so that our numbers are comparable with what users know. ``glorot_fix`` scales every
    matrix by :func:`glorot_scale` instead; ``fft`` replaces Conv2D slices by :func:`fourier_slices`.
    """
    shape = tuple(int(d) for d in getattr(tensor, "shape", ()))
    if len(shape) < 2:
        raise NotAWeightMatrix(f"a {len(shape)}-D tensor is a bias or norm, not a layer weight")
    N, M, rf = tensor_dims(shape, channels)
    empty = empty_tensor_reason(shape)
    if empty is not None:
        raise NotAWeightMatrix(empty)
    layer_type = layer_type_for(name, len(shape))
    array = stored_array(tensor)
    dtype = np.dtype(dtype)
    if array.ndim == 2:
        scale = glorot_scale(N, M, 1) if glorot_fix else 1.0
        return LayerMatrices(layer_type, [array], N, M, 1, scale=scale, dtype=dtype)
    matrices = kernel_slices(array, channels)
    if fft and array.ndim == 4:
        matrices = fourier_slices(matrices)
    # The conv2d normalization has always applied to Conv1d kernels here too (WeightWatcher cannot analyze those).
    if pool:
        scale = glorot_scale(N, M, rf) if glorot_fix else (math.sqrt(0.5) if conv2d_norm else 1.0)
        return LayerMatrices(layer_type, matrices, N, M, rf, scale=scale, dtype=dtype)
    slice_scale = glorot_scale(N, M, rf) if glorot_fix else (math.sqrt(rf / 2.0) if conv2d_norm else 1.0)
    return [LayerMatrices(layer_type, [m], N, M, rf, scale=slice_scale, dtype=dtype) for m in matrices]
