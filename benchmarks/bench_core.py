"""Speed of ww_core against the bare eigensolver floor and WeightWatcher 0.7.7, measured in one run.

    python benchmarks/bench_core.py [--ww-python PATH] [--repeat 3] [--skip-slow-ww]

Cases (issue #2):
  a. all-MiniLM-L6-v2, default options        wwhub vs floor (float64 Gram + numpy.linalg.eigvalsh per layer) and WW
  b. all-MiniLM-L6-v2, randomize + mp_fit     wwhub vs WW
  c. LLM-shaped bf16 layers in two shards     wwhub (from the files) vs floor and WW

WeightWatcher runs in a subprocess of ``--ww-python`` (an interpreter with weightwatcher==0.7.7, e.g. a venv made
with ``pip install -e ".[conformance]"``) with OPENBLAS_NUM_THREADS=1, its best setting on these machines; only its
``analyze()`` call is timed (with more BLAS threads it is slower here: 27 s instead of 3.7 s for MiniLM once).
Everything else runs here with BLAS pinned to one thread per eigensolve; wwhub runs with 1 layer worker and with
the default of ``wwhub analyze`` (the cores, up to 4), and the floor is measured with the same number of threads,
so each wwhub/floor ratio compares like with like. Machines are noisy: each timing is the best of ``--repeat``
runs, and only ratios from the same run are meaningful.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ww_core  # noqa: E402
from flows.analyze import analyze_path, default_layer_workers  # noqa: E402
from flows.examples import example_path  # noqa: E402

LLM_SHAPES = {
    "layers.0.self_attn.q_proj.weight": (2048, 2048),
    "layers.0.self_attn.o_proj.weight": (2048, 2048),
    "layers.0.mlp.gate_proj.weight": (5632, 2048),
    "layers.0.mlp.down_proj.weight": (2048, 5632),
}

_WW_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, glob, logging, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import torch, weightwatcher
    from safetensors.torch import load_file
    folder, options = sys.argv[1], json.loads(sys.argv[2])
    state = {}
    for f in sorted(glob.glob(folder + "/*.safetensors")):
        state.update({k: v.float() for k, v in load_file(f).items() if v.is_floating_point()})
    watcher = weightwatcher.WeightWatcher(model=state)
    start = time.perf_counter()
    details = watcher.analyze(**options)
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(details)}))
    """
)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def floor_seconds(tensors: dict[str, torch.Tensor], repeat: int, workers: int = 1) -> float:
    """The bare floor: float64 Gram matrix of the smaller side + numpy.linalg.eigvalsh, for every 2-D layer, on
    ``workers`` threads (layers side by side, one BLAS thread each) - the same parallelism wwhub gets."""
    matrices = [t for t in tensors.values() if t.ndim == 2 and t.is_floating_point() and min(t.shape) >= 8]

    def eigvalsh(t: torch.Tensor) -> np.ndarray:
        w = t.to(torch.float64).numpy()
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        return np.linalg.eigvalsh(gram)

    def run():
        if workers == 1:
            for t in matrices:
                eigvalsh(t)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(eigvalsh, matrices))

    with threadpool_limits(1, user_api="blas"):
        return best_of(repeat, run)


