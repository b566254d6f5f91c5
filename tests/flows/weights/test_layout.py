"""Which files of a repo hold its weights: the one decision (flows/weights/layout.py) from file lists, and the
sources that plan through it: `--no-pickle` keeps a pickle closed whether the repo is on the hub, in a local folder
of repos or in the Hugging Face cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from huggingface_hub import snapshot_download

from flows.cli import main
from flows.lake.sql import run_query
from flows.weights import UnsupportedWeights, WeightLayout, WeightsError, plan_local, weight_layout

SIZES = dict.fromkeys(["README.md", "config.json"], 10)


def layout(*names: str, **options) -> WeightLayout:
    return weight_layout({**SIZES, **dict.fromkeys(names, 100)}, label="acme/m", **options)


def test_safetensors_come_first_then_pickles_then_one_gguf():
    index = "model.safetensors.index.json"
    shards = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert layout(index, *shards, "pytorch_model.bin") == WeightLayout("safetensors", shards, index=index)
    # Subfolders (onnx/, a converted copy) are not the checkpoint; safetensors beat pickles and GGUF files.
    assert layout("onnx/model.safetensors", "model.safetensors", "pytorch_model.bin", "m-Q4_0.gguf") == WeightLayout(
        "safetensors", ("model.safetensors",)
    )
    assert layout("pytorch_model.bin", "m-Q8_0.gguf") == WeightLayout("pickle", ("pytorch_model.bin",))
    got = layout("sub/m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-f16.gguf")
    assert (got.fmt, got.files) == ("gguf", ("sub/m-Q8_0.gguf",))  # the largest of at most 8 bits, at any depth
    assert got.note == "analyzed sub/m-Q8_0.gguf (picked among 3 GGUF files)"
    assert layout("m-Q4_K_M.gguf", "m-f16.gguf", gguf_file="m-f16.gguf").files == ("m-f16.gguf",)


def test_pickles_are_transformers_checkpoint_names_in_their_index_order():
    shards = ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin")
    assert layout(*shards, "pytorch_model.bin.index.json", "training_args.bin", "optimizer.pt") == WeightLayout(
        "pickle", shards, index="pytorch_model.bin.index.json"
    )
    # A .bin that is not a checkpoint (training arguments, a tokenizer) is never a weight file.
    with pytest.raises(WeightsError, match=r"^acme/m: no \*\.safetensors, pytorch_model\*\.bin or \*\.gguf weights"):
        layout("training_args.bin", "pytorch_model_fp16.bin")


def test_an_adapter_reads_its_own_files_and_no_pickle_refuses_every_pickle():
    assert layout("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin") == WeightLayout(
        "safetensors", ("adapter_model.safetensors",), adapter=True
    )
    assert layout("adapter_config.json", "adapter_model.bin").fmt == "pickle"
    with pytest.raises(UnsupportedWeights, match=r"^acme/m: only a pickled adapter_model.bin, and --no-pickle"):
        layout("adapter_config.json", "adapter_model.bin", allow_pickle=False)
    with pytest.raises(WeightsError, match="adapter_config.json but no adapter weights"):
        layout("adapter_config.json", "model.safetensors")
    with pytest.raises(UnsupportedWeights, match=r"^acme/m: only pickled weights \(pytorch_model.bin\), and --no-pic"):
        layout("pytorch_model.bin", "m-Q4_0.gguf", allow_pickle=False)
    # Pickles beside safetensors are never read anyway: --no-pickle changes nothing there.
    assert layout("model.safetensors", "pytorch_model.bin", allow_pickle=False).files == ("model.safetensors",)


def test_a_local_folder_follows_the_pickle_index_as_the_hub_does(tmp_path):
    for shard in (1, 2):
        torch.save({f"l{shard}.weight": torch.ones(4, 4)}, tmp_path / f"pytorch_model-0000{shard}-of-00002.bin")
    weight_map = {"l2.weight": "pytorch_model-00002-of-00002.bin", "l1.weight": "pytorch_model-00001-of-00002.bin"}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "pytorch_model_old.bin").write_bytes(b"not a checkpoint of this model")
    _, plan = plan_local(tmp_path)
    assert plan.fmt == "pickle"
    assert [(s.filename, [t.name for t in s.tensors]) for s in plan.shards] == [
        ("pytorch_model-00002-of-00002.bin", ["l2.weight"]),
        ("pytorch_model-00001-of-00002.bin", ["l1.weight"]),
    ]
    with pytest.raises(UnsupportedWeights, match="--no-pickle"):
        plan_local(tmp_path, allow_pickle=False)


@pytest.fixture
def pickle_loads(monkeypatch):
    """Every torch.load call's path: the one way wwhub loads a pickle (flows/weights/readers.py PickleShard)."""
    calls = []
    real_load = torch.load

    def recording_load(path, *args, **kwargs):
        calls.append(str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    return calls


def pickled_repo(folder):
    """A repo whose only weights are ``pytorch_model.bin``: a real state dict, so a load would write ok rows."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    torch.save(
        {"w.weight": torch.from_numpy(rng.standard_t(3, (120, 60)).astype(np.float32))}, folder / "pytorch_model.bin"
    )
    (folder / "README.md").write_text("---\nlibrary_name: pytorch\n---\n")
    return folder


def assert_recorded_unsupported(lake, repo_id):
    (model,) = run_query(lake, "SELECT repo_id, status, reason FROM models")
    assert model["repo_id"] == repo_id and model["status"] == "unsupported"
    assert model["reason"].endswith("only pickled weights (pytorch_model.bin), and --no-pickle forbids loading pickles")
    assert run_query(lake, "SELECT count(*) AS n FROM layers") == [{"n": 0}]


def test_no_pickle_keeps_a_local_repo_pickle_closed(tmp_path, pickle_loads, capsys):
    pickled_repo(tmp_path / "repos" / "acme" / "old")
    lake = tmp_path / "lake"
    # Exit 0: a model skipped as asked is recorded with its reason, and is no failure of the scan (docs/formats.md).
    assert main(["scan", "--source", "local", str(tmp_path / "repos"), "--lake", str(lake), "--no-pickle"]) == 0
    assert pickle_loads == []
    assert_recorded_unsupported(lake, "acme/old")
    # The same scan without --no-pickle loads it (so the recorder above would have seen a load).
    assert main(["scan", "--source", "local", str(tmp_path / "repos"), "--lake", str(lake)]) == 0
    assert pickle_loads == [str(tmp_path / "repos" / "acme" / "old" / "pytorch_model.bin")]
    assert run_query(lake, "SELECT fit_status FROM layers") == [{"fit_status": "ok"}]


def test_no_pickle_keeps_a_cached_pickle_closed(fake_hub, tmp_path, pickle_loads):
    fake_hub.add_folder("acme/old", pickled_repo(tmp_path / "repo"))
    cache = tmp_path / "hf-cache"
    snapshot_download("acme/old", cache_dir=cache, endpoint=fake_hub.endpoint)
    lake = tmp_path / "lake"
    assert main(["scan", "--source", "cache", str(cache), "--lake", str(lake), "--no-pickle"]) == 0
    assert pickle_loads == []
    assert_recorded_unsupported(lake, "acme/old")


def test_no_pickle_never_downloads_or_opens_a_hub_pickle(fake_hub, tmp_path, pickle_loads):
    fake_hub.add_folder("acme/old", pickled_repo(tmp_path / "repo"))
    lake = tmp_path / "lake"
    args = ["scan", "acme/old", "--endpoint", fake_hub.endpoint, "--lake", str(lake), "--no-pickle"]
    assert main(args) == 0
    assert pickle_loads == []
    assert fake_hub.count("GET", "pytorch_model.bin") == 0  # not even downloaded
    assert_recorded_unsupported(lake, "acme/old")
