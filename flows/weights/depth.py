"""Depth order: the order in which a forward pass meets a model's matrices, from their names alone.

Embeddings first, blocks in numeric order (``layers.2`` before ``layers.10``), within a block attention
(q, k, v, fused qkv, then the output projection) before the MLP (router, experts, shared experts; gate, up,
then down), the head last. A name is split at dots into parts; each part sorts by

1. a rank from a small vocabulary of the words models use for these roles (``embed_tokens``, ``self_attn``,
   ``q_proj``, ``mlp``, ``experts``, ``down_proj``, ``lm_head`` ...), compared only among siblings, so the same
   word may mean "output projection" inside attention and inside an MLP;
2. numbers inside the part (``layers.10``, ``layer1``), numerically;
3. for words outside the vocabulary, the order in which they first appear in the plan (index or file order).

Neither the index's alphabetical order nor safetensors' file order (by dtype, then name) is trusted for more than
that last tie-break. Nothing here depends on a model type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Neutral rank: block containers ("model", "layers", "h") and unknown words; numbers sort among them.
_NEUTRAL = 50
_WORD_RANKS: dict[int, str] = {
    0: "embed embeds embedding embeddings embed_tokens word_embeddings wte tok_embeddings token_embd shared "
    "patch_embed patch_embedding patch_embeddings token_embedding class_embedding conv_stem stem",
    # Added to the token embedding: after it.
    1: "wpe position_embeddings position_embedding embed_positions token_type_embeddings",
    8: "vision_tower vision_model visual vision audio_tower audio_model image_encoder",
    10: "encoder",
    12: "multi_modal_projector mm_projector projector connector merger",
    14: "language_model text_model",
    16: "decoder",
    20: "attn self_attn attention self_attention selfattention self mixer temporal_block",
    25: "cross_attn crossattention encdecattention encoder_attn cross_attention",
    30: "q_proj query q wq q_a_proj to_q attn_q attn_q_a attn_q_b",
    31: "q_b_proj k_proj key k wk to_k kv_a_proj_with_mqa attn_k attn_kv_a_mqa attn_kv_b",
    32: "v_proj value v wv to_v kv_b_proj attn_v",
    33: "qkv_proj qkv c_attn query_key_value wqkv in_proj w_pack to_qkv attn_qkv",
    # llama.cpp (GGUF) names attention and MLP tensors side by side in a block: its output before the MLP's.
    40: "attn_output",
    55: "mlp ffn feed_forward block_sparse_moe moe intermediate densereludense ff",
    56: "router gate ffn_gate_inp",
    57: "experts ffn_gate_exps ffn_up_exps ffn_down_exps",
    58: "shared_expert shared_experts shared_mlp shared_expert_gate ffn_gate_shexp ffn_up_shexp ffn_down_shexp",
    60: "gate_proj w1 wi_0 gate_up_proj w13 ffn_gate",
    61: "up_proj w3 wi_1 fc1 c_fc wi dense_h_to_4h fc_in input_linear ffn_up",
    # Output projections, of attention and of MLPs alike: last among their siblings.
    70: "down_proj w2 fc2 wo dense_4h_to_h fc_out output_linear o_proj out_proj o c_proj output to_out dense ffn_down",
    90: "norm final_layernorm ln_f pooler",
    95: "lm_head head heads classifier score cls qa_outputs embed_out fc logits",
}
# A word's place: its group's rank, then its position in the group (so that siblings of one group never tie).
_RANK = {word: (rank, index) for rank, words in _WORD_RANKS.items() for index, word in enumerate(words.split())}
_CHUNKS = re.compile(r"(\d+)")


def _stem_and_numbers(part: str) -> tuple[str, tuple[int, ...]]:
    pieces = _CHUNKS.split(part.lower())
    stem = "".join(p for p in pieces[0::2]).rstrip("_")
    return stem, tuple(int(p) for p in pieces[1::2])


def depth_keys(names: Sequence[str]) -> dict[str, tuple]:
    """A sort key per name such that sorting by it gives depth order (see the module docstring).

    ``names`` in plan order: first appearance breaks ties between words outside the vocabulary."""
    first_seen: dict[str, int] = {}
    for name in names:
        for part in name.split("."):
            first_seen.setdefault(_stem_and_numbers(part)[0], len(first_seen))
    keys: dict[str, tuple] = {}
    for position, name in enumerate(names):
        key = []
        for part in name.split("."):
            lowered = part.lower()
            if lowered.isdigit():
                key.append((_NEUTRAL, -1, int(lowered), ()))
                continue
            stem, numbers = _stem_and_numbers(part)
            known = _RANK.get(lowered, _RANK.get(stem))
            if known is None:
                key.append((_NEUTRAL, first_seen[stem], 0, numbers))
            else:
                key.append((*known, 0, numbers))
        # A shorter name sorts before its longer siblings' children; the plan position is the last tie-break.
        keys[name] = (tuple(key), position)
    return keys


def depth_order(names: Iterable[str]) -> list[str]:
    """``names`` (in plan order) sorted into depth order."""
    names = list(names)
    keys = depth_keys(names)
    return sorted(names, key=keys.__getitem__)
