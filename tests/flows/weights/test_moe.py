"""Fused MoE experts: split per expert and projection exactly as transformers' own modules use them.

The layouts are checked against the reference code itself: transformers' ``MixtralExperts``, ``Qwen2MoeExperts``,
``GptOssExperts`` and ``Llama4TextExperts`` are instantiated with random weights, and each expert's output from its
forward pass must equal what our gate / up / down matrices compute. Then, for each layout, the rows of the fused
checkpoint must equal the rows of the same matrices stored unfused, and the dense twin analyzed by the plain path.
"""

import numpy as np
import pytest
import torch
from transformers import GptOssConfig, Llama4TextConfig, MixtralConfig, Qwen2MoeConfig
from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts
from transformers.models.llama4.modeling_llama4 import Llama4TextExperts
from transformers.models.mixtral.modeling_mixtral import MixtralExperts
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeExperts

from flows.cli import main
from tests.flows.weights.helpers import (
    analyze_rows,
    assert_matches_twin,
    decoded,
    heavy,
    plan_of,
    twin,
    write_checkpoint,
)
from tests.memory import peak_rss

H, INNER, E = 40, 24, 4  # hidden, intermediate, experts: 2I != H, so a transposed layout cannot pass for another
PREFIX = "model.layers.0.mlp.experts"


def silu(v):
    return v / (1.0 + np.exp(-v))


def reference_module(model_type: str):
    torch.manual_seed(0)
    if model_type == "mixtral":
        module = MixtralExperts(MixtralConfig(hidden_size=H, intermediate_size=INNER, num_local_experts=E))
    elif model_type == "qwen2_moe":
        module = Qwen2MoeExperts(Qwen2MoeConfig(hidden_size=H, moe_intermediate_size=INNER, num_experts=E))
    elif model_type == "gpt_oss":
        module = GptOssExperts(GptOssConfig(hidden_size=H, intermediate_size=INNER, num_local_experts=E))
    else:
        module = Llama4TextExperts(Llama4TextConfig(hidden_size=H, intermediate_size=INNER, num_local_experts=E))
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            # GPT-OSS biases are zeroed so that the expert is the matrices alone (biases are not layers).
            torch.nn.init.zeros_(parameter) if name.endswith("_bias") else torch.nn.init.normal_(parameter, std=0.2)
    return module


def reference_output(module, model_type: str, x: torch.Tensor, expert: int) -> np.ndarray:
    with torch.no_grad():
        if model_type == "gpt_oss":
            out = module(x, router_indices=torch.tensor([[expert]]), routing_weights=torch.tensor([[1.0]]))
        elif model_type == "llama4":
            # Tokens arrive sorted by expert, one chunk each: expert e sees row e.
            out = module(x.repeat(E, 1))[expert : expert + 1]
        else:
            out = module(x, torch.tensor([[expert]]), torch.tensor([[1.0]]))
    return out.double().numpy()[0]


def our_output(model_type: str, module, matrices: dict, x: np.ndarray, expert: int) -> np.ndarray:
    gate, up, down = (matrices[f"{PREFIX}.{expert}.{p}"][1] for p in ("gate_proj", "up_proj", "down_proj"))
    g, u = gate @ x, up @ x
    if model_type == "gpt_oss":
        # GptOssExperts._apply_gate: the activation is the reference's; the matrices are ours.
        g = np.minimum(g, module.limit)
        u = np.clip(u, -module.limit, module.limit)
        return down @ ((u + 1) * (g / (1 + np.exp(-g * module.alpha))))
    return down @ (silu(g) * u)


@pytest.mark.parametrize("model_type", ["mixtral", "qwen2_moe", "gpt_oss", "llama4"])
def test_each_expert_computes_what_the_reference_module_computes(model_type):
    module = reference_module(model_type)
    stored = {f"{PREFIX}.{name}": t.detach().numpy() for name, t in module.state_dict().items()}
    matrices = decoded(stored, {"model_type": model_type})
    assert {spec.expert for spec, _ in matrices.values()} == set(range(E))
    assert len(matrices) == 3 * E  # gate, up, down per expert; biases are no matrices
    x = torch.randn(1, H, generator=torch.Generator().manual_seed(1))
    for expert in range(E):
        ours = our_output(model_type, module, matrices, x.double().numpy()[0], expert)
        # float32 reference forward vs float64 products of the same float32 weights
        np.testing.assert_allclose(ours, reference_output(module, model_type, x, expert), rtol=1e-4, atol=1e-4)


