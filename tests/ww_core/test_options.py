"""weightwatcher's analyze() options, each against its definition on matrices with known answers.

weightwatcher 0.7.7 runs most options itself (test_notebook.py compares with its numbers); these tests pin what it
cannot run (fft, conv2d_fft, channels, analyze_vectors, glorot_fix, which it silently ignores) and the definitions
behind every other option. Tolerances: 1e-9 relative where the same float64 quantity is computed two ways (an
explicit SVD against our Gram eigenvalues), exact for counts.
"""

import logging
import math

import numpy as np
import pytest
import torch

import ww_core
from ww_core import FIT_OK
from ww_core.convolution import operator_eigenvalues
from ww_core.crosslayer import StackedGram, intra_product, robust_standardize
from ww_core.norms import level_spacings
from ww_core.vectors import discrete_entropy, localization_ratio, participation_ratio, vector_metric_rows


def heavy(n, m, seed=0):
    return np.random.default_rng(seed).standard_t(3, size=(n, m)) / np.sqrt(n)


def svd_evals(matrices):
    return np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in matrices]))


def test_fft_is_the_esd_of_the_real_part_of_each_slice_fourier_transform():
    kernel = np.random.default_rng(1).standard_normal((24, 16, 3, 3))
    row = ww_core.analyze_matrix(kernel, fft=True, keep_evals=True)
    slices = [np.real(np.fft.fft2(kernel[:, :, i, j])) * math.sqrt(0.5) for i in range(3) for j in range(3)]
    np.testing.assert_allclose(row.evals, svd_evals(slices), rtol=1e-9, atol=1e-9 * row.lambda_max)


def test_fft_of_a_constant_kernel_slice_is_one_spike():
    # F W F^T of a constant c matrix is c N M at frequency (0, 0) and 0 elsewhere: one eigenvalue (c N M)^2 / 2.
    kernel = np.full((20, 10, 1, 2), 0.5)
    row = ww_core.analyze_matrix(kernel, fft=True, keep_evals=True, min_evals=2)
    assert row.lambda_max == pytest.approx((0.5 * 20 * 10) ** 2 / 2, rel=1e-12)
    assert np.count_nonzero(row.evals > 1e-9 * row.lambda_max) == 2  # one per kernel position


def _circular_convolution_matrix(kernel: np.ndarray, n: int) -> np.ndarray:
    c_out, c_in, k_h, k_w = kernel.shape
    operator = np.zeros((c_out * n * n, c_in * n * n))
    for o in range(c_out):
        for c in range(c_in):
            for x in range(n):
                for y in range(n):
                    for i in range(k_h):
                        for j in range(k_w):
                            operator[o * n * n + ((x + i) % n) * n + (y + j) % n, c * n * n + x * n + y] += kernel[
                                o, c, i, j
                            ]
    return operator


def test_conv2d_fft_is_the_spectrum_of_the_convolution_operator():
    kernel = np.random.default_rng(2).standard_normal((4, 3, 3, 3))
    explicit = np.sort(np.linalg.svd(_circular_convolution_matrix(kernel, 6), compute_uv=False) ** 2)
    ours = np.sort(operator_eigenvalues(kernel, grid=6).ravel())
    np.testing.assert_allclose(ours, explicit, rtol=1e-9, atol=1e-9 * explicit[-1])


def test_conv2d_fft_analysis_pools_every_frequency_scaled_like_the_slices():
    kernel = np.random.default_rng(3).standard_normal((16, 8, 3, 3))
    row = ww_core.analyze_matrix(kernel, conv2d_fft=True, keep_evals=True)
    assert row.num_evals == 32 * 32 * 8 and row.fit_status == FIT_OK
    np.testing.assert_allclose(row.evals, np.sort(operator_eigenvalues(kernel).ravel()) * 0.5, rtol=1e-12)


