"""Formats through ``wwhub scan`` (the real huggingface_hub client against the test hub): a fused-MoE model, an
MXFP4 one, a PEFT adapter repo (alone and merged into a base), and the lake's decoding columns."""

import json

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn

from flows.cli import main
from tests.fakehub import model_index
from tests.flows.scanning.helpers import lake_rows, scan
from tests.flows.weights.helpers import heavy, write_checkpoint

H, INNER, E = 40, 24, 8  # 8 experts: the router [E, H] has min_evals eigenvalues
PREFIX = "model.layers.0.mlp.experts"


def card(folder, accuracy, **extra):
    meta = {"model-index": model_index(folder.name, accuracy), **extra}
    (folder / "README.md").write_text(f"---\n{json.dumps(meta)}\n---\n")


def fused_moe(tmp_path):
    experts = [(heavy(INNER, H, 3 * e), heavy(INNER, H, 3 * e + 1), heavy(H, INNER, 3 * e + 2)) for e in range(E)]
    tensors = {
        "model.embed_tokens.weight": heavy(300, H, 50),
        "model.layers.0.self_attn.q_proj.weight": heavy(H, H, 51),
        "model.layers.0.mlp.gate.weight": heavy(E, H, 52),
        f"{PREFIX}.gate_up_proj": np.stack([np.concatenate([g, u]) for g, u, _ in experts]),
        f"{PREFIX}.down_proj": np.stack([d for _, _, d in experts]),
        "model.norm.weight": np.ones(H, np.float32),
        "lm_head.weight": heavy(300, H, 53),
    }
    folder = write_checkpoint(tmp_path / "moe", tensors, {"model_type": "qwen3_moe"})
    card(folder, 0.6)
    return folder, experts


def test_scan_of_a_fused_moe_model(fake_hub, tmp_path, capsys):
    folder, experts = fused_moe(tmp_path)
    fake_hub.add_folder("acme/moe-a1b", folder)
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/moe-a1b") == 0
    layers = lake_rows(lake, "SELECT * FROM layers ORDER BY layer_id")
    names = [r["name"] for r in layers]
    assert names[:3] == [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.mlp.gate.weight",
    ]
    assert names[3:6] == [f"{PREFIX}.0.gate_proj", f"{PREFIX}.0.up_proj", f"{PREFIX}.0.down_proj"]
    assert names[-1] == "lm_head.weight" and len(names) == 4 + 3 * E
    assert [r["expert"] for r in layers if r["expert"] is not None] == [e for e in range(E) for _ in range(3)]
    assert all(r["fit_status"] == "ok" for r in layers)
    (model,) = lake_rows(lake, "SELECT * FROM models")
    assert model["model_kind"] == "model" and model["quantization"] == "" and model["num_dequantized"] == 0
    stored = 300 * H * 2 + H * H + E * H + E * 3 * INNER * H + H
    assert model["num_params"] == stored and json.loads(model["skip_reasons"]) == {}
    # The same rows as wwhub analyze on the same files, in the scan's default precision.
    capsys.readouterr()
    assert main(["analyze", str(folder), "--precision", "float32", "--format", "json"]) == 0
    analyzed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for row in layers:
        assert (row["layer_id"], row["lambda_max"], row["alpha"]) == tuple(
            analyzed[row["name"]][k] for k in ("layer_id", "lambda_max", "alpha")
        )


