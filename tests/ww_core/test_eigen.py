"""ww_core.eigen: Gram matrix in row blocks, NaN/Inf from its diagonal, eigensolver per size, threads, memory."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch

import ww_core
import ww_core.analysis
import ww_core.eigen as eigen
from ww_core import FIT_FAILED, FIT_OK
from ww_core.matrices import stored_array

ROOT = Path(__file__).resolve().parents[2]


def heavy_tailed(n, m, seed=0, df=3.0):
    return (np.random.default_rng(seed).standard_t(df, size=(n, m)) / np.sqrt(n)).astype(np.float32)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 KiB, so that test-sized matrices are accumulated over many row blocks."""
    monkeypatch.setattr(eigen, "_GRAM_BLOCK_BYTES", 64 * 2**10)


@pytest.mark.parametrize("shape", [(1000, 40), (40, 1000)])
def test_gram_in_row_blocks_equals_the_whole_product(small_blocks, shape):
    W = heavy_tailed(*shape).astype(np.float64)
    assert eigen._block_rows(40, np.float64) < 1000  # really several blocks
    expected = W.T @ W if shape[0] >= shape[1] else W @ W.T
    # Only the summation order differs: rounding of a few ulps of the largest entries.
    np.testing.assert_allclose(eigen.gram_matrix(W, np.float64), expected, rtol=0, atol=1e-13 * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float16, ml_dtypes.float8_e4m3fn, np.float32])
def test_low_precision_layers_give_the_gram_matrix_of_their_float64_copy_bit_for_bit(small_blocks, dtype):
    W = (heavy_tailed(900, 50, seed=1) * 4).astype(dtype)
    # The block split depends on the shape and the working precision only, and upcasting is exact.
    assert np.array_equal(eigen.gram_matrix(W, np.float64), eigen.gram_matrix(W.astype(np.float64), np.float64))


def test_torch_low_precision_tensors_are_read_without_copies():
    t = torch.from_numpy(heavy_tailed(64, 32)).to(torch.bfloat16)
    view = stored_array(t)
    assert view.dtype == ml_dtypes.bfloat16 and np.shares_memory(view, t.view(torch.int16).numpy())
    assert np.array_equal(view.astype(np.float32), t.float().numpy())


@pytest.mark.parametrize("solver", eigen.SOLVERS)
def test_every_solver_agrees_with_numpy_float64(solver):
    W = heavy_tailed(1200, 600, seed=2).astype(np.float64)
    gram = W.T @ W
    reference = np.linalg.eigvalsh(gram)
    evals = eigen.symmetric_eigenvalues(gram, solver=solver)
    # The bar: lambda_max to 1e-12 relative (measured: ~1e-15); the whole spectrum to rounding of lambda_max.
    assert abs(evals[-1] - reference[-1]) <= 1e-12 * reference[-1]
    np.testing.assert_allclose(evals, reference, rtol=0, atol=1e-12 * reference[-1])


def test_the_solver_is_chosen_by_size_and_precision():
    for precision, crossover in eigen.TORCH_EIGVALSH_MIN_M.items():
        dtype = eigen.compute_dtype(precision)
        assert eigen.choose_solver(crossover - 1, dtype) == "numpy"
        assert eigen.choose_solver(crossover, dtype) == "torch"


def test_analysis_with_torch_solver_matches_numpy_solver(monkeypatch):
    W = heavy_tailed(700, 300, seed=3)
    with_numpy = ww_core.analyze_matrix(W, keep_evals=True)
    monkeypatch.setattr(eigen, "TORCH_EIGVALSH_MIN_M", {"float64": 2, "float32": 2})
    with_torch = ww_core.analyze_matrix(W, keep_evals=True)
    assert with_torch.lambda_max == pytest.approx(with_numpy.lambda_max, rel=1e-12)
    # the same tail: the KS minimum lands on the same xmin
    assert with_torch.alpha == pytest.approx(with_numpy.alpha, rel=1e-9)


