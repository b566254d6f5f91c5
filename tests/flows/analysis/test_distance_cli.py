"""``wwhub distance MODEL BASE`` on local folders and hub repos: agreement with weightwatcher 0.7.7, sharding that
differs between the two models, and bad input (different architectures, a corrupt shard, an empty selection)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import ww_core
from flows.cli import main
from tests.fakehub import write_model

DEMO = Path(__file__).parents[3] / "flows" / "demo" / "repos" / "wwhub-demo"
REFERENCE = json.loads(
    (Path(__file__).parents[2] / "ww_core" / "data" / "weightwatcher_0.7.7_distances_smoothing.json").read_text()
)


def run_json(capsys, *argv):
    code = main(["distance", *argv, "--format", "json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def tensors(seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(0)
    out = {
        "embed.weight": base.standard_normal((200, 32)),
        "block.0.attn.weight": base.standard_normal((32, 32)),
        "block.0.attn.bias": base.standard_normal(32),
        "block.0.mlp.weight": base.standard_normal((128, 32)),
        "head.weight": base.standard_normal((10, 32)),
    }
    return {k: (v + shift * rng.standard_normal(v.shape)).astype(np.float32) for k, v in out.items()}


@pytest.mark.parametrize("method", ["euclidean", "cka"])
def test_demo_pair_agrees_with_weightwatcher(capsys, method):
    code, rows, _ = run_json(capsys, str(DEMO / "digits-mlp-bs8"), str(DEMO / "digits-mlp-bs1024"), "--method", method)
    assert code == 0
    expected = REFERENCE["distances"]["demo/digits-mlp-bs8~digits-mlp-bs1024"][f"{method}/float64"]["layers"]
    assert [r["name"] for r in rows] == [r["tensor"] for r in expected]
    for row, ref in zip(rows, expected, strict=True):
        # float64 on both sides (see tests/ww_core/test_distances.py): 1e-6 relative.
        assert row["delta_W"] == pytest.approx(ref["delta_W"], rel=1e-6)
        assert row["fit_status"] == "ok" and row["dW_rank"] > 0


def test_hub_models_with_different_sharding_give_the_local_numbers(fake_hub, tmp_path, capsys):
    base = write_model(tmp_path / "base", tensors(1), shards=1)
    tuned = write_model(tmp_path / "tuned", tensors(2, shift=0.05), shards=3)
    fake_hub.add_folder("acme/base", base)
    fake_hub.add_folder("acme/tuned", tuned)
    code, local, _ = run_json(capsys, str(tuned), str(base))
    assert code == 0
    code, hub, _ = run_json(capsys, "acme/tuned", "acme/base", "--endpoint", fake_hub.endpoint)
    assert code == 0
    assert [r["name"] for r in hub] == ["embed.weight", "block.0.attn.weight", "block.0.mlp.weight", "head.weight"]
    for a, b in zip(hub, local, strict=True):
        assert a["delta_W"] == b["delta_W"] and a["dW_alpha"] == b["dW_alpha"]  # the same bytes, the same code
    # Each shard of each model is downloaded once (the base's single shard serves every layer).
    gets = [p for m, p, r in fake_hub.requests if m == "GET" and p.endswith(".safetensors") and r is None]
    assert sorted(gets) == sorted(set(gets)) and len(gets) == 4


def test_a_new_head_is_noted_and_the_rest_compared(tmp_path, capsys):
    base = write_model(tmp_path / "base", tensors(1))
    tuned_tensors = tensors(2, shift=0.01)
    tuned_tensors["classifier.weight"] = np.ones((3, 32), np.float32)
    tuned = write_model(tmp_path / "tuned", tuned_tensors)
    code, rows, err = run_json(capsys, str(tuned), str(base))
    assert code == 0 and len(rows) == 4
    assert "1 layers only in the model, not compared: classifier.weight" in err


@pytest.mark.parametrize("spectrum", [[], ["--no-spectrum"]])
def test_a_0_size_tensor_is_a_skipped_row_as_in_the_notebook_api(tmp_path, capsys, spectrum):
    """It was an ok row of delta_W 0.0 (with the spectrum, an internal error); distances() skipped it."""
    empty = {"z.weight": np.zeros((0, 32), np.float32)}
    base = write_model(tmp_path / "base", tensors(1) | empty)
    tuned = write_model(tmp_path / "tuned", tensors(2, shift=0.01) | empty)
    code, rows, _ = run_json(capsys, str(tuned), str(base), "--method", "raw", *spectrum)
    assert code == 0
    row = next(r for r in rows if r["name"] == "z.weight")
    reason = "empty matrix: a 0x32 tensor has no eigenvalues"
    assert (row["fit_status"], row["reason"], row["N"], row["M"], row["delta_W"]) == ("skipped", reason, 32, 0, None)
    _, _, frame = ww_core.WeightWatcher().distances(str(tuned), str(base))
    notebook = frame[frame.tensor == "z.weight"].iloc[0]
    assert (notebook.fit_status, notebook.reason, notebook.N, notebook.M) == ("skipped", reason, 32, 0)
    assert math.isnan(notebook.delta_W)


def test_different_architectures_name_the_first_mismatched_layers(tmp_path, capsys):
    out = tmp_path / "rows.json"
    code = main(["distance", str(DEMO / "digits-mlp-bs8"), str(DEMO / "digits-mlp-w64"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "differ in architecture: 3 of 3 layers do not match" in err
    assert "layers.0.weight: [256, 64] vs base [64, 64]" in err and len(err.strip().splitlines()) == 1


def test_corrupt_shard_gives_failed_rows_and_exit_1(tmp_path, capsys):
    base = write_model(tmp_path / "base", tensors(1))
    tuned = write_model(tmp_path / "tuned", tensors(2, shift=0.01), shards=2)
    shard = tuned / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    code, rows, err = run_json(capsys, str(tuned), str(base))
    assert code == 1
    assert {r["fit_status"] for r in rows} == {"ok", "failed"}
    failed = [r for r in rows if r["fit_status"] == "failed"]
    assert all("truncated" in r["reason"] for r in failed) and "truncated" in err


def model_promising_a_tensor_it_lacks(folder, weights: dict, missing: str):
    """A 2-shard model whose index maps ``missing`` to its first shard, which does not hold it."""
    model = write_model(folder, {k: v for k, v in weights.items() if k != missing}, shards=2)
    index_path = model / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"][missing] = "model-00001-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    return model


def test_a_tensor_the_index_promises_but_the_models_shard_lacks_fails_with_the_analysis_reason(tmp_path, capsys):
    """It failed as 'cannot decode ...: stored tensor ... is not in the model's shard', a reason of its own."""
    base = write_model(tmp_path / "base", tensors(1))
    tuned = model_promising_a_tensor_it_lacks(tmp_path / "tuned", tensors(2, shift=0.01), "block.0.mlp.weight")
    code, rows, _ = run_json(capsys, str(tuned), str(base))
    assert code == 1
    by_name = {r["name"]: (r["fit_status"], r["reason"]) for r in rows}
    reason = "stored tensor 'block.0.mlp.weight' is not in the file (the index promised it)"
    assert by_name.pop("block.0.mlp.weight") == ("failed", f"model-00001-of-00002.safetensors: {reason}")
    assert by_name == {name: ("ok", "") for name in ["embed.weight", "block.0.attn.weight", "head.weight"]}


