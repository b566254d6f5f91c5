"""Scan overhead: a generated 4-shard model scanned through the fake hub (download, parse, write the lake) vs
`wwhub analyze` on the same files already on disk, measured in one run.

    python benchmarks/bench_scan.py [--repeat 3]

Target (issue #3): scan / analyze <= 1.3. Both run in this process with BLAS pinned to one thread per eigensolve
and the same number of layer workers (`wwhub analyze`'s default; a scan of one model gives it all the cores).
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

from flows.analysis.model_analysis import analyze_path, default_layer_workers  # noqa: E402
from flows.scanning.loop import run_scan  # noqa: E402
from flows.scanning.options import ScanOptions, SourceSpec
from tests.fakehub import FakeHub, model_index, write_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["HF_HOME"] = str(tmp / "hf-home")
        rng = np.random.default_rng(0)
        tensors = {
            f"layers.{i}.{kind}.weight": (rng.standard_t(4, shape) / np.sqrt(shape[0])).astype(np.float32)
            for i in range(4)
            for kind, shape in (("attn", (1024, 1024)), ("up", (2816, 1024)), ("down", (1024, 2816)))
        }
        folder = write_model(
            tmp / "model", tensors, shards=4, dtype="bfloat16", card={"model-index": model_index("bench", 0.5)}
        )
        size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        workers = default_layer_workers()
        print(f"model: {len(tensors)} layers, 4 bf16 shards, {size / 1e6:.0f} MB; {workers} layer workers")
        analyze, scan = [], []
        with FakeHub() as hub:
            hub.add_folder("bench/model-4shards", folder)
            spec = SourceSpec("hub", hub.endpoint)
            for attempt in range(args.repeat):
                start = time.perf_counter()
                analyze_path(folder, {}, workers=workers)
                analyze.append(time.perf_counter() - start)
                start = time.perf_counter()
                families = {"bench": {"repos": ["bench/model-4shards"]}}
                report = run_scan(spec, families, str(tmp / f"lake{attempt}"), ScanOptions(workers=1))
                scan.append(time.perf_counter() - start)
                assert report.count("scanned") == 1, report.outcomes
        a, s = min(analyze), min(scan)
        print(f"wwhub analyze (files on disk)   {a:7.3f} s")
        print(f"wwhub scan (fake hub → lake)    {s:7.3f} s")
        print(f"scan / analyze                  {s / a:7.2f}x   (target <= 1.30x)")


if __name__ == "__main__":
    main()
