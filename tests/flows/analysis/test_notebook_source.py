"""``ww_core.WeightWatcher(PATH)``: a model read through flows.analysis.notebook_source (the ``ww_core.sources`` entry
point) gives
``wwhub analyze``'s rows, numbered in depth order from ``start_ids``; the whole-model options read its matrices."""

import json
import logging
import math
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

import ww_core
from flows.analysis.model_analysis import analyze_path
from flows.cli import main
from flows.weights import WeightsError


def heavy(n, m, seed):
    return (np.random.default_rng(seed).standard_t(3, size=(n, m)) / np.sqrt(n)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "model"
    path.mkdir()
    tensors = {"layers.0.up.weight": heavy(160, 80, 1), "layers.0.down.weight": heavy(80, 160, 2)}
    tensors["embed.weight"] = heavy(300, 80, 3)
    save_file(tensors, str(path / "model.safetensors"))
    return path


def test_a_folder_gives_the_rows_of_wwhub_analyze(folder):
    frame = ww_core.WeightWatcher(str(folder)).analyze(start_ids=1)
    cli = {row.name: row for row in analyze_path(folder, {}).rows}
    assert list(frame.tensor) == sorted(cli, key=lambda name: cli[name].layer_id)
    for record in frame.to_dict("records"):
        expected = cli[record["tensor"]]
        assert record["layer_id"] == expected.layer_id + 1
        assert record["alpha"] == pytest.approx(expected.alpha, rel=1e-12)
        assert record["name"] == record["tensor"].removesuffix(".weight")


def test_whole_model_options_read_the_matrices(folder):
    watcher = ww_core.WeightWatcher(str(folder))
    intra = watcher.analyze(intra=True, sparsify=False)
    assert len(intra) == 2 and intra.Xflag.all()
    stacked = watcher.analyze(stacked=True)
    assert (stacked.N.iloc[0], stacked.M.iloc[0]) == (300 + 160 + 80, 160)
    esd = watcher.get_ESD(layer="layers.0.up")
    assert esd.size == 80 and esd[-1] == pytest.approx(np.linalg.svd(heavy(160, 80, 1), compute_uv=False)[0] ** 2)
    smoothed = watcher.SVDSmoothing(method="svd", percent=0.5, svd_method="exact")
    assert set(smoothed) == {"embed.weight", "layers.0.up.weight", "layers.0.down.weight"}
    assert np.linalg.matrix_rank(smoothed["layers.0.up.weight"]) == 40


def test_cli_base_model_analyzes_the_update(folder, tmp_path, capsys):
    base = tmp_path / "base"
    base.mkdir()
    save_file({name: np.zeros_like(t) for name, t in _tensors(folder).items()}, str(base / "model.safetensors"))
    assert main(["analyze", str(folder), "--base-model", str(base), "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    direct = {r.name: r for r in analyze_path(folder, {}).rows}
    assert rows["embed.weight"]["alpha"] == pytest.approx(direct["embed.weight"].alpha, rel=1e-9)


def _tensors(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="no such file or folder"):
        ww_core.WeightWatcher(str(tmp_path / "nowhere")).analyze()


def test_a_truncated_shard_is_an_error_of_every_call_that_reads_it_not_a_skipped_layer(folder):
    """Only a matrix whose stored values show it cannot be decoded honestly is skipped in the notebook: a file that
    cannot be read raises."""
    shard = folder / "model.safetensors"
    os.truncate(shard, shard.stat().st_size - 100)
    watcher = ww_core.WeightWatcher(str(folder))
    for call in (
        lambda: watcher.get_ESD(layer=0),
        watcher.SVDSmoothing,
        lambda: watcher.distances(str(folder), str(folder)),
    ):
        with pytest.raises(WeightsError, match="truncated"):
            call()


PROMISED = ["layers.0.up.weight", "layers.1.up.weight", "layers.9.up.weight"]  # the last one not in the shard


def _promising_more_than_its_shard_holds(tmp_path):
    shard = "model-00001-of-00001.safetensors"
    path = tmp_path / "model"
    path.mkdir()
    save_file({PROMISED[0]: heavy(64, 32, 1), PROMISED[1]: heavy(64, 32, 2)}, str(path / shard))
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(PROMISED, shard)}))
    return path, shard


def test_describe_says_a_tensor_the_index_promises_but_the_shard_lacks_will_fail(tmp_path, capsys):
    """describe() listed it as a skipped 'a 0-D tensor is not analyzed'; `wwhub analyze --describe` and the analysis
    fail it naming the file."""
    path, shard = _promising_more_than_its_shard_holds(tmp_path)
    names = PROMISED
    reason = f"{shard}: stored tensor '{names[2]}' is not in the file (the index promised it)"
    watcher = ww_core.WeightWatcher(str(path))
    described = {row["tensor"]: row for row in watcher.describe().to_dict("records")}
    assert [(described[name]["status"], described[name]["reason"]) for name in names] == [
        ("analyze", ""),
        ("analyze", ""),
        ("fail", reason),
    ]
    analyzed = {row["tensor"]: row for row in watcher.analyze().to_dict("records")}
    assert (analyzed[names[2]]["fit_status"], analyzed[names[2]]["reason"]) == ("failed", reason)
    assert main(["analyze", str(path), "--describe", "--format", "json"]) == 0
    cli = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert [(cli[name]["status"], cli[name]["reason"]) for name in names] == [
        (described[name]["status"], described[name]["reason"]) for name in names
    ]


