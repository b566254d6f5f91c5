"""Hostile content: files and cards made to exhaust memory or escape a folder are refused before any harm, with a
reason naming the file; nothing is allocated from a claimed size and nothing is written outside the lake."""

from __future__ import annotations

import json
import os
import struct
import time

import numpy as np
import pytest
import yaml

from flows.cli import main
from flows.sources import parse_card
from flows.weights import WeightsError, plan_local, read_safetensors_header, shards_from_index
from flows.weights.readers import MAX_HEADER_BYTES
from tests.fakehub import model_index, write_model


def header_file(path, header: dict, data: bytes = b"", length: int | None = None):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


@pytest.mark.parametrize("name", ["../../x.safetensors", "/etc/x.safetensors", "a/../../x.safetensors", "", 7])
def test_weight_map_cannot_name_a_file_outside_the_model_folder(name):
    with pytest.raises(WeightsError, match="not a file inside the model folder"):
        shards_from_index({"weight_map": {"w.weight": name}}, "org/m/model.safetensors.index.json")


def test_local_index_escaping_the_folder_is_exit_2_and_reads_nothing_outside(tmp_path, capsys):
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"not for you")
    model = tmp_path / "m"
    write_model(model, {"w.weight": np.ones((20, 10), np.float32)})
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w.weight": "../secret.safetensors"}})
    )
    assert main(["analyze", str(model)]) == 2
    assert "weight_map names '../secret.safetensors'" in capsys.readouterr().err


def test_a_100_mb_header_is_refused_before_it_is_read(tmp_path, capsys):
    # A sparse file: the length prefix claims 100 MB and the file really is that long, but no page of it is ever
    # read (reading it would allocate the 100 MB; parsing the JSON several times that).
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", 100_000_000))
        handle.truncate(100_000_008 + 16)
    assert MAX_HEADER_BYTES < 100_000_000
    with pytest.raises(WeightsError, match="header length 100000000 is more than the 25000000 bytes allowed"):
        read_safetensors_header(path)
    assert main(["analyze", str(path)]) == 2
    assert "big.safetensors: header length 100000000" in capsys.readouterr().err


def test_a_header_length_of_2_to_the_40_is_refused(tmp_path):
    path = header_file(tmp_path / "x.safetensors", {}, length=2**40)
    with pytest.raises(WeightsError, match="header length 1099511627776 is more than"):
        read_safetensors_header(path)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}, "needs 4000000000000 bytes"),
        ({"dtype": "F32", "shape": [-4, 1], "data_offsets": [0, 16]}, "invalid shape"),
        ({"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 0]}, "invalid data offsets"),
        ({"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 16]}, "needs 8 bytes"),
        ({"dtype": "F32", "shape": [2.5, 2], "data_offsets": [0, 16]}, "invalid shape"),
    ],
)
def test_a_shape_must_fill_its_data_offsets_exactly(tmp_path, entry, why):
    path = header_file(tmp_path / "x.safetensors", {"w.weight": entry}, bytes(16))
    with pytest.raises(WeightsError, match=why):
        plan_local(path)


def test_billion_laughs_card_is_malformed_in_milliseconds_and_the_weights_are_scanned(tmp_path, capsys):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = "---\n" + "\n".join(lines) + "\n---\n# 9^9 = 387 million lols once expanded\n"
    started = time.perf_counter()
    status, facts, evals = parse_card(bomb)
    assert status == "malformed: YAML anchors and aliases are not accepted in card metadata"
    assert (facts, evals) == ({}, [])
    assert time.perf_counter() - started < 5  # not a benchmark: expanded, this would not finish at all
    root = tmp_path / "repos"
    write_model(root / "acme" / "bomb-1m", {"w.weight": np.ones((40, 20), np.float32)}, card_text=bomb)
    lake = tmp_path / "lake"
    assert main(["scan", "--source", "local", str(root), "--lake", str(lake)]) == 0
    assert "scanned 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "metadata",
    ["a: " + "[" * 20_000 + "]" * 20_000, "a:\n" + "".join(" " * depth + "- \n" for depth in range(1, 200))],
    ids=["flow", "block"],
)
def test_metadata_nested_thousands_deep_is_malformed_not_parsed_for_minutes(metadata):
    """40 KB of nested brackets, well within the size caps, took PyYAML and ModelCard over half a minute."""
    status, facts, evals = parse_card(f"---\n{metadata}\n---\n")
    assert (status, facts, evals) == ("malformed: metadata nested more than 64 levels deep", {}, [])


def test_real_model_index_nesting_is_well_within_the_depth_cap():
    card = "---\n" + yaml.safe_dump({"model-index": model_index("acme/m", 0.9)}) + "---\n"
    status, _, evals = parse_card(card)
    assert status == "ok" and [e.value for e in evals] == [0.9]


def test_oversized_card_is_malformed_not_parsed():
    status, _, _ = parse_card("---\nlicense: mit\n---\n" + "x" * 2_000_001)
    assert status == "malformed: card of 2000022 characters, more than 2000000"


def test_script_in_card_values_is_kept_as_text_and_escaped_in_html(tmp_path):
    script = "<script>alert(1)</script>"
    root = tmp_path / "repos"
    for k, accuracy in enumerate((0.6, 0.7, 0.9)):
        write_model(
            root / "acme" / f"xss-{k + 1}m",
            {"w.weight": np.random.default_rng(k).standard_t(3, (60, 30)).astype(np.float32)},
            card={"model-index": model_index(script, accuracy, dataset=script, metric=script)},
        )
    lake = tmp_path / "lake"
    assert main(["scan", "--source", "local", str(root), "--lake", str(lake)]) == 0
    out = tmp_path / "board.html"
    assert main(["leaderboard", "--lake", str(lake), "--metric", script, "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert script not in page


def test_a_pickle_that_would_run_code_is_never_unpickled(tmp_path, capsys):
    import torch

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"w.weight": Evil()}, tmp_path / "pytorch_model.bin")
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "it would call posix.system" in err and "weights_only=False" not in err