def test_torch_solves_on_layer_threads_use_one_thread_and_leave_the_callers_setting(monkeypatch):
    monkeypatch.setattr(eigen, "TORCH_EIGVALSH_MIN_M", {"float64": 2, "float32": 2})
    seen = []
    real = torch.linalg.eigvalsh

    def recording(tensor):
        seen.append(torch.get_num_threads())
        return real(tensor)

    monkeypatch.setattr(torch.linalg, "eigvalsh", recording)
    before = torch.get_num_threads()
    tensors = [(f"l{i}", heavy_tailed(200, 100, seed=i)) for i in range(4)]
    rows = list(ww_core.analyze_model(tensors, workers=2, blas_threads=1))
    assert [r.fit_status for r in rows] == [FIT_OK] * 4
    assert seen == [1] * 4
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_precision_is_the_working_dtype_of_gram_and_eigensolve(monkeypatch, precision):
    seen = []
    real = eigen.symmetric_eigenvalues

    def recording(gram, *args, **kwargs):
        seen.append(gram.dtype)
        return real(gram, *args, **kwargs)

    monkeypatch.setattr(eigen, "symmetric_eigenvalues", recording)
    W = heavy_tailed(300, 100).astype(ml_dtypes.bfloat16)
    row = ww_core.analyze_matrix(W, precision=precision, randomize=True)
    assert row.fit_status == FIT_OK
    assert seen and set(seen) == {np.dtype(precision)}


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_nan_inf_and_overflow_are_told_apart_across_blocks(small_blocks, dtype):
    good = heavy_tailed(2000, 30, seed=4)
    nan, inf = good.copy(), good.copy()
    nan[1500, 3] = np.nan
    inf[10, 7] = np.inf
    inf[1999, 0] = -np.inf
    rows = {
        r.name: r
        for r in ww_core.analyze_model(
            [
                ("nan", nan.astype(dtype)),
                ("inf", inf.astype(dtype)),
                ("good", good.astype(dtype)),
                ("huge", np.full((40, 20), 1e25, np.float32)),
            ],
            precision="float32",
        )
    }
    assert rows["nan"].fit_status == FIT_FAILED and rows["nan"].reason == "1 NaN/Inf values in the weights"
    assert rows["inf"].fit_status == FIT_FAILED and rows["inf"].reason == "2 NaN/Inf values in the weights"
    assert rows["huge"].fit_status == FIT_FAILED and "overflow" in rows["huge"].reason
    assert rows["good"].fit_status == FIT_OK


