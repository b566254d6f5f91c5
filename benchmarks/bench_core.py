"""Speed of `wwhub analyze` against the best-library floor and WeightWatcher 0.7.7, whole processes, in one run.

    python benchmarks/bench_core.py [--ww-python PATH] [--repeat 3] [--skip-slow-ww] [--llama7b estimate|measure|skip]

Cases (issues #11, #20):
  a. all-MiniLM-L6-v2, default options: `wwhub analyze --example minilm` against the floor and weightwatcher
     (target: >= 8x faster than weightwatcher 0.7.7)
  b. all-MiniLM-L6-v2, --randomize --mp-fit: wwhub against the floor (with --randomize: the shuffled matrices'
     eigenvalues too) and weightwatcher (target: >= 30x)
  c. a TinyLlama-shaped bf16 checkpoint (benchmarks/llama_checkpoint.py: hidden 2048, intermediate 5632, 22 blocks,
     vocab 32000, 3 shards, 2.2 GB), float64 and --precision float32, each against the floor in its precision; the
     float32 alphas against the float64 ones; wwhub's peak RSS against the largest shard
  d. a Llama-2-7B-shaped checkpoint: estimated from CPU seconds per layer measured here (two layers of each shape
     side by side), times wwhub's whole-process / per-layer CPU ratio on c (reading, start-up), spread over the
     cores; or with `--llama7b measure` generated (13.5 GB in $WWHUB_BENCH_CACHE) and measured whole

Every timing is a whole process, start-up and imports included, as a user times it:
- wwhub: the `wwhub analyze` command with its defaults (one layer worker per core, up to 4; one BLAS thread each),
  run with the caller's environment (no thread variables: wwhub sets its own);
- the floor: benchmarks/floor.py (read every 2-D tensor, upcast, numpy syrk Gram, all eigenvalues; no fitting), as
  many layers side by side as wwhub runs, one BLAS thread each. It runs with every eigensolve in numpy, then in
  torch, then with the faster of the two for each matrix size (from the per-size times of the first two runs): that
  last run is the floor;
- weightwatcher: a script that imports it, loads the safetensors file with torch and runs ``analyze()``, in
  ``--ww-python`` (an interpreter with weightwatcher==0.7.7: ``python -m venv V && V/bin/pip install -e
  ".[conformance]"``) with OPENBLAS_NUM_THREADS=1, its fastest setting on these machines.
Machines are noisy: each timing is the best of ``--repeat`` runs (1 for the large checkpoints), and only ratios
from the same run mean anything.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from llama_checkpoint import SHAPES, heavy_tailed_bf16, llama_checkpoint, tensor_shapes  # noqa: E402

from flows.analysis.examples import example_path  # noqa: E402
from flows.analysis.model_analysis import default_layer_workers  # noqa: E402
from tests.memory import status_bytes  # noqa: E402

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PINNED = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, "1"))
UNPINNED = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}

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


@dataclass(frozen=True)
class MinilmCase:
    """A MiniLM timing: wwhub's options, weightwatcher's, and how many times faster than weightwatcher wwhub must be
    (issue #20: whole processes, start-up included)."""

    key: str
    label: str
    options: tuple[str, ...]
    ww_options: dict
    target: float


MINILM_CASES = (
    MinilmCase("a", "default options", (), {}, 8),
    MinilmCase("b", "randomize + mp_fit", ("--randomize", "--mp-fit"), {"randomize": True, "mp_fit": True}, 30),
)


@dataclass
class Run:
    """One whole process: wall seconds, CPU seconds (user + system: steadier than wall time when other work shares
    the cores), peak RSS in bytes, and its stdout."""

    seconds: float
    cpu: float
    rss: int
    stdout: str


def run_process(command: list[str], env: dict) -> Run:
    """Run a whole process (raises with its stderr if it fails)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        # The peak is the child's VmHWM (since its exec), sampled until it exits: wait4's ru_maxrss is not used, a
        # child started by subprocess (vfork, then exec) inherits its parent's peak (tests/memory.py).
        peak, exited = [0], threading.Event()

        def sample() -> None:
            while not exited.is_set():
                peak[0] = max(peak[0], status_bytes("VmHWM", process.pid))
                exited.wait(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4 gives this child's own CPU times (RUSAGE_CHILDREN would sum every child so far).
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        exited.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} ... exited {process.returncode}: {err.read()[-2000:]}")
        return Run(seconds, usage.ru_utime + usage.ru_stime, peak[0], out.read())


def best_of(repeat: int, command: list[str], env: dict) -> Run:
    return min((run_process(command, env) for _ in range(repeat)), key=lambda run: run.seconds)


def wwhub_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("wwhub")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "flows", *args]


def wwhub_analyze(target: list[str], options: list[str], repeat: int, out: Path) -> Run:
    return best_of(repeat, wwhub_command("analyze", *target, *options, "--format", "csv", "--out", str(out)), UNPINNED)


def floor_command(folder: Path, precision: str, workers: int, randomize: bool = False) -> list[str]:
    script = [sys.executable, str(ROOT / "benchmarks" / "floor.py"), str(folder)]
    return [*script, "--precision", precision, "--workers", str(workers), *(["--randomize"] if randomize else [])]


def floor(
    folder: Path, precision: str, workers: int, repeat: int, randomize: bool = False
) -> tuple[Run, dict, dict[str, float]]:
    """The floor run, its per-size library choice, and the seconds of each single-library run."""
    script = floor_command(folder, precision, workers, randomize)
    runs, per_m = {}, {}
    for library in ("numpy", "torch"):
        runs[library] = best_of(repeat, [*script, "--eig", library], PINNED)
        per_m[library] = json.loads(runs[library].stdout.strip().splitlines()[-1])["per_m"]
    choice = {
        m: min(("numpy", "torch"), key=lambda lib, m=m: per_m[lib][m]["eig_s"] / per_m[lib][m]["count"])
        for m in per_m["numpy"]
    }
    seconds = {library: run.seconds for library, run in runs.items()}
    if set(choice.values()) == {"numpy"}:
        return runs["numpy"], choice, seconds
    if set(choice.values()) == {"torch"}:
        return runs["torch"], choice, seconds
    return best_of(repeat, [*script, "--eig", json.dumps(choice)], PINNED), choice, seconds


def find_ww_python(given: str | None) -> str | None:
    candidates = [given] if given else [sys.executable, "/work/venv-ww/bin/python", ".venv-ww/bin/python"]
    for python in candidates:
        if python and Path(python).exists():
            if subprocess.run([python, "-c", "import weightwatcher"], capture_output=True).returncode == 0:
                return python
    return None


def weightwatcher(python: str | None, folder: Path, options: dict, repeat: int) -> tuple[Run, float] | None:
    """(the whole process, seconds of analyze() alone), or None without weightwatcher."""
    if python is None:
        return None
    run = best_of(repeat, [python, "-c", _WW_SCRIPT, str(folder), json.dumps(options)], PINNED)
    return run, json.loads(run.stdout.strip().splitlines()[-1])["seconds"]


def load() -> str:
    """The machine's load averages: other work on the cores stretches wall times (a 2-worker wwhub most)."""
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def alphas(path: Path) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["name"]: float(row["alpha"]) for row in csv.DictReader(handle) if row["fit_status"] == "ok"}


