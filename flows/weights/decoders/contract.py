"""The step between stored tensors and the matrices a model multiplies by.

A checkpoint stores *tensors*; the model multiplies by *logical weight matrices*. They differ for fused MoE experts
(one 3-D tensor holds every expert), quantized weights (packed codes plus scales and zero points), adapters
(``lora_A``/``lora_B`` stand for the update ``(alpha/r)·B·A``) and buffers (attention masks, ``inv_freq``) that are
no matrices at all. Each scheme is a :class:`Decoder`: from the plan alone (names, dtypes, shapes; no weights
read) it *claims* the stored tensors it understands and says which :class:`MatrixSpec` they make. Claimed tensors
never become rows by themselves: a scale, a zero point or an expert bias is consumed, not analyzed. What no decoder
claims is handled by the plain path (a float tensor of 2 or more dimensions is its own matrix).

A spec's ``decode`` receives the stored arrays it named in ``sources`` (numpy, in the file's dtype: ml_dtypes for
bf16/fp8, possibly memory-mapped) and returns the logical matrix as float32 or float64 (or, when the matrix is the
stored tensor or a slice of it, that float view itself: exact, and ww_core upcasts it); it never rounds through
the checkpoint's compute dtype. A spec that cannot be decoded honestly carries ``skip_reason`` instead and becomes
a ``skipped`` row naming the scheme; when only the stored values show it (a side tensor such as ``weight_shape``),
``decode`` raises :class:`~flows.weights.errors.UndecodableWeights` with that reason, and the row is skipped too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import WeightsError
from ..tensors import TensorInfo, is_positive_whole, is_whole


@dataclass(frozen=True)
class ModelConfig:
    """What decoders may read about a model besides its tensors: ``config.json`` and ``adapter_config.json``."""

    config: Mapping[str, Any] = field(default_factory=dict)
    adapter_config: Mapping[str, Any] | None = None

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type") or "")

    @property
    def quantization_config(self) -> Mapping[str, Any]:
        return self.config.get("quantization_config") or {}


def validate_model_config(config: dict, label: str) -> dict:
    """The parsed ``config.json``, its fields that decoders compute with checked once: a decoder never meets a
    string where it needs a number. Only these fields are checked (a config holds many others, and quantization
    methods no decoder reads keep theirs). Raises WeightsError naming ``label`` and the field."""
    qc = _checked(config, "quantization_config", _is_mapping, "a JSON object", label)
    ffn = _checked(config, "ffn_config", _is_mapping, "a JSON object", label)
    _checked(ffn or {}, "moe_num_experts", is_positive_whole, "a positive integer", label, "ffn_config.")
    if not qc:
        return config
    qc_ = "quantization_config."
    _checked(qc, "quant_method", lambda v: isinstance(v, str), "text", label, qc_)
    for key in ("bits", "w_bit", "group_size", "q_group_size"):
        _checked(qc, key, is_whole, "an integer", label, qc_)
    _checked(qc, "weight_block_size", _is_block, "[rows, columns] of positive integers", label, qc_)
    groups = _checked(qc, "config_groups", _is_mapping, "a JSON object", label, qc_) or {}
    _checked(qc, "ignore", _is_text_list, "a list of text", label, qc_)
    for name in groups:
        group = _checked(groups, name, _is_mapping, "a JSON object", label, f"{qc_}config_groups.") or {}
        _checked(group, "targets", _is_text_list, "a list of text", label, f"{qc_}config_groups.{name}.")
        weights = _checked(group, "weights", _is_mapping, "a JSON object", label, f"{qc_}config_groups.{name}.") or {}
        where = f"{qc_}config_groups.{name}.weights."
        for key in ("num_bits", "group_size"):
            _checked(weights, key, is_whole, "an integer", label, where)
        block = "[rows, columns] of positive integers, or text"
        _checked(weights, "block_structure", lambda v: isinstance(v, str) or _is_block(v), block, label, where)
    return config


def _checked(
    fields: Mapping[str, Any], key: str, valid: Callable[[Any], bool], expected: str, label: str, where: str = ""
) -> Any:
    value = fields.get(key)
    if value is not None and not valid(value):
        raise WeightsError(f"{label}: {where}{key} is {value!r}, expected {expected}")
    return value


def _is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(is_positive_whole(v) for v in value)


@dataclass
class MatrixSpec:
    """One logical weight matrix, known from the plan before any weight is read.

    ``name`` is the row's name (the stored tensor's name when it is the matrix itself; for a split or decoded
    matrix, a name that says which expert and projection, e.g. ``model.layers.0.mlp.experts.3.down_proj``).
    ``sources`` are the stored tensors ``decode`` needs. ``shape`` is the logical shape (2-D, or 3-D/4-D conv).
    """

    name: str
    sources: tuple[str, ...]
    shape: tuple[int, ...]
    decode: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None
    expert: int | None = None
    quantization: str = ""
    skip_reason: str | None = None
    layer_type: str | None = None  # None: ww_core decides from name and shape


@dataclass
class Claim:
    """What a decoder takes from the plan: the matrices it makes and every stored tensor it consumes (its
    sources and side tensors: scales, zero points, ``g_idx``, expert biases), none of which become rows."""

    matrices: list[MatrixSpec] = field(default_factory=list)
    consumed: set[str] = field(default_factory=set)
    # The model parameters these tensors stand for; None: the elements of the matrices' logical shapes. A fused
    # expert decoder adds its expert biases; an adapter counts what it stores (r·(in+out) per module), not ΔW.
    num_params: int | None = None


class Decoder(Protocol):
    """One storage scheme (a quantization format, a fused layout, an adapter format)."""

    name: str

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        """Claim the tensors of ``tensors`` (the not yet claimed ones, by name) that this scheme decodes."""
        ...
