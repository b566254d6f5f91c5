"""LoRA / PEFT adapters: the update ΔW each adapted module adds to its base weight, never the raw A and B.

PEFT (``peft/tuners/lora/layer.py``: ``LoraLayer.update_layer``, ``Linear.get_delta_weight``,
``Embedding.get_delta_weight``, ``Conv2d.get_delta_weight``) computes, per adapted module,

    ΔW = s · B · A,   s = lora_alpha / r   (s = lora_alpha / √r with ``use_rslora``)

with ``r`` and ``lora_alpha`` taken from ``rank_pattern`` / ``alpha_pattern`` when a pattern key matches the module
name (``peft.utils.other.get_pattern_key``: the key matches the name's tail at a dot), else the config's. For a
Linear, ``A`` is ``[r, in]`` and ``B`` ``[out, r]`` (ΔW transposed when ``fan_in_fan_out``, GPT-2's Conv1D); for an
Embedding, ``lora_embedding_A`` is ``[r, num_embeddings]`` and ``lora_embedding_B`` ``[dim, r]``, ΔW = (B·A)ᵀ; for
a Conv2d, ``A`` is ``[r, in, kh, kw]`` and ``B`` ``[out, r, 1, 1]``. ΔW is computed in float32 (PEFT casts bf16 /
fp16 to float32 for the product, then back: we do not round back).

Rows are named after the adapted module (``model.layers.0.self_attn.q_proj``, the ``base_model.model.`` prefix
dropped). DoRA (``lora_magnitude_vector``) rescales W + ΔW by the base weight's row norms, so without the base its
update is a ``skipped`` row; :func:`merge_adapter` (``--merge-base``) forms the merged weight W + ΔW (DoRA:
m / ‖W + ΔW‖ · (W + ΔW), the norm over each output row) for every adapted module of a base checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import WeightsError
from ..tensors import TensorInfo, is_number, is_positive_whole
from .contract import Claim, MatrixSpec, ModelConfig

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PREFIX = "base_model.model."
_TENSOR = re.compile(
    r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B|lora_magnitude_vector)"
    r"(?:\.(?!weight$)(?P<adapter>[^.]+))?(?:\.weight)?$"
)
_LORA_BIAS = re.compile(r"^(?P<module>.+)\.lora_B(?:\.[^.]+)?\.bias$")


def validate_adapter_config(adapter_config: object, label: str) -> dict:
    """The parsed ``adapter_config.json``, checked for what decoding needs. Raises WeightsError naming ``label``."""
    if not isinstance(adapter_config, dict):
        raise WeightsError(f"{label}: expected a JSON object")
    if str(adapter_config.get("peft_type") or "LORA").upper() != "LORA":
        return adapter_config  # other PEFT methods are recognised and reported as skipped, not decoded
    r = adapter_config.get("r")
    if not is_positive_whole(r):
        raise WeightsError(f"{label}: r={r!r}: the LoRA rank must be a positive integer")
    alpha = adapter_config.get("lora_alpha", 8)
    if not is_number(alpha):
        raise WeightsError(f"{label}: lora_alpha={alpha!r}: must be a number")
    for key in ("rank_pattern", "alpha_pattern"):
        pattern = adapter_config.get(key) or {}
        if not isinstance(pattern, dict):
            raise WeightsError(f"{label}: {key} must be a mapping of module name patterns to numbers")
        # A rank is a whole number of rows of A (0.5 once became int(0.5) = 0 and divided by zero); a scale any number.
        valid, expected = (
            (is_positive_whole, "a positive integer") if key == "rank_pattern" else (is_number, "a number")
        )
        for name, value in pattern.items():
            if not valid(value):
                raise WeightsError(f"{label}: {key}[{name!r}]={value!r}: must be {expected}")
            try:
                re.compile(name)
            except re.error as err:
                raise WeightsError(f"{label}: {key}[{name!r}]: not a valid module name pattern ({err})") from None
    return adapter_config


def pattern_value(patterns: Mapping[str, float], module: str, default: float) -> float:
    """PEFT's ``get_pattern_key``: the first pattern key that matches the end of ``module`` at a dot boundary."""
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", module):
            return patterns[key]
    return default


def lora_scaling(adapter_config: Mapping, module: str) -> tuple[int, float]:
    """(r, s) of one module: ``s = alpha / r``, or ``alpha / √r`` with ``use_rslora``."""
    r = int(pattern_value(adapter_config.get("rank_pattern") or {}, module, adapter_config["r"]))
    alpha = float(pattern_value(adapter_config.get("alpha_pattern") or {}, module, adapter_config.get("lora_alpha", 8)))
    return r, alpha / math.sqrt(r) if adapter_config.get("use_rslora") else alpha / r


