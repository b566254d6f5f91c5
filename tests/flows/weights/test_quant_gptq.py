"""GPTQ (``qweight``/``qzeros``/``scales``/``g_idx``) against AutoGPTQ's own dequantization.

AutoGPTQ does not install on a CPU-only machine, so scripts/make_quant_reference.py ran its ``QuantLinear.pack``
and CPU ``forward`` (``scales[g_idx] * (weight - zeros[g_idx])``, float32 scales) once and stored the result in
data/gptq_awq_reference.npz: 2/3/4/8 bits, sequential and act-order ``g_idx``, v1 checkpoint format. The v2 format,
the sym case and the bad inputs are checked on a round trip of known codes, written here with the same packing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows.weights.decoders.contract import ModelConfig
from flows.weights.decoders.quant import DECODERS
from flows.weights.decoders.quant.gptq import GPTQDecoder
from flows.weights.errors import WeightsError
from tests.flows.weights.helpers import assert_same_spectrum, claim_and_decode, plan_of

REFERENCE = np.load(Path(__file__).parent / "data" / "gptq_awq_reference.npz")
CASES = sorted({key.split("/")[0] for key in REFERENCE.files if key.startswith("gptq_")})
PREFIX = "model.layers.3.self_attn.o_proj"


def stored(case: str) -> dict[str, np.ndarray]:
    return {f"{PREFIX}.{name}": REFERENCE[f"{case}/{name}"] for name in ("qweight", "qzeros", "scales", "g_idx")}


def gptq_config(bits: int, group_size: int, **extra) -> dict:
    return {"quantization_config": {"quant_method": "gptq", "bits": bits, "group_size": group_size, **extra}}


def pack_stream(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned ``bits``-bit values along the last axis into int32 words as one little-endian bit stream
    (AutoGPTQ ``QuantLinear.pack``: 32/bits per word for 2/4/8 bits, 32 values per 3 words for 3 bits)."""
    *lead, count = values.shape
    words = np.zeros((*lead, count * bits // 32), dtype=np.uint64)
    for k in range(count):
        start = k * bits
        word, offset = divmod(start, 32)
        v = values[..., k].astype(np.uint64)
        words[..., word] |= (v << np.uint64(offset)) & np.uint64(0xFFFFFFFF)
        if offset + bits > 32:
            words[..., word + 1] |= v >> np.uint64(32 - offset)
    return words.astype(np.uint32).view(np.int32)


@pytest.mark.parametrize("case", CASES)
def test_matches_autogptq_dequantization(case):
    bits = int(case.split("_")[1][1:])
    group_size = int(case.split("_")[2][1:])
    arrays = stored(case)
    arrays[f"{PREFIX}.bias"] = np.zeros(arrays[f"{PREFIX}.scales"].shape[1], dtype=np.float16)
    claim, decoded = claim_and_decode(GPTQDecoder(), arrays, gptq_config(bits, group_size, desc_act="act" in case))
    (spec,) = claim.matrices
    assert spec.name == f"{PREFIX}.weight" and spec.quantization == f"gptq-int{bits}"
    assert spec.shape == REFERENCE[f"{case}/reference"].shape
    assert claim.consumed == set(arrays)  # qweight, qzeros, scales, g_idx, bias: no rows
    # Same float32 operations as the reference on the same codes: equal to the last bit.
    np.testing.assert_array_equal(decoded[spec.name], REFERENCE[f"{case}/reference"])


def test_recognised_from_tensor_shapes_without_a_config():
    """No quantization_config: qweight as wide as scales is GPTQ's packing, and only the GPTQ decoder claims it."""
    arrays = stored("gptq_b4_g32_act")
    claiming = [d.name for d in DECODERS if d.claim(plan_of(arrays), ModelConfig({})).matrices]
    assert claiming == ["gptq"]
    _, decoded = claim_and_decode(GPTQDecoder(), arrays, {})
    np.testing.assert_array_equal(decoded[f"{PREFIX}.weight"], REFERENCE["gptq_b4_g32_act/reference"])


def known_module(bits: int, v2: bool, rows: int = 256, cols: int = 512, group_size: int = 128, seed: int = 0):
    """Known codes, zeros and float16 scales packed as GPTQ stores them; returns (arrays, dense twin)."""
    rng = np.random.default_rng(seed)
    groups = cols // group_size
    codes = rng.integers(0, 2**bits, size=(cols, rows))
    zeros = rng.integers(1, 2**bits, size=(groups, rows))
    scales = rng.uniform(0.001, 0.01, size=(groups, rows)).astype(np.float16)
    g_idx = (np.arange(cols) // group_size).astype(np.int32)
    stored_zeros = zeros if v2 else zeros - 1
    arrays = {
        f"{PREFIX}.qweight": pack_stream(codes.T, bits).T.copy(),
        f"{PREFIX}.qzeros": pack_stream(stored_zeros, bits),
        f"{PREFIX}.scales": scales,
        f"{PREFIX}.g_idx": g_idx,
    }
    twin = (scales.astype(np.float64)[g_idx] * (codes - zeros[g_idx])).T
    return arrays, twin


@pytest.mark.parametrize("bits", [3, 4])
def test_v2_checkpoint_format_stores_the_zero_itself(bits):
    arrays, twin = known_module(bits, v2=True)
    _, decoded = claim_and_decode(GPTQDecoder(), arrays, gptq_config(bits, 128, checkpoint_format="gptq_v2"))
    np.testing.assert_allclose(decoded[f"{PREFIX}.weight"], twin, rtol=1e-7)  # one float32 rounding
    _, as_v1 = claim_and_decode(GPTQDecoder(), arrays, gptq_config(bits, 128))
    assert not np.allclose(as_v1[f"{PREFIX}.weight"], twin)  # the convention matters


def test_end_to_end_against_the_dense_twin():
    arrays, twin = known_module(4, v2=False, rows=384, cols=768, seed=5)
    _, decoded = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128))
    assert_same_spectrum(decoded[f"{PREFIX}.weight"], twin)


def test_missing_scales_is_a_skipped_row_naming_gptq():
    arrays, _ = known_module(4, v2=False)
    del arrays[f"{PREFIX}.scales"]
    claim, decoded = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128))
    (spec,) = claim.matrices
    assert spec.skip_reason == "gptq: missing scales beside qweight" and decoded == {}
    assert claim.consumed == set(arrays)


