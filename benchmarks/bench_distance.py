"""Speed of ``wwhub distance`` against the library floor and WeightWatcher 0.7.7's ``distances()``, in one run.

    python benchmarks/bench_distance.py [--ww-python PATH] [--repeat 3]

all-MiniLM-L6-v2 against a perturbed copy (tests/ww_core/cases.py: perturbed_copy), written to a temporary folder:

* wwhub: ``wwhub distance COPY MINILM --method M`` as a whole process (start-up, reading both files, the spectrum
  of every dW included), and with ``--no-spectrum`` (WeightWatcher's columns only);
* floor: a bare script as a whole process (numpy and safetensors imports included): both files loaded, then per
  layer what the distance itself needs and nothing more: ``numpy.linalg.norm(W - W_base)`` in float64
  (euclidean) or the three M x M products of the CKA (cka);
* weightwatcher: ``WeightWatcher().distances(copy, minilm, method=M)`` in a subprocess of ``--ww-python`` (an
  interpreter with weightwatcher==0.7.7), one BLAS thread (its best setting here), timed as a whole process (what
  a user waits for) and, printed beside it, that call alone.

Each timing is the best of ``--repeat`` runs; machines are noisy, so only ratios from the same run mean anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from safetensors.numpy import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.analysis.examples import example_path  # noqa: E402
from tests.ww_core.cases import perturbed_copy  # noqa: E402

_WW_SCRIPT = textwrap.dedent(
    """
    import sys, time, logging, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import weightwatcher
    from safetensors.torch import load_file
    a, b, method = sys.argv[1], sys.argv[2], sys.argv[3]
    first = {k: v for k, v in load_file(a).items() if v.is_floating_point()}
    second = {k: v for k, v in load_file(b).items() if v.is_floating_point()}
    start = time.perf_counter()
    weightwatcher.WeightWatcher().distances(first, second, method=method)
    print(time.perf_counter() - start)
    """
)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def wwhub(model: Path, base: Path, method: str, spectrum: bool) -> None:
    argv = [sys.executable, "-m", "flows", "distance", str(model), str(base), "--method", method, "--format", "json"]
    if not spectrum:
        argv.append("--no-spectrum")
    subprocess.run(argv, check=True, capture_output=True)


_FLOOR_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from safetensors.numpy import load_file
    first, second, method = load_file(sys.argv[1]), load_file(sys.argv[2]), sys.argv[3]
    for name, w in first.items():
        if w.ndim < 2 or w.dtype.kind != "f":
            continue
        a, b = w.astype(np.float64), second[name].astype(np.float64)
        if method == "cka":
            tall_a, tall_b = (a, b) if a.shape[0] >= a.shape[1] else (a.T, b.T)
            np.linalg.norm(tall_a.T @ tall_b), np.linalg.norm(tall_a.T @ tall_a), np.linalg.norm(tall_b.T @ tall_b)
        else:
            np.linalg.norm(a - b)
    """
)


def floor(model: Path, base: Path, method: str) -> None:
    subprocess.run([sys.executable, "-c", _FLOOR_SCRIPT, str(model), str(base), method], check=True)


def weightwatcher_seconds(
    python: str | None, model: Path, base: Path, method: str, repeat: int
) -> tuple[float, float] | None:
    """(whole process, the distances() call alone), each the best of ``repeat`` runs."""
    if python is None:
        return None
    whole, call = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(
            [python, "-c", _WW_SCRIPT, str(model), str(base), method], capture_output=True, text=True, check=False
        )
        whole.append(time.perf_counter() - start)
        if out.returncode != 0:
            print(f"  weightwatcher failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return None
        call.append(float(out.stdout.strip().splitlines()[-1]))
    return min(whole), min(call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ww-python", help="interpreter with weightwatcher==0.7.7 installed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    base = example_path("minilm") / "model.safetensors"
    folder = Path(tempfile.mkdtemp(prefix="bench-distance-"))
    try:
        model = folder / "model.safetensors"
        save_file(perturbed_copy({k: v for k, v in load_file(str(base)).items()}, seed=0), str(model))
        for method in ("euclidean", "cka"):
            ours = best(lambda m=method: wwhub(model, base, m, True), args.repeat)
            columns_only = best(lambda m=method: wwhub(model, base, m, False), args.repeat)
            bare = best(lambda m=method: floor(model, base, m), args.repeat)
            ww = weightwatcher_seconds(args.ww_python, model, base, method, args.repeat)
            line = (
                f"MiniLM vs perturbed, {method:9s}  wwhub {ours:6.2f} s (--no-spectrum {columns_only:6.2f} s)  "
                f"floor {bare:6.2f} s  wwhub/floor {columns_only / bare:5.2f}x"
            )
            if ww is not None:
                ww_whole, ww_call = ww
                line += f"  weightwatcher {ww_whole:6.2f} s (distances() alone {ww_call:5.2f} s)"
                line += f"  speedup {ww_whole / columns_only:5.1f}x (with spectrum {ww_whole / ours:5.1f}x)"
            print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
