"""Depth order: layer_id follows the forward pass, whatever order the index or the file lists tensors in."""

import random

import numpy as np

from flows.weights.depth import depth_order
from tests.flows.weights.helpers import analyze_rows, heavy, write_checkpoint


def llama(blocks: int = 11) -> list[str]:
    names = ["model.embed_tokens.weight"]
    for b in range(blocks):
        names += [f"model.layers.{b}.self_attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names += [f"model.layers.{b}.mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")]
    return names + ["lm_head.weight"]


def gpt2(blocks: int = 12) -> list[str]:
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for b in range(blocks):
        names += [f"transformer.h.{b}.attn.c_attn.weight", f"transformer.h.{b}.attn.c_proj.weight"]
        names += [f"transformer.h.{b}.mlp.c_fc.weight", f"transformer.h.{b}.mlp.c_proj.weight"]
    return names + ["lm_head.weight"]


def bert() -> list[str]:
    names = [f"bert.embeddings.{p}.weight" for p in ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    for b in range(3):
        layer = f"bert.encoder.layer.{b}"
        names += [f"{layer}.attention.self.{p}.weight" for p in ("query", "key", "value")]
        names += [f"{layer}.attention.output.dense.weight", f"{layer}.intermediate.dense.weight"]
        names += [f"{layer}.output.dense.weight"]
    return names + ["bert.pooler.dense.weight", "classifier.weight"]


def moe() -> list[str]:
    names = ["model.embed_tokens.weight"]
    for b in range(2):
        names += [f"model.layers.{b}.self_attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names += [f"model.layers.{b}.mlp.gate.weight"]
        names += [
            f"model.layers.{b}.mlp.experts.{e}.{p}" for e in range(12) for p in ("gate_proj", "up_proj", "down_proj")
        ]
        names += [f"model.layers.{b}.mlp.shared_expert.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")]
    return names + ["lm_head.weight"]


def t5() -> list[str]:
    names = ["shared.weight"]
    for stack in ("encoder", "decoder"):
        for b in range(2):
            names += [f"{stack}.block.{b}.layer.0.SelfAttention.{p}.weight" for p in "qkvo"]
            if stack == "decoder":
                names += [f"{stack}.block.{b}.layer.1.EncDecAttention.{p}.weight" for p in "qkvo"]
            ff = 2 if stack == "decoder" else 1
            names += [f"{stack}.block.{b}.layer.{ff}.DenseReluDense.{p}.weight" for p in ("wi", "wo")]
    return names + ["lm_head.weight"]


def gguf() -> list[str]:
    names = ["token_embd.weight"]
    for b in range(12):
        names += [f"blk.{b}.attn_{p}.weight" for p in ("q", "k", "v", "output")]
        names += [f"blk.{b}.ffn_{p}.weight" for p in ("gate", "up", "down")]
    return names + ["output.weight"]


def test_depth_order_of_shuffled_and_alphabetical_name_sets():
    for expected in (llama(), gpt2(), bert(), moe(), t5(), gguf()):
        for scrambled in (
            sorted(expected),
            sorted(expected, reverse=True),
            random.Random(0).sample(expected, len(expected)),
        ):
            assert depth_order(scrambled) == expected


def test_a_single_file_model_is_numbered_by_depth_not_file_order(tmp_path):
    # safetensors writes tensors by dtype, then name: layers.10 before layers.2, lm_head before model.*.
    names = llama(blocks=11)
    tensors = {name: heavy(24, 16, i) for i, name in enumerate(names)}
    tensors["model.norm.weight"] = np.ones(16, np.float32)
    rows = analyze_rows(write_checkpoint(tmp_path / "m", tensors))
    assert sorted(rows, key=lambda name: rows[name]["layer_id"]) == names
    assert [rows[name]["layer_id"] for name in names] == list(range(len(names)))
