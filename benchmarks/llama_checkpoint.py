"""Generate Llama-shaped bf16 checkpoints with heavy-tailed weights, for the benchmarks (never committed).

    python benchmarks/llama_checkpoint.py tinyllama [--out DIR]      # 1.1 B parameters, 2.2 GB, 3 shards
    python benchmarks/llama_checkpoint.py llama2-7b [--out DIR]      # 6.7 B parameters, 13.5 GB, 3 shards

The shapes are those of the named model (hidden, intermediate, blocks, attention and key/value heads, vocabulary;
an untied lm_head), written as a Hugging Face folder: ``model-0000k-of-0000n.safetensors`` in depth order,
``model.safetensors.index.json`` and ``config.json``. Weights are i.i.d. heavy-tailed, ``g * u^(-1/mu)`` with g
Gaussian and u uniform, so that ``P(|w| > x) ~ x^-mu``, with a tail index mu drawn per tensor in [2.5, 5]: the fitted
alphas spread over the range real layers show. Seeded: the same files on every machine. The folder lands in
``$WWHUB_BENCH_CACHE`` (default ``~/.cache/wwhub/bench``) and is reused when complete.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class LlamaShape:
    hidden: int
    intermediate: int
    blocks: int
    heads: int
    kv_heads: int
    vocab: int
    shards: int = 3


SHAPES = {
    "tinyllama": LlamaShape(hidden=2048, intermediate=5632, blocks=22, heads=32, kv_heads=4, vocab=32000),
    "llama2-7b": LlamaShape(hidden=4096, intermediate=11008, blocks=32, heads=32, kv_heads=32, vocab=32000),
}


def tensor_shapes(shape: LlamaShape) -> list[tuple[str, tuple[int, ...]]]:
    """Every stored tensor in depth order, as ``transformers``' LlamaForCausalLM names them ((out, in) weights)."""
    kv = shape.hidden // shape.heads * shape.kv_heads
    tensors: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (shape.vocab, shape.hidden))]
    for i in range(shape.blocks):
        prefix = f"model.layers.{i}"
        tensors += [
            (f"{prefix}.input_layernorm.weight", (shape.hidden,)),
            (f"{prefix}.self_attn.q_proj.weight", (shape.hidden, shape.hidden)),
            (f"{prefix}.self_attn.k_proj.weight", (kv, shape.hidden)),
            (f"{prefix}.self_attn.v_proj.weight", (kv, shape.hidden)),
            (f"{prefix}.self_attn.o_proj.weight", (shape.hidden, shape.hidden)),
            (f"{prefix}.post_attention_layernorm.weight", (shape.hidden,)),
            (f"{prefix}.mlp.gate_proj.weight", (shape.intermediate, shape.hidden)),
            (f"{prefix}.mlp.up_proj.weight", (shape.intermediate, shape.hidden)),
            (f"{prefix}.mlp.down_proj.weight", (shape.hidden, shape.intermediate)),
        ]
    tensors += [("model.norm.weight", (shape.hidden,)), ("lm_head.weight", (shape.vocab, shape.hidden))]
    return tensors


def heavy_tailed_bf16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 1:
        return np.ones(shape, ml_dtypes.bfloat16)
    out = np.empty(shape, ml_dtypes.bfloat16)
    tail_index = rng.uniform(2.5, 5.0)
    scale = 1.0 / math.sqrt(shape[1])
    rows = max(1, 2**22 // shape[1])  # ~16 MB of float32 temporaries at a time
    for start in range(0, shape[0], rows):
        count = min(rows, shape[0] - start)
        block = rng.standard_normal((count, shape[1]), dtype=np.float32)
        block *= rng.random((count, shape[1]), dtype=np.float32).clip(1e-6) ** np.float32(-1.0 / tail_index)
        block *= np.float32(scale)
        out[start : start + count] = block
    return out


def cache_root() -> Path:
    return Path(os.environ.get("WWHUB_BENCH_CACHE", Path.home() / ".cache" / "wwhub" / "bench"))


def llama_checkpoint(name: str, out: Path | None = None, seed: int = 0) -> Path:
    """The folder of the named checkpoint, generated unless a complete one is there."""
    shape = SHAPES[name]
    folder = Path(out) if out is not None else cache_root() / name
    stamp = {"generator": GENERATOR_VERSION, "seed": seed, **asdict(shape)}
    marker = folder / "wwhub-bench.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tensors = tensor_shapes(shape)
    total = sum(2 * math.prod(s) for _, s in tensors)
    per_shard = math.ceil(total / shape.shards)
    rng = np.random.default_rng(seed)
    weight_map, shard, shard_bytes, index = {}, {}, 0, 1

    def filename(k: int) -> str:
        return f"model-{k:05d}-of-{shape.shards:05d}.safetensors"

    for tensor_name, tensor_shape in tensors:
        shard[tensor_name] = heavy_tailed_bf16(rng, tensor_shape)
        shard_bytes += shard[tensor_name].nbytes
        weight_map[tensor_name] = filename(index)
        if shard_bytes >= per_shard and index < shape.shards:
            save_file(shard, str(folder / filename(index)), metadata={"format": "pt"})
            shard, shard_bytes, index = {}, 0, index + 1
    save_file(shard, str(folder / filename(index)), metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.blocks,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "vocab_size": shape.vocab,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    marker.write_text(json.dumps(stamp))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(SHAPES))
    parser.add_argument("--out", type=Path, help="folder (default: $WWHUB_BENCH_CACHE/NAME)")
    args = parser.parse_args()
    print(llama_checkpoint(args.name, args.out))


if __name__ == "__main__":
    main()
