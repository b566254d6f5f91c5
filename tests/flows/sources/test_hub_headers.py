"""Safetensors headers read from the hub by Range requests. The bytes at a pinned commit never change: a header they
hold that does not parse is the commit's corrupt file, a failed scan of that commit that later scans skip until a
new commit comes. Bytes that never all arrived (a connection dropped mid-read, a proxy's cut answer) are not the
file's: an unavailable attempt, scanned again by the next scan."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save

from flows.cli import main
from tests.flows.lake.synth import rows


def safetensors_file(header_bytes: int = 0, name: str = "w.weight") -> bytes:
    """A one-layer safetensors file; ``header_bytes`` of ``__metadata__`` make its header most of the file."""
    weights = {name: np.random.default_rng(3).standard_t(3, (60, 30)).astype(np.float32)}
    return save(weights, metadata={"note": "x" * header_bytes} if header_bytes else None)


def not_json(data: bytes) -> bytes:
    """``data`` with its header's JSON broken (its length kept)."""
    length = struct.unpack("<Q", data[:8])[0]
    return data[:8] + b"{" * length + data[8 + length :]


def length_past_the_end(data: bytes) -> bytes:
    return struct.pack("<Q", len(data) + 100) + data[8:]


def scan(hub, lake, *repos: str, extra: tuple[str, ...] = ()) -> int:
    return main(["scan", *repos, "--endpoint", hub.endpoint, "--lake", str(lake), "--hub-backoff", "0", *extra])


def records(lake, repo_id: str) -> dict[str, list[tuple]]:
    return {
        table: rows(lake, f"SELECT status, reason FROM {table} WHERE repo_id = $1", [repo_id])
        for table in ("models", "attempts")
    }


def header_reads(hub, filename: str) -> int:
    return sum(1 for method, path, byte_range in hub.requests if path.endswith(filename) and byte_range)


ADAPTER_CONFIG = json.dumps({"r": 4, "lora_alpha": 8, "base_model_name_or_path": "acme/base"}).encode()


@pytest.mark.parametrize(
    ("files", "corrupt", "problem"),
    [
        (
            {"model.safetensors": not_json(safetensors_file())},
            "model.safetensors",
            "header is not json-encoded string",
        ),
        (
            {"model.safetensors": length_past_the_end(safetensors_file())},
            "model.safetensors",
            f"its header length of {len(safetensors_file()) + 100} bytes runs past the end of the "
            f"{len(safetensors_file())}-byte file",
        ),
        (  # a sharded checkpoint, whose headers huggingface_hub reads in one call: the reason names the shard
            {
                "model-00001-of-00002.safetensors": safetensors_file(name="v.weight"),
                "model-00002-of-00002.safetensors": not_json(safetensors_file()),
                "model.safetensors.index.json": json.dumps(
                    {
                        "weight_map": {
                            "v.weight": "model-00001-of-00002.safetensors",
                            "w.weight": "model-00002-of-00002.safetensors",
                        }
                    }
                ).encode(),
            },
            "model-00002-of-00002.safetensors",
            "header is not json-encoded string",
        ),
        (  # an adapter, whose file headers are read one by one
            {"adapter_model.safetensors": not_json(safetensors_file()), "adapter_config.json": ADAPTER_CONFIG},
            "adapter_model.safetensors",
            "header is not json-encoded string",
        ),
    ],
    ids=["not-json", "length-past-the-end", "sharded", "adapter"],
)
def test_a_corrupt_header_is_a_failed_scan_of_its_commit_skipped_until_a_new_commit(
    fake_hub, tmp_path, capsys, files, corrupt, problem
):
    lake = tmp_path / "lake"
    sha = fake_hub.commit("acme/corrupt", files)
    assert scan(fake_hub, lake, "acme/corrupt") == 1
    reason = f"acme/corrupt@{sha[:12]}/{corrupt}: corrupt safetensors header: {problem}"
    assert records(lake, "acme/corrupt") == {"models": [("failed", reason)], "attempts": []}
    assert f"wwhub scan: failed: {reason}" in capsys.readouterr().err
    # The next night: the commit is in the lake, its header is not read again.
    fake_hub.requests.clear()
    assert scan(fake_hub, lake, "acme/corrupt") == 0
    assert "skipped 1 (already in the lake)" in capsys.readouterr().out
    assert header_reads(fake_hub, corrupt) == 0
    # A new commit mends the file: it is scanned.
    fake_hub.commit("acme/corrupt", {corrupt: safetensors_file()})
    assert scan(fake_hub, lake, "acme/corrupt") == 0
    assert rows(lake, "SELECT status FROM models_latest WHERE repo_id = 'acme/corrupt'") == [("scanned",)]


@pytest.mark.parametrize("fault", ["cut_file", "close_early", "truncate", "reset"])
def test_a_header_read_cut_short_is_an_unavailable_attempt_not_a_corrupt_file(fake_hub, tmp_path, fault):
    """The header is most of the file, so the half a broken answer brings holds part of it: parsed, those bytes
    would be a corrupt header. A proxy's cut answer (its Content-Length says the half is all) and a connection
    closed where a body with no length may end look whole to the client; their Content-Range says they are not.
    Even with --hub-retries 0 (no attempt after the first), they never reach the header parser."""
    lake = tmp_path / "lake"
    sha = fake_hub.commit("acme/cut", {"model.safetensors": safetensors_file(header_bytes=20_000)})
    getattr(fake_hub, fault)(count=None, match="model.safetensors", ranged=True)
    assert scan(fake_hub, lake, "acme/cut", extra=("--hub-retries", "0")) == 1
    found = records(lake, "acme/cut")
    assert found["models"] == [] and len(found["attempts"]) == 1
    status, reason = found["attempts"][0]
    assert status == "unavailable", reason
    assert reason.startswith(f"acme/cut@{sha[:12]} safetensors headers: hub unavailable: ") and "(1 attempt," in reason
    fake_hub.clear_faults()
    assert scan(fake_hub, lake, "acme/cut") == 0
    assert records(lake, "acme/cut")["models"] == [("scanned", "")]
