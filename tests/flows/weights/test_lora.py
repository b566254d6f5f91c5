"""LoRA adapters: ΔW = s·B·A per adapted module, checked against PEFT itself.

The adapters are made by PEFT (``get_peft_model`` + ``save_pretrained``: a real ``adapter_config.json`` and
``adapter_model.safetensors``) on a small model with Linear, Embedding and Conv2d layers; the truth is PEFT's own
``get_delta_weight`` and, for ``--merge-base``, ``merge_and_unload()``.
"""

import json
import math

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn
from transformers.pytorch_utils import Conv1D

from flows.analysis.model_analysis import analyze_path
from flows.cli import main
from flows.weights import WeightsError
from flows.weights.decoders.lora import validate_adapter_config
from tests.flows.weights.helpers import assert_matches_twin, twin

H, V = 96, 200


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(H, H, bias=False)
        self.v_proj = nn.Linear(H, H, bias=False)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = Attention()
        self.conv = nn.Conv2d(16, 24, 3)


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, H)
        self.layers = nn.ModuleList([Layer(), Layer()])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Inner()
        self.lm_head = nn.Linear(H, V)


def make_adapter(tmp_path, name="adapter", **lora):
    """A PEFT adapter of a seeded Tiny model, saved by PEFT; returns (adapter folder, base folder, PEFT model)."""
    torch.manual_seed(0)
    base = Tiny()
    base_folder = tmp_path / "base"
    base_folder.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(base_folder / "model.safetensors"))
    settings = dict(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, LoraConfig(**(settings | lora)))
    model.peft_config["default"].base_model_name_or_path = "acme/tiny-base"
    model.save_pretrained(str(tmp_path / name))
    return tmp_path / name, base_folder, model


def lora_modules(model):
    return {name.removeprefix("base_model.model."): m for name, m in model.named_modules() if hasattr(m, "lora_A")}


def rows_of(path, **kwargs):
    analyzed = analyze_path(path, {}, **kwargs)
    return analyzed, {record["name"]: record for record in analyzed.records()}


def test_delta_rows_equal_peft_delta_weights_with_rank_and_alpha_patterns(tmp_path):
    adapter, _, model = make_adapter(
        tmp_path,
        target_modules=["q_proj", "v_proj", "embed_tokens", "conv"],
        rank_pattern={"v_proj": 24},
        alpha_pattern={"layers.1.self_attn.q_proj": 8},
    )
    analyzed, rows = rows_of(adapter)
    modules = lora_modules(model)
    assert set(rows) == set(modules)  # one row per adapted module, none for lora_A / lora_B
    for name, module in modules.items():
        truth = module.get_delta_weight("default").detach().numpy()
        row = rows[name]
        assert row["quantization"] == "" and "lora_" in row["source_tensors"]
        # float32 products on both sides (ours numpy, PEFT torch): equal to a few float32 ulps. A Conv2d ΔW is
        # [out, in, kh, kw], pooled over kernel positions like any Conv2D weight, on both sides.
        assert_matches_twin(row, twin(truth))
    facts = analyzed.analysis.facts()
    assert facts["model_kind"] == "adapter"
    stored = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert facts["num_params"] == stored  # what the adapter stores: r·(in + out) per module


def test_rslora_scales_by_alpha_over_root_r(tmp_path):
    adapter, _, model = make_adapter(tmp_path, use_rslora=True)
    _, rows = rows_of(adapter)
    for name, module in lora_modules(model).items():
        assert module.scaling["default"] == pytest.approx(32 / math.sqrt(16))
        assert_matches_twin(rows[name], twin(module.get_delta_weight("default").detach().numpy()))


