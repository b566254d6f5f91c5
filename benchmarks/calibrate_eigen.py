"""Measure the eigensolvers and Gram products ww_core can use, per size, and print the crossovers for ww_core/eigen.py.

    python benchmarks/calibrate_eigen.py [--sizes 256,512,...] [--repeat 2] [--device cuda]

One thread per solve (``threadpoolctl`` for OpenBLAS, ``torch.set_num_threads`` for MKL) and as many solves side by
side as ``wwhub analyze`` runs layers (``--workers``; the cores, up to 4), as ww_core runs them: OpenBLAS's
memory-bound tridiagonal reduction slows more than MKL's when two run at once.
Each Gram matrix is that of a heavy-tailed W (Student-t, 3 degrees of freedom), whose spectrum is what the
divide-and-conquer solvers meet in practice. Timings are the best of ``--repeat`` runs, interleaved across solvers
so that a busy machine slows them alike. It prints:

1. all eigenvalues of M x M Gram matrices, float64 and float32: numpy.linalg.eigvalsh (OpenBLAS syevd),
   torch.linalg.eigvalsh (MKL syevd), and LAPACK's 2-stage syevd_2stage, which scipy does not expose, reached here
   through numpy's own OpenBLAS with ctypes; then ``TORCH_EIGVALSH_MIN_M``, the smallest M from which torch was
   at least 10% faster at every larger size measured;
2. the Gram matrix of a bf16 (4M x M) layer: ww_core.eigen.gram_matrix (row blocks upcast, numpy syrk) against
   torch (upcast whole, then ``W.T @ W``, a general product);
3. for one M (``--threads-size``): two eigensolves side by side on two threads with one BLAS thread each, against
   one after the other with two BLAS threads each;
4. the largest relative difference of lambda_max between torch and numpy in float64.
With ``--device cuda`` it also times torch's CUDA eigvalsh (not measured on the machines this was written on).
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_dtypes
import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.analysis.model_analysis import default_layer_workers  # noqa: E402
from ww_core.eigen import gram_matrix, symmetric_eigenvalues  # noqa: E402


def heavy_tailed_gram(m: int, dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_t(3, size=(2 * m, m)) / np.sqrt(2 * m)
    return (w.T @ w).astype(dtype)


def two_stage_solver():
    """LAPACKE ``?syevd_2stage`` from numpy's bundled OpenBLAS, or None when it cannot be found."""
    for info in threadpool_info():
        if info.get("internal_api") != "openblas" or "numpy" not in info["filepath"]:
            continue
        lib = ctypes.CDLL(info["filepath"])
        # numpy's wheels rename OpenBLAS's symbols (scipy_ prefix, 64_ suffix for the 64-bit integer interface).
        for prefix, suffix, int_type in (
            ("scipy_", "64_", ctypes.c_int64),
            ("scipy_", "", ctypes.c_int),
            ("", "64_", ctypes.c_int64),
            ("", "", ctypes.c_int),
        ):
            names = {
                np.float64: f"{prefix}LAPACKE_dsyevd_2stage{suffix}",
                np.float32: f"{prefix}LAPACKE_ssyevd_2stage{suffix}",
            }
            if all(hasattr(lib, name) for name in names.values()):
                functions = {dtype: getattr(lib, name) for dtype, name in names.items()}

                def solve(gram: np.ndarray, functions=functions, int_type=int_type) -> np.ndarray:
                    a = np.array(gram, order="C", copy=True)
                    w = np.empty(a.shape[0], a.dtype)
                    # LAPACK_ROW_MAJOR = 101, jobz 'N' (eigenvalues only), uplo 'L'.
                    info = functions[a.dtype.type](
                        ctypes.c_int(101), ctypes.c_char(b"N"), ctypes.c_char(b"L"), int_type(a.shape[0]),
                        a.ctypes.data_as(ctypes.c_void_p), int_type(a.shape[0]), w.ctypes.data_as(ctypes.c_void_p),
                    )  # fmt: skip
                    if info != 0:
                        raise RuntimeError(f"syevd_2stage info={info}")
                    return w

                return solve
    return None


def best_interleaved(functions: dict, repeat: int) -> dict[str, float]:
    times = {name: float("inf") for name in functions}
    for _ in range(repeat):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times


# torch must beat numpy by this much to be chosen: a few percent is within a shared machine's noise, and does not
# pay for importing torch (~1 s) in a model of small layers.
MARGIN = 0.10


def crossover(sizes: list[int], numpy_times: list[float], torch_times: list[float]) -> int | None:
    """The smallest size from which torch is faster by ``MARGIN`` at that size and every larger one; None if never."""
    result = None
    for m, a, b in reversed(list(zip(sizes, numpy_times, torch_times, strict=True))):
        if b < (1 - MARGIN) * a:
            result = m
        else:
            break
    return result


def side_by_side(solve, grams: list, pool: ThreadPoolExecutor):
    """A function running ``solve`` on every Gram matrix at once, one per thread (as ww_core's layer workers do)."""
    return lambda: list(pool.map(solve, grams))


