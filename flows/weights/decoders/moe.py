"""Fused MoE experts: one stored tensor holds a projection of every expert; we analyze each expert's matrix.

transformers (v5, ``integrations/moe.py: use_experts_implementation`` and each model's ``*Experts`` module) stores
``gate_up_proj`` and ``down_proj`` as 3-D parameters whose layout depends on the model:

=========================================  =================  ==================  ==========================
model_type                                 gate_up_proj       down_proj           gate / up along the 2I axis
=========================================  =================  ==================  ==========================
default (mixtral, qwen2/3_moe, deepseek,    ``[E, 2I, H]``     ``[E, H, I]``       concatenated (``chunk(2)``)
olmoe, granitemoe, jamba, phimoe, ...)
llama4, aria, qwen3_vl_moe (on disk)        ``[E, H, 2I]``     ``[E, I, H]``       concatenated
gpt_oss, openai_privacy_filter              ``[E, H, 2I]``     ``[E, I, H]``       interleaved (``[..., ::2]``)
=========================================  =================  ==================  ==========================

(``[E, out, in]`` is ``nn.Linear``'s orientation, ``x @ W[e].T``; the transposed layouts compute ``x @ W[e]``.)
GraniteMoE names them ``input_linear`` / ``output_linear``, Aria ``fc1`` / ``fc2``; NemotronH has no gate
(``up_proj`` ``[E, I, H]``). DBRX stacks experts along the rows of 2-D tensors: ``w1`` (gate), ``v1`` (up) and
``w2`` (down, used as ``x @ w2[e]``) are ``[E·I, H]``.

Each expert's gate, up and down matrix becomes its own row (``expert`` = its index) in ``nn.Linear`` orientation,
named ``<prefix>.experts.<e>.gate_proj`` (…``up_proj``, …``down_proj``): exactly the matrices the same model stores
unfused. A matrix is a view into the memory-mapped shard, so experts are read one at a time. Expert biases
(``gate_up_proj_bias`` ``[E, 2I]``) are parameters, not layers. A fused tensor whose shape fits no layout, or that
carries quantization side tensors no decoder took, becomes ``skipped`` rows: never a Conv1d row of a 3-D tensor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..tensors import FLOAT_DTYPES, TensorInfo
from .contract import Claim, MatrixSpec, ModelConfig


@dataclass(frozen=True)
class ExpertLayout:
    """How a model stores its fused experts (see the module docstring)."""

    transposed: bool  # [E, in, out] (x @ W[e]) instead of nn.Linear's [E, out, in]
    interleaved: bool  # gate and up alternate along the fused axis instead of gate half, then up half


DEFAULT_LAYOUT = ExpertLayout(transposed=False, interleaved=False)
LLAMA4_LAYOUT = ExpertLayout(transposed=True, interleaved=False)
GPT_OSS_LAYOUT = ExpertLayout(transposed=True, interleaved=True)
LAYOUTS: dict[str, ExpertLayout] = {
    "gpt_oss": GPT_OSS_LAYOUT,
    "openai_privacy_filter": GPT_OSS_LAYOUT,
    "llama4": LLAMA4_LAYOUT,
    "llama4_text": LLAMA4_LAYOUT,
    "aria": LLAMA4_LAYOUT,
    "aria_text": LLAMA4_LAYOUT,
    "qwen3_vl_moe": LLAMA4_LAYOUT,
    "qwen3_vl_moe_text": LLAMA4_LAYOUT,
}

GATE_UP, GATE, UP, DOWN = "gate_up", "gate", "up", "down"
# Stored name (last part, ``.weight`` dropped) → what the fused tensor holds.
_FUSED_NAMES = {
    "gate_up_proj": GATE_UP,
    "input_linear": GATE_UP,
    "fc1": GATE_UP,
    "gate_proj": GATE,
    "up_proj": UP,
    "down_proj": DOWN,
    "output_linear": DOWN,
    "fc2": DOWN,
}
_PROJECTIONS = {GATE: "gate_proj", UP: "up_proj", DOWN: "down_proj"}
_DBRX = re.compile(r"^(?P<prefix>.*\.experts)\.mlp\.(?P<which>w1|v1|w2)$")
_DBRX_ROLES = {"w1": GATE, "v1": UP, "w2": DOWN}


def layout_for(config: ModelConfig) -> ExpertLayout | None:
    """The layout of ``config.model_type``; None when the model type is not one whose layout we know."""
    model_type = config.model_type
    return LAYOUTS.get(model_type, DEFAULT_LAYOUT if model_type else None)


def split_expert(matrix: np.ndarray, role: str, layout: ExpertLayout) -> dict[str, np.ndarray]:
    """One expert's stored matrix (``W[e]``, 2-D) → its logical matrices in ``nn.Linear`` orientation (views).

    ``role`` is what the stored tensor holds (``gate_up``, ``gate``, ``up`` or ``down``)."""
    linear = matrix.T if layout.transposed else matrix  # [out, in]
    if role != GATE_UP:
        return {role: linear}
    if layout.interleaved:
        return {GATE: linear[0::2], UP: linear[1::2]}
    half = linear.shape[0] // 2
    return {GATE: linear[:half], UP: linear[half:]}


def _stem(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def fused_role(name: str) -> tuple[str, str] | None:
    """(prefix, role) of a stored fused-expert tensor name, e.g. ``model.layers.0.mlp.experts.gate_up_proj`` →
    (``model.layers.0.mlp.experts``, ``gate_up``); None when the name is not one."""
    stem = _stem(name)
    parent, _, last = stem.rpartition(".")
    role = _FUSED_NAMES.get(last)
    if role is None:
        return None
    if parent.endswith("experts") or last in ("input_linear", "output_linear"):
        return (parent if parent.endswith("experts") else f"{parent}.experts"), role
    return None


def _linear_shape(shape: tuple[int, ...], role: str, layout: ExpertLayout) -> tuple[int, int]:
    """(out, in) of one expert's matrix for ``role`` (gate/up halves of a fused gate_up)."""
    rows, cols = (shape[2], shape[1]) if layout.transposed else (shape[1], shape[2])
    return (rows // 2, cols) if role == GATE_UP else (rows, cols)


def _consistent(gate_up: tuple[int, ...], down: tuple[int, ...], layout: ExpertLayout) -> bool:
    """Whether a gate_up / down pair fits ``layout``: gate_up (2I, H) and down (H, I) in (out, in) terms."""
    if gate_up[0] != down[0]:
        return False
    fused_out, fused_in = (gate_up[2], gate_up[1]) if layout.transposed else (gate_up[1], gate_up[2])
    down_out, down_in = (down[2], down[1]) if layout.transposed else (down[1], down[2])
    return fused_out == 2 * down_in and fused_in == down_out and fused_out % 2 == 0


def expert_specs(
    prefix: str,
    role: str,
    shape: tuple[int, ...],
    layout: ExpertLayout,
    sources: tuple[str, ...],
    decode_expert: Callable[[int, Mapping[str, np.ndarray]], np.ndarray],
    quantization: str = "",
) -> list[MatrixSpec]:
    """One spec per expert and logical projection of a fused tensor of ``shape`` [E, ., .]; ``decode_expert(e,
    arrays)`` returns expert e's stored 2-D matrix (as the float layout stores it) for :func:`split_expert`.

    A fused gate_up whose fused axis is odd holds no equal gate and up halves: any split would analyze a matrix
    the model does not have, so its experts are ``skipped``."""
    fused = _linear_shape(shape, DOWN, layout)[0]
    if role == GATE_UP and fused % 2:
        reason = (
            f"fused gate_up {list(shape)}: its fused axis ({fused}) is odd, so it holds no equal gate and up halves"
        )
        return skipped_expert_specs(prefix, role, shape, sources, reason, quantization)
    out, inp = _linear_shape(shape, role, layout)
    parts = (GATE, UP) if role == GATE_UP else (role,)
    specs = []
    for expert in range(shape[0]):
        for part in parts:

            def decode(arrays, expert=expert, part=part):
                return split_expert(decode_expert(expert, arrays), role, layout)[part]

            specs.append(
                MatrixSpec(
                    name=f"{prefix}.{expert}.{_PROJECTIONS[part]}",
                    sources=sources,
                    shape=(out, inp),
                    decode=decode,
                    expert=expert,
                    quantization=quantization,
                )
            )
    return specs


def skipped_expert_specs(
    prefix: str, role: str, shape: tuple[int, ...], sources: tuple[str, ...], reason: str, quantization: str = ""
) -> list[MatrixSpec]:
    """``skipped`` specs, one per expert and projection, for a fused tensor that cannot be split honestly."""
    parts = (GATE, UP) if role == GATE_UP else (role,)
    experts = shape[0] if shape else 0
    return [
        MatrixSpec(
            name=f"{prefix}.{expert}.{_PROJECTIONS[part]}",
            sources=sources,
            shape=(),
            expert=expert,
            quantization=quantization,
            skip_reason=reason,
        )
        for expert in range(experts)
        for part in parts
    ] or [MatrixSpec(name=sources[0], sources=sources, shape=shape, quantization=quantization, skip_reason=reason)]


def pair_layout(
    prefix: str, shapes: Mapping[str, tuple[int, ...]], config: ModelConfig
) -> tuple[ExpertLayout | None, str]:
    """The layout of the fused tensors under one ``prefix`` (``role`` → shape), checked against their shapes.

    Returns (layout, "") or (None, reason). A known model type must fit its own layout; an unknown one is read with
    transformers' default layout when the shapes fit it, and is not guessed otherwise."""
    known = layout_for(config)
    gate_up, down = shapes.get(GATE_UP), shapes.get(DOWN)
    if gate_up is None:
        # No fused gate/up: every expert matrix is W[e] whatever the orientation (its spectrum is that of W[e]^T).
        return known or DEFAULT_LAYOUT, ""
    if down is None:
        if known is not None:
            return known, ""
        return None, "fused gate_up_proj without down_proj and no model_type: cannot tell which axis holds gate/up"
    if known is not None:
        if _consistent(gate_up, down, known):
            return known, ""
        return None, (
            f"fused experts {list(gate_up)} / {list(down)} match no layout of model_type {config.model_type!r} "
            f"({'[E, H, 2I] / [E, I, H]' if known.transposed else '[E, 2I, H] / [E, H, I]'})"
        )
    if _consistent(gate_up, down, DEFAULT_LAYOUT):
        return DEFAULT_LAYOUT, ""
    return None, (
        f"fused experts {list(gate_up)} / {list(down)} fit no default layout [E, 2I, H] / [E, H, I] and the "
        "model_type is unknown (gate/up concatenated or interleaved?)"
    )


def side_tensors(name: str, tensors: Mapping[str, TensorInfo]) -> list[str]:
    """Tensors stored beside ``name`` under its own stem (``<stem>_scale_inv``, ``<stem>.absmax`` ...), biases
    excepted: quantization data that must be decoded with it."""
    stem = _stem(name)
    return [
        other
        for other in tensors
        if other != name
        and (other.startswith(stem + "_") or other.startswith(stem + "."))
        and not _stem(other).endswith("_bias")
    ]


class FusedExperts:
    """Splits fused float expert tensors (3-D, and DBRX's stacked 2-D) into one matrix per expert and projection."""

    name = "fused-experts"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim(num_params=0)
        groups: dict[str, dict[str, TensorInfo]] = {}
        for name, info in tensors.items():
            found = fused_role(name)
            if found is not None and len(info.shape) == 3:
                groups.setdefault(found[0], {})[found[1]] = info
        for prefix, members in groups.items():
            self._claim_group(prefix, members, tensors, config, claim)
        self._claim_dbrx(tensors, config, claim)
        self._claim_biases(tensors, claim)
        return claim

    def _claim_group(
        self,
        prefix: str,
        members: dict[str, TensorInfo],
        tensors: Mapping[str, TensorInfo],
        config: ModelConfig,
        claim: Claim,
    ) -> None:
        layout, reason = pair_layout(prefix, {role: info.shape for role, info in members.items()}, config)
        for role, info in members.items():
            sides = side_tensors(info.name, tensors)
            claim.consumed.update([info.name, *sides])
            sources = (info.name,)
            if sides:
                found = ", ".join(side.rsplit(".", 1)[-1] for side in sides)
                reason_here = f"quantized fused experts ({info.dtype} with {found}): no decoder for this scheme"
                claim.matrices += skipped_expert_specs(prefix, role, info.shape, sources, reason_here, "unknown")
            elif info.dtype not in FLOAT_DTYPES:
                reason_here = f"fused experts stored as {info.dtype}: not a float layout"
                claim.matrices += skipped_expert_specs(prefix, role, info.shape, sources, reason_here)
            elif layout is None:
                claim.matrices += skipped_expert_specs(prefix, role, info.shape, sources, reason)
            else:
                claim.matrices += expert_specs(
                    prefix, role, info.shape, layout, sources, lambda e, arrays, n=info.name: arrays[n][e]
                )
            claim.num_params += math.prod(info.shape)

    def _claim_dbrx(self, tensors: Mapping[str, TensorInfo], config: ModelConfig, claim: Claim) -> None:
        experts = (config.config.get("ffn_config") or {}).get("moe_num_experts")
        for name, info in tensors.items():
            match = _DBRX.match(name)
            if match is None or len(info.shape) != 2:
                continue
            role = _DBRX_ROLES[match["which"]]
            claim.consumed.add(name)
            claim.num_params += math.prod(info.shape)
            rows, hidden = info.shape
            if not experts or rows % int(experts):
                reason = f"DBRX stacked experts {list(info.shape)}: config.json's ffn_config.moe_num_experts is needed"
                claim.matrices.append(MatrixSpec(name, (name,), info.shape, skip_reason=reason))
                continue
            experts = int(experts)
            inner = rows // experts
            # w1/v1 are each expert's [I, H] (gate, up); w2 is used as x @ w2[e], i.e. down_proj = w2[e].T: [H, I].
            layout = ExpertLayout(transposed=role == DOWN, interleaved=False)
            claim.matrices += expert_specs(
                match["prefix"],
                role,
                (experts, inner, hidden),
                layout,
                (name,),
                lambda e, arrays, n=name, k=inner: arrays[n][e * k : (e + 1) * k],
            )

    @staticmethod
    def _claim_biases(tensors: Mapping[str, TensorInfo], claim: Claim) -> None:
        for name, info in tensors.items():
            stem = _stem(name)
            if not stem.endswith("_bias") or name in claim.consumed:
                continue
            if fused_role(stem[: -len("_bias")]) is not None and len(info.shape) == 2:
                claim.consumed.add(name)
                claim.num_params += math.prod(info.shape)
