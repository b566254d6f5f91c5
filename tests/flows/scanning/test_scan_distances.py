"""Scans of fine-tunes whose cards name a base model fill the ``distances`` table, and ``finetune_drift`` ranks them:
a base and three fine-tunes on the fake hub, moved from the base by amounts known by construction."""

import numpy as np
import pytest

from flows.cli import main
from tests.fakehub import model_index, write_model
from tests.flows.scanning.helpers import lake_rows

SHAPES = {"embed.weight": (300, 48), "block.0.attn.weight": (48, 48), "block.0.mlp.weight": (192, 48)}
SHAPES["head.weight"] = (10, 48)
# Fine-tune → (noise scale relative to the weights' own scale, reported accuracy). tune-mid moves its MLP most.
TUNES = {"acme/tune-small": (0.01, 0.81), "acme/tune-mid": (0.05, 0.84), "acme/tune-big": (0.2, 0.70)}
BASE_ACCURACY = 0.80


def base_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {name: rng.standard_t(4, shape).astype(np.float32) for name, shape in SHAPES.items()}
    out["block.0.attn.bias"] = np.zeros(48, np.float32)
    return out


def tuned(base: dict, scale: float, seed: int, repo_id: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, w in base.items():
        boost = 10.0 if (repo_id == "acme/tune-mid" and name == "block.0.mlp.weight") else 1.0
        out[name] = (w + boost * scale * w.std() * rng.standard_normal(w.shape)).astype(np.float32)
    return out


@pytest.fixture
def finetunes(fake_hub, tmp_path):
    base = base_tensors()
    card = {"library_name": "pytorch", "model-index": model_index("acme/base", BASE_ACCURACY)}
    fake_hub.add_folder("acme/base", write_model(tmp_path / "base", base, shards=2, card=card))
    weights = {}
    for seed, (repo_id, (scale, accuracy)) in enumerate(TUNES.items(), start=1):
        weights[repo_id] = tuned(base, scale, seed, repo_id)
        card = {"base_model": "acme/base", "model-index": model_index(repo_id, accuracy)}
        folder = write_model(tmp_path / repo_id, weights[repo_id], shards=1 + seed % 3, card=card)
        fake_hub.add_folder(repo_id, folder)
    orphan = {"base_model": "acme/missing-base", "model-index": model_index("acme/tune-orphan", 0.5)}
    fake_hub.add_folder("acme/tune-orphan", write_model(tmp_path / "orphan", tuned(base, 0.1, 9, ""), card=orphan))
    return base, weights


def test_scan_fills_distances_and_finetune_drift_ranks_the_moves(fake_hub, finetunes, tmp_path, capsys):
    base, weights = finetunes
    lake = tmp_path / "lake"
    code = main(["scan", "--endpoint", fake_hub.endpoint, "--lake", str(lake), "--author", "acme", "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    heads = {repo_id: repo.head.sha for repo_id, repo in fake_hub.repos.items()}

    rows = lake_rows(lake, "SELECT * FROM distances ORDER BY repo_id, layer_id")
    assert {r["repo_id"] for r in rows} == set(TUNES)
    assert all(r["base_repo_id"] == "acme/base" and r["base_revision"] == heads["acme/base"] for r in rows)
    assert all(r["revision"] == heads[r["repo_id"]] for r in rows)
    for r in rows:
        w, b = weights[r["repo_id"]][r["name"]].astype(np.float64), base[r["name"]].astype(np.float64)
        # The stored float32 weights, differenced in float64 on both sides.
        assert r["relative_change"] == pytest.approx(np.linalg.norm(w - b) / np.linalg.norm(b), rel=1e-9)
        assert r["fit_status"] == "ok" and r["dW_rank"] == min(SHAPES[r["name"]])

    drift = lake_rows(lake, "SELECT * FROM finetune_drift")
    assert [d["repo_id"] for d in drift] == ["acme/tune-big", "acme/tune-mid", "acme/tune-small"]
    assert [d["rank_by_move"] for d in drift] == [1, 2, 3]
    by_repo = {d["repo_id"]: d for d in drift}
    assert by_repo["acme/tune-mid"]["top_layer"] == "block.0.mlp.weight"
    for repo_id, (_, accuracy) in TUNES.items():
        assert by_repo[repo_id]["delta_accuracy"] == pytest.approx(accuracy - BASE_ACCURACY, abs=1e-12)
    models = {m["repo_id"]: m for m in lake_rows(lake, "SELECT repo_id, alpha, status, reason FROM models")}
    for repo_id in TUNES:
        expected = models[repo_id]["alpha"] - models["acme/base"]["alpha"]
        assert by_repo[repo_id]["delta_alpha"] == pytest.approx(expected, rel=1e-12)
    moves = [d["mean_relative_change"] for d in drift]
    gains = [d["delta_accuracy"] for d in drift]
    assert drift[0]["r_move_accuracy"] == pytest.approx(np.corrcoef(moves, gains)[0, 1], rel=1e-9)
    assert drift[0]["n_with_accuracy"] == 3

    # A missing base is recorded with the model, which is still scanned; the scan goes on.
    assert models["acme/tune-orphan"]["status"] == "scanned"
    assert "no distances to base acme/missing-base" in models["acme/tune-orphan"]["reason"]
    assert "acme/tune-orphan" in out and "no distances to base" in out
    # The base is downloaded once for its own scan and once for all three fine-tunes, not once per fine-tune.
    base_gets = [p for m, p, r in fake_hub.requests if m == "GET" and "acme/base/resolve" in p and r is None]
    base_gets = [p for p in base_gets if p.endswith(".safetensors")]
    assert len(base_gets) == 2 * 2


def test_scan_with_layers_and_base_records_the_selection(fake_hub, finetunes, tmp_path, capsys):
    lake = tmp_path / "lake"
    argv = ["scan", "--endpoint", fake_hub.endpoint, "--lake", str(lake), "acme/tune-small", "acme/tune-orphan"]
    assert main([*argv, "--base", "acme/base", "--layers", "dense"]) == 0
    assert "summaries cover layers 'dense' only" in capsys.readouterr().out
    models = lake_rows(lake, "SELECT repo_id, layer_selection, num_layers FROM models ORDER BY repo_id")
    assert [(m["layer_selection"], m["num_layers"]) for m in models] == [("dense", 3), ("dense", 3)]
    names = {r["name"] for r in lake_rows(lake, "SELECT name FROM layers")}
    assert names == {"block.0.attn.weight", "block.0.mlp.weight", "head.weight"}  # not the embedding
    distances = lake_rows(lake, "SELECT repo_id, name FROM distances ORDER BY repo_id, name")
    # --base overrides each card's base_model (the orphan's missing one too).
    assert [(d["repo_id"], d["name"]) for d in distances] == [
        (repo_id, name) for repo_id in ("acme/tune-orphan", "acme/tune-small") for name in sorted(names)
    ]
    code = main([*argv, "--lake", str(tmp_path / "lake2"), "--layers", "conv2d"])
    assert code == 0 and "selects no layer" in capsys.readouterr().err


def test_a_subset_scan_does_not_stand_for_a_full_scan(fake_hub, finetunes, tmp_path, capsys):
    lake = tmp_path / "lake"
    argv = ["scan", "--endpoint", fake_hub.endpoint, "--lake", str(lake), "--no-distances", "acme/tune-small"]

    def scanned() -> list[tuple[str, int]]:
        rows = lake_rows(lake, "SELECT layer_selection, num_layers FROM models")
        return [(m["layer_selection"], m["num_layers"]) for m in rows]

    assert main([*argv, "--layers", "dense"]) == 0
    assert scanned() == [("dense", 3)]
    capsys.readouterr()
    assert main([*argv, "--layers", "dense"]) == 0  # the same selection again: already in the lake
    assert "skipped 1 (already in the lake)" in capsys.readouterr().out
    assert main(argv) == 0  # every layer: the subset does not count, the model is scanned whole
    assert "scanned 1, skipped 0 (already in the lake)" in capsys.readouterr().out
    assert scanned() == [("", 4)]
    assert len(lake_rows(lake, "SELECT name FROM layers")) == 4
    assert main([*argv, "--layers", "dense"]) == 0  # a full scan stands for any subset: nothing is replaced
    assert "skipped 1 (already in the lake)" in capsys.readouterr().out
    assert scanned() == [("", 4)]