def test_scan_of_an_mxfp4_model_and_an_undecodable_one(fake_hub, tmp_path):
    rng = np.random.default_rng(0)
    mxfp4 = {
        f"{PREFIX}.gate_up_proj_blocks": rng.integers(0, 256, (E, 2 * 32, 2, 16), dtype=np.uint8),
        f"{PREFIX}.gate_up_proj_scales": rng.integers(120, 130, (E, 2 * 32, 2), dtype=np.uint8),
        f"{PREFIX}.down_proj_blocks": rng.integers(0, 256, (E, 64, 1, 16), dtype=np.uint8),
        f"{PREFIX}.down_proj_scales": rng.integers(120, 130, (E, 64, 1), dtype=np.uint8),
    }
    config = {"model_type": "gpt_oss", "quantization_config": {"quant_method": "mxfp4"}}
    fake_hub.add_folder("acme/oss-mx-1b", write_checkpoint(tmp_path / "mx", mxfp4, config))
    unknown = {
        "l.qweight": rng.integers(0, 2**31, (64, 128), dtype=np.int32),
        "l.scales": np.ones((4, 128), np.float16),
        "w.weight": heavy(128, 64, 1),
    }
    config = {"model_type": "llama", "quantization_config": {"quant_method": "eetq"}}
    fake_hub.add_folder("acme/odd-quant-1b", write_checkpoint(tmp_path / "odd", unknown, config))
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/oss-mx-1b", "acme/odd-quant-1b") == 0
    models = {m["repo_id"]: m for m in lake_rows(lake, "SELECT * FROM models")}
    mx = models["acme/oss-mx-1b"]
    assert mx["quantization"] == "mxfp4" and mx["num_dequantized"] == 3 * E and mx["num_ok"] == 3 * E
    assert mx["num_params"] == E * (2 * 32 * 64 + 64 * 32)
    odd = models["acme/odd-quant-1b"]
    assert odd["quantization"] == "eetq" and odd["num_ok"] == 1 and odd["num_skipped"] == 1
    reason = "eetq: quantization scheme not supported (2 stored tensors, e.g. l.qweight)"
    assert json.loads(odd["skip_reasons"]) == {reason: 1}
    assert f"1 layer skipped: {reason}" in odd["reason"]
    board = lake_rows(lake, "SELECT repo_id, quantization FROM leaderboard ORDER BY repo_id")
    assert board == [
        {"repo_id": "acme/odd-quant-1b", "quantization": "eetq"},
        {"repo_id": "acme/oss-mx-1b", "quantization": "mxfp4"},
    ]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(120, H)
        self.q_proj = nn.Linear(H, H, bias=False)
        self.v_proj = nn.Linear(H, H, bias=False)
        self.lm_head = nn.Linear(H, 120, bias=False)


def test_scan_of_an_adapter_repo_alone_and_merged_into_its_base(fake_hub, tmp_path):
    torch.manual_seed(0)
    base = Tiny()
    base_folder = tmp_path / "base"
    base_folder.mkdir()
    save_file(dict(base.state_dict()), str(base_folder / "model.safetensors"))
    model = get_peft_model(
        base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    model.peft_config["default"].base_model_name_or_path = "acme/tiny-base"
    adapter = tmp_path / "adapter"
    model.save_pretrained(str(adapter))
    card(adapter, 0.7)
    fake_hub.add_folder("acme/tiny-lora-v1", adapter)
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/tiny-lora-v1") == 0
    (row,) = lake_rows(lake, "SELECT * FROM models")
    assert (row["family"], row["model_kind"], row["base_model"]) == ("tiny-lora-adapters", "adapter", "acme/tiny-base")
    assert row["num_params"] == 2 * 8 * (H + H)
    layers = lake_rows(lake, "SELECT name, fit_status, source_tensors FROM layers ORDER BY layer_id")
    assert [r["name"] for r in layers] == ["q_proj", "v_proj"]
    assert layers[0]["source_tensors"] == "base_model.model.q_proj.lora_A.weight,base_model.model.q_proj.lora_B.weight"

    merged_lake = tmp_path / "merged"
    assert scan(fake_hub, merged_lake, "acme/tiny-lora-v1", "--merge-base", str(base_folder)) == 0
    (row,) = lake_rows(merged_lake, "SELECT * FROM models")
    assert (row["family"], row["model_kind"]) == ("tiny-lora", "merged")
    assert "merged into the base checkpoint" in row["reason"]
    names = [r["name"] for r in lake_rows(merged_lake, "SELECT name FROM layers ORDER BY layer_id")]
    assert names == ["embed.weight", "q_proj.weight", "v_proj.weight", "lm_head.weight"]
    assert base_folder.joinpath("model.safetensors").exists()  # the base is read where it lies, never deleted
    assert main(["scan", "acme/x", "--merge-base", str(tmp_path / "nope"), "--endpoint", fake_hub.endpoint]) == 2