def module_name(stored: str) -> str:
    """The adapted module's name in the base model: PEFT's ``base_model.model.`` wrapper prefix dropped."""
    return stored[len(PEFT_PREFIX) :] if stored.startswith(PEFT_PREFIX) else stored


@dataclass
class LoraSpec(MatrixSpec):
    """A ΔW spec, with what merging it into a base weight needs."""

    module: str = ""
    delta: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None
    magnitude: str | None = None  # DoRA's lora_magnitude_vector tensor
    fan_in_fan_out: bool = False
    layer: str = "linear"  # linear | embedding | conv


@dataclass
class _Module:
    tensors: dict[str, TensorInfo] = field(default_factory=dict)  # kind → info


def _delta_weight(a_name: str, b_name: str, kind: str, scaling: float, fan_in_fan_out: bool) -> Callable:
    def delta(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        a = np.asarray(arrays[a_name], dtype=np.float32)
        b = np.asarray(arrays[b_name], dtype=np.float32)
        if kind == "embedding":
            return (b @ a).T * np.float32(scaling)
        if a.ndim == 4:
            product = b.reshape(b.shape[0], b.shape[1]) @ a.reshape(a.shape[0], -1)
            return product.reshape(b.shape[0], *a.shape[1:]) * np.float32(scaling)
        product = b @ a
        return (product.T if fan_in_fan_out else product) * np.float32(scaling)

    return delta


def _delta_shape(a: tuple[int, ...], b: tuple[int, ...], kind: str, fan_in_fan_out: bool) -> tuple[int, ...] | str:
    """ΔW's shape, or why A and B do not make one."""
    if kind == "embedding":
        if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
            return f"lora_embedding_A {list(a)} and lora_embedding_B {list(b)} do not multiply"
        return (a[1], b[0])
    if len(a) == 4 and len(b) == 4 and b[2:] == (1, 1) and a[0] == b[1]:
        return (b[0], *a[1:])
    if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
        return f"lora_A {list(a)} and lora_B {list(b)} do not multiply as a Linear or 1x1-B Conv2d LoRA"
    return (a[1], b[0]) if fan_in_fan_out else (b[0], a[1])


class LoraAdapter:
    """ΔW = s·B·A per adapted module of a PEFT LoRA adapter (only when ``adapter_config.json`` says LORA)."""

    name = "lora"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        adapter = config.adapter_config
        if adapter is None:
            return Claim()
        peft_type = str(adapter.get("peft_type") or "LORA").upper()
        if peft_type != "LORA":
            return _unsupported(tensors, peft_type)
        claim = Claim(num_params=0)
        modules: dict[str, _Module] = {}
        for name, info in tensors.items():
            match = _TENSOR.match(name)
            if match is not None:
                modules.setdefault(match["module"], _Module()).tensors[match["kind"]] = info
            elif not any(part.startswith("lora_") for part in name.split(".")):
                continue  # a full weight the adapter stores (modules_to_save): the plain path's
            elif _LORA_BIAS.match(name) is None and len(info.shape) >= 2:
                reason = "LoRA adapter: a lora_ tensor of a layout wwhub does not know"
                claim.matrices.append(MatrixSpec(module_name(name), (name,), info.shape, skip_reason=reason))
            claim.consumed.add(name)
            claim.num_params += math.prod(info.shape)
        for stored, module in modules.items():
            claim.matrices.append(self._spec(stored, module, adapter))
        return claim

    @staticmethod
    def _spec(stored: str, module: _Module, adapter: Mapping) -> LoraSpec:
        name = module_name(stored)
        parts = module.tensors
        kind = "embedding" if "lora_embedding_A" in parts or "lora_embedding_B" in parts else "linear"
        a_info = parts.get("lora_embedding_A" if kind == "embedding" else "lora_A")
        b_info = parts.get("lora_embedding_B" if kind == "embedding" else "lora_B")
        magnitude = parts.get("lora_magnitude_vector")
        sources = tuple(info.name for info in (a_info, b_info, magnitude) if info is not None)
        fan_in_fan_out = bool(adapter.get("fan_in_fan_out")) and kind == "linear"
        layer = "conv" if a_info is not None and len(a_info.shape) == 4 else kind
        base = dict(name=name, sources=sources, shape=(), module=name, fan_in_fan_out=fan_in_fan_out, layer=layer)
        if a_info is None or b_info is None:
            missing = "A" if a_info is None else "B"
            return LoraSpec(**base, skip_reason=f"LoRA adapter: lora_{missing} is missing for this module")
        r, scaling = lora_scaling(adapter, name)
        shape = _delta_shape(a_info.shape, b_info.shape, kind, fan_in_fan_out)
        if isinstance(shape, str):
            return LoraSpec(**base, skip_reason=f"LoRA adapter: {shape}")
        if a_info.shape[0] != r:
            reason = f"LoRA adapter: lora_A has rank {a_info.shape[0]} but adapter_config.json gives r={r}"
            return LoraSpec(**base, skip_reason=reason)
        delta = _delta_weight(a_info.name, b_info.name, kind, scaling, fan_in_fan_out)
        base["shape"] = shape
        if magnitude is not None:
            reason = "DoRA adapter: its update rescales W + ΔW by the base weight's norms (analyze with --merge-base)"
            return LoraSpec(**base, delta=delta, magnitude=magnitude.name, skip_reason=reason)
        return LoraSpec(**base, decode=delta, delta=delta)


def _unsupported(tensors: Mapping[str, TensorInfo], peft_type: str) -> Claim:
    reason = f"PEFT adapter of type {peft_type}: wwhub decodes LORA adapters only"
    matrices = [
        MatrixSpec(module_name(name), (name,), info.shape, skip_reason=reason)
        for name, info in tensors.items()
        if len(info.shape) >= 2
    ]
    return Claim(matrices=matrices, consumed=set(tensors), num_params=sum(math.prod(i.shape) for i in tensors.values()))


def _base_match(module: str, base: Mapping[str, MatrixSpec]) -> MatrixSpec | None:
    for candidate in (f"{module}.weight", module):
        if candidate in base:
            return base[candidate]
    # The base checkpoint may name modules with or without a wrapper prefix ("model.", "transformer.").
    found = [
        spec
        for name, spec in base.items()
        if name.endswith(f".{module}.weight") or module.endswith("." + name.removesuffix(".weight"))
    ]
    return found[0] if len(found) == 1 else None


def _merged_decoder(base: MatrixSpec, lora: LoraSpec) -> Callable:
    def decode(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        stored = np.asarray(base.decode(arrays))
        dtype = np.float64 if stored.dtype == np.float64 else np.float32
        weight = np.array(stored, dtype=dtype)
        weight += lora.delta(arrays)
        if lora.magnitude is not None:
            # PEFT's DoraLinearLayer.get_weight_norm: the norm of each output row of W + ΔW ([out, in] orientation).
            rows = weight.T if lora.fan_in_fan_out else weight
            norms = np.linalg.norm(rows, axis=1)
            rows *= (np.asarray(arrays[lora.magnitude], dtype=dtype).reshape(-1) / norms)[:, None]
        return weight

    return decode


def merge_adapter(base_specs: list[MatrixSpec], adapter_specs: list[MatrixSpec]) -> list[MatrixSpec]:
    """The merged model's matrices: each base matrix an adapter module adapts becomes W + ΔW (named as in the base,
    its sources the base's and the adapter's); full weights the adapter stores (``modules_to_save``) replace the
    base's of the same name; the rest of the base is unchanged. An adapter module with no base matrix is skipped."""
    base = {spec.name: spec for spec in base_specs}
    replaced: dict[str, MatrixSpec] = {}
    extra: list[MatrixSpec] = []
    for spec in adapter_specs:
        if not isinstance(spec, LoraSpec):
            target = _base_match(module_name(spec.name).replace(".modules_to_save.default", ""), base)
            if target is not None:
                replaced[target.name] = MatrixSpec(
                    target.name, spec.sources, spec.shape, spec.decode, spec.expert, spec.quantization, spec.skip_reason
                )
            else:
                extra.append(spec)
            continue
        target = _base_match(spec.module, base)
        sources = (target.sources if target else ()) + spec.sources
        if target is None:
            reason = "LoRA adapter: the base checkpoint has no matrix for this module"
            extra.append(MatrixSpec(spec.name, spec.sources, spec.shape, skip_reason=reason))
        elif target.skip_reason is not None:
            replaced[target.name] = MatrixSpec(target.name, sources, target.shape, skip_reason=target.skip_reason)
        elif spec.delta is None or target.decode is None:
            replaced[target.name] = MatrixSpec(target.name, sources, target.shape, skip_reason=spec.skip_reason)
        elif spec.magnitude is not None and spec.layer != "linear":
            reason = f"DoRA adapter on a {spec.layer} layer: merging is supported for Linear and Conv1D layers only"
            replaced[target.name] = MatrixSpec(target.name, sources, target.shape, skip_reason=reason)
        elif tuple(target.shape) != tuple(spec.shape):
            reason = f"LoRA adapter: ΔW {list(spec.shape)} does not match the base weight {list(target.shape)}"
            replaced[target.name] = MatrixSpec(target.name, sources, target.shape, skip_reason=reason)
        else:
            replaced[target.name] = MatrixSpec(
                target.name,
                sources,
                target.shape,
                _merged_decoder(target, spec),
                target.expert,
                target.quantization,
            )
    return [replaced.get(spec.name, spec) for spec in base_specs] + extra