def eigensolvers(sizes: list[int], repeat: int, workers: int) -> None:
    two_stage = two_stage_solver()
    print(f"1. all eigenvalues of {workers} M x M Gram matrices side by side, one thread each, best of {repeat} (ms)")
    print(f"{'M':>6} {'precision':>9} {'numpy':>10} {'torch':>10} {'2-stage':>10}  fastest")
    found = {}
    with ThreadPoolExecutor(workers) as pool:
        for precision, dtype in (("float64", np.float64), ("float32", np.float32)):
            numpy_times, torch_times = [], []
            for m in sizes:
                grams = [heavy_tailed_gram(m, dtype, seed) for seed in range(workers)]
                functions = {
                    "numpy": side_by_side(lambda g: symmetric_eigenvalues(g, "numpy"), grams, pool),
                    "torch": side_by_side(lambda g: symmetric_eigenvalues(g, "torch", threads=1), grams, pool),
                }
                if two_stage is not None:
                    functions["2-stage"] = side_by_side(two_stage, grams, pool)
                times = best_interleaved(functions, repeat)
                numpy_times.append(times["numpy"])
                torch_times.append(times["torch"])
                cells = " ".join(f"{times.get(n, float('nan')) * 1e3:10.1f}" for n in ("numpy", "torch", "2-stage"))
                print(f"{m:>6} {precision:>9} {cells}  {min(times, key=times.get)}", flush=True)
            found[precision] = crossover(sizes, numpy_times, torch_times)
    if two_stage is None:
        print("   (2-stage: no LAPACKE syevd_2stage found in numpy's OpenBLAS)")
    print(f"   TORCH_EIGVALSH_MIN_M = {found}  (None: torch never faster up to {sizes[-1]})")


def gram_products(sizes: list[int], repeat: int) -> None:
    print("2. Gram matrix of a bf16 (4M x M) layer, one thread (ms)")
    print(f"{'shape':>12} {'precision':>9} {'ww_core':>10} {'torch':>10}")
    rng = np.random.default_rng(1)
    for m in sizes:
        w = (rng.standard_t(3, size=(4 * m, m)).astype(np.float32) / np.sqrt(4 * m)).astype(ml_dtypes.bfloat16)
        t = torch.from_numpy(w.view(np.int16)).view(torch.bfloat16)
        for precision, dtype, torch_dtype in (
            ("float64", np.float64, torch.float64),
            ("float32", np.float32, torch.float32),
        ):

            def with_torch(t=t, torch_dtype=torch_dtype):
                upcast = t.to(torch_dtype)
                return upcast.T @ upcast

            times = best_interleaved(
                {"ww_core": lambda w=w, dtype=dtype: gram_matrix(w, dtype), "torch": with_torch}, repeat
            )
            print(f"{f'{4 * m}x{m}':>12} {precision:>9} {times['ww_core'] * 1e3:10.1f} {times['torch'] * 1e3:10.1f}")


def threads_per_layer(m: int, repeat: int) -> None:
    print(f"3. two {m}x{m} eigensolves: side by side (2 x 1 thread) vs one after the other (1 x 2 threads) (s)")
    for precision, dtype in (("float64", np.float64), ("float32", np.float32)):
        grams = [heavy_tailed_gram(m, dtype, seed) for seed in (0, 1)]
        for library in ("numpy", "torch"):

            def solve(gram, threads, library=library):
                if library == "numpy":
                    with threadpool_limits(threads, user_api="blas"):
                        return np.linalg.eigvalsh(gram)
                torch.set_num_threads(threads)  # per OS thread
                return torch.linalg.eigvalsh(torch.from_numpy(gram))

            def side_by_side(grams=grams):
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(lambda g: solve(g, 1), grams))

            def one_after_other(grams=grams):
                for gram in grams:
                    solve(gram, 2)

            times = best_interleaved({"2x1": side_by_side, "1x2": one_after_other}, repeat)
            print(f"   {library:>5} {precision}: 2 x 1 thread {times['2x1']:.2f}  1 x 2 threads {times['1x2']:.2f}")
        torch.set_num_threads(1)


def agreement(sizes: list[int]) -> None:
    worst = 0.0
    for m in sizes:
        gram = heavy_tailed_gram(m, np.float64, seed=2)
        a = np.linalg.eigvalsh(gram)[-1]
        b = torch.linalg.eigvalsh(torch.from_numpy(gram))[-1].item()
        worst = max(worst, abs(a - b) / a)
    print(f"4. float64 lambda_max, torch vs numpy: largest relative difference {worst:.1e}")


def cuda(sizes: list[int], repeat: int) -> None:
    if not torch.cuda.is_available():
        print("5. --device cuda: torch sees no CUDA device")
        return
    print(f"5. torch.linalg.eigvalsh on {torch.cuda.get_device_name()} (ms, Gram matrix already on the GPU)")
    for m in sizes:
        cells = []
        for dtype in (torch.float64, torch.float32):
            gram = torch.from_numpy(heavy_tailed_gram(m, np.float64)).to("cuda", dtype)
            torch.linalg.eigvalsh(gram)

            def solve(gram=gram):
                torch.linalg.eigvalsh(gram)
                torch.cuda.synchronize()

            cells.append(best_interleaved({"gpu": solve}, repeat)["gpu"] * 1e3)
        print(f"{m:>6} float64 {cells[0]:10.1f} float32 {cells[1]:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024,1536,2048,3072,4096")
    parser.add_argument("--gram-sizes", default="1024,2048")
    parser.add_argument(
        "--workers", type=int, default=default_layer_workers(), help="solves side by side (default: wwhub's)"
    )
    parser.add_argument("--threads-size", type=int, default=2048, help="M of the side-by-side measurement (3.)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    torch.set_num_threads(1)
    print(f"numpy {np.__version__}, torch {torch.__version__}")
    with threadpool_limits(1, user_api="blas"):
        eigensolvers(sizes, args.repeat, args.workers)
        gram_products(sorted(int(s) for s in args.gram_sizes.split(",")), args.repeat)
        agreement(sizes[:3])
    threads_per_layer(args.threads_size, args.repeat)
    if args.device == "cuda":
        cuda(sizes, args.repeat)


if __name__ == "__main__":
    main()