def alpha_agreement(float64_csv: Path, float32_csv: Path) -> str:
    reference, other = alphas(float64_csv), alphas(float32_csv)
    common = sorted(set(reference) & set(other))
    errors = np.array([abs(other[n] - reference[n]) / reference[n] for n in common])
    within = float(np.mean(errors <= 0.01)) if common else float("nan")
    return (
        f"float32 vs float64 alpha: within 1% on {within:.1%} of {len(common)} ok layers "
        f"(median {np.median(errors):.2%}, max {errors.max():.2%})"
    )


def pair_cpu_seconds(shape: tuple[int, int], precision: str, workers: int) -> float:
    """CPU seconds of ww_core analyzing ``workers`` bf16 layers of ``shape`` side by side (in memory), per layer."""
    import ww_core

    rng = np.random.default_rng(1)
    tensors = [(f"layers.{i}.weight", heavy_tailed_bf16(rng, shape)) for i in range(workers)]
    start = time.process_time()
    list(ww_core.analyze_model(tensors, workers=workers, precision=precision))
    return (time.process_time() - start) / workers


def per_layer_cpu(name: str, precision: str, workers: int) -> float:
    """CPU seconds of analyzing every 2-D tensor of a shape family, summed from one measurement per shape."""
    counts: dict[tuple[int, int], int] = {}
    for _, shape in tensor_shapes(SHAPES[name]):
        if len(shape) == 2:
            key = (max(shape), min(shape))
            counts[key] = counts.get(key, 0) + 1
    return sum(count * pair_cpu_seconds(shape, precision, workers) for shape, count in counts.items())


def versus(ours: Run, bare: Run) -> str:
    return (
        f"wwhub {ours.seconds:6.1f} s (cpu {ours.cpu:6.1f} s)  floor {bare.seconds:6.1f} s (cpu {bare.cpu:6.1f} s)  "
        f"wwhub/floor {ours.seconds / bare.seconds:4.2f}x (cpu {ours.cpu / bare.cpu:4.2f}x)"
    )


def gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ww-python", help="interpreter with weightwatcher==0.7.7 installed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per MiniLM timing (large checkpoints: 1)")
    parser.add_argument("--skip-slow-ww", action="store_true", help="do not run WW's ~100 s randomize+mp_fit case")
    parser.add_argument("--llama7b", choices=["estimate", "measure", "skip"], default="estimate")
    parser.add_argument("--skip-tinyllama", action="store_true")
    args = parser.parse_args()
    ww_python = find_ww_python(args.ww_python)
    if ww_python is None:
        print("weightwatcher not found (pass --ww-python); printing wwhub and the floor only", file=sys.stderr)
    workers = default_layer_workers()
    import torch

    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}, torch {torch.__version__}; wwhub and the floor")
    print(f"run {workers} layers side by side, one BLAS thread each; whole processes, best of {args.repeat}; {load()}")
    tmp = Path(tempfile.mkdtemp(prefix="wwhub-bench-"))

    minilm = example_path("minilm")
    ww_label = "weightwatcher 0.7.7" if ww_python else "weightwatcher (not found)"
    for case in MINILM_CASES:
        repeat = args.repeat if not case.options else 1
        ours = wwhub_analyze(["--example", "minilm"], list(case.options), repeat, tmp / f"minilm-{case.key}.csv")
        bare, _, _ = floor(minilm, "float64", workers, repeat, randomize="--randomize" in case.options)
        skip_ww = args.skip_slow_ww and case.options
        ww = None if skip_ww else weightwatcher(ww_python, minilm, case.ww_options, repeat)
        print(f"{case.key}. MiniLM, {case.label}: {versus(ours, bare)}", flush=True)
        if ww:
            theirs, analyze_seconds = ww
            ratio = theirs.seconds / ours.seconds
            verdict = "met" if ratio >= case.target else "NOT met"
            print(
                f"   {ww_label} {theirs.seconds:6.2f} s (cpu {theirs.cpu:.2f} s, analyze() alone "
                f"{analyze_seconds:.2f} s)  floor {bare.seconds:5.2f} s  wwhub {ours.seconds:5.2f} s: {ratio:5.1f}x "
                f"faster than weightwatcher (target >= {case.target:g}x: {verdict}; cpu {theirs.cpu / ours.cpu:.1f}x), "
                f"{ours.seconds / bare.seconds:4.2f}x the floor; {load()}",
                flush=True,
            )

    overhead = None
    if not args.skip_tinyllama:
        folder = llama_checkpoint("tinyllama")
        largest_shard = max(p.stat().st_size for p in folder.glob("*.safetensors"))
        print(f"c. TinyLlama-shaped checkpoint {folder} (largest shard {gb(largest_shard)})")
        cpu = {}
        for precision in ("float64", "float32"):
            out = tmp / f"tinyllama-{precision}.csv"
            ours = wwhub_analyze([str(folder)], ["--precision", precision], 1, out)
            cpu[precision] = ours.cpu
            bare, choice, runs = floor(folder, precision, workers, 1)
            libraries = ", ".join(f"M={m}: {lib}" for m, lib in choice.items())
            print(f"   {precision}: {versus(ours, bare)}  peak RSS {gb(ours.rss)}", flush=True)
            print(
                f"      floor eigensolvers [{libraries}]; all-numpy {runs['numpy']:.1f} s, all-torch "
                f"{runs['torch']:.1f} s",
                flush=True,
            )
        print("   " + alpha_agreement(tmp / "tinyllama-float64.csv", tmp / "tinyllama-float32.csv"), flush=True)
        if args.llama7b == "estimate":
            overhead = {p: cpu[p] / per_layer_cpu("tinyllama", p, workers) for p in cpu}

    if args.llama7b == "measure":
        folder = llama_checkpoint("llama2-7b")
        largest_shard = max(p.stat().st_size for p in folder.glob("*.safetensors"))
        print(f"d. Llama-2-7B-shaped checkpoint, measured (largest shard {gb(largest_shard)})")
        for precision in ("float64", "float32"):
            ours = wwhub_analyze([str(folder)], ["--precision", precision], 1, tmp / f"7b-{precision}.csv")
            # Every matrix of this shape has M = 4096, where MKL (torch) is the faster eigensolver in both
            # precisions (calibrate_eigen.py): the all-torch run is the floor, and the only one worth its 10 min.
            bare = run_process([*floor_command(folder, precision, workers), "--eig", "torch"], PINNED)
            minutes = f"({ours.seconds / 60:.1f} min vs {bare.seconds / 60:.1f} min)"
            print(f"   {precision}: {versus(ours, bare)} {minutes}  peak RSS {gb(ours.rss)}", flush=True)
    elif args.llama7b == "estimate" and overhead:
        print(
            "d. Llama-2-7B shape, estimated: CPU seconds per layer (two of each shape side by side, in memory) summed,"
        )
        print("   times wwhub's whole-process / per-layer CPU ratio on the TinyLlama-shaped checkpoint, on idle cores")
        for precision in ("float64", "float32"):
            core_seconds = per_layer_cpu("llama2-7b", precision, workers) * overhead[precision]
            print(
                f"   {precision}: {core_seconds / 60:5.1f} core-min (x{overhead[precision]:.2f} overhead included) = "
                f"{core_seconds / workers / 60:5.1f} min on {workers} cores",
                flush=True,
            )


if __name__ == "__main__":
    main()
