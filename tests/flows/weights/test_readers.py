"""Readers: safetensors through numpy memory maps (no torch), every dtype bit for bit; headers validated before
anything is read; ``.bin`` pickles, zip and legacy (pre-1.6), only through ``weights_only=True``."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from flows.analysis.model_analysis import analyze_path
from flows.weights import WeightsError, open_shard, read_safetensors_header
from flows.weights.readers import torch_to_numpy

ROOT = Path(__file__).resolve().parents[3]
DTYPES = [
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
]


def sample(dtype: torch.dtype, seed: int, shape=(7, 5)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * 3).to(dtype)
    if dtype == torch.bool:
        return torch.rand(*shape, generator=generator) > 0.5
    return torch.randint(0, 100, shape, generator=generator).to(dtype)


def bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def test_every_safetensors_dtype_reads_bit_for_bit_as_torch_stores_it(tmp_path):
    tensors = {f"t{i}": sample(dtype, i) for i, dtype in enumerate(DTYPES)}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    reader = open_shard(tmp_path / "m.safetensors")
    for name, tensor in tensors.items():
        array = reader.array(name)
        assert array.shape == tuple(tensor.shape) and not array.flags.writeable  # a read-only memory map
        assert bits(array) == bits(torch_to_numpy(tensor)), tensor.dtype
    assert reader.array("t3").dtype == ml_dtypes.bfloat16 and reader.array("t4").dtype == ml_dtypes.float8_e4m3fn
    reader.evict("t1")  # pages dropped; the next read faults them back in from the file
    assert bits(reader.array("t1")) == bits(tensors["t1"].numpy())


def test_analysis_of_safetensors_never_imports_torch(tmp_path):
    save_file({"w.weight": sample(torch.bfloat16, 0, (140, 100))}, str(tmp_path / "m.safetensors"))
    code = (
        "import sys; from flows.analysis.model_analysis import analyze_path; "
        f"rows = analyze_path({str(tmp_path / 'm.safetensors')!r}, {{}}).rows; "
        "assert rows[0].fit_status == 'ok', rows; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def write_raw(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}, b"\0" * 32, "data offsets hold 32"),
        ({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}, b"\0" * 32, "truncated"),
        ({"w": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}}, b"\0" * 16, "corrupt"),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}}, b"\0" * 16, "corrupt"),
        # Two tensors sharing bytes: the format wants each tensor's bytes after the last one's (safetensors refuses).
        (
            {
                "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                "v": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]},
            },
            b"\0" * 24,
            r"tensor 'v' has data_offsets \[8, 24\], but should begin at byte 16, .* \(no overlap, no hole\)",
        ),
        ({"w": ["F32", [2, 2], [0, 16]]}, b"\0" * 16, "tensor 'w' is a list, not an object with dtype"),
    ],
)
def test_a_header_whose_tensors_do_not_fit_is_an_error_naming_the_file(tmp_path, header, data, message):
    path = write_raw(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(WeightsError, match=message) as err:
        read_safetensors_header(path)
    assert "bad.safetensors" in str(err.value)


def test_a_tensor_name_listed_twice_is_a_corrupt_header(tmp_path):
    """json.loads kept the last entry: the first tensor vanished and its bytes went unread, silently."""
    entry = '{"dtype": "F32", "shape": [2, 2], "data_offsets": [%d, %d]}'
    raw = ('{"w": ' + entry % (0, 16) + ', "w": ' + entry % (16, 32) + "}").encode()
    path = tmp_path / "twice.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 32)
    with pytest.raises(WeightsError, match=r"twice.safetensors: corrupt safetensors header: 'w' is listed twice"):
        read_safetensors_header(path)


def test_a_header_length_beyond_the_file_is_an_error_before_any_allocation(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(WeightsError, match="huge.safetensors: header length 1099511627776 is more than"):
        open_shard(path)


def state_dict() -> dict[str, torch.Tensor]:
    return {"a.weight": sample(torch.float32, 1, (140, 100)), "b.weight": sample(torch.bfloat16, 2, (90, 60))}


@pytest.mark.parametrize("zipped", [True, False])
def test_pickles_zip_and_legacy_load_with_weights_only(tmp_path, zipped):
    tensors = state_dict()
    # torch < 1.6 wrote plain pickles; torch still writes them on request, and they cannot be memory-mapped.
    torch.save(tensors, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=zipped)
    reader = open_shard(tmp_path / "pytorch_model.bin", "pickle")
    for name, tensor in tensors.items():
        assert bits(reader.array(name)) == bits(torch_to_numpy(tensor))
    rows = {r.name: r for r in analyze_path(tmp_path, {}).rows}
    assert rows.keys() == tensors.keys() and all(r.fit_status == "ok" for r in rows.values())


def test_a_legacy_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsError, match="weights_only=True"):
        open_shard(tmp_path / "pytorch_model.bin", "pickle")


def test_sparse_and_meta_tensors_of_a_pickle_fail_naming_the_file_and_the_others_are_analyzed(tmp_path):
    """numpy cannot view either: they were 'unexpected TypeError' rows, logged as wwhub bugs."""
    path = tmp_path / "pytorch_model.bin"
    torch.save(
        {
            "a.weight": sample(torch.float32, 0, (64, 32)).to_sparse(),
            "b.weight": torch.empty(64, 32, device="meta"),
            "c.weight": sample(torch.float32, 1, (64, 32)),
        },
        path,
    )
    rows = {r.name: r for r in analyze_path(tmp_path, {}).rows}
    assert rows["a.weight"].reason == f"{path}: a.weight is a torch.sparse_coo tensor, not dense weights"
    assert rows["b.weight"].reason == f"{path}: b.weight is a meta tensor: the file stores its shape but no values"
    assert [rows[n].fit_status for n in ("a.weight", "b.weight", "c.weight")] == ["failed", "failed", "ok"]


def test_a_pickle_whose_tensors_are_nested_says_so(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"state_dict": {"a.weight": sample(torch.float32, 0, (64, 32))}, "epoch": 3}, path)
    with pytest.raises(
        WeightsError, match="pytorch_model.bin: no tensors at the top level, only dicts under state_dict"
    ):
        open_shard(path, "pickle")