def dense_experts(seed: int) -> list[dict[str, np.ndarray]]:
    return [
        {
            "gate_proj": heavy(INNER, H, seed + 3 * e),
            "up_proj": heavy(INNER, H, seed + 3 * e + 1),
            "down_proj": heavy(H, INNER, 7 + e),
        }
        for e in range(E)
    ]


def fuse(experts: list[dict], layout: str) -> dict[str, np.ndarray]:
    """The fused tensors of a layout, built from per-expert nn.Linear matrices ([out, in])."""
    gate_up = []
    for e in experts:
        if layout == "interleaved":
            both = np.empty((2 * INNER, H), np.float32)
            both[0::2], both[1::2] = e["gate_proj"], e["up_proj"]
        else:
            both = np.concatenate([e["gate_proj"], e["up_proj"]])
        gate_up.append(both if layout == "default" else both.T)
    down = [e["down_proj"] if layout == "default" else e["down_proj"].T for e in experts]
    return {f"{PREFIX}.gate_up_proj": np.stack(gate_up), f"{PREFIX}.down_proj": np.stack(down)}


def unfused(experts: list[dict]) -> dict[str, np.ndarray]:
    return {f"{PREFIX}.{e}.{proj}.weight": m for e, mats in enumerate(experts) for proj, m in mats.items()}


LAYOUTS = [("mixtral", "default"), ("deepseek_v3", "default"), ("llama4", "transposed"), ("gpt_oss", "interleaved")]


@pytest.mark.parametrize(("model_type", "layout"), LAYOUTS)
def test_fused_rows_equal_unfused_rows_and_the_dense_twin(tmp_path, model_type, layout):
    experts = dense_experts(11)
    router = {"model.layers.0.mlp.router.weight": heavy(E, H, 99)}
    config = {"model_type": model_type}
    fused = write_checkpoint(tmp_path / "fused", {**fuse(experts, layout), **router}, config)
    plain = write_checkpoint(tmp_path / "unfused", {**unfused(experts), **router}, config)
    fused_rows, plain_rows = analyze_rows(fused), analyze_rows(plain)
    assert len(fused_rows) == len(plain_rows) == 3 * E + 1
    for e, mats in enumerate(experts):
        for proj, matrix in mats.items():
            row = fused_rows[f"{PREFIX}.{e}.{proj}"]
            assert (
                row["expert"] == e
                and row["source_tensors"] == f"{PREFIX}.{'down_proj' if proj == 'down_proj' else 'gate_up_proj'}"
            )
            assert_matches_twin(row, twin(matrix))
            stored = plain_rows[f"{PREFIX}.{e}.{proj}.weight"]
            # The same float32 values through the same eigensolver: identical, not merely close.
            assert (row["lambda_max"], row["alpha"], row["D"]) == (stored["lambda_max"], stored["alpha"], stored["D"])
    # Depth order: the router, then each expert's gate, up, down.
    order = sorted(fused_rows, key=lambda n: fused_rows[n]["layer_id"])
    assert order[:4] == [
        "model.layers.0.mlp.router.weight",
        f"{PREFIX}.0.gate_proj",
        f"{PREFIX}.0.up_proj",
        f"{PREFIX}.0.down_proj",
    ]


def test_bf16_fused_experts_are_exact(tmp_path):
    import ml_dtypes

    experts = dense_experts(5)
    tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in fuse(experts, "default").items()}
    rows = analyze_rows(write_checkpoint(tmp_path / "m", tensors, {"model_type": "qwen3_moe"}))
    for e, mats in enumerate(experts):
        for proj, matrix in mats.items():
            # The twin is the bf16 value itself: the split is a view, no rounding of its own.
            assert_matches_twin(rows[f"{PREFIX}.{e}.{proj}"], twin(matrix.astype(ml_dtypes.bfloat16)))


