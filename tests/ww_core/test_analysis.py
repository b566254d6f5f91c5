"""analyze_matrix / analyze_model: metric definitions, statistical sanity, seeds, dtypes, bad input."""

import math

import numpy as np
import pytest
import torch

import ww_core
from ww_core import FIT_FAILED, FIT_OK, FIT_SKIPPED


def heavy_tailed(n, m, df=3.0, seed=0):
    return np.random.default_rng(seed).standard_t(df, size=(n, m)).astype(np.float32) / np.sqrt(n)


def test_metric_definitions_follow_weightwatcher_conventions():
    W = heavy_tailed(300, 120)
    row = ww_core.analyze_matrix(W, keep_evals=True)
    sv = np.linalg.svd(W.astype(np.float64), compute_uv=False)
    evals = np.sort(sv**2)
    # Eigenvalues are squared singular values, no 1/N; the Gram route agrees with an SVD to rounding.
    assert row.lambda_max == pytest.approx(evals[-1], rel=1e-12)
    assert row.norm == pytest.approx(evals.sum(), rel=1e-12)
    assert row.log_norm == pytest.approx(np.log10(evals.sum()), rel=1e-12)
    assert row.log_spectral_norm == pytest.approx(np.log10(evals[-1]), rel=1e-12)
    assert row.stable_rank == pytest.approx(evals.sum() / evals[-1], rel=1e-12)
    assert row.alpha_weighted == pytest.approx(row.alpha * np.log10(evals[-1]), rel=1e-12)
    assert row.log_alpha_norm == pytest.approx(np.log10(np.sum(evals**row.alpha)), rel=1e-9)
    assert row.matrix_rank == 120
    assert (row.N, row.M, row.num_evals) == (300, 120, 120)
    assert row.num_pl_spikes == np.count_nonzero(row.evals >= row.xmin)
    np.testing.assert_allclose(row.evals, evals, rtol=1e-9, atol=1e-12 * evals[-1])
    assert row.fit_status == FIT_OK


def test_transpose_gives_the_same_esd():
    W = heavy_tailed(200, 80, seed=1)
    a, b = ww_core.analyze_matrix(W), ww_core.analyze_matrix(W.T)
    assert (a.N, a.M) == (b.N, b.M) == (200, 80)
    assert a.alpha == pytest.approx(b.alpha, rel=1e-9)
    assert a.lambda_max == pytest.approx(b.lambda_max, rel=1e-12)


def test_warnings_for_over_and_under_trained():
    rows = {
        r.name: r
        for r in ww_core.analyze_model([("g", heavy_tailed(500, 250, df=50)), ("t", heavy_tailed(500, 250, df=1.2))])
    }
    assert rows["g"].alpha > 6 and rows["g"].warning == "under-trained"
    assert rows["t"].alpha < 2 and rows["t"].warning == "over-trained"


def test_gaussian_layer_has_no_spikes_and_no_trap():
    W = np.random.default_rng(5).standard_normal((800, 400)) / np.sqrt(800)
    row = ww_core.analyze_matrix(W, mp_fit=True, randomize=True)
    assert row.num_spikes == 0
    assert row.correlation_trap is False


def test_planted_huge_elements_make_a_correlation_trap():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((800, 400)) / np.sqrt(800)
    W.flat[rng.choice(W.size, 4, replace=False)] = 40 * W.std()
    row = ww_core.analyze_matrix(W, randomize=True)
    assert row.correlation_trap is True
    assert row.rand_lambda_max > row.rand_iid_bulk_max


def test_same_seed_same_numbers_other_seed_other_draw():
    W = heavy_tailed(400, 200, seed=2)
    a = ww_core.analyze_matrix(W, randomize=True, mp_fit=True, seed=11)
    b = ww_core.analyze_matrix(W, randomize=True, mp_fit=True, seed=11)
    c = ww_core.analyze_matrix(W, randomize=True, mp_fit=True, seed=12)
    assert a.as_row() == b.as_row()
    assert a.rand_lambda_max != c.rand_lambda_max
    assert a.alpha == c.alpha


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float32])
def test_low_precision_dtypes_are_upcast_exactly(dtype):
    W = torch.from_numpy(heavy_tailed(256, 128, seed=3) * 4).to(dtype)
    row = ww_core.analyze_matrix(W)
    reference = ww_core.analyze_matrix(W.to(torch.float64).numpy())
    # Upcasting is exact, so the numbers are identical to analyzing the float64 copy.
    assert row.alpha == reference.alpha
    assert row.lambda_max == reference.lambda_max


