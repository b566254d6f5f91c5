"""Quantized storage schemes, one module each; every module's decoder dequantizes exactly as the format's
reference code does, into float32 (never the checkpoint's compute dtype).

``DECODERS`` lists them in the order they claim tensors (see :mod:`flows.weights.decoders.contract`)."""

from __future__ import annotations

from ..contract import Decoder
from .awq import AWQDecoder
from .bitsandbytes import BitsAndBytesDecoder
from .compressed_tensors import CompressedTensorsDecoder
from .fp8 import FP8Decoder
from .gptq import GPTQDecoder
from .unsupported import UnsupportedDecoder

DECODERS: list[Decoder] = [
    FP8Decoder(),
    CompressedTensorsDecoder(),
    GPTQDecoder(),
    AWQDecoder(),
    BitsAndBytesDecoder(),
    # Last: what the decoders above left of a quantized model is a scheme nobody here decodes.
    UnsupportedDecoder(),
]