def test_channels_first_reads_the_keras_layout():
    kernel = np.random.default_rng(4).standard_normal((32, 16, 3, 3))
    torch_row = ww_core.analyze_matrix(kernel)
    keras_row = ww_core.analyze_matrix(kernel.transpose(2, 3, 1, 0).copy(), channels="first")
    assert (keras_row.N, keras_row.M, keras_row.rf) == (torch_row.N, torch_row.M, torch_row.rf) == (32, 16, 9)
    assert keras_row.lambda_max == pytest.approx(torch_row.lambda_max, rel=1e-12)
    assert keras_row.alpha == pytest.approx(torch_row.alpha, rel=1e-12)


def test_glorot_fix_rescales_to_glorot_units():
    W = heavy(300, 100)
    plain = ww_core.analyze_matrix(W)
    fixed = ww_core.analyze_matrix(W, glorot_fix=True)
    assert fixed.lambda_max == pytest.approx(plain.lambda_max * (300 + 100) / 2, rel=1e-12)
    assert fixed.alpha == pytest.approx(plain.alpha, rel=1e-12)  # the exponent is scale-free


def test_conv2d_norm_off_leaves_the_kernel_unscaled():
    kernel = np.random.default_rng(5).standard_normal((32, 16, 3, 3))
    on, off = ww_core.analyze_matrix(kernel), ww_core.analyze_matrix(kernel, conv2d_norm=False)
    assert off.lambda_max == pytest.approx(2 * on.lambda_max, rel=1e-12)


def test_inverse_analyzes_one_over_the_eigenvalues():
    W = heavy(300, 100, seed=6)
    row = ww_core.analyze_matrix(W, inverse=True, keep_evals=True)
    np.testing.assert_allclose(row.evals, np.sort(1 / svd_evals([W])), rtol=1e-9)
    assert row.sv_max == pytest.approx(np.linalg.svd(W, compute_uv=False)[0], rel=1e-12)


def test_xmax_leaves_the_largest_eigenvalues_out_of_the_fit():
    W = heavy(400, 200, seed=7)
    clipped = ww_core.analyze_matrix(W, xmax=3, keep_evals=True)
    reference = ww_core.powerlaw.fit_power_law(np.sort(clipped.evals)[:-3])
    assert clipped.alpha == pytest.approx(reference.alpha, rel=1e-12)
    assert clipped.xmax == pytest.approx(np.sort(clipped.evals)[-4], rel=1e-12)
    assert clipped.lambda_max == pytest.approx(clipped.evals[-1])  # the norms still see every eigenvalue
    failed = ww_core.analyze_matrix(W, xmax=150)
    assert failed.fit_status == "failed" and "more than half" in failed.reason


def test_tolerance_counts_weak_rank_loss_and_rank_loss_counts_zero_directions():
    rng = np.random.default_rng(8)
    W = rng.standard_normal((200, 10)) @ rng.standard_normal((10, 80))  # rank 10 of 80
    row = ww_core.analyze_matrix(W, tolerance=1e-3, keep_evals=True)
    assert row.rank_loss == 70
    assert row.weak_rank_loss == np.count_nonzero(row.evals < 1e-3) >= 70
    assert row.sv_min == pytest.approx(math.sqrt(row.evals[0]), abs=1e-6)


def test_vector_metrics_of_known_vectors():
    delocalized = np.ones(16) / 4.0
    localized = np.zeros(16)
    localized[3] = 1.0
    assert localization_ratio(delocalized) == pytest.approx(16.0)
    assert localization_ratio(localized) == pytest.approx(1.0)
    assert participation_ratio(delocalized) == pytest.approx(16 ** (1 / 4))
    assert participation_ratio(localized) == pytest.approx(1.0)
    # |v| - mean|v| of a delocalized vector is one value: one full bin of 100, entropy ~ 0; a vector of 100 values
    # evenly spread puts one in each bin: entropy ln(100).
    assert discrete_entropy(delocalized)[0] == pytest.approx(0.0, abs=1e-6)
    assert discrete_entropy(np.linspace(0.01, 1.0, 100))[0] == pytest.approx(math.log(100), rel=1e-6)
    rows = vector_metric_rows([delocalized, localized])
    assert rows[0]["entropy"] == pytest.approx(math.exp(-0.5) / math.sqrt(2 * math.pi))
    assert [r["length"] for r in rows] == [16, 16]