def test_expert_biases_are_parameters_not_layers():
    experts = dense_experts(2)
    stored = {
        **fuse(experts, "interleaved"),
        f"{PREFIX}.gate_up_proj_bias": np.ones((E, 2 * INNER), np.float32),
        f"{PREFIX}.down_proj_bias": np.ones((E, H), np.float32),
    }
    matrices = decoded(stored, {"model_type": "gpt_oss"})
    assert not [name for name in matrices if "bias" in name]
    from flows.weights import ModelConfig, plan_matrices

    decoding = plan_matrices(list(plan_of(stored).values()), ModelConfig({"model_type": "gpt_oss"}))
    assert decoding.num_params == sum(a.size for a in stored.values())


def test_a_shape_that_fits_no_layout_is_skipped_with_the_reason(tmp_path, capsys):
    tensors = {
        f"{PREFIX}.gate_up_proj": heavy(E * 2 * INNER, H, 1).reshape(E, 2 * INNER, H),
        f"{PREFIX}.down_proj": heavy(E * H, INNER + 1, 2).reshape(E, H, INNER + 1),
    }
    folder = write_checkpoint(tmp_path / "m", tensors, {"model_type": "mixtral"})
    rows = analyze_rows(folder)
    assert len(rows) == 3 * E and all(r["fit_status"] == "skipped" for r in rows.values())
    assert "match no layout of model_type 'mixtral'" in rows[f"{PREFIX}.0.gate_proj"]["reason"]
    assert main(["analyze", str(folder)]) == 0
    assert "12 layers skipped: fused experts" in capsys.readouterr().err


@pytest.mark.parametrize("model_type", ["mixtral", "gpt_oss"])
def test_a_fused_gate_up_with_an_odd_fused_axis_is_skipped_not_split_unevenly(model_type):
    """Without a down_proj to check against, a [E, 63, 32] gate_up was once split into 31 gate and 32 up rows,
    both reported ok (interleaved: 32 and 31)."""
    fused = heavy(2 * 63, 32, 1).reshape(2, 63, 32)
    stored = {f"{PREFIX}.gate_up_proj": fused if model_type == "mixtral" else fused.transpose(0, 2, 1).copy()}
    got = decoded(stored, {"model_type": model_type})
    assert sorted(got) == sorted(f"{PREFIX}.{e}.{p}" for e in range(2) for p in ("gate_proj", "up_proj"))
    assert {spec.skip_reason for spec, _ in got.values()} == {
        f"fused gate_up {list(stored[f'{PREFIX}.gate_up_proj'].shape)}: its fused axis (63) is odd, so it holds no "
        "equal gate and up halves"
    }


def test_other_model_types_use_the_default_layout_only_when_the_shapes_say_so():
    experts = dense_experts(3)
    for config in ({}, {"model_type": "some_new_moe"}):
        default = decoded(fuse(experts, "default"), config)
        np.testing.assert_array_equal(default[f"{PREFIX}.1.up_proj"][1], experts[1]["up_proj"])
    # Stored [E, H, 2I]: transposed, but concatenated or interleaved? Only the model's own code can say.
    for config, reason in (({}, "model_type is unknown"), ({"model_type": "some_new_moe"}, "'some_new_moe'")):
        transposed = decoded(fuse(experts, "transposed"), config)
        reasons = {spec.skip_reason for spec, _ in transposed.values()}
        assert len(reasons) == 1 and reason in reasons.pop()


