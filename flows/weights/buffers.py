"""Buffers and other non-weights: claimed and dropped, so they never become rows or count as parameters.

Recognised by name *and* shape, never by a list of model types:

* attention masks: a tensor named ``bias`` / ``masked_bias`` / ``*mask`` whose trailing two dimensions are equal and
  whose leading ones are 1 (GPT-2's ``h.N.attn.bias`` is ``[1, 1, 1024, 1024]``), or a boolean / uint8 square one;
* index buffers: ``position_ids`` / ``token_type_ids`` (``[n]`` or ``[1, n]``);
* rotary tables: ``inv_freq``, ``freqs_cis``, ``cos_cached`` / ``sin_cached``;
* batch-norm statistics: ``running_mean``, ``running_var`` (1-D), ``num_batches_tracked``;
* scalars (0-D tensors: GPT-2's ``masked_bias``, counters).

A real weight never matches: a linear bias is 1-D (no leading 1 before a square), an embedding is not named
``*_ids``, and a 2-D ``relative_attention_bias.weight`` ends in ``weight``.
"""

from __future__ import annotations

from collections.abc import Mapping

from .decoders.contract import Claim, ModelConfig
from .tensors import TensorInfo

_MASK_NAMES = {"bias", "masked_bias", "mask", "causal_mask", "attn_mask", "attention_mask", "tril"}
_INDEX_NAMES = {"position_ids", "token_type_ids"}
_ROTARY_NAMES = {"inv_freq", "freqs_cis", "cos_cached", "sin_cached", "_cos_cached", "_sin_cached"}
_NORM_STATS = {"running_mean", "running_var"}


def _is_square_mask(info: TensorInfo, word: str) -> bool:
    shape = info.shape
    if len(shape) < 2 or shape[-1] != shape[-2]:
        return False
    if info.dtype in ("BOOL", "U8"):
        return word in _MASK_NAMES or word.endswith("_mask")
    # A float mask broadcasts over batch and heads: [1, 1, n, n]. A 2-D [n, n] "bias" could be a real weight.
    return len(shape) >= 3 and all(d == 1 for d in shape[:-2]) and (word in _MASK_NAMES or word.endswith("_mask"))


def is_buffer(info: TensorInfo) -> bool:
    """Whether a stored tensor is a buffer or scalar rather than a weight (see the module docstring)."""
    word = info.name.rsplit(".", 1)[-1].lower()
    shape = info.shape
    if info.dtype == "" and not shape:
        return False  # not yet known (a shard whose header could not be read): decided when it is
    if len(shape) == 0:
        return True
    if word in _INDEX_NAMES:
        return len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)
    if word in _ROTARY_NAMES:
        return len(shape) <= 2
    if word in _NORM_STATS:
        return len(shape) == 1
    if word == "num_batches_tracked":
        return len(shape) <= 1
    return _is_square_mask(info, word)


class Buffers:
    """Claims buffers and scalars; they make no matrices and no parameters."""

    name = "buffers"

    def claim(self, tensors: Mapping[str, TensorInfo], config: ModelConfig) -> Claim:
        return Claim(consumed={name for name, info in tensors.items() if is_buffer(info)}, num_params=0)