def test_a_tensor_the_index_promises_but_the_bases_shard_lacks_is_named_as_not_in_the_base(tmp_path, capsys):
    """The architecture error read 'block.0.mlp.weight: [128, 32] vs base []'."""
    tuned = write_model(tmp_path / "tuned", tensors(2, shift=0.01))
    base = model_promising_a_tensor_it_lacks(tmp_path / "base", tensors(1), "block.0.mlp.weight")
    code, rows, err = run_json(capsys, str(tuned), str(base))
    assert code == 2 and rows is None
    shard = "model-00001-of-00002.safetensors"
    lacks = f"{shard}: stored tensor 'block.0.mlp.weight' is not in the file (the index promised it)"
    assert err == (
        f"wwhub distance: error: {tuned} and {base} differ in architecture: 1 of 4 layers do not match; "
        f"first: block.0.mlp.weight: not in the base ({lacks})\n"
    )


def test_selection_and_missing_inputs_are_bad_usage(tmp_path, capsys):
    base = write_model(tmp_path / "base", tensors(1))
    code, rows, err = run_json(capsys, str(base), str(base), "--layers", "conv2d")
    assert code == 2 and "selects no layer" in err and rows is None
    code, rows, _ = run_json(capsys, str(base), str(base), "--layers", "embedding")
    assert code == 0 and [r["name"] for r in rows] == ["embed.weight"] and rows[0]["delta_W"] == 0.0
    code, _, err = run_json(capsys, str(base), str(tmp_path / "missing"))
    assert code == 2 and "not a hub repo id" in err