def test_float32_precision_keeps_alpha_within_one_percent():
    W = heavy_tailed(1024, 512, seed=4)
    a = ww_core.analyze_matrix(W)
    b = ww_core.analyze_matrix(W, precision="float32")
    assert b.alpha == pytest.approx(a.alpha, rel=0.01)
    assert b.lambda_max == pytest.approx(a.lambda_max, rel=1e-5)


def test_conv2d_pooled_and_per_slice():
    K = np.random.default_rng(7).standard_t(4, size=(64, 32, 3, 3)).astype(np.float32)
    pooled = ww_core.analyze_matrix(K, name="conv.weight")
    assert (pooled.layer_type, pooled.N, pooled.M, pooled.rf, pooled.num_evals) == ("conv2d", 64, 32, 9, 288)
    slice_evals = np.concatenate(
        [np.linalg.svd(K[:, :, i, j], compute_uv=False) ** 2 for i in range(3) for j in range(3)]
    )
    # WeightWatcher's conv2d normalization halves the pooled eigenvalues.
    assert pooled.lambda_max == pytest.approx(slice_evals.max() / 2, rel=1e-10)
    slices = ww_core.analyze_matrix(K, name="conv.weight", pool=False)
    assert len(slices) == 9 and [s.slice_id for s in slices] == list(range(9))
    assert slices[0].lambda_max == pytest.approx(
        np.linalg.svd(K[:, :, 0, 0], compute_uv=False)[0] ** 2 * 9 / 2, rel=1e-10
    )


def test_bad_layers_are_recorded_and_the_rest_analyzed():
    good = heavy_tailed(200, 100, seed=8)
    nan = good.copy()
    nan[3, 4] = np.nan
    tensors = [
        ("nan.weight", nan),
        ("tiny.weight", np.ones((3, 3), np.float32)),
        ("zero.weight", np.zeros((100, 50), np.float32)),
        ("empty.weight", np.zeros((0, 10), np.float32)),
        ("quantized.weight", np.ones((64, 64), np.int8)),
        ("norm.bias", np.ones(100, np.float32)),
        ("conv3d.weight", np.ones((8, 4, 3, 3, 3), np.float32)),
        ("huge.weight", np.full((40, 20), 1e25, np.float32)),  # squares overflow float32
        ("good.weight", good),
    ]
    rows = {r.name: r for r in ww_core.analyze_model(tensors, precision="float32")}
    assert "norm.bias" not in rows
    assert rows["conv3d.weight"].fit_status == FIT_SKIPPED and "5-D" in rows["conv3d.weight"].reason
    assert rows["huge.weight"].fit_status == FIT_FAILED and "overflow" in rows["huge.weight"].reason
    assert rows["nan.weight"].fit_status == FIT_FAILED and "NaN" in rows["nan.weight"].reason
    assert rows["tiny.weight"].fit_status == FIT_SKIPPED and "min_evals" in rows["tiny.weight"].reason
    assert rows["zero.weight"].fit_status == FIT_FAILED and "zero" in rows["zero.weight"].reason
    assert rows["empty.weight"].fit_status == FIT_SKIPPED
    assert rows["quantized.weight"].fit_status == FIT_SKIPPED and "float" in rows["quantized.weight"].reason
    assert rows["good.weight"].fit_status == FIT_OK
    for name in ("nan.weight", "zero.weight", "tiny.weight"):
        # A failed fit is never reported as alpha = -1.
        assert math.isnan(rows[name].alpha)