def test_merge_base_equals_peft_merge_and_unload(tmp_path, capsys):
    adapter, base_folder, model = make_adapter(tmp_path, modules_to_save=["lm_head"])
    with torch.no_grad():
        model.base_model.model.lm_head.modules_to_save["default"].weight.mul_(1.5)  # trained beside the LoRA
    model.save_pretrained(str(adapter))
    merged = model.merge_and_unload().state_dict()
    analyzed, rows = rows_of(adapter, merge_base=base_folder)
    matrices = {k: v for k, v in merged.items() if v.ndim >= 2}
    assert set(rows) == set(matrices)
    for name, weight in matrices.items():
        assert_matches_twin(rows[name], twin(weight.detach().numpy()))
    q = rows["model.layers.0.self_attn.q_proj.weight"]["source_tensors"].split(",")
    assert q[0] == "model.layers.0.self_attn.q_proj.weight" and q[1].endswith("q_proj.lora_A.weight")
    assert analyzed.analysis.facts()["model_kind"] == "merged"
    assert main(["analyze", str(adapter), "--merge-base", str(base_folder), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(matrices)


def test_dora_is_skipped_without_the_base_and_merged_like_peft_with_it(tmp_path):
    adapter, base_folder, model = make_adapter(tmp_path, use_dora=True)
    _, rows = rows_of(adapter)
    assert all(r["fit_status"] == "skipped" and "DoRA" in r["reason"] for r in rows.values())
    merged = model.merge_and_unload().state_dict()
    _, rows = rows_of(adapter, merge_base=base_folder)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.v_proj.weight"):
        assert_matches_twin(rows[name], twin(merged[name].detach().numpy()))


def test_fan_in_fan_out_conv1d_adapters(tmp_path):
    class Gpt2Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = Conv1D(3 * H, H)  # stored [in, out], GPT-2's layout

    torch.manual_seed(1)
    base = Gpt2Block()
    (tmp_path / "base").mkdir()
    save_file(dict(base.state_dict()), str(tmp_path / "base" / "model.safetensors"))
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False)
    model = get_peft_model(base, config)
    model.save_pretrained(str(tmp_path / "adapter"))
    delta = model.base_model.model.c_attn.get_delta_weight("default").detach().numpy()
    _, rows = rows_of(tmp_path / "adapter")
    assert (rows["c_attn"]["N"], rows["c_attn"]["M"]) == (3 * H, H)
    assert_matches_twin(rows["c_attn"], twin(delta))
    merged = model.merge_and_unload().state_dict()["c_attn.weight"].detach().numpy()
    _, rows = rows_of(tmp_path / "adapter", merge_base=tmp_path / "base")
    assert_matches_twin(rows["c_attn.weight"], twin(merged))


def edit_config(adapter, **changes):
    path = adapter / "adapter_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_bad_adapters_are_clear_errors_or_skipped_rows(tmp_path, capsys):
    adapter, _, _ = make_adapter(tmp_path)
    edit_config(adapter, r=0)
    assert main(["analyze", str(adapter)]) == 2
    assert "r=0: the LoRA rank must be a positive integer" in capsys.readouterr().err
    edit_config(adapter, r=8)  # the stored A matrices have rank 16
    _, rows = rows_of(adapter)
    assert all("lora_A has rank 16 but adapter_config.json gives r=8" in r["reason"] for r in rows.values())
    (adapter / "adapter_model.safetensors").unlink()
    assert main(["analyze", str(adapter)]) == 2
    assert "adapter_config.json but no adapter weights" in capsys.readouterr().err
    (adapter / "adapter_config.json").write_text("{not json")
    assert main(["analyze", str(adapter)]) == 2
    assert "adapter_config.json: not valid JSON" in capsys.readouterr().err


def test_merge_base_needs_an_adapter_and_a_full_model(tmp_path, capsys):
    adapter, base_folder, _ = make_adapter(tmp_path)
    assert main(["analyze", str(base_folder), "--merge-base", str(base_folder)]) == 2
    assert "needs a PEFT adapter folder" in capsys.readouterr().err
    assert main(["analyze", str(adapter), "--merge-base", str(adapter)]) == 2
    assert "must name a full model" in capsys.readouterr().err
    np.testing.assert_equal((tmp_path / "adapter").is_dir(), True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rank_pattern": {"q_proj": 0.5}}, "rank_pattern['q_proj']=0.5: must be a positive integer"),
        ({"alpha_pattern": {"q_proj": "16"}}, "alpha_pattern['q_proj']='16': must be a number"),
        ({"rank_pattern": {"(": 8}}, "rank_pattern['(']: not a valid module name pattern (missing ), unterminated"),
    ],
)
def test_a_bad_rank_or_alpha_pattern_is_one_line_naming_the_file_and_the_key(change, message):
    """A rank of 0.5 became int(0.5) = 0 and divided by zero; a key that is no regex raised re.error: exit 70."""
    with pytest.raises(WeightsError) as caught:
        validate_adapter_config({"peft_type": "LORA", "r": 8, "lora_alpha": 16, **change}, "a/adapter_config.json")
    assert str(caught.value).startswith(f"a/adapter_config.json: {message}")
