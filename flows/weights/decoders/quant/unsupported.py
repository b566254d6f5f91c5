"""Quantization schemes wwhub cannot decode: one ``skipped`` row per quantized layer, naming the scheme, and its
side tensors consumed, so packed codes, codebooks, scales and zero points never become ``ok`` rows.

A scheme is known from ``quantization_config.quant_method`` (any method no other decoder handles) or, without a
config, from tensor names only that scheme writes (EXL2 ``q_weight``, HQQ ``W_q``, AQLM ``codebooks``, quanto
``weight._data``, EETQ ``weight_scales``, Marlin ``B`` + ``s``). A layer is a module prefix holding a 2-D or larger
integer or float8 tensor (or one of those names); float modules the scheme left alone (``lm_head``, norms) are
not touched.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...tensors import INTEGER_DTYPES, TensorInfo
from ..contract import Claim, ModelConfig
from ._common import FLOAT8_DTYPES, module_tensors, quant_method, skipped

# Methods decoded elsewhere: this package's decoders, and MXFP4 (GPT-OSS), which the fused-MoE decoding handles.
DECODED_METHODS = {
    "",
    "fp8",
    "fbgemm_fp8",
    "compressed-tensors",
    "compressed_tensors",
    "gptq",
    "awq",
    "bitsandbytes",
    "mxfp4",
}
# Tensor-name suffixes that only one scheme writes, for checkpoints without a quantization_config.
SCHEME_BY_SUFFIX = {
    ".q_weight": "exllamav2",
    ".W_q": "hqq",
    ".codebooks": "aqlm",
    ".weight._data": "quanto",
    ".weight_scales": "eetq",
    ".B": "marlin",
}


class UnsupportedDecoder:
    """Skipped rows, one per quantized layer, for schemes no decoder understands."""

    name = "unsupported"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        claim = Claim()
        method = quant_method(config)
        layers: dict[str, tuple[str, str]] = {}  # module prefix -> (scheme, main tensor)
        for name, info in tensors.items():
            scheme_and_prefix = _recognised(name, tensors)
            if scheme_and_prefix is not None:
                scheme, prefix = scheme_and_prefix
                layers.setdefault(prefix, (scheme, name))
            elif method not in DECODED_METHODS and _is_quantized_tensor(info) and "." in name:
                layers.setdefault(_module_of(name), (method, name))
        for prefix, (scheme, main) in layers.items():
            consumed = module_tensors(tensors, prefix)
            claim.consumed.update(consumed)
            why = f"quantization scheme not supported ({len(consumed)} stored tensors, e.g. {main})"
            claim.matrices.append(skipped(prefix + ".weight", tuple(consumed), tuple(tensors[main].shape), scheme, why))
        return claim


def _recognised(name: str, tensors: Mapping[str, TensorInfo]) -> tuple[str, str] | None:
    for suffix, scheme in SCHEME_BY_SUFFIX.items():
        if name.endswith(suffix):
            prefix = name[: -len(suffix)]
            if scheme == "marlin" and prefix + ".s" not in tensors:
                return None
            return scheme, prefix
    return None


def _is_quantized_tensor(info: TensorInfo) -> bool:
    return (info.dtype in INTEGER_DTYPES or info.dtype in FLOAT8_DTYPES) and len(info.shape) >= 2


def _module_of(name: str) -> str:
    """``a.b.weight`` → ``a.b``; ``a.b.weight.absmax`` → ``a.b`` (the module a stored tensor belongs to)."""
    parts = name.split(".")
    if "weight" in parts[1:]:
        return ".".join(parts[: parts.index("weight", 1)])
    return ".".join(parts[:-1])
