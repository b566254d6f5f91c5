"""Distances between two models' layers: agreement with weightwatcher 0.7.7's ``distances()`` and the spectrum of
the update checked against numpy.

Reference values come from scripts/ww_reference.py (data/weightwatcher_0.7.7_distances_smoothing.json). The
``float64`` runs are WeightWatcher's code with its float32 state-dict cast made float64: the same definitions in the
same arithmetic as ours, so they agree to 1e-6 relative (both are float64 sums over the same weights; what is left
is summation order, ~1e-13). The stock ``float32`` runs carry WeightWatcher's float32 rounding.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import ww_core
from flows.analysis.examples import example_path
from tests.ww_core.cases import perturbed_copy
from ww_core import distances
from ww_core.distances import layer_distance, summarize_distances

REFERENCE = json.loads((Path(__file__).parent / "data" / "weightwatcher_0.7.7_distances_smoothing.json").read_text())
DEMO = Path(__file__).parents[2] / "flows" / "demo" / "repos" / "wwhub-demo"


def close(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[dict, dict]]:
    out = {}
    for key in REFERENCE["distances"]:
        if key.startswith("demo/"):
            first, second = key.removeprefix("demo/").split("~")
            out[key] = tuple(load_file(str(DEMO / name / "model.safetensors")) for name in (first, second))
    minilm = {k: v for k, v in load_file(str(example_path("minilm") / "model.safetensors")).items() if v.ndim >= 1}
    minilm = {k: v for k, v in minilm.items() if v.dtype.kind == "f"}
    out["minilm~perturbed"] = (minilm, perturbed_copy(minilm, seed=REFERENCE["perturbation_seed"]))
    return out


@pytest.mark.parametrize("method", ["raw", "euclidean", "cka"])
def test_delta_w_agrees_with_weightwatcher_within_1e_6(pairs, method):
    for key, (first, second) in pairs.items():
        reference = REFERENCE["distances"][key][f"{method}/float64"]
        rows = [
            layer_distance(first[r["tensor"]], second[r["tensor"]], r["tensor"], method=method, spectrum=False)
            for r in reference["layers"]
        ]
        for row, expected in zip(rows, reference["layers"], strict=True):
            assert (row.N, row.M) == (expected["N"], expected["M"]), (key, row.name)
            assert close(row.delta_W, expected["delta_W"], 1e-6), (key, row.name, row.delta_W, expected["delta_W"])
        assert close(summarize_distances(rows, method).avg_dW, reference["avg_dW"], 1e-6), key


def test_stock_weightwatcher_float32_rounding_is_what_separates_us(pairs):
    """The stock run differs from ours by WeightWatcher's float32 sums only: 1e-4 on Frobenius distances; its CKA of
    the 30522-row embedding (the 30522^2 product W W^T in float32) exceeds 1, which Cauchy-Schwarz forbids."""
    first, second = pairs["minilm~perturbed"]
    for row in REFERENCE["distances"]["minilm~perturbed"]["euclidean/float32"]["layers"]:
        ours = layer_distance(first[row["tensor"]], second[row["tensor"]], method="euclidean", spectrum=False)
        assert close(ours.delta_W, row["delta_W"], 1e-4), row["tensor"]
    stock = {r["tensor"]: r["delta_W"] for r in REFERENCE["distances"]["minilm~perturbed"]["cka/float32"]["layers"]}
    name = "embeddings.word_embeddings.weight"
    ours = layer_distance(first[name], second[name], name, method="cka", spectrum=False).delta_W
    assert stock[name] > 1.0 >= ours > 0.99


def test_relative_change_and_update_spectrum_against_numpy():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((300, 120)).astype(np.float32)
    update = (rng.standard_t(3, (300, 120)) * 0.05).astype(np.float32)
    model = base + update
    row = layer_distance(model, base, "block.0.mlp.weight")
    delta = model.astype(np.float64) - base.astype(np.float64)
    singular = np.linalg.svd(delta, compute_uv=False)
    evals = singular**2
    # Float64 arithmetic on both sides: the Gram eigenvalues agree with the SVD to ~1e-13.
    assert close(row.relative_change, np.linalg.norm(delta) / np.linalg.norm(base.astype(np.float64)), 1e-12)
    assert close(row.dW_lambda_max, evals.max(), 1e-10)
    assert close(row.dW_stable_rank, evals.sum() / evals.max(), 1e-10)
    p = singular / singular.sum()
    assert close(row.dW_effective_rank, math.exp(-np.sum(p * np.log(p))), 1e-9)
    assert row.dW_rank == 120
    # A full-rank update whose eigenvalues are all above 1e-5: its alpha is the analysis of dW as a layer.
    assert close(row.dW_alpha, ww_core.analyze_matrix(delta).alpha, 1e-9)


def test_low_rank_update_has_its_rank_and_no_power_law():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((256, 128))
    model = base + 1e-3 * rng.standard_normal((256, 4)) @ rng.standard_normal((4, 128))
    row = layer_distance(model, base, "q_proj.weight")
    assert row.fit_status == ww_core.FIT_OK
    assert row.dW_rank == 4 and math.isnan(row.dW_alpha)
    assert "rank 4" in row.reason and "low-rank" in row.reason
    assert 1.0 <= row.dW_effective_rank <= 4.0


@pytest.mark.parametrize("rank", [4, 12])
def test_an_update_has_the_same_rank_and_fit_in_float32_as_in_float64(rank):
    # A scan compares in float32: the null space of a low-rank update comes out at ~1e-7 lambda_max there, which
    # float64's eps counted as rank (a rank-8 update had dW_rank 130 and a dW_alpha fitted on that noise).
    rng = np.random.default_rng(rank)
    base = (rng.standard_normal((512, 256)) / 16).astype(np.float32)
    model = base + (rng.standard_normal((512, rank)) @ rng.standard_normal((rank, 256)) / 100).astype(np.float32)
    exact, single = (layer_distance(model, base, "w", precision=p) for p in ("float64", "float32"))
    assert exact.dW_rank == single.dW_rank == rank
    assert single.dW_effective_rank == pytest.approx(exact.dW_effective_rank, rel=1e-5)
    assert single.reason == exact.reason
    if rank >= 8:
        assert single.dW_alpha == pytest.approx(exact.dW_alpha, rel=1e-5)


def test_unchanged_layer():
    w = np.random.default_rng(5).standard_normal((64, 32))
    row = layer_distance(w, w.copy(), "w")
    assert row.delta_W == 0.0 and row.relative_change == 0.0 and row.dW_rank == 0
    assert "did not change" in row.reason


@pytest.mark.parametrize("shape", [(0, 32), (16, 0), (16, 8, 0, 3)])
@pytest.mark.parametrize("spectrum", [True, False])
def test_a_0_size_tensor_is_skipped_with_the_analysis_reason(shape, spectrum):
    """It was an ok row of delta_W 0 (its sums are empty), or with the spectrum an uncaught NotAWeightMatrix."""
    empty = np.zeros(shape, np.float32)
    row = layer_distance(empty, empty.copy(), "z.weight", 3, spectrum=spectrum)
    assert (row.fit_status, row.reason) == (ww_core.FIT_SKIPPED, ww_core.matrices.empty_tensor_reason(shape))
    assert row.reason.startswith("empty matrix: a ") and math.isnan(row.delta_W) and math.isnan(row.dW_norm)
    assert (row.layer_id, row.N, row.M) == (3, *sorted(shape[:2], reverse=True))


def test_row_blocks_give_the_same_sums(monkeypatch):
    rng = np.random.default_rng(6)
    base = rng.standard_normal((1000, 40))
    model = base + 0.1 * rng.standard_normal((1000, 40))
    whole = layer_distance(model.T, base.T, "wide", method="cka")
    monkeypatch.setattr(distances, "_BLOCK_ELEMENTS", 40 * 7)  # 143 blocks of 7 rows, a ragged last one
    blocked = layer_distance(model.T, base.T, "wide", method="cka")
    for column in ("delta_W", "relative_change", "dW_lambda_max", "dW_alpha"):
        assert close(getattr(blocked, column), getattr(whole, column), 1e-12), column


def test_conv2d_euclidean_averages_slices_and_raw_does_not():
    rng = np.random.default_rng(7)
    base = rng.standard_normal((16, 8, 3, 3))
    model = base + 0.1 * rng.standard_normal((16, 8, 3, 3))
    raw = layer_distance(model, base, "conv.weight", method="raw")
    euclidean = layer_distance(model, base, "conv.weight", method="euclidean")
    slices = [np.linalg.norm(model[:, :, i, j] - base[:, :, i, j]) for i in range(3) for j in range(3)]
    assert close(raw.delta_W, np.linalg.norm(model - base), 1e-12)
    assert close(euclidean.delta_W, float(np.mean(slices)), 1e-12)
    assert raw.rf == 9 and raw.layer_type == "conv2d" and raw.dW_num_evals == 72


def test_bad_input():
    w = np.ones((10, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        layer_distance(w, np.ones((8, 10)), "x")
    with pytest.raises(ValueError, match="method"):
        layer_distance(w, w, "x", method="cosine")
    broken = w.copy()
    broken[0, 0] = np.nan
    assert layer_distance(broken, w, "x").fit_status == ww_core.FIT_FAILED
    skipped = layer_distance(np.ones((10, 8), np.int32), np.ones((10, 8), np.int32), "x")
    assert skipped.fit_status == ww_core.FIT_SKIPPED and "not a float type" in skipped.reason