def test_analyze_vectors_splits_bulk_and_tail_at_xmin():
    # W = U S with U a permutation: the Gram matrix S^2 is diagonal, every eigenvector a coordinate axis:
    # localization and participation ratios are exactly 1 for bulk and tail alike.
    rng = np.random.default_rng(9)
    singular = np.sort(rng.pareto(2.0, 120) + 1.0)
    W = np.zeros((300, 120))
    W[rng.permutation(300)[:120], np.arange(120)] = singular
    watcher = ww_core.WeightWatcher({"layer.weight": torch.from_numpy(W)})
    frame = watcher.analyze_vectors(plot=False)
    row = frame.iloc[0]
    assert row.bulk_mean_loc_ratio == pytest.approx(1.0) and row.tail_mean_loc_ratio == pytest.approx(1.0)
    assert row.bulk_var_part_ratio == pytest.approx(0.0, abs=1e-12)
    details = watcher.get_details().iloc[0]
    assert details.num_pl_spikes == np.count_nonzero(singular**2 >= details.xmin)


def test_intra_is_the_normalized_product_of_consecutive_layers():
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((64, 32)), rng.standard_normal((48, 32))  # share 32: X = a b^T
    X = intra_product(a, b, sparsify=False)
    np.testing.assert_allclose(X, a @ b.T / (np.linalg.norm(a) * np.linalg.norm(b)), rtol=1e-12)
    assert intra_product(rng.standard_normal((5, 7)), rng.standard_normal((9, 11)), sparsify=False) is None
    state = {"l0.weight": torch.from_numpy(a), "l1.weight": torch.from_numpy(b)}
    frame = ww_core.WeightWatcher(state).analyze(intra=True, sparsify=False)
    (row,) = frame.to_dict("records")
    # The ESD of an intra-layer product is its singular values (weightwatcher's convention), not their squares.
    assert row["lambda_max"] == pytest.approx(np.linalg.svd(X, compute_uv=False)[0], rel=1e-9)
    assert row["name"] == "1 X 2 " and row["Xflag"] is True


def test_stacked_gram_is_that_of_the_padded_standardized_stack():
    rng = np.random.default_rng(11)
    layers = [rng.standard_normal((40, 10)), rng.standard_normal((30, 16)), rng.standard_normal((25, 16))]
    stack = StackedGram()
    padded = []
    for W in layers:
        block = robust_standardize(W)
        stack.add(block)
        padded.append(np.pad(block, ((0, 0), (0, 16 - block.shape[1]))))
    gram, N, M = stack.result()
    explicit = np.vstack(padded)
    assert (N, M) == explicit.shape == (95, 16)
    np.testing.assert_allclose(gram, explicit.T @ explicit, rtol=1e-12)


def test_base_model_analyzes_the_update():
    rng = np.random.default_rng(12)
    base = {"a.weight": torch.from_numpy(rng.standard_normal((200, 100)))}
    tuned = {"a.weight": base["a.weight"] + torch.from_numpy(heavy(200, 100, seed=13))}
    row = ww_core.WeightWatcher(tuned).analyze(base_model=base).iloc[0]
    delta = ww_core.analyze_matrix((tuned["a.weight"] - base["a.weight"]).numpy())
    assert row.lambda_max == pytest.approx(delta.lambda_max, rel=1e-12)
    assert row.alpha == pytest.approx(delta.alpha, rel=1e-12)


def test_level_spacings_are_the_gaps_of_the_sorted_spectrum():
    np.testing.assert_allclose(level_spacings(np.array([3.0, 1.0, 6.0])), [2.0, 3.0])


