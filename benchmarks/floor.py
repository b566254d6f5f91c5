"""The best-library floor: the least work that yields every eigenvalue of a checkpoint, as a bare script.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python benchmarks/floor.py FOLDER [--precision float64] [--eig numpy|torch|'{"2048": "torch"}'] [--workers 2]
            [--randomize]

Read every 2-D float tensor of every ``*.safetensors`` file (safetensors' numpy reader), upcast it whole, form the
Gram matrix of its smaller side with numpy (``a.T @ a``: BLAS syrk, which torch lacks), and compute all its
eigenvalues with the library named by ``--eig`` (for all sizes, or per M from a JSON map; unmapped sizes use
numpy). ``--workers`` layers run side by side on threads, one BLAS thread each (set by the environment, as above).
``--randomize`` also computes the eigenvalues of each matrix with its elements shuffled (what ``randomize`` needs).
No fitting, no records, no checks. Time it as a whole process, imports included; it prints a JSON line with the
seconds spent per matrix size in the Gram product and the eigensolve, which ``bench_core.py`` uses to pick the
faster library per size.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from safetensors import safe_open

# Stored dtypes numpy lacks: safetensors returns them only once ml_dtypes is imported, which is done on the first
# such tensor, as wwhub does (its import costs more than a float32 MiniLM's eigenvalues).
NEEDS_ML_DTYPES = {"BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--precision", choices=["float64", "float32"], default="float64")
    parser.add_argument("--eig", default="numpy", help="numpy, torch, or a JSON map from M to one of them")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--randomize", action="store_true", help="also the eigenvalues of each shuffled matrix")
    args = parser.parse_args()
    dtype = np.float64 if args.precision == "float64" else np.float32
    by_size = json.loads(args.eig) if args.eig.startswith("{") else {}
    default = "numpy" if by_size else args.eig
    if "torch" in (default, *by_size.values()):
        import torch

    def eigvalsh(gram: np.ndarray) -> np.ndarray:
        if by_size.get(str(gram.shape[0]), default) == "torch":
            return torch.linalg.eigvalsh(torch.from_numpy(gram)).numpy()
        return np.linalg.eigvalsh(gram)

    seconds: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    lock = threading.Lock()

    def solve(stored: np.ndarray) -> None:
        w = stored.astype(dtype)
        for matrix in (w, np.random.default_rng(0).permuted(w.ravel()).reshape(w.shape)) if args.randomize else (w,):
            start = time.perf_counter()
            gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
            middle = time.perf_counter()
            eigvalsh(gram)
            end = time.perf_counter()
            with lock:
                entry = seconds[gram.shape[0]]
                entry[0] += 1
                entry[1] += middle - start
                entry[2] += end - middle

    with ThreadPoolExecutor(args.workers) as pool:
        in_flight = []
        for path in sorted(args.folder.glob("*.safetensors")):
            with safe_open(str(path), framework="np") as handle:
                for name in handle.keys():
                    stored_slice = handle.get_slice(name)
                    if len(stored_slice.get_shape()) != 2:
                        continue
                    if stored_slice.get_dtype() in NEEDS_ML_DTYPES:
                        import ml_dtypes  # noqa: F401 - registers bfloat16 and float8 with numpy for safetensors
                    stored = handle.get_tensor(name)
                    if stored.dtype.kind not in "fV":
                        continue
                    in_flight.append(pool.submit(solve, stored))
                    del stored
                    # Read ahead by one layer per worker at most: memory stays at a few layers.
                    while len(in_flight) > args.workers:
                        in_flight.pop(0).result()
        for future in in_flight:
            future.result()
    per_m = {m: {"count": c, "gram_s": g, "eig_s": e} for m, (c, g, e) in sorted(seconds.items())}
    print(json.dumps({"precision": args.precision, "eig": args.eig, "per_m": per_m}))


if __name__ == "__main__":
    main()
