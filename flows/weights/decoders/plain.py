"""The plain path, last: every unclaimed float tensor of two or more dimensions is its own matrix, as stored.

What no decoder took and still looks quantized (integer codes of two or more dimensions, or a weight stored beside
scales, zero points or ``g_idx``) becomes *one* ``skipped`` row per module, named after the module, whose reason
lists what was found; its codes and side tensors never become rows. 0-D and 1-D float tensors (biases, norms) are
parameters but not matrices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..tensors import FLOAT_DTYPES, INTEGER_DTYPES, TensorInfo
from .contract import Claim, MatrixSpec, ModelConfig

# Last name parts that only quantized checkpoints store beside a weight.
_SIDE_TENSORS = re.compile(
    r"^(weight_scale|weight_scale_inv|weight_zero_point|input_scale|scales|qweight|qzeros|g_idx|scb|absmax|"
    r"quant_map|nested_absmax|nested_quant_map|quant_state.*|weight_packed|weight_shape)$",
    re.IGNORECASE,
)
_WEIGHT_SUFFIX = re.compile(r"\.weight(\..*)?$")


def module_of(name: str) -> str:
    """The module a stored tensor belongs to: ``x.weight`` / ``x.weight.absmax`` / ``x.scales`` → ``x``."""
    stripped = _WEIGHT_SUFFIX.sub("", name)
    return stripped if stripped != name else name.rsplit(".", 1)[0]


def _is_side(name: str) -> bool:
    return _SIDE_TENSORS.match(name.rsplit(".", 1)[-1]) is not None


def _identity(name: str):
    return lambda arrays: arrays[name]


def _quantized_modules(tensors: Mapping[str, TensorInfo]) -> dict[str, list[TensorInfo]]:
    modules: dict[str, list[TensorInfo]] = {}
    for info in tensors.values():
        modules.setdefault(module_of(info.name), []).append(info)
    quantized = {}
    for module, members in modules.items():
        packed = any(m.dtype in INTEGER_DTYPES and len(m.shape) >= 2 for m in members)
        sides = any(_is_side(m.name) for m in members)
        if packed or sides:
            quantized[module] = members
    return quantized


class Plain:
    """Float tensors as they are stored; leftover quantized modules as one skipped row each."""

    name = "plain"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim(num_params=0)
        scheme = str(config.quantization_config.get("quant_method") or "")
        for module, members in _quantized_modules(tensors).items():
            # Codes, scales, zero points: taken. A float bias beside them stays a parameter.
            taken = [m for m in members if len(m.shape) >= 2 or m.dtype not in FLOAT_DTYPES or _is_side(m.name)]
            found = ", ".join(f"{m.name.rsplit('.', 1)[-1]} {m.dtype}" for m in taken)
            named = f" (quantization_config: {scheme})" if scheme else ""
            reason = f"quantized weights ({found}){named} that no decoder reads"
            sources = tuple(m.name for m in taken)
            claim.matrices.append(MatrixSpec(module, sources, (), quantization=scheme or "unknown", skip_reason=reason))
            claim.consumed.update(sources)
        for name, info in tensors.items():
            if name in claim.consumed:
                continue
            if info.dtype == "" and not info.shape:
                # Known only by name (an index entry whose shard header is not read yet): planned when it is.
                claim.matrices.append(MatrixSpec(name, (name,), (), _identity(name)))
                claim.consumed.add(name)
            elif len(info.shape) < 2:
                if info.dtype in FLOAT_DTYPES:
                    claim.num_params += math.prod(info.shape)
            elif info.dtype in FLOAT_DTYPES:
                claim.matrices.append(MatrixSpec(name, (name,), info.shape, _identity(name)))
                claim.consumed.add(name)
                claim.num_params += math.prod(info.shape)
            else:
                reason = f"dtype {info.dtype} is not a float weight type (not a matrix wwhub can analyze)"
                claim.matrices.append(MatrixSpec(name, (name,), info.shape, skip_reason=reason))
                claim.consumed.add(name)
        return claim