def test_pl_package_powerlaw_runs_the_package_fit():
    powerlaw = pytest.importorskip("powerlaw")
    W = heavy(400, 200, seed=14)
    row = ww_core.analyze_matrix(W, pl_package="powerlaw", keep_evals=True)
    fit = powerlaw.Fit(row.evals[row.evals > 1e-5], verbose=False)
    assert row.alpha == pytest.approx(fit.alpha, rel=1e-12) and row.xmin == pytest.approx(fit.xmin, rel=1e-12)
    tpl = ww_core.analyze_matrix(W, pl_package="powerlaw", fit="TPL")
    assert tpl.fit_status == FIT_OK and tpl.Lambda >= 0


def test_e_tpl_fits_a_truncated_power_law_from_the_esd_peak():
    W = heavy(400, 200, seed=15)
    row = ww_core.analyze_matrix(W, fit="E_TPL", keep_evals=True)
    positive = row.evals[row.evals > 1e-5]
    counts, edges = np.histogram(np.log10(positive), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    assert 0.95 * peak <= row.xmin <= 1.5 * peak
    assert row.Lambda >= 0 and row.fit_status == FIT_OK


def test_start_ids_and_layers_follow_weightwatcher_numbering():
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20))
    frame = ww_core.WeightWatcher(model).analyze()
    assert list(frame.layer_id) == [1, 3] and list(frame.name) == ["0", "2"]
    assert list(ww_core.WeightWatcher(model).analyze(start_ids=1).layer_id) == [2, 4]
    assert list(ww_core.WeightWatcher(model).analyze(layers=[3]).longname) == ["2"]
    assert list(ww_core.WeightWatcher(model).analyze(layers=[-3]).layer_id) == [1]


def test_get_esd_of_an_id_or_name_no_layer_has_is_empty_and_logs_the_ids_there_are(caplog):
    """A ReLU's id, an id past the last, a negative id (layers= reads it as "all but") and names no layer has name no
    layer: 0.7.7 logs an error and returns [] (a notebook tests ``len(esd)``); ours raised ValueError."""
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20))
    watcher = ww_core.WeightWatcher(model)
    for layer in (2, 4, -1, "nope", "-0", "query"):
        for call in (watcher.get_ESD, watcher.get_Weights):
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="ww_core.watcher"):
                assert call(layer=layer) == []
            expected = f"layer={layer!r} is not a layer of the model: its 2 layers have ids 1 to 3 (1 '0', 3 '2')"
            assert [r.getMessage() for r in caplog.records] == [expected]
    assert watcher.get_ESD(layer=3).size == 20


def test_get_esd_of_a_layer_type_no_layer_is_named_is_empty_as_in_weightwatcher(caplog):
    """0.7.7 first checks a string against the layers' names, so a layer type that no layer is named after names
    no layer and gives []; ours gave the first Linear's eigenvalues for 'dense'."""
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20))
    watcher = ww_core.WeightWatcher(model)
    for layer in ("dense", "conv1d", "conv2d", "embedding"):
        for call in (watcher.get_ESD, watcher.get_Weights):
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="ww_core.watcher"):
                assert call(layer=layer) == []
            assert [r.getMessage() for r in caplog.records] == [
                f"layer={layer!r} is not a layer of the model ({layer!r} is a layer type: analyze(layers=[{layer!r}]) "
                "selects by type): its 2 layers have ids 1 to 3 (1 '0', 3 '2')"
            ]


