"""``--layers`` (selection by id, type and name glob) and ``wwhub analyze --describe`` (local files and hub headers),
checked against weightwatcher 0.7.7's ``describe()`` on MiniLM."""

import json
from pathlib import Path

import numpy as np
import pytest

from flows.analysis.selection import LayerInfo, LayerSelection, SelectionError
from flows.cli import main
from tests.fakehub import write_model

REFERENCE = json.loads(
    (Path(__file__).parents[2] / "ww_core" / "data" / "weightwatcher_0.7.7_distances_smoothing.json").read_text()
)


def run_json(capsys, *argv):
    code = main([*argv, "--format", "json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else out)


def layers(*specs) -> list[LayerInfo]:
    return [LayerInfo(i, name, kind) for i, (name, kind) in enumerate(specs)]


MODEL = layers(
    ("embed.weight", "embedding"),
    ("block.0.attn.q.weight", "dense"),
    ("block.0.mlp.experts.3.down_proj.weight", "dense"),
    ("block.1.attn.q.weight", "dense"),
    ("lm_head.weight", "lm_head"),
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1,3", [1, 3]),
        ("-1,-3", [0, 2, 4]),
        ("-0", [1, 2, 3, 4]),
        ("dense", [1, 2, 3]),
        ("expert", [2]),
        ("embedding,lm_head", [0, 4]),
        ("*attn*", [1, 3]),
        ("block.0.*", [1, 2]),
        ("-*attn*", [0, 2, 4]),
        ("dense,-*experts*", [1, 3]),
        ("block.1.attn.q", [3]),  # WeightWatcher's names have no .weight suffix
        ("0,1,2,dense", [1, 2]),  # kinds combine with AND
    ],
)
def test_selection_terms(spec, expected):
    assert [layer.layer_id for layer in LayerSelection.parse(spec).select(MODEL)] == expected


def test_selection_errors_name_what_exists():
    with pytest.raises(SelectionError, match="not both"):
        LayerSelection.parse("1,-2")
    with pytest.raises(SelectionError) as err:
        LayerSelection.parse("conv2d").select(MODEL)
    assert "5 layers: ids 0-4, types dense, embedding, expert, lm_head" in str(err.value)
    assert LayerSelection.parse("").is_all and LayerSelection.parse(None).select(MODEL) == MODEL


def test_describe_lists_weightwatchers_layers_with_their_sizes(capsys):
    code, rows = run_json(capsys, "analyze", "--example", "minilm", "--describe")
    assert code == 0
    analyzed = {r["name"]: r for r in rows if r["status"] == "analyze"}
    expected = {r["tensor"]: r for r in REFERENCE["describe"]}
    assert set(analyzed) == set(expected)
    for name, row in expected.items():
        assert (analyzed[name]["N"], analyzed[name]["M"], analyzed[name]["num_evals"]) == (
            row["N"],
            row["M"],
            row["num_evals"],
        ), name
    skipped = {r["name"]: r["reason"] for r in rows if r["status"] == "skip"}
    # What WeightWatcher leaves out silently, we list with the reason; a buffer (position_ids) is no layer at all.
    assert skipped == {"embeddings.token_type_embeddings.weight": "2 eigenvalues < min_evals=8"}
    assert len(rows) == 40 and "embeddings.position_ids" not in {r["name"] for r in rows}
    assert all(r["dtype"] == "F32" for r in analyzed.values())


def test_describe_honours_options_and_selection(capsys):
    assert main(["analyze", "--example", "minilm", "--describe", "--layers=-*"]) == 2
    assert "selects no layer" in capsys.readouterr().err
    argv = ["analyze", "--example", "minilm", "--describe", "--max-evals", "100", "--layers", "0,3"]
    code, rows = run_json(capsys, *argv)
    assert code == 0 and [r["layer_id"] for r in rows] == [0, 3]
    assert rows[1]["status"] == "skip" and rows[1]["reason"].startswith("384 eigenvalues > max_evals=100")


def test_describe_a_hub_repo_reads_headers_only(fake_hub, tmp_path, capsys):
    rng = np.random.default_rng(0)
    tensors = {f"layers.{i}.weight": rng.standard_normal((512, 384)).astype(np.float32) for i in range(4)}
    tensors["layers.0.bias"] = np.zeros(96, np.float32)
    fake_hub.add_folder("acme/big", write_model(tmp_path / "big", tensors, shards=2))
    code, rows = run_json(capsys, "analyze", "acme/big", "--describe", "--endpoint", fake_hub.endpoint)
    assert code == 0
    assert [(r["name"], r["N"], r["M"], r["status"]) for r in rows] == [
        (f"layers.{i}.weight", 512, 384, "analyze") for i in range(4)
    ]
    weight_reads = [(m, p, r) for m, p, r in fake_hub.requests if m == "GET" and p.endswith(".safetensors")]
    assert weight_reads, "the headers are read from the shards"
    # Every read of a shard is a Range request for its header (huggingface_hub asks for the first 100 KB), far
    # smaller than the 1.5 MB of weights in each shard.
    for _, _, byte_range in weight_reads:
        start, end = (int(v) for v in byte_range.removeprefix("bytes=").split("-"))
        assert end - start <= 100_000


def test_describe_of_a_missing_repo_is_a_one_line_error(fake_hub, capsys):
    code = main(["analyze", "acme/nothing", "--describe", "--endpoint", fake_hub.endpoint])
    err = capsys.readouterr().err
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    assert main(["analyze", "no/such/path", "--describe"]) == 2


def test_analyze_with_layers_keeps_the_models_ids(capsys, tmp_path):
    code, rows = run_json(capsys, "analyze", "--example", "minilm", "--layers", "*layer.0.attention.self*")
    assert code == 0
    # Depth order (query, key, value as the forward pass uses them), the ids of the whole model.
    assert [(r["layer_id"], r["name"]) for r in rows] == [
        (3, "encoder.layer.0.attention.self.query.weight"),
        (4, "encoder.layer.0.attention.self.key.weight"),
        (5, "encoder.layer.0.attention.self.value.weight"),
    ]
    out = tmp_path / "rows.json"
    assert main(["analyze", "--example", "minilm", "--layers", "conv2d", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "selects no layer" in err and "types dense, embedding" in err and not out.exists()


def test_describe_a_pickled_checkpoint(tmp_path, capsys):
    import torch

    state = {"fc.weight": torch.ones(40, 20), "fc.bias": torch.ones(40), "idx": torch.zeros(4, 4, dtype=torch.int64)}
    torch.save(state, tmp_path / "pytorch_model.bin")
    code, rows = run_json(capsys, "analyze", str(tmp_path), "--describe")
    assert code == 0
    described = {r["name"]: (r["N"], r["M"], r["dtype"], r["status"]) for r in rows}
    assert described["fc.weight"] == (40, 20, "F32", "analyze")
    # A 2-D integer tensor is taken for quantized codes no decoder reads: one skipped row saying so.
    assert (
        described["idx"][2:] == ("I64", "skip")
        and "quantized" in rows[[r["name"] for r in rows].index("idx")]["reason"]
    )


# ---- --describe says what the analysis does ----------------------------------------------------------------------

CONV = "model.layers.0.conv.weight"
UP = "model.layers.{}.mlp.up_proj.weight"


def described_and_analyzed(capsys, folder, *options) -> tuple[dict, dict]:
    """(``--describe``'s rows, the analysis' rows) by name, with the same options."""
    from flows.analysis.model_analysis import analyze_path

    code, described = run_json(capsys, "analyze", str(folder), "--describe", *options)
    assert code == 0
    analysis_options = {"pool": "--no-pool" not in options}
    analyzed = {r["name"]: r for r in analyze_path(folder, analysis_options).records()}
    return {r["name"]: r for r in described}, analyzed


def test_describe_says_a_tensor_the_index_promises_but_the_shard_lacks_will_fail(tmp_path, capsys):
    """It was listed as 'a 0-D tensor is not analyzed'; the analysis gives a failed row naming the file."""
    from tests.flows.weights.helpers import heavy, write_checkpoint

    shard = "model-00001-of-00001.safetensors"
    folder = write_checkpoint(tmp_path / "m", {UP.format(0): heavy(64, 32), UP.format(1): heavy(64, 32)})
    (folder / "model.safetensors").rename(folder / shard)
    names = [UP.format(0), UP.format(1), UP.format(9)]
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, shard)}))
    described, analyzed = described_and_analyzed(capsys, folder)
    reason = f"{shard}: stored tensor '{UP.format(9)}' is not in the file (the index promised it)"
    assert (described[UP.format(9)]["status"], described[UP.format(9)]["reason"]) == ("fail", reason)
    assert (analyzed[UP.format(9)]["fit_status"], analyzed[UP.format(9)]["reason"]) == ("failed", reason)
    assert [described[name]["status"] for name in names[:2]] == ["analyze", "analyze"]
    assert main(["analyze", str(folder), "--describe"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary == f"{folder}: 3 layers, 2 to analyze, 0 skipped, 1 failing, 64 eigenvalues"


@pytest.mark.parametrize("pool", [True, False])
def test_describe_skips_a_conv_kernel_with_a_zero_size_axis_as_the_analysis_does(tmp_path, capsys, pool):
    """Unpooled, a (32, 16, 0, 3) kernel (no kernel position) was listed as analyzed with 16 eigenvalues."""
    from tests.flows.weights.helpers import heavy, write_checkpoint

    folder = write_checkpoint(tmp_path / "m", {CONV: np.zeros((32, 16, 0, 3), np.float32), UP.format(1): heavy(64, 32)})
    described, analyzed = described_and_analyzed(capsys, folder, *([] if pool else ["--no-pool"]))
    reason = "empty matrix: a 32x16x0x3 tensor has no eigenvalues"
    conv = described[CONV]
    assert (conv["status"], conv["reason"], conv["N"], conv["M"], conv["rf"], conv["num_evals"]) == (
        "skip",
        reason,
        32,
        16,
        0,
        0,
    )
    assert (analyzed[CONV]["fit_status"], analyzed[CONV]["reason"]) == ("skipped", reason)
    assert described[UP.format(1)]["status"] == "analyze"
