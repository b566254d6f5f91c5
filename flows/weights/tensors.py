"""Stored tensors as a file's header describes them, and the dtype tables every reader and decoder shares.

A leaf module (numpy only): readers, the GGUF file format, the decoder contract and every decoder import it, and it
imports none of them. ``ml_dtypes`` (numpy types for bf16 and fp8) is imported on the first bf16/fp8 tensor, not
before: its import costs a float32 model's whole start-up several times over (docs/speed.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import WeightsError


@dataclass
class TensorInfo:
    """A stored tensor as a file's header describes it (``dtype`` is the safetensors name, e.g. ``BF16``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]


# safetensors dtype names → numpy dtypes (little-endian, as the format stores them).
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype(np.bool_),
}
# safetensors dtype names numpy lacks → the ml_dtypes type with the same bits.
_ML_DTYPES = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu"}
# Every dtype a shard's tensors can be read in (as numpy arrays); see :func:`numpy_dtype`.
READABLE_DTYPES = frozenset(_NUMPY_DTYPES) | frozenset(_ML_DTYPES)
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
INTEGER_DTYPES = frozenset({"I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL"})

# Bits per element of each safetensors dtype (the format's spec), to check a shape against its data offsets.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


def numpy_dtype(name: str) -> np.dtype | None:
    """The numpy dtype of a safetensors dtype name (bf16 and fp8 as ml_dtypes types, imported here on first use),
    or None when wwhub cannot read that dtype."""
    dtype = _NUMPY_DTYPES.get(name)
    if dtype is None and name in _ML_DTYPES:
        import ml_dtypes

        dtype = np.dtype(getattr(ml_dtypes, _ML_DTYPES[name]))
    return dtype


def is_whole(value: object) -> bool:
    """An integer as a header or config holds one (JSON's ``true`` is a Python int, never a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_positive_whole(value: object) -> bool:
    return is_whole(value) and value > 0


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def corrupt_header(label: str, problem: str) -> WeightsError:
    """The error of a safetensors header that is not of the format's making: ``LABEL: corrupt safetensors header:
    PROBLEM`` (a file's bytes, so a failed scan of its commit, never retried)."""
    return WeightsError(f"{label}: corrupt safetensors header: {problem}")


def check_tensor_entry(label: str, name: str, dtype: str, shape: tuple, begin: int, end: int) -> None:
    """A header entry that describes its own data: whole non-negative dimensions whose product, at the dtype's
    width, fills ``data_offsets`` exactly. Checked before anything is allocated from the shape (a shape claiming
    10¹² elements over a few bytes is corrupt or hostile). Raises ``corrupt_header`` naming the tensor."""
    if not all(is_whole(d) and d >= 0 for d in shape) or len(shape) > 8:
        raise corrupt_header(label, f"tensor {name!r} has an invalid shape {list(shape)[:9]}")
    if not (is_whole(begin) and is_whole(end) and 0 <= begin <= end):
        raise corrupt_header(label, f"tensor {name!r} has invalid data offsets [{begin}, {end}]")
    numel = 1
    for dim in shape:
        numel *= dim
    need = (numel * DTYPE_BITS.get(dtype, 1) + 7) // 8  # an unknown dtype has at least one bit per element
    if (need != end - begin) if dtype in DTYPE_BITS else (need > end - begin):
        raise corrupt_header(
            label,
            f"tensor {name!r} of shape {list(shape)} ({dtype}) needs {need} bytes, but its data offsets hold "
            f"{end - begin}",
        )