def test_get_esd_of_a_layer_type_a_layer_is_named_is_the_first_layer_of_that_type_as_in_weightwatcher():
    """Once a layer has that name (BERT's ``attention.output.dense``), 0.7.7 filters by the type, not the name: its
    get_ESD(layer='dense') is the first Linear's ESD (a query here, 30 eigenvalues, checked with 0.7.7 itself), not
    the ESD of the layer named 'dense' (20)."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.query = torch.nn.Linear(40, 30)
            self.dense = torch.nn.Linear(30, 20)

    watcher = ww_core.WeightWatcher(Block())
    by_type = watcher.get_ESD(layer="dense")
    # The same tensor through the same eigensolver: equal to the last bit.
    np.testing.assert_array_equal(by_type, watcher.get_ESD(layer="query"))
    assert by_type.size == 30 and watcher.get_ESD(layer=2).size == 20
    assert [w.shape for w in watcher.get_Weights(layer="dense")] == [(30, 40)]


def test_get_esd_of_a_list_or_none_asks_for_one_layer_id_or_name():
    """A list said "is not a layer of the model" while listing the id it held; 0.7.7 ignores a list here and gives
    the first layer's eigenvalues."""
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 20))
    watcher = ww_core.WeightWatcher(model)
    for layer in ([3], (1, 3), np.array([3]), None):
        for call in (watcher.get_ESD, watcher.get_Weights):
            with pytest.raises(TypeError) as raised:
                call(layer=layer)
            assert str(raised.value) == (
                f"layer={layer!r}: pass one layer's id (an int) or its name (a str), not a {type(layer).__name__}"
            )
    assert watcher.get_ESD(layer=np.int64(3)).size == watcher.get_ESD(layer="2").size == 20


def test_get_weights_of_a_0_size_tensor_raises_the_error_get_esd_raises():
    """get_Weights returned [an empty 0x32 array] where get_ESD said the layer has no eigenvalues."""
    watcher = ww_core.WeightWatcher({"a.weight": torch.from_numpy(heavy(64, 32)), "z.weight": torch.zeros(0, 32)})
    for layer in (2, "z"):
        for call in (watcher.get_ESD, watcher.get_Weights):
            with pytest.raises(ValueError) as raised:
                call(layer=layer)
            assert str(raised.value) == (
                f"layer={layer!r} ('z.weight') has no weight matrix: "
                "the analysis skips it: empty matrix: a 0x32 tensor has no eigenvalues"
            )
    assert [w.shape for w in watcher.get_Weights(layer=1)] == [(64, 32)]


def test_distances_give_a_0_size_tensor_a_skipped_row():
    """It was left out with no row, as a layer too small for min_evals is; analyze() skips it with this reason."""
    first = {"a.weight": torch.from_numpy(heavy(64, 32, seed=1)), "z.weight": torch.zeros(0, 32)}
    second = {"a.weight": torch.from_numpy(heavy(64, 32, seed=2)), "z.weight": torch.zeros(0, 32)}
    avg_dW, _, frame = ww_core.WeightWatcher().distances(first, second)
    assert list(frame.tensor) == ["a.weight", "z.weight"]
    assert list(zip(frame.fit_status, frame.reason, strict=True)) == [
        ("ok", ""),
        ("skipped", "empty matrix: a 0x32 tensor has no eigenvalues"),
    ]
    assert ww_core.WeightWatcher(first).analyze().reason.iloc[1] == frame.reason.iloc[1]
    assert avg_dW == frame.delta_W.iloc[0]  # the mean over the one ok row, exactly


@pytest.mark.parametrize("layers", [["nothing"], [99], ["conv2d"]])
def test_distances_of_a_selection_matching_no_layer_are_an_empty_frame_as_analyze_gives(layers):
    """It raised KeyError: "None of ['layer_id'] are in the columns" (set_index on a frame without columns)."""
    first = {"a.weight": torch.from_numpy(heavy(64, 32, seed=1))}
    second = {"a.weight": torch.from_numpy(heavy(64, 32, seed=2))}
    assert ww_core.WeightWatcher(first).analyze(layers=layers).empty
    avg_dW, avg_db, frame = ww_core.WeightWatcher().distances(first, second, layers=layers)
    assert math.isnan(avg_dW) and math.isnan(avg_db)
    assert frame.empty and frame.index.name == "layer_id"
    assert list(frame.columns) == list(ww_core.WeightWatcher().distances(first, second)[2].columns)