def test_an_eigensolver_failure_fails_that_layer_only(monkeypatch):
    import ww_core.eigen

    real = np.linalg.eigvalsh

    def eigvalsh(gram):
        if gram.shape[-1] == 50:
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return real(gram)

    monkeypatch.setattr(ww_core.eigen.np.linalg, "eigvalsh", eigvalsh)
    rows = list(ww_core.analyze_model([("a", heavy_tailed(200, 50)), ("b", heavy_tailed(200, 60))]))
    assert rows[0].fit_status == FIT_FAILED and "did not converge" in rows[0].reason
    assert rows[1].fit_status == FIT_OK


def test_summary_averages_only_ok_layers():
    rows = list(ww_core.analyze_model([("a", heavy_tailed(300, 100, seed=9)), ("z", np.zeros((50, 50)))]))
    summary = ww_core.summarize(rows)
    assert summary.num_layers == 2 and summary.num_ok == 1 and summary.num_failed == 1
    assert summary.alpha == pytest.approx(rows[0].alpha)


def test_analyze_model_is_lazy():
    consumed = []

    def tensors():
        for i in range(3):
            consumed.append(i)
            yield f"l{i}", heavy_tailed(100, 50, seed=i)

    it = ww_core.analyze_model(tensors())
    next(it)
    assert consumed == [0]


def test_layer_workers_give_the_same_rows_in_order_and_stay_lazy():
    consumed = []

    def tensors():
        for i in range(6):
            consumed.append(i)
            yield f"l{i}", heavy_tailed(200 + 10 * i, 80, seed=i)
            yield f"l{i}.bias", np.ones(80, dtype=np.float32)  # not a layer: no row, no layer_id

    options = dict(randomize=True, mp_fit=True, seed=5)
    sequential = [row.as_row() for row in ww_core.analyze_model(tensors(), **options)]
    consumed.clear()
    parallel = ww_core.analyze_model(tensors(), workers=3, **options)
    first = next(parallel)
    # Bounded read-ahead: 3 tensors in flight when the first row is ready, nothing more has been read.
    assert consumed == [0, 1, 2]
    rows = [first.as_row(), *(row.as_row() for row in parallel)]
    # Same numbers to the last bit (each layer's randomization is seeded by its name, not by who runs it).
    assert [r["layer_id"] for r in rows] == list(range(6))
    assert rows == sequential


def test_small_layers_queue_behind_a_large_one_up_to_its_size():
    consumed = []

    def tensors(small: int):
        consumed.append("embedding")
        yield "embed.weight", heavy_tailed(2000, 80)  # 640 kB: the head every other layer waits behind
        for i in range(small):
            consumed.append(i)
            yield f"l{i}", heavy_tailed(100, 20, seed=i)  # 8 kB each

    rows = ww_core.analyze_model(tensors(10), workers=2)
    next(rows)
    assert len(consumed) == 11  # 80 kB of small layers fit behind the head: all read ahead
    list(rows)
    consumed.clear()
    rows = ww_core.analyze_model(tensors(100), workers=2)
    next(rows)
    # 100 small layers (800 kB) do not: read-ahead stops at the head's size (or the queue cap).
    assert len(consumed) <= 1 + 640_000 // 8_000 + 1


def test_layer_workers_must_be_positive():
    with pytest.raises(ValueError, match="workers=0"):
        list(ww_core.analyze_model([("a", heavy_tailed(50, 20))], workers=0))


def test_embeddings_are_analyzed_whatever_n():
    W = np.random.default_rng(10).standard_normal((60000, 16)).astype(np.float32)
    row = ww_core.analyze_matrix(W, name="model.embed_tokens.weight")
    assert row.layer_type == "embedding" and row.N == 60000 and row.fit_status == FIT_OK


