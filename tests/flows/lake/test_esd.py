"""ESD storage: the tail kept is exactly the fitted tail, the sketch is numpy's quantiles of the rest, a refit from
the stored tail gives the stored alpha, and the ESD plot works from either storage and says which (or, for a layer
without one, why: no such layer, --esd none, or its fit)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import ww_core
from flows.cli import main
from flows.lake import Lake
from flows.lake.esd import SKETCH_POINTS, TAIL_CAP, eigenvalues, esd_row
from flows.leaderboard.render import write_esd_plot

KEY = dict(repo_id="org/m", revision="r1", family="fam")


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(4)
    W = rng.standard_t(3, (600, 300))
    return ww_core.analyze_matrix(W, name="w", keep_evals=True, randomize=True, seed=0)


def test_tail_is_exactly_the_fitted_tail_and_refits_to_the_stored_alpha(layer):
    row = esd_row(KEY, layer, "tail")
    evals = np.sort(np.asarray(layer.evals))
    expected_tail = evals[evals >= layer.xmin]
    assert 0 < expected_tail.size <= TAIL_CAP
    assert row["evals"] == expected_tail.tolist()  # exact: the same float64 values
    assert row["num_evals"] == evals.size == 300
    # Continuous power-law MLE (Clauset, Shalizi & Newman 2009, eq. 3.1) on the stored tail: alpha = 1 + n / sum
    # ln(x / xmin). ww_core's small-sample correction applies below 20 eigenvalues only; this tail is larger.
    tail = np.asarray(row["evals"])
    refit = 1 + tail.size / np.sum(np.log(tail / layer.xmin))
    assert refit == pytest.approx(layer.alpha, rel=1e-9)  # summation order only
    bulk = evals[evals < layer.xmin]
    assert row["bulk_quantiles"] == pytest.approx(np.quantile(bulk, np.linspace(0, 1, SKETCH_POINTS)), rel=1e-15)
    assert row["rand_bulk_quantiles"][-1] == pytest.approx(float(np.max(layer.rand_evals)), rel=1e-15)
    assert row.get("rand_evals") is None


def test_full_keeps_every_eigenvalue_and_none_keeps_nothing(layer):
    row = esd_row(KEY, layer, "full")
    assert row["evals"] == np.asarray(layer.evals).tolist() and row["storage"] == "full"
    assert esd_row(KEY, layer, "none") is None
    with pytest.raises(ValueError, match="expected one of tail, full, none"):
        esd_row(KEY, layer, "most")


def test_reconstruction_from_the_sketch_keeps_the_tail_and_the_bulk_quantiles(layer):
    values, rand, note = eigenvalues(esd_row(KEY, layer, "tail"))
    evals = np.sort(np.asarray(layer.evals))
    assert values.size == evals.size
    in_tail = np.count_nonzero(evals >= layer.xmin)
    assert np.array_equal(np.sort(values)[-in_tail:], evals[-in_tail:])  # the tail: the stored, exact values
    # The bulk spread over its sketch starts and ends where the real bulk does and has the stored quantiles.
    bulk = np.sort(values)[:-in_tail]
    assert bulk[0] == evals[0] and bulk[-1] == pytest.approx(evals[evals < layer.xmin][-1], rel=1e-15)
    sketch = np.quantile(bulk, np.linspace(0, 1, SKETCH_POINTS))
    real = np.quantile(evals[:-in_tail], np.linspace(0, 1, SKETCH_POINTS))
    # np.interp at evenly spaced probabilities reproduces the sketch up to one interpolation step of the bulk.
    assert sketch == pytest.approx(real, rel=0.05)
    assert "tail exact" in note and rand is not None


@pytest.mark.parametrize("storage, said", [("tail", "tail exact"), ("full", "full ESD")])
def test_esd_plot_from_either_storage_says_which(tmp_path, layer, storage, said):
    lake = Lake.for_writing(tmp_path / "lake")
    model = dict(KEY, status="scanned")
    layer_row = dict(KEY, **layer.as_row())
    lake.commit_model("org/m", "r1", {"layers": [layer_row], "esd": [esd_row(KEY, layer, storage)], "models": [model]})
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, so the title can be read back
        paths = write_esd_plot(lake.root, "org/m", "w", tmp_path / "plots")
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert said in svg
    assert next(p for p in paths if p.suffix == ".png").stat().st_size > 10_000


def test_esd_plot_of_a_rank_one_layer_has_no_zero_width_bins(tmp_path):
    # Its ESD holds one non-zero eigenvalue (the null space is zero): equal histogram edges warned of 0/0 densities.
    import warnings

    rng = np.random.default_rng(7)
    layer = ww_core.analyze_matrix(
        np.outer(rng.standard_normal(300), rng.standard_normal(120)), name="w", keep_evals=True, randomize=True, seed=0
    )
    lake = Lake.for_writing(tmp_path / "lake")
    rows = {"layers": [dict(KEY, **layer.as_row())], "esd": [esd_row(KEY, layer, "full")]}
    lake.commit_model("org/m", "r1", rows | {"models": [dict(KEY, status="scanned")]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_esd_plot(lake.root, "org/m", "w", tmp_path / "plots")
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _two_layer_lake(root, layer, esd: bool, third=None) -> Lake:
    """org/m with layers 0 and 1 (named w0, w1) analyzed, their ESDs stored unless ``esd`` is False; ``third``:
    one more layer row (and no ESD) added."""
    lake = Lake.for_writing(root)
    layers = [dict(KEY, **layer.as_row()) | {"layer_id": i, "name": f"w{i}"} for i in range(2)]
    tables = {"layers": layers + ([dict(KEY, **third)] if third else []), "models": [dict(KEY, status="scanned")]}
    if esd:
        tables["esd"] = [esd_row(KEY, layer, "tail") | {"layer_id": i, "name": f"w{i}"} for i in range(2)]
    lake.commit_model("org/m", "r1", tables)
    return lake


def plot_error(lake, capsys, *esd) -> str:
    """The one line ``wwhub plot --esd`` exits 2 with."""
    assert main(["plot", "--lake", str(lake.root), "--out", str(lake.root.parent / "plots"), "--esd", *esd]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def test_esd_plot_of_a_layer_the_repo_does_not_have_lists_the_layers_it_has(tmp_path, capsys, layer):
    lake = _two_layer_lake(tmp_path / "lake", layer, esd=True)
    assert plot_error(lake, capsys, "org/m", "99") == (
        "wwhub plot: error: org/m has no layer_id 99 in the lake: its layer ids are 0-1"
    )
    assert plot_error(lake, capsys, "org/m", "w9") == (
        "wwhub plot: error: org/m has no layer 'w9' in the lake: its layer ids are 0-1"
    )
    assert (
        plot_error(lake, capsys, "org/other", "0") == "wwhub plot: error: org/other has no scanned layers in the lake"
    )


def test_esd_plot_says_esd_none_only_when_the_repo_has_no_stored_esd(tmp_path, capsys, layer):
    lake = _two_layer_lake(tmp_path / "none", layer, esd=False)
    assert plot_error(lake, capsys, "org/m", "1") == (
        "wwhub plot: error: no eigenvalues of org/m in the lake (scanned with --esd none?)"
    )
    skipped = dict(layer_id=5, name="w5", N=0, M=0, fit_status="skipped", reason="empty matrix")
    lake = _two_layer_lake(tmp_path / "tail", layer, esd=True, third=skipped)
    assert plot_error(lake, capsys, "org/m", "5") == (
        "wwhub plot: error: no eigenvalues of org/m layer_id 5 in the lake: its fit was skipped (empty matrix)"
    )
    assert plot_error(lake, capsys, "org/m", "3") == (
        "wwhub plot: error: org/m has no layer_id 3 in the lake: its layer ids are 0-1, 5"
    )
