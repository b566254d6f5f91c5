"""GGUF through the whole pipeline: ``wwhub analyze FILE.gguf`` and a scan of a GGUF-only repo (one file chosen,
and said which). The GGUF module's own tests (test_gguf.py) check its reader and decoder against gguf's; here the
rows are checked against the dense twin: gguf's own dequantization, analyzed by the plain path."""

import json

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

from flows.cli import main
from tests.flows.scanning.helpers import lake_rows, scan
from tests.flows.weights.helpers import assert_matches_twin, heavy, twin, write_gguf


def tensors():
    return {
        "token_embd.weight": (heavy(300, 64, 1).astype(np.float16), Q.F16),
        "blk.0.attn_norm.weight": (np.ones(64, dtype=np.float32), Q.F32),
        "blk.0.attn_q.weight": (heavy(64, 64, 2), Q.Q8_0),
        "blk.0.ffn_gate_exps.weight": (heavy(4 * 96, 64, 3).reshape(4, 96, 64), Q.Q8_0),
        "blk.0.ffn_down.weight": (heavy(64, 128, 4), Q.Q4_0),
        "blk.0.ffn_up.weight": (heavy(128, 64, 5), Q.F32),
        "output.weight": (heavy(300, 64, 6), Q.Q8_0),
    }


def truth(values: np.ndarray, qtype) -> np.ndarray:
    """What the file stores, decoded by gguf itself (the reference), in float64."""
    if qtype in (Q.F16, Q.F32):
        return values.astype(np.float64)
    return dequantize(quantize(values, qtype), qtype).astype(np.float64)


def test_analyze_a_gguf_file(tmp_path, capsys):
    stored = tensors()
    path = write_gguf(tmp_path / "tiny-Q8_0.gguf", stored)
    assert main(["analyze", str(path), "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    experts = [f"blk.0.ffn_gate_exps.{e}.weight" for e in range(4)]
    order = sorted(rows, key=lambda n: rows[n]["layer_id"])
    assert order == ["token_embd.weight", "blk.0.attn_q.weight", *experts, "blk.0.ffn_up.weight"] + [
        "blk.0.ffn_down.weight",
        "output.weight",
    ]
    for name, (values, qtype) in stored.items():
        if values.ndim == 3:
            for e, expert in enumerate(experts):
                assert rows[expert]["expert"] == e and rows[expert]["quantization"] == "Q8_0"
                assert_matches_twin(rows[expert], twin(truth(values[e], qtype)))
        elif values.ndim == 2:
            assert rows[name]["quantization"] == ("" if qtype in (Q.F16, Q.F32) else qtype.name)
            assert_matches_twin(rows[name], twin(truth(values, qtype)))


def test_scan_of_a_gguf_only_repo_analyzes_one_chosen_file(fake_hub, tmp_path):
    stored = tensors()
    small = write_gguf(tmp_path / "tiny-Q8_0.gguf", stored)
    wide = write_gguf(tmp_path / "tiny-f16.gguf", {k: (v, Q.F16 if v.ndim >= 2 else q) for k, (v, q) in stored.items()})
    fake_hub.commit("acme/tiny-gguf", {small.name: small, wide.name: wide, "README.md": b"# tiny\n"})
    lake = tmp_path / "lake"
    assert scan(fake_hub, lake, "acme/tiny-gguf") == 0
    (model,) = lake_rows(lake, "SELECT * FROM models")
    assert model["status"] == "scanned" and "analyzed tiny-Q8_0.gguf (picked among 2 GGUF files)" in model["reason"]
    assert model["quantization"] == "Q4_0,Q8_0" and model["num_dequantized"] == 7
    shards = {r["shard"] for r in lake_rows(lake, "SELECT shard FROM layers")}
    assert shards == {"tiny-Q8_0.gguf"}
    assert scan(fake_hub, lake, "acme/tiny-gguf", "--gguf-file", "tiny-f16.gguf", "--force") == 0
    (model,) = lake_rows(lake, "SELECT * FROM models")
    assert "analyzed tiny-f16.gguf (chosen" in model["reason"] and model["quantization"] == ""
