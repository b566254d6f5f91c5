"""Weights: readers yield stored tensors, decoders turn them into the logical matrices that reach ``ww_core``.

* :mod:`.tensors`: stored tensors' names, dtypes and shapes (:class:`TensorInfo`) and the dtype tables (a leaf);
* :mod:`.readers`: stored tensors from one file each, lazily (safetensors memory maps, ``.bin`` pickles with
  ``weights_only=True``, GGUF files: :mod:`.gguf_file`), as numpy arrays in the file's dtype;
* :mod:`.layout`: which files of a repo hold its weights (one decision for every source, from the file list);
* :mod:`.plan`: which shard holds which stored tensor, from the index or the headers alone, and the model's configs;
* :mod:`.decoders`: one decoding scheme per module (:mod:`.decoders.quant` for the quantized ones, MXFP4 among
  them; fused experts, LoRA, GGUF, plain weights) and their contract (:mod:`.decoders.contract`);
* :mod:`.matrices`: the pipeline: the decoders in turn, buffers dropped (:mod:`.buffers`), matrices in depth order
  (:mod:`.depth`), and the shard-by-shard stream of matrices.
"""

from .decoders.contract import Claim, Decoder, MatrixSpec, ModelConfig
from .errors import UndecodableWeights, UnsupportedWeights, WeightsError
from .layout import PICKLE_INDEX, SAFETENSORS_INDEX, WeightLayout, weight_layout
from .matrices import MatrixStream, plan_matrices, plan_model, skip_counts, spec_columns
from .plan import (
    MODEL_CONFIG,
    ModelPlan,
    Shard,
    list_model_files,
    merge_plans,
    parse_adapter_config,
    parse_model_config,
    plan_layout,
    plan_local,
    plan_merged,
    shards_from_index,
)
from .readers import ShardReader, open_shard, parse_safetensors_header, read_safetensors_header
from .tensors import TensorInfo, check_tensor_entry

__all__ = [
    "MODEL_CONFIG",
    "PICKLE_INDEX",
    "SAFETENSORS_INDEX",
    "Claim",
    "Decoder",
    "MatrixSpec",
    "MatrixStream",
    "ModelConfig",
    "ModelPlan",
    "Shard",
    "ShardReader",
    "TensorInfo",
    "UndecodableWeights",
    "UnsupportedWeights",
    "WeightLayout",
    "WeightsError",
    "check_tensor_entry",
    "list_model_files",
    "merge_plans",
    "open_shard",
    "parse_adapter_config",
    "parse_model_config",
    "parse_safetensors_header",
    "plan_layout",
    "plan_local",
    "plan_matrices",
    "plan_merged",
    "plan_model",
    "read_safetensors_header",
    "shards_from_index",
    "skip_counts",
    "spec_columns",
    "weight_layout",
]
