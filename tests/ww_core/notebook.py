"""A weightwatcher notebook, written once against ``weightwatcher`` 0.7.7's API and run unchanged on ``ww_core``.

``run_notebook(ww, model, base, ...)`` makes each call of the notebook API on ``model`` with the module it is given
(``import weightwatcher as ww`` in scripts/ww_reference.py, ``import ww_core as ww`` in test_notebook.py) and
returns what each call gave as plain JSON values, or the error it raised. scripts/ww_reference.py stores
weightwatcher's results in data/weightwatcher_0.7.7_notebook.json; test_notebook.py compares ours with them.
"""

from __future__ import annotations

import math
import tempfile
import traceback

import numpy as np

# One analyze() per option (weightwatcher's keywords); each row of the stored reference is one layer's details.
ANALYZE_CALLS = {
    "default": {},
    "mp_fit": {"mp_fit": True},
    "randomize": {"randomize": True},
    "vectors": {"vectors": True},
    "intra": {"intra": True, "sparsify": False},
    "stacked": {"stacked": True},
    "detX": {"detX": True},
    "ERG": {"ERG": True},
    "tolerance": {"tolerance": 0.01},
    "inverse": {"inverse": True},
    "xmax": {"xmax": 2},
    "glorot_fix": {"glorot_fix": True},
    "conv2d_norm_off": {"conv2d_norm": False},
    "clip_xmax": {"fix_fingers": "clip_xmax"},
    "xmin_peak": {"fix_fingers": "xmin_peak"},
    "pl_package": {"pl_package": "powerlaw"},
    "TPL": {"fit": "TPL", "pl_package": "powerlaw"},
    "E_TPL": {"fit": "E_TPL", "pl_package": "powerlaw"},
    "start_ids": {"start_ids": 1},
    "layers": {"layers": "LAYERS"},
    "pool_false": {"pool": False},
    "max_N": {"max_N": 20000},
    "fft": {"fft": True},
    "conv2d_fft": {"conv2d_fft": True},
    "channels": {"channels": "last"},
    "base_model": {"base_model": "BASE"},
    "svd_method": {"svd_method": "accurate"},
}


def plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, complex):
        value = value.real
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def records(frame) -> list[dict]:
    frame = frame.reset_index() if "layer_id" not in frame.columns else frame
    return [{str(k): plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _call(results: dict, key: str, fn) -> None:
    try:
        results[key] = {"value": fn()}
    except Exception as err:  # noqa: BLE001 - recorded: some calls are broken in weightwatcher 0.7.7
        results[key] = {"error": f"{err.__class__.__name__}: {err}", "trace": traceback.format_exc(limit=-2)}


def _fingerprint(tensor) -> dict:
    array = np.asarray(tensor.detach().double() if hasattr(tensor, "detach") else tensor, dtype=np.float64)
    return {"shape": list(array.shape), "fro": float(np.linalg.norm(array))}


def run_notebook(ww, model, base, layers: list[int], esd_layer, copy) -> dict:
    """Every call of the notebook on ``model`` (``base``: a fine-tune's base for base_model/distances; ``layers``:
    ids for ``layers=``; ``esd_layer``: the layer for get_ESD/get_Weights; ``copy``: a fresh copy of ``model``)."""
    np.random.seed(0)  # weightwatcher's randomized steps draw from numpy's global generator
    results: dict = {}
    watcher = ww.WeightWatcher(model=model)
    for name, options in ANALYZE_CALLS.items():
        options = dict(options)
        if options.get("layers") == "LAYERS":
            options["layers"] = layers
        if options.get("base_model") == "BASE":
            options.update(base_model=base, model=model)
        _call(results, f"analyze/{name}", lambda o=options: records(ww.WeightWatcher(model=model).analyze(**o)))
    _call(results, "get_summary", lambda: {k: plain(v) for k, v in watcher.get_summary(watcher.analyze()).items()})
    _call(results, "get_details", lambda: len(watcher.get_details()))
    _call(results, "describe", lambda: records(watcher.describe()))
    _call(results, "get_ESD", lambda: [plain(v) for v in np.asarray(watcher.get_ESD(layer=esd_layer))])
    _call(results, "get_ESD/random", lambda: len(watcher.get_ESD(layer=esd_layer, random=True)))
    _call(results, "get_Weights", lambda: [_fingerprint(w) for w in watcher.get_Weights(layer=esd_layer)])
    for method in ("raw", "euclidean", "cka"):
        _call(results, f"distances/{method}", lambda m=method: _distances(watcher, model, base, m))
    for method in ("detX", "svd"):
        _call(
            results,
            f"SVDSmoothing/{method}",
            lambda m=method: _state_fingerprint(ww.WeightWatcher().SVDSmoothing(model=copy(), method=m, percent=0.5)),
        )
    _call(results, "SVDSharpness", lambda: _state_fingerprint(ww.WeightWatcher().SVDSharpness(model=copy())))
    with tempfile.TemporaryDirectory() as folder:
        _call(
            results,
            "analyze_vectors",
            lambda: _frame_or_none(ww.WeightWatcher(model=model).analyze_vectors(savefig=folder)),
        )
    vectors = np.random.default_rng(0).standard_normal((4, 64))
    _call(results, "vector_metrics", lambda: records(watcher.vector_metrics(vectors)))
    return results


def _distances(watcher, model, base, method: str) -> dict:
    avg_dW, avg_db, frame = watcher.distances(model, base, method=method)
    return {"avg_dW": plain(avg_dW), "avg_db": plain(avg_db), "layers": records(frame)}


def _frame_or_none(frame):
    return None if frame is None else records(frame)


def _state_fingerprint(model) -> dict:
    state = model.state_dict() if hasattr(model, "state_dict") else model
    return {name: _fingerprint(t) for name, t in state.items() if getattr(t, "ndim", 0) >= 2}
