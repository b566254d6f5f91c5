"""SVD smoothing and sharpness against weightwatcher 0.7.7's ``SVDSmoothing`` / ``SVDSharpness`` on MiniLM and a
Conv2D kernel (data/weightwatcher_0.7.7_distances_smoothing.json, from scripts/ww_reference.py).

The reference stores each transformed matrix as its rank, Frobenius norm and an 8 x 8 sketch ``G1 W G2``
(tests/ww_core/cases.py): the relative difference of two sketches estimates the relative Frobenius difference of
the matrices. WeightWatcher ran with its state-dict cast made float64 (its stock float32 run is 9e-6 away from
that, ``smoothing_stock_float32_max_relative_difference``); ``solver='randomized'`` repeats its randomized SVD in
float64, so 1e-6 is float64 rounding amplified by the power iterations with room to spare.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from flows.analysis.examples import example_path
from tests.ww_core.cases import sketch, synthetic_cases
from ww_core import FIT_OK
from ww_core.smoothing import SMOOTH_METHODS, sharpen_tensor, smooth_tensor, truncate_svd

REFERENCE = json.loads((Path(__file__).parent / "data" / "weightwatcher_0.7.7_distances_smoothing.json").read_text())


@pytest.fixture(scope="module")
def minilm() -> dict[str, np.ndarray]:
    tensors = load_file(str(example_path("minilm") / "model.safetensors"))
    return {k: v for k, v in tensors.items() if v.dtype.kind == "f" and v.ndim >= 2}


def relative_sketch_difference(array: np.ndarray, expected: dict) -> float:
    theirs = np.array(expected["sketch"])
    return float(np.linalg.norm(sketch(array) - theirs) / np.linalg.norm(theirs))


# The 30522 x 384 word embedding is two thirds of the time of a randomized smoothing of MiniLM; the default method
# checks it, the others check the 38 other layers.
EMBEDDING = "embeddings.word_embeddings.weight"


def check_against_reference(tensors: dict, config: str, min_agreeing: float = 1.0, skip: tuple = ()) -> list[str]:
    reference = REFERENCE["smoothing"][config]
    options = reference["options"]
    agreeing, disagreeing = [], []
    for name, expected in reference["layers"].items():
        if name in skip:
            continue
        smoothed, row = smooth_tensor(tensors[name], name, solver="randomized", **options)
        if not expected["changed"]:
            assert smoothed is None and row.status != FIT_OK, name
            continue
        if row.kept != expected["rank"]:
            disagreeing.append(name)
            continue
        assert relative_sketch_difference(smoothed, expected) <= 1e-6, (config, name)
        assert math.isclose(np.linalg.norm(smoothed), expected["fro"], rel_tol=1e-6), (config, name)
        agreeing.append(name)
    assert len(agreeing) >= min_agreeing * (len(agreeing) + len(disagreeing)), disagreeing
    return agreeing


def test_default_smoothing_equals_weightwatcher_on_every_minilm_layer(minilm):
    # 39 weight matrices smoothed (the 2 x 384 token-type embedding is below min_evals, left as it is in both).
    assert len(check_against_reference(minilm, "minilm/detX")) == 39


@pytest.mark.parametrize("config", ["minilm/svd_50", "minilm/alpha_min"])
def test_smoothing_methods_equal_weightwatcher_on_minilm(minilm, config):
    # The kept rank comes from percent x M or the power-law tail: the same on every layer.
    assert len(check_against_reference(minilm, config, skip=(EMBEDDING,))) == 38


def test_rmt_smoothing_equals_weightwatcher_where_the_spike_counts_agree(minilm):
    # MP spike counts agree with WeightWatcher on 90% of MiniLM's layers (tests/ww_core/test_conformance.py); where
    # they agree, the smoothed layers are the same matrices.
    assert len(check_against_reference(minilm, "minilm/rmt", min_agreeing=0.85, skip=(EMBEDDING,))) >= 33


def test_conv2d_smoothing_keeps_ceil_k_over_rf_per_kernel_position():
    conv = {"conv_64x32x3x3.weight": synthetic_cases()["conv_64x32x3x3"]}
    check_against_reference(conv, "conv/detX")


def test_exact_solver_is_the_true_truncation_and_keeps_more_of_w(minilm):
    """Eckart-Young: the exact rank-k truncation is the closest rank-k matrix to W, so it keeps more of W's norm
    (||W - W_k||^2 = ||W||^2 - ||W_k||^2 for a projection) than WeightWatcher's randomized one, on every layer."""
    reference = REFERENCE["smoothing"]["minilm/detX"]["layers"]
    gaps = []
    for name in ("encoder.layer.0.attention.self.query.weight", "encoder.layer.3.intermediate.dense.weight"):
        smoothed, row = smooth_tensor(minilm[name], name)
        w = minilm[name].astype(np.float64)
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        truth = (u[:, : row.kept] * s[: row.kept]) @ vt[: row.kept]
        assert np.linalg.norm(smoothed - truth) <= 1e-12 * np.linalg.norm(truth)
        assert np.linalg.norm(smoothed) > reference[name]["fro"]
        gaps.append(np.linalg.norm(w - smoothed) / np.linalg.norm(w))
    assert all(g > 0 for g in gaps)