def test_distances_of_layers_all_too_small_for_min_evals_are_an_empty_frame():
    """0.7.7 leaves out a layer of fewer than min_evals eigenvalues; with every layer left out, the same KeyError."""
    small = {"a.weight": torch.ones(6, 4)}
    avg_dW, _, frame = ww_core.WeightWatcher().distances(small, {"a.weight": torch.zeros(6, 4)})
    assert math.isnan(avg_dW) and frame.empty and "delta_W" in frame.columns


def test_distances_warn_of_the_layers_only_one_model_has(caplog):
    """A layer only in model_1 was left out with no notice, where `wwhub distance` says "N layers only in the model,
    not compared"; the notebook API logs the same sentence."""
    shared = {"a.weight": torch.from_numpy(heavy(64, 32, seed=1))}
    first = shared | {"head.weight": torch.from_numpy(heavy(40, 32, seed=2))}
    second = shared | {"pooler.weight": torch.from_numpy(heavy(32, 32, seed=3))}
    with caplog.at_level(logging.WARNING, logger="ww_core.watcher"):
        _, _, frame = ww_core.WeightWatcher().distances(first, second)
    assert list(frame.tensor) == ["a.weight"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "distances: 1 layers only in model_1, not compared: head.weight"),
        ("WARNING", "distances: 1 layers only in model_2, not compared: pooler.weight"),
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ww_core.watcher"):
        ww_core.WeightWatcher().distances(first, second, layers=["a"])
    assert not caplog.records  # what the selection leaves out is not unpaired


def test_erg_is_detx():
    W = heavy(300, 100, seed=16)
    frame = ww_core.WeightWatcher({"w.weight": torch.from_numpy(W)}).analyze(ERG=True)
    row = ww_core.analyze_matrix(W, detX=True)
    assert frame.iloc[0].num_ERG_spikes == frame.iloc[0].detX_num == row.detX_num
    assert frame.iloc[0].ERG_gap == row.detX_num - row.num_pl_spikes


def test_unfollowed_keywords_are_accepted():
    W = {"w.weight": torch.from_numpy(heavy(300, 100, seed=17))}
    frame = ww_core.WeightWatcher(W).analyze(max_N=10, min_size=1, max_size=5, svd_method="accurate", ww2x=False)
    assert frame.iloc[0].status == "success"  # max_N=10 would make weightwatcher drop the layer silently


def test_get_weights_of_an_integer_tensor_names_the_layer():
    """It raised ww_core's bare NotAWeightMatrix, which did not say which layer."""
    watcher = ww_core.WeightWatcher(
        {"a.weight": torch.from_numpy(heavy(64, 32)), "q.weight": torch.ones(64, 32, dtype=torch.int32)}
    )
    for layer in (2, "q"):
        with pytest.raises(ValueError) as raised:
            watcher.get_Weights(layer=layer)
        assert str(raised.value).startswith(f"layer={layer!r} ('q.weight') has no weight matrix: dtype torch.int32")


def test_log_level_sets_the_level_of_ww_cores_loggers_as_weightwatcher_sets_its_own(caplog):
    """It was accepted and unused; 0.7.7 calls setLevel on its logger with it."""
    import logging

    package = logging.getLogger("ww_core")
    before = package.level
    try:
        ww_core.WeightWatcher(log_level=logging.ERROR)
        assert package.level == logging.ERROR
        first = {"a.weight": torch.from_numpy(heavy(64, 32, seed=1)), "b.weight": torch.from_numpy(heavy(64, 32))}
        second = {"a.weight": torch.from_numpy(heavy(64, 32, seed=2))}
        with caplog.at_level(logging.NOTSET):
            ww_core.WeightWatcher().distances(first, second)
        assert not [r for r in caplog.records if r.name.startswith("ww_core")]  # the "only in model_1" warning
        ww_core.WeightWatcher(log_level=logging.WARNING)
        with caplog.at_level(logging.NOTSET):
            ww_core.WeightWatcher().distances(first, second)
        assert any("only in model_1" in r.getMessage() for r in caplog.records)
    finally:
        package.setLevel(before)