def test_whole_model_options_read_the_matrices_a_shard_holds_when_its_index_promises_more(tmp_path):
    """The reader was asked for the missing tensor: intra, stacked and SVDSmoothing raised a bare KeyError."""
    path, _ = _promising_more_than_its_shard_holds(tmp_path)
    watcher = ww_core.WeightWatcher(str(path))
    intra = watcher.analyze(intra=True, sparsify=False)
    assert list(intra.name) == ["0 X 1 "] and intra.Xflag.all()
    stacked = watcher.analyze(stacked=True)
    assert (stacked.N.iloc[0], stacked.M.iloc[0]) == (64 + 64, 32)
    smoothed = watcher.SVDSmoothing(method="svd", percent=0.5, svd_method="exact")
    assert set(smoothed) == set(PROMISED[:2])


def test_get_esd_and_get_weights_of_a_layer_without_a_matrix_say_why(tmp_path):
    """They raised a bare StopIteration: the reader gives no matrix for a layer the analysis fails (a tensor the
    index promises but its shard lacks) or skips (integer weights no decoder reads)."""
    path, shard = _promising_more_than_its_shard_holds(tmp_path)
    failed = ww_core.WeightWatcher(str(path))
    reason = f"{shard}: stored tensor '{PROMISED[2]}' is not in the file (the index promised it)"
    for call in (failed.get_ESD, failed.get_Weights):
        with pytest.raises(ValueError) as raised:
            call(layer=2)
        assert str(raised.value) == f"layer=2 ('{PROMISED[2]}') has no weight matrix: the analysis fails it: {reason}"
    skipped_path = tmp_path / "int"
    skipped_path.mkdir()
    integers = np.zeros((64, 32), np.int32)
    save_file({"a.weight": heavy(64, 32, 1), "b.weight": integers}, str(skipped_path / "w.safetensors"))
    skipped = ww_core.WeightWatcher(str(skipped_path))
    for call in (skipped.get_ESD, skipped.get_Weights):
        with pytest.raises(ValueError) as raised:
            call(layer="b")
        assert str(raised.value) == (
            "layer='b' ('b') has no weight matrix: the analysis skips it: "
            "quantized weights (weight I32) that no decoder reads"
        )


def test_get_esd_of_an_id_or_name_no_layer_has_is_empty_and_logs_the_ids_there_are(folder, caplog):
    """As weightwatcher 0.7.7 answers a layer= it cannot find: [] and an error in the log (ours raised ValueError;
    'dense', a layer type no layer is named after, gave layers.0.down's eigenvalues)."""
    watcher = ww_core.WeightWatcher(str(folder))
    ids = "its 3 layers have ids 0 to 2 (0 'embed', 1 'layers.0.down', 2 'layers.0.up')"
    for layer, why in (
        (3, ""),
        (-1, ""),
        ("dense", " ('dense' is a layer type: analyze(layers=['dense']) selects by type)"),
    ):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="ww_core.watcher"):
            assert watcher.get_ESD(layer=layer) == []
        assert [r.getMessage() for r in caplog.records] == [f"layer={layer!r} is not a layer of the model{why}: {ids}"]


def test_distances_from_a_base_whose_shard_lacks_a_promised_tensor_name_it(tmp_path):
    """It raised a bare KeyError: the base's reader gives no matrix for the tensor."""
    base, shard = _promising_more_than_its_shard_holds(tmp_path)
    model = tmp_path / "tuned"
    model.mkdir()
    save_file({name: heavy(64, 32, seed) for seed, name in enumerate(PROMISED)}, str(model / "model.safetensors"))
    reason = f"{shard}: stored tensor '{PROMISED[2]}' is not in the file (the index promised it)"
    with pytest.raises(ValueError) as raised:
        ww_core.WeightWatcher().distances(str(model), str(base))
    assert str(raised.value) == (
        f"model_2 has no weight matrix for layer 2 ('{PROMISED[2]}'): the analysis fails it: {reason}"
    )
    avg_dW, _, frame = ww_core.WeightWatcher().distances(str(model), str(base), layers=[0, 1])
    assert list(frame.tensor) == PROMISED[:2] and list(frame.fit_status) == ["ok", "ok"]


def test_distances_of_a_model_whose_shard_lacks_a_promised_tensor_give_it_a_failed_row(tmp_path):
    """The layer was left out with no row and no notice; `wwhub distance` and analyze() fail it with this reason."""
    model, shard = _promising_more_than_its_shard_holds(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    save_file({name: heavy(64, 32, seed) for seed, name in enumerate(PROMISED)}, str(base / "model.safetensors"))
    avg_dW, _, frame = ww_core.WeightWatcher().distances(str(model), str(base))
    reason = f"{shard}: stored tensor '{PROMISED[2]}' is not in the file (the index promised it)"
    assert list(frame.tensor) == PROMISED and list(frame.index) == [0, 1, 2]
    assert list(zip(frame.fit_status, frame.reason, strict=True)) == [("ok", ""), ("ok", ""), ("failed", reason)]
    assert math.isnan(frame.delta_W[2])
    # avg_dW is the mean over ok rows: the same two numbers summed in the same order.
    assert avg_dW == frame.delta_W[[0, 1]].mean()
