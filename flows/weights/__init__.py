"""Weights: readers yield stored tensors, decoders turn them into the logical matrices that reach ``ww_core``.

* :mod:`.readers`: stored tensors from one file each, lazily (safetensors, ``.bin`` pickles with
  ``weights_only=True``);
* :mod:`.plan`: which shard holds which stored tensor, from the index or the headers alone;
* :mod:`.decoding`: the contract between stored tensors and logical weight matrices.
"""

from .errors import UnsupportedWeights, WeightsError
from .plan import (
    INTEGER_DTYPES,
    PICKLE_INDEX,
    SAFETENSORS_INDEX,
    ModelPlan,
    Shard,
    plan_local,
    quantized_reason,
    shards_from_index,
)
from .readers import (
    TensorInfo,
    check_tensor_entry,
    iter_shard_tensors,
    parse_safetensors_header,
    read_safetensors_header,
)

__all__ = [
    "INTEGER_DTYPES",
    "PICKLE_INDEX",
    "SAFETENSORS_INDEX",
    "ModelPlan",
    "Shard",
    "TensorInfo",
    "UnsupportedWeights",
    "WeightsError",
    "check_tensor_entry",
    "iter_shard_tensors",
    "parse_safetensors_header",
    "plan_local",
    "quantized_reason",
    "read_safetensors_header",
    "shards_from_index",
]
