"""``wwhub smooth`` / ``wwhub sharpen``: the written checkpoint against weightwatcher 0.7.7's SVDSmoothing on MiniLM,
its layout against the input (read back with the safetensors library), re-analysis, and bad input."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

import ww_core
from flows.analysis.examples import example_path
from flows.cli import main
from tests.fakehub import write_model
from tests.ww_core.cases import sketch

REFERENCE = json.loads(
    (Path(__file__).parents[2] / "ww_core" / "data" / "weightwatcher_0.7.7_distances_smoothing.json").read_text()
)
EMBEDDING = "embeddings.word_embeddings.weight"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def smoothed_minilm(tmp_path_factory):
    """MiniLM smoothed with WeightWatcher's solver; the word embedding left out (selection) to keep this quick:
    tests/ww_core/test_smoothing.py checks it."""
    source = example_path("minilm")
    before = digest(source)
    out = tmp_path_factory.mktemp("smooth") / "minilm-smoothed"
    argv = ["smooth", str(source), "--out", str(out), "--svd-solver", "randomized", f"--layers=-{EMBEDDING}"]
    assert main([*argv, "--format", "json", "--report", str(out.parent / "report.json")]) == 0
    assert digest(source) == before, "the input is never touched"
    return source, out, json.loads((out.parent / "report.json").read_text())


def test_written_layers_equal_weightwatchers_smoothing(smoothed_minilm):
    source, out, report = smoothed_minilm
    written = load_file(str(out / "model.safetensors"))
    expected = REFERENCE["smoothing"]["minilm/detX"]["layers"]
    kept = {row["name"]: row["kept"] for row in report}
    checked = 0
    for name, ref in expected.items():
        if name == EMBEDDING or not ref["changed"]:
            continue
        theirs = np.array(ref["sketch"])
        # float64 smoothing rounded to the checkpoint's float32: 6e-8 relative, inside 1e-6.
        assert np.linalg.norm(sketch(written[name]) - theirs) <= 1e-6 * np.linalg.norm(theirs), name
        assert kept[name] == ref["rank"]
        checked += 1
    assert checked == 38


def test_layout_is_the_inputs_and_untouched_tensors_are_byte_identical(smoothed_minilm):
    source, out, _ = smoothed_minilm
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in source.iterdir())
    with safe_open(str(source / "model.safetensors"), "np") as a, safe_open(str(out / "model.safetensors"), "np") as b:
        assert list(a.keys()) == list(b.keys()) and a.metadata() == b.metadata()
        for name in a.keys():
            x, y = a.get_tensor(name), b.get_tensor(name)
            assert x.dtype == y.dtype and x.shape == y.shape, name
            if name == EMBEDDING or x.ndim < 2 or name == "embeddings.token_type_embeddings.weight":
                assert np.array_equal(x, y), name


def test_reanalysis_shows_no_eigenvalue_past_the_kept_rank(smoothed_minilm):
    _, out, report = smoothed_minilm
    kept = {row["name"]: row["kept"] for row in report if row["status"] == "ok"}
    rows = {r.name: r for r in ww_core.analyze_model(load_file(str(out / "model.safetensors")).items())}
    for name, k in kept.items():
        # The numerical rank of the smoothed matrix is the kept rank; before, every layer had full rank (384).
        assert rows[name].matrix_rank == k < rows[name].M, name


def test_sharpen_bf16_sharded_copy_keeps_dtypes_and_index(tmp_path, capsys):
    rng = np.random.default_rng(0)
    tensors = {f"layers.{i}.weight": rng.standard_t(2.2, (200, 80)) / 10 for i in range(3)}
    tensors["layers.0.bias"] = np.zeros(200)
    source = write_model(tmp_path / "m", tensors, shards=2, dtype="bfloat16", card={"library_name": "pytorch"})
    before = digest(source)
    out = tmp_path / "sharp"
    assert main(["sharpen", str(source), "--out", str(out), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert digest(source) == before
    assert (out / "model.safetensors.index.json").read_text() == (source / "model.safetensors.index.json").read_text()
    assert (out / "README.md").exists()
    removed = {r["name"]: r["removed"] for r in report if r["status"] == "ok"}
    assert removed, "heavy-tailed layers have spikes that survive shuffling"
    for shard in sorted(source.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as a, safe_open(str(out / shard.name), "pt") as b:
            for name in a.keys():
                x, y = a.get_tensor(name), b.get_tensor(name)
                assert x.dtype == y.dtype and x.shape == y.shape
                if name in removed:
                    original = np.linalg.svd(x.double().numpy(), compute_uv=False)
                    # W minus its top k components: its largest singular value is W's (k+1)-th, up to bf16 rounding.
                    top = np.linalg.svd(y.double().numpy(), compute_uv=False)[0]
                    assert top == pytest.approx(original[removed[name]], rel=2e-2)
                else:
                    assert x.equal(y)


def test_bad_input_writes_nothing(tmp_path, capsys):
    source = write_model(tmp_path / "m", {"w.weight": np.ones((20, 10))})
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("keep")
    cases = [
        (["smooth", str(source), "--out", str(taken)], "not an empty folder"),
        (["smooth", str(source), "--out", str(source / "inside")], "inside the input folder"),
        (["smooth", str(tmp_path / "nothing"), "--out", str(tmp_path / "o1")], "no such file"),
        (["smooth", str(source), "--out", str(tmp_path / "o2"), "--layers", "conv2d"], "selects no layer"),
        (["smooth", str(source), "--out", str(tmp_path / "o3"), "--method", "svd", "--percent", "2"], "--percent"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err
    assert (taken / "x").read_text() == "keep" and list(taken.iterdir()) == [taken / "x"]
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3)) and not (source / "inside").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_layer_with_nan_is_copied_unchanged_and_exit_is_1(tmp_path, capsys):
    rng = np.random.default_rng(3)
    broken = rng.standard_t(3, (120, 60))
    broken[0, 0] = np.nan
    source = write_model(tmp_path / "m", {"a.weight": broken, "b.weight": rng.standard_t(3, (120, 60))})
    out = tmp_path / "out"
    assert main(["smooth", str(source), "--out", str(out), "--format", "json"]) == 1
    report = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert report["a.weight"]["status"] == "failed" and "NaN" in report["a.weight"]["reason"]
    assert report["b.weight"]["status"] == "ok"
    written, original = load_file(str(out / "model.safetensors")), load_file(str(source / "model.safetensors"))
    assert np.array_equal(written["a.weight"], original["a.weight"], equal_nan=True)
    assert not np.array_equal(written["b.weight"], original["b.weight"])
