"""Scale: a family of generated models scanned with 1 vs 2 local workers (threads, BLAS pinned to one thread per
eigensolve) and with 1 vs 2 Dask workers (a scheduler and worker processes started here), in one run.

    python benchmarks/bench_scale.py [--models 8]

Prints wall times and speedups, and models per hour per core for sizing (docs/scale.md). The Dask runs go through
the Prefect flow (``scan_families`` with prefect-dask's DaskTaskRunner) against a Prefect server started here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.scanning.loop import run_scan  # noqa: E402
from flows.scanning.options import ScanOptions, SourceSpec
from tests.e2e.conftest import BIN, free_port, start, stop, wait_until  # noqa: E402
from tests.fakehub import FakeHub, model_index, write_model  # noqa: E402


def make_family(hub: FakeHub, root: Path, models: int) -> dict:
    rng = np.random.default_rng(0)
    for i in range(models):
        tensors = {f"layers.{k}.weight": (rng.standard_t(4, (1536, 768)) / 40).astype(np.float32) for k in range(6)}
        folder = write_model(
            root / f"m{i}", tensors, shards=2, dtype="bfloat16", card={"model-index": model_index(f"m{i}", 0.5)}
        )
        hub.add_folder(f"bench/scale-{i}m", folder)
    return {"scale": {"author": "bench"}}


def timed(fn, *args, **kwargs) -> float:
    start_time = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wwhub-bench-scale-"))
    os.environ["HF_HOME"] = str(tmp / "hf-home")
    results = {}
    with FakeHub() as hub:
        families = make_family(hub, tmp / "repos", args.models)
        spec = SourceSpec("hub", hub.endpoint)
        for workers in (1, 2):
            lake = tmp / f"threads-{workers}"
            # One layer at a time per model, so that 1 vs 2 compares models side by side, as Dask does below.
            results[f"threads x{workers}"] = timed(
                run_scan, spec, families, str(lake), ScanOptions(workers=workers, layer_workers=1)
            )

        import httpx
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.scan import make_task_runner, scan_families

        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = dict(
            os.environ,
            PREFECT_HOME=str(tmp / "prefect"),
            PREFECT_API_URL=api,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            OPENBLAS_NUM_THREADS="1",
            OMP_NUM_THREADS="1",
            PYTHONPATH=str(Path(__file__).resolve().parents[1]),
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        server = start(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
            tmp / "server.log",
        )
        try:
            wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, 180, "prefect server", tmp / "server.log")
            for workers in (1, 2):
                dport = free_port()
                address = f"tcp://127.0.0.1:{dport}"
                procs = [
                    start(
                        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(dport), "--no-dashboard"],
                        env,
                        tmp / f"sched{workers}.log",
                    )
                ]
                procs += [
                    start(
                        [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"],
                        env,
                        tmp / f"worker{workers}-{i}.log",
                    )
                    for i in range(workers)
                ]
                try:
                    from distributed import Client

                    with Client(address, timeout=60) as client:
                        client.wait_for_workers(workers, timeout=120)
                    lake = tmp / f"dask-{workers}"
                    with temporary_settings({PREFECT_API_URL: api}):
                        flow = scan_families.with_options(task_runner=make_task_runner("dask", address))
                        results[f"dask x{workers}"] = timed(flow, families, str(lake), spec, {}, False, False)
                finally:
                    for proc in procs:
                        stop(proc)
        finally:
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all()  # else the flow's last logs are sent at exit, to a server already stopped
            stop(server)

    cores = os.cpu_count()
    print(f"{args.models} models x 6 layers (1536x768, bf16, 2 shards each); machine: {cores} cores")
    for name, seconds in results.items():
        print(f"  {name:<12} {seconds:7.2f} s   {args.models / seconds * 3600:8.0f} models/hour")
    print(f"threads speedup 2 vs 1 workers: {results['threads x1'] / results['threads x2']:.2f}x")
    print(f"dask    speedup 2 vs 1 workers: {results['dask x1'] / results['dask x2']:.2f}x")
    print(f"models/hour/core (threads x1): {args.models / results['threads x1'] * 3600:.0f}")


if __name__ == "__main__":
    main()