def test_randomization_of_a_bf16_layer_equals_that_of_its_float32_copy():
    W = heavy_tailed(400, 200, seed=5).astype(ml_dtypes.bfloat16)
    a = ww_core.analyze_matrix(W, randomize=True, seed=3)
    b = ww_core.analyze_matrix(W.astype(np.float32), randomize=True, seed=3)
    # The shuffle draws the same permutation whatever the dtype; upcasting is exact: the same numbers.
    assert a.rand_lambda_max == b.rand_lambda_max
    assert a.rand_iid_bulk_max == pytest.approx(b.rand_iid_bulk_max, rel=1e-12)
    assert a.correlation_trap == b.correlation_trap


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import ml_dtypes, numpy as np
    import ww_core
    from tests.memory import status_bytes
    n, m = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    W = np.empty((n, m), ml_dtypes.bfloat16)
    for start in range(0, n, 4096):  # filled in slices: no full-size temporary
        W[start : start + 4096] = rng.standard_t(3, (min(4096, n - start), m)).astype(np.float32)
    ww_core.analyze_matrix(np.ones((64, 32), np.float32), randomize=True, mp_fit=True)  # imports, warm-up
    peak = lambda: status_bytes("VmHWM")  # this process's own peak (ru_maxrss would include pytest's)
    base = peak()
    ok = ww_core.analyze_matrix(W).fit_status
    after_default = peak()
    ww_core.analyze_matrix(W, randomize=True)
    print(json.dumps({"ok": ok, "default": after_default - base, "randomize": peak() - base}))
    """
)


@pytest.mark.slow
def test_a_large_bf16_layer_is_never_upcast_whole():
    n, m = 65536, 1024
    stored = n * m * 2  # 128 MiB of bf16; a float64 copy would be 512 MiB
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(n), str(m)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    growth = json.loads(out.stdout.strip().splitlines()[-1])
    assert growth["ok"] == FIT_OK
    # A 64 MiB upcast block, two M x M float64 matrices (8 MiB each) and LAPACK's workspace, with a margin; the old
    # full float64 copy alone was 4x the stored layer.
    assert growth["default"] < 128 * 2**20, growth
    # randomize adds one shuffled copy in the stored dtype (the old float64 shuffle made two 512 MiB copies)
    assert growth["randomize"] < stored + 192 * 2**20, growth


def test_float32_rank_and_entropy_of_a_rank_deficient_layer_match_float64():
    rng = np.random.default_rng(6)
    W = (rng.standard_normal((300, 50)) @ rng.standard_normal((50, 100))).astype(np.float32)  # rank 50 of 100
    a, b = ww_core.analyze_matrix(W), ww_core.analyze_matrix(W, precision="float32")
    # float32 rounding leaves ~1e-7 lambda_max where float64 has zeros: the rank threshold follows the precision.
    assert a.matrix_rank == b.matrix_rank == 50
    assert b.entropy == pytest.approx(a.entropy, rel=1e-5)
    assert b.alpha == pytest.approx(a.alpha, rel=0.01)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_cuda_path_uploads_bf16_and_matches_the_cpu(precision):
    W = heavy_tailed(3000, 700, seed=7).astype(ml_dtypes.bfloat16)
    K = (np.random.default_rng(8).standard_t(4, size=(64, 32, 3, 3)) / 17).astype(np.float32)
    for tensor, name in ((W, "w.weight"), (K, "conv.weight")):
        cpu = ww_core.analyze_matrix(tensor, name=name, precision=precision)
        gpu = ww_core.analyze_matrix(tensor, name=name, precision=precision, device="cuda")
        # The same arithmetic in another order: float64 to ~1e-12, float32 to its rounding (~1e-6 on lambda_max).
        assert gpu.lambda_max == pytest.approx(cpu.lambda_max, rel=1e-10 if precision == "float64" else 1e-5)
        assert gpu.alpha == pytest.approx(cpu.alpha, rel=1e-6 if precision == "float64" else 0.01)
    nan = heavy_tailed(500, 100).astype(ml_dtypes.bfloat16)
    nan[3, 3] = np.nan
    row = ww_core.analyze_matrix(nan, precision=precision, device="cuda")
    assert row.fit_status == FIT_FAILED and row.reason == "1 NaN/Inf values in the weights"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_gpu_code_path_run_on_the_cpu_matches_numpy(small_blocks, dtype):
    # The --device cuda path (torch: upload as stored, upcast in row blocks, batch a layer's slices) exercised with
    # torch's CPU device, so that it is tested on machines without a GPU.
    W = heavy_tailed(2000, 60, seed=9).astype(ml_dtypes.bfloat16)
    slices = [heavy_tailed(40, 30, seed=s).astype(np.float16).T for s in range(3)]  # wide: the transposed side
    for matrices in ([W], slices):
        expected = eigen.gram_eigenvalues(matrices, 0.5, dtype=dtype)
        got = eigen._finish(eigen._torch_eigenvalues(matrices, np.dtype(dtype), "cpu"), 0.5)
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * expected[-1])
    bad = np.array(W)
    bad[1999, 0] = np.inf
    with pytest.raises(eigen.NonFiniteWeights, match="^1 NaN/Inf values"):
        eigen._torch_eigenvalues([bad], np.dtype(dtype), "cpu")


def test_the_shuffled_copy_is_never_larger_than_the_stored_or_working_dtype(monkeypatch):
    seen = []
    real = eigen.gram_eigenvalues

    def recording(matrices, *args, **kwargs):
        seen.append(matrices[0].dtype)
        return real(matrices, *args, **kwargs)

    monkeypatch.setattr(ww_core.analysis, "gram_eigenvalues", recording)
    W = heavy_tailed(300, 100, seed=10)
    for stored, precision, copy in (
        (ml_dtypes.bfloat16, "float64", ml_dtypes.bfloat16),
        (np.float64, "float32", np.float32),
        (np.float32, "float64", np.float32),
    ):
        seen.clear()
        ww_core.analyze_matrix(W.astype(stored), randomize=True, precision=precision)
        assert seen == [np.dtype(stored), np.dtype(copy)]  # W itself, then its shuffled copy
