"""Write the GPTQ and AWQ reference values the tests compare against (tests/flows/weights/data/).

AutoGPTQ and AutoAWQ do not install on a CPU-only machine with their dependencies (CUDA kernels, triton,
accelerate, a different torch), so their dequantization runs once here and its output is stored:

    pip install --no-deps --target REFDIR auto-gptq==0.7.1 autoawq==0.2.9 accelerate  # BUILD_CUDA_EXT=0
    .venv/bin/python scripts/make_quant_reference.py REFDIR

Only the reference modules are loaded (by path, skipping the packages' heavy ``__init__``):
AutoGPTQ ``nn_modules/qlinear/qlinear_cuda.py`` (``QuantLinear.pack`` packs; its CPU ``forward`` dequantizes:
``scales[g_idx] * (weight - zeros[g_idx])``) and AutoAWQ ``modules/linear/gemm.py`` (``WQLinear_GEMM.from_linear``
packs) with ``utils/packing_utils.py: dequantize_gemm``. Scales are handed to the references as float32 so they
compute in float32, as wwhub does (they would otherwise multiply in float16).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "flows" / "weights" / "data" / "gptq_awq_reference.npz"
# (bits, group_size, act_order, in, out)
GPTQ_CASES = [
    (4, 32, False, 128, 64),
    (4, 32, True, 128, 64),
    (3, 32, True, 128, 96),
    (2, 64, False, 128, 64),
    (8, -1, False, 64, 64),
]
AWQ_CASES = [(32, 128, 64), (64, 256, 32)]  # (group_size, in, out), 4-bit


def load_by_path(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def empty_packages(root: Path, *names: str) -> None:
    """Stand-in package modules so submodules import without running the real package ``__init__``."""
    for name in names:
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package


def min_max_params(w: torch.Tensor, bits: int, group_size: int, g_idx: torch.Tensor):
    """Asymmetric min/max scales and zeros per (output, group), zeros kept in 1..2^bits−1 (the GPTQ v1 format
    cannot store a zero of 0)."""
    maxq = 2**bits - 1
    groups = int(g_idx.max()) + 1
    scales = torch.zeros(w.shape[0], groups)
    zeros = torch.zeros(w.shape[0], groups)
    for g in range(groups):
        cols = w[:, g_idx == g]
        lo, hi = cols.min(1).values.clamp(max=0), cols.max(1).values.clamp(min=0)
        scales[:, g] = ((hi - lo) / maxq).clamp(min=1e-6)
        zeros[:, g] = torch.round(-lo / scales[:, g]).clamp(1, maxq)
    return scales.half().float(), zeros


def gptq_case(qlinear, bits: int, group_size: int, act_order: bool, n_in: int, n_out: int, seed: int) -> dict:
    torch.manual_seed(seed)
    linear = torch.nn.Linear(n_in, n_out, bias=False)
    linear.weight.data = torch.randn(n_out, n_in) * 0.05
    size = n_in if group_size == -1 else group_size
    g_idx = torch.arange(n_in, dtype=torch.int32) // size
    if act_order:
        g_idx = g_idx[torch.randperm(n_in)]
    scales, zeros = min_max_params(linear.weight.data, bits, size, g_idx)
    module = qlinear.QuantLinear(bits, group_size, n_in, n_out, bias=False)
    module.pack(linear, scales, zeros, g_idx=g_idx)
    stored_scales = module.scales.clone()  # float16, as a checkpoint stores it
    module.scales = module.scales.float()
    with torch.no_grad():
        reference = module(torch.eye(n_in)).t().contiguous()  # identity input: the dequantized weight, exactly
    return {
        "qweight": module.qweight.numpy(),
        "qzeros": module.qzeros.numpy(),
        "scales": stored_scales.numpy(),
        "g_idx": module.g_idx.numpy().astype(np.int32),
        "reference": reference.numpy().astype(np.float32),
    }


def awq_case(gemm, packing, group_size: int, n_in: int, n_out: int, seed: int) -> dict:
    torch.manual_seed(seed)
    linear = torch.nn.Linear(n_in, n_out, bias=False)
    linear.weight.data = torch.randn(n_out, n_in) * 0.05
    g_idx = torch.arange(n_in) // group_size
    scales, zeros = min_max_params(linear.weight.data, 4, group_size, g_idx)
    module = gemm.WQLinear_GEMM.from_linear(
        linear, 4, group_size, scales=scales.t().contiguous(), zeros=zeros.t().contiguous()
    )
    reference = packing.dequantize_gemm(module.qweight, module.qzeros, module.scales.float(), 4, group_size)
    return {
        "qweight": module.qweight.numpy(),
        "qzeros": module.qzeros.numpy(),
        "scales": module.scales.numpy(),
        "reference": reference.t().contiguous().numpy().astype(np.float32),
    }


def main(refdir: str) -> None:
    root = Path(refdir)
    qlinear = load_by_path("qlinear_cuda", root / "auto_gptq/nn_modules/qlinear/qlinear_cuda.py")
    empty_packages(root, "awq", "awq.utils", "awq.modules", "awq.modules.linear")
    sys.path.append(str(root))  # accelerate, which AutoAWQ's utils import
    packing = load_by_path("awq.utils.packing_utils", root / "awq/utils/packing_utils.py")
    gemm = load_by_path("awq.modules.linear.gemm", root / "awq/modules/linear/gemm.py")
    arrays: dict[str, np.ndarray] = {}
    for seed, (bits, group_size, act_order, n_in, n_out) in enumerate(GPTQ_CASES):
        key = f"gptq_b{bits}_g{group_size}_{'act' if act_order else 'seq'}"
        for name, value in gptq_case(qlinear, bits, group_size, act_order, n_in, n_out, seed).items():
            arrays[f"{key}/{name}"] = value
    for seed, (group_size, n_in, n_out) in enumerate(AWQ_CASES, start=100):
        key = f"awq_g{group_size}"
        for name, value in awq_case(gemm, packing, group_size, n_in, n_out, seed).items():
            arrays[f"{key}/{name}"] = value
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(arrays)} arrays)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_quant_reference.py REFDIR  (auto-gptq and autoawq installed there with --no-deps)")
    main(sys.argv[1])