def weightwatcher_seconds(python: str | None, folder: Path, options: dict) -> float | None:
    if python is None:
        return None
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [python, "-c", _WW_SCRIPT, str(folder), json.dumps(options)], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        print(f"  weightwatcher failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def find_ww_python(given: str | None) -> str | None:
    candidates = [given] if given else [sys.executable, "/work/venv-ww/bin/python", ".venv-ww/bin/python"]
    for python in candidates:
        if python and Path(python).exists():
            ok = subprocess.run([python, "-c", "import weightwatcher"], capture_output=True).returncode == 0
            if ok:
                return python
    return None


def make_llm_shards(folder: Path) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, shape in LLM_SHAPES.items():
        # Student-t-like heavy tails: a Gaussian divided by the root of a chi-square-ish positive variable.
        gauss = torch.randn(shape, generator=generator)
        scale = torch.rand(shape, generator=generator).clamp_min(0.05).sqrt()
        tensors[name] = (gauss / scale / shape[0] ** 0.5).to(torch.bfloat16)
    names = list(tensors)
    save_file({k: tensors[k] for k in names[:2]}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({k: tensors[k] for k in names[2:]}, str(folder / "model-00002-of-00002.safetensors"))
    return tensors


def report(label: str, wwhub: float, floor: float | None, ww: float | None) -> None:
    parts = [f"{label:<46} wwhub {wwhub:7.3f} s"]
    if floor is not None:
        parts.append(f"floor {floor:7.3f} s  wwhub/floor {wwhub / floor:5.2f}x")
    if ww is not None:
        parts.append(f"weightwatcher {ww:7.2f} s  speedup {ww / wwhub:6.1f}x")
    print("  ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ww-python", help="interpreter with weightwatcher==0.7.7 installed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-slow-ww", action="store_true", help="do not run WW's ~100 s randomize+mp_fit case")
    args = parser.parse_args()
    ww_python = find_ww_python(args.ww_python)
    if ww_python is None:
        print("weightwatcher not found (pass --ww-python); printing wwhub and floor only", file=sys.stderr)

    minilm = example_path("minilm")
    state = load_file(str(minilm / "model.safetensors"))
    workers = default_layer_workers()
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, numpy {np.__version__}")
    print(f"wwhub runs 1 layer at a time, then {workers} (the default of `wwhub analyze`); each floor runs alike")

    def analyze_in_memory(tensors, n, **options):
        return lambda: list(ww_core.analyze_model(tensors.items(), workers=n, **options))

    ww = weightwatcher_seconds(ww_python, minilm, {})
    for n in sorted({1, workers}):
        floor = floor_seconds(state, args.repeat, n)
        report(f"a. MiniLM default, {n} worker(s)", best_of(args.repeat, analyze_in_memory(state, n)), floor, ww)

    ww = None if args.skip_slow_ww else weightwatcher_seconds(ww_python, minilm, {"randomize": True, "mp_fit": True})
    for n in sorted({1, workers}):
        ours = best_of(1, analyze_in_memory(state, n, randomize=True, mp_fit=True))
        report(f"b. MiniLM randomize+mp_fit, {n} worker(s)", ours, None, ww)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tensors = make_llm_shards(folder)
        ww = weightwatcher_seconds(ww_python, folder, {})
        for n in sorted({1, workers}):
            floor = floor_seconds(tensors, args.repeat, n)
            ours = best_of(args.repeat, lambda n=n: analyze_path(folder, {}, workers=n))
            report(f"c. LLM bf16, 2 shards (files), {n} worker(s)", ours, floor, ww)
            in_memory = best_of(args.repeat, analyze_in_memory(tensors, n))
            report(f"c. LLM bf16 (in memory), {n} worker(s)", in_memory, floor, None)
            f32 = best_of(args.repeat, lambda n=n: analyze_path(folder, {"precision": "float32"}, workers=n))
            report(f"c. LLM bf16 (files, float32), {n} worker(s)", f32, floor, None)

    # Why BLAS is pinned: one eigensolve of a MiniLM-sized Gram matrix with 1 vs all threads, on an idle machine and
    # with every other core busy (as when workers scan models side by side).
    gram = np.random.default_rng(0).standard_normal((1536, 384))
    gram = gram.T @ gram
    for label, busy in (("idle", 0), ("other cores busy", (os.cpu_count() or 1) - 1)):
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            with threadpool_limits(1, user_api="blas"):
                one = best_of(args.repeat * 3, lambda: np.linalg.eigvalsh(gram))
            with threadpool_limits(os.cpu_count(), user_api="blas"):
                many = best_of(args.repeat * 3, lambda: np.linalg.eigvalsh(gram))
        finally:
            for burner in burners:
                burner.kill()
        print(
            f"384x384 eigvalsh, {label}: 1 BLAS thread {one * 1e3:.1f} ms, {os.cpu_count()} threads "
            f"{many * 1e3:.1f} ms ({many / one:.2f}x)"
        )


if __name__ == "__main__":
    main()