def test_mismatched_scales_is_a_skipped_row():
    arrays, _ = known_module(4, v2=False)
    arrays[f"{PREFIX}.scales"] = arrays[f"{PREFIX}.scales"][:, :100]
    claim, _ = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128))
    assert claim.matrices[0].skip_reason.startswith("gptq: ")


def test_marlin_repacked_checkpoint_is_skipped_with_its_name():
    arrays, _ = known_module(4, v2=False)
    claim, _ = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128, checkpoint_format="marlin"))
    assert claim.matrices[0].skip_reason == "gptq: marlin-repacked qweight not supported"


def test_g_idx_out_of_range_fails_naming_the_matrix():
    arrays, _ = known_module(4, v2=False)
    claim, _ = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128))
    bad = dict(arrays, **{f"{PREFIX}.g_idx": np.full(512, 9, dtype=np.int32)})
    with pytest.raises(WeightsError, match=f"{PREFIX}.weight"):
        claim.matrices[0].decode(bad)


@pytest.mark.parametrize("role", ["qweight", "qzeros", "scales"])
def test_a_tensor_that_is_not_2d_is_a_skipped_row_naming_it(role):
    # A 1-D qweight used to raise IndexError out of the claim: the whole model's plan failed.
    arrays, _ = known_module(4, v2=False)
    arrays[f"{PREFIX}.{role}"] = arrays[f"{PREFIX}.{role}"].reshape(-1)
    claim, decoded = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128))
    (spec,) = claim.matrices
    assert spec.skip_reason.startswith(f"gptq: {role} has shape (") and "expected 2-D" in spec.skip_reason
    assert decoded == {}


def test_a_part_every_module_lacks_is_one_reason_in_the_models_summary():
    """The reason named each module's own qweight, so a checkpoint without scales gave as many reasons as modules
    (the model's summary counts identical reasons: "N layers skipped: ...")."""
    arrays = {}
    for layer in range(3):
        module, _ = known_module(4, v2=False, seed=layer)
        arrays.update({name.replace(PREFIX, f"model.layers.{layer}.mlp.up_proj"): a for name, a in module.items()})
    arrays = {name: a for name, a in arrays.items() if not name.endswith(".scales")}
    claim, _ = claim_and_decode(GPTQDecoder(), arrays, gptq_config(4, 128))
    assert {spec.skip_reason for spec in claim.matrices} == {"gptq: missing scales beside qweight"}
    assert len(claim.matrices) == 3