def test_sharpness_removes_the_spikes_of_the_shuffled_layer(minilm):
    """WeightWatcher's permutation is unseeded, so the spike count of a shuffled layer is random in both tools; on
    MiniLM it is 0, 1 or 2. Where the counts agree the sharpened layer is the same matrix (W minus its top
    components is deterministic)."""
    reference = REFERENCE["sharpness"]["layers"]
    agree = 0
    for name, expected in reference.items():
        sharpened, row = sharpen_tensor(minilm[name], name, seed=0)
        removed = expected.get("removed", 0) if expected["changed"] else 0
        if (row.removed or 0) != removed:
            continue
        agree += 1
        if sharpened is not None:
            assert relative_sketch_difference(sharpened, expected) <= 1e-6, name
            top = np.linalg.norm(minilm[name].astype(np.float64), 2)
            assert np.linalg.norm(sharpened, 2) < top
    assert agree >= 0.8 * len(reference)


def test_sharpness_is_seeded():
    w = np.random.default_rng(1).standard_t(2.5, (300, 120))
    first, row = sharpen_tensor(w, "w", seed=3)
    second, _ = sharpen_tensor(w, "w", seed=3)
    assert row.removed and np.array_equal(first, second)


def test_truncation_of_a_wide_matrix_matches_its_transpose():
    w = np.random.default_rng(2).standard_normal((40, 90))
    for solver in ("exact", "randomized"):
        assert np.allclose(truncate_svd(w, 7, solver), truncate_svd(w.T, 7, solver).T, rtol=0, atol=1e-12)


def test_small_integer_and_non_finite_tensors_are_left_unchanged():
    smoothed, row = smooth_tensor(np.ones((2, 384)), "token_type.weight")
    assert smoothed is None and "min_evals" in row.reason
    smoothed, row = smooth_tensor(np.ones((20, 10), np.int8), "q.weight")
    assert smoothed is None and "not a float type" in row.reason
    broken = np.random.default_rng(0).standard_normal((20, 10))
    broken[1, 1] = np.inf
    smoothed, row = smooth_tensor(broken, "w")
    assert smoothed is None and row.status == "failed" and "NaN/Inf" in row.reason
    for method in SMOOTH_METHODS:  # rmt's Marchenko-Pastur fit divided by the zero mean eigenvalue
        smoothed, row = smooth_tensor(np.zeros((20, 10)), "w", method=method)
        assert smoothed is None and row.status == "skipped" and "all weights are zero" in row.reason
    sharpened, row = sharpen_tensor(np.zeros((20, 10)), "w")
    assert sharpened is None and row.status == "skipped" and "all weights are zero" in row.reason
    with pytest.raises(ValueError, match="method"):
        smooth_tensor(broken, "w", method="spikes")
    with pytest.raises(ValueError, match="percent"):
        smooth_tensor(broken, "w", method="svd", percent=1.5)