def test_max_evals_skips_with_a_reason_and_none_analyzes():
    W = heavy_tailed(300, 200, seed=11)
    assert ww_core.analyze_matrix(W, max_evals=100).fit_status == FIT_SKIPPED
    assert ww_core.analyze_matrix(W, max_evals=None).fit_status == FIT_OK


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        ww_core.analyze_matrix(np.eye(10), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    W = heavy_tailed(1024, 512, seed=13)
    cpu, gpu = ww_core.analyze_matrix(W), ww_core.analyze_matrix(W, device="cuda")
    # Same float64 arithmetic on another device: eigenvalues agree to ~1e-12, so the fit lands on the same xmin.
    assert gpu.lambda_max == pytest.approx(cpu.lambda_max, rel=1e-10)
    assert gpu.alpha == pytest.approx(cpu.alpha, rel=1e-6)


def test_invalid_options_name_the_parameter():
    with pytest.raises(ValueError, match="fix_fingers"):
        ww_core.analyze_matrix(np.eye(10), fix_fingers="bogus")
    with pytest.raises(TypeError, match="unknown analysis option"):
        ww_core.analyze_matrix(np.eye(10), min_eval=3)


def test_detx_counts_the_tail_whose_product_reaches_one():
    W = heavy_tailed(300, 100, seed=12)
    row = ww_core.analyze_matrix(W, detX=True, keep_evals=True)
    evals = row.evals
    rescaled = evals * len(evals) / evals.sum()
    tail = rescaled[-row.detX_num :]
    assert np.prod(tail) < 1.0 <= np.prod(tail[1:])
    assert row.detX_val == evals[-row.detX_num]


def test_watcher_frame_mirrors_weightwatcher_api():
    watcher = ww_core.Watcher({"a.weight": heavy_tailed(200, 100), "b.weight": heavy_tailed(300, 100, seed=1)})
    details = watcher.analyze()
    # weightwatcher's names and ids for a state dict: the key without .weight, every .weight key from 1.
    assert list(details["name"]) == ["a", "b"] and list(details["tensor"]) == ["a.weight", "b.weight"]
    assert list(details["layer_id"]) == [1, 2]
    # As weightwatcher, the summary has mp_softrank only when the MP fit ran.
    assert set(ww_core.SUMMARY_METRICS) - {"mp_softrank"} <= set(watcher.get_summary())
    watcher.analyze(mp_fit=True)
    assert set(ww_core.SUMMARY_METRICS) <= set(watcher.get_summary())


@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("shape", [(32, 16, 0, 3), (32, 16, 0), (64, 0)])
def test_a_tensor_with_a_zero_size_axis_is_one_skipped_row_and_the_next_layer_is_analyzed(shape, pool):
    """A conv kernel of 0 positions yields no matrix: pooled it once reached np.stack([]) (ValueError out of
    analyze_model), unpooled it gave no row at all."""
    rng = np.random.default_rng(0)
    tensors = [("empty", np.zeros(shape, np.float32)), ("next", rng.standard_normal((64, 32)))]
    rows = list(ww_core.analyze_model(tensors, pool=pool))
    assert [(r.name, r.fit_status) for r in rows] == [("empty", FIT_SKIPPED), ("next", FIT_OK)]
    assert rows[0].reason == f"empty matrix: a {'x'.join(map(str, shape))} tensor has no eigenvalues"


class OutOfMemoryError(RuntimeError):
    """Stands for torch.cuda.OutOfMemoryError (a RuntimeError of that name), which needs a GPU to raise."""


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (MemoryError(), "out of memory analyzing a 64x32 tensor in float64 on cpu"),
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory analyzing a 64x32 tensor"),
        (ValueError("a bug"), "unexpected ValueError: a bug"),
    ],
)
def test_an_error_met_by_one_layer_fails_that_layer_alone_with_its_cause(monkeypatch, error, reason):
    """Out of memory (host or GPU) is the layer's size, not a bug: it is named as such; anything else is an
    unexpected error of that layer; either way the next layer is analyzed."""
    real = ww_core.analysis.analyze_layer

    def failing_first(row, layer, options):
        if row.name == "big":
            raise error
        return real(row, layer, options)

    monkeypatch.setattr(ww_core.analysis, "analyze_layer", failing_first)
    rng = np.random.default_rng(0)
    tensors = [("big", rng.standard_normal((64, 32))), ("next", rng.standard_normal((64, 32)))]
    rows = list(ww_core.analyze_model(tensors, precision="float64"))
    assert [(r.name, r.fit_status) for r in rows] == [("big", FIT_FAILED), ("next", FIT_OK)]
    assert rows[0].reason.startswith(reason)