def test_dbrx_stacked_experts_and_nemotron_experts_without_gate():
    experts = dense_experts(4)
    dbrx = {
        "transformer.blocks.0.ffn.experts.mlp.w1": np.concatenate([e["gate_proj"] for e in experts]),
        "transformer.blocks.0.ffn.experts.mlp.v1": np.concatenate([e["up_proj"] for e in experts]),
        # DbrxExpertGLU computes x @ w2[e]: w2 stores each expert's down_proj transposed.
        "transformer.blocks.0.ffn.experts.mlp.w2": np.concatenate([e["down_proj"].T for e in experts]),
    }
    got = decoded(dbrx, {"model_type": "dbrx", "ffn_config": {"moe_num_experts": E}})
    for e, mats in enumerate(experts):
        for proj, matrix in mats.items():
            np.testing.assert_array_equal(got[f"transformer.blocks.0.ffn.experts.{e}.{proj}"][1], matrix)
    without_config = decoded(dbrx, {"model_type": "dbrx"})
    assert all("moe_num_experts is needed" in spec.skip_reason for spec, _ in without_config.values())
    nemotron = {
        f"{PREFIX}.up_proj": np.stack([e["up_proj"] for e in experts]),
        f"{PREFIX}.down_proj": np.stack([e["down_proj"] for e in experts]),
    }
    got = decoded(nemotron, {"model_type": "nemotron_h"})
    assert sorted(got) == sorted(f"{PREFIX}.{e}.{p}" for e in range(E) for p in ("up_proj", "down_proj"))
    np.testing.assert_array_equal(got[f"{PREFIX}.2.down_proj"][1], experts[2]["down_proj"])


def test_quantized_fused_experts_without_a_decoder_are_skipped_and_their_scales_give_no_rows():
    import ml_dtypes

    stored = {
        f"{PREFIX}.gate_up_proj": np.zeros((E, 2 * INNER, H), ml_dtypes.float8_e4m3fn),
        f"{PREFIX}.gate_up_proj_scale_inv": np.ones((E, 1, 1), np.float32),
        f"{PREFIX}.down_proj": np.zeros((E, H, INNER), ml_dtypes.float8_e4m3fn),
        f"{PREFIX}.down_proj_scale_inv": np.ones((E, 1, 1), np.float32),
    }
    from flows.weights import ModelConfig, plan_matrices

    infos = list(plan_of({k: v for k, v in stored.items() if "scale" in k}).values())
    infos += [
        __import__("flows.weights", fromlist=["TensorInfo"]).TensorInfo(k, "F8_E4M3", v.shape)
        for k, v in stored.items()
        if "scale" not in k
    ]
    decoding = plan_matrices(infos, ModelConfig({"model_type": "deepseek_v3"}))
    assert len(decoding.specs) == 3 * E
    assert all(spec.skip_reason and "quantized fused experts" in spec.skip_reason for spec in decoding.specs)
    assert not [spec for spec in decoding.specs if "scale" in spec.name]


def peak_rss_of_analyze(folder) -> int:
    """Peak resident memory of a `wwhub analyze` process, sampled every 10 ms."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    argv = [sys.executable, "-m", "flows", "analyze", str(folder), "--format", "csv", "--out", "/dev/null"]
    proc = subprocess.Popen([*argv, "--workers", "1", "--precision", "float32"], cwd=root)
    peak = peak_rss(proc)
    assert proc.returncode == 0
    return peak


@pytest.mark.slow
def test_fused_experts_are_read_one_at_a_time(tmp_path):
    """8x the experts in one fused tensor (132 MB more on disk) cost no more resident memory: each expert is a view
    into the memory-mapped shard, and its pages are dropped once it is analyzed (without that, the whole mapped
    tensor stays resident: measured +226 MB for +226 MB of experts here)."""
    hidden, inner = 512, 768
    peaks = {}
    for experts in (4, 32):
        rng = np.random.default_rng(0)
        tensors = {
            f"{PREFIX}.gate_up_proj": rng.standard_normal((experts, 2 * inner, hidden), dtype=np.float32),
            f"{PREFIX}.down_proj": rng.standard_normal((experts, hidden, inner), dtype=np.float32),
        }
        peaks[experts] = peak_rss_of_analyze(
            write_checkpoint(tmp_path / str(experts), tensors, {"model_type": "olmoe"})
        )
    extra_bytes = 28 * 3 * inner * hidden * 4
    # The margin covers run-to-run noise of a process's peak RSS (allocator arenas), ~10-30 MB here.
    assert peaks[32] - peaks[4] < extra_bytes / 3, (peaks, extra_bytes)
