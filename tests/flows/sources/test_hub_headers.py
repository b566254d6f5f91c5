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


def with_header(header: object, data: bytes = b"") -> bytes:
    """A file whose header is ``header`` (any JSON value), then ``data``."""
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


NOT_JSON = (
    "corrupt safetensors header: not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
)
F32_2X2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
SINGLE = "model.safetensors"
# A tensor of 32 bytes in a file that holds 16 of them.
DATA_PAST_THE_END = with_header({"w": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]}}, bytes(16))


def single(case: str, data: bytes, reason: str):
    """A checkpoint of one file, ``data``, and the reason that names it."""
    return pytest.param({SINGLE: data}, SINGLE, reason, id=case)


def failed_then_skipped(fake_hub, lake, capsys, repo_id: str, reason: str) -> None:
    """A scan of ``repo_id`` commits it as failed with ``reason`` (no attempt), and the next one skips the commit."""
    assert scan(fake_hub, lake, repo_id) == 1
    assert records(lake, repo_id) == {"models": [("failed", reason)], "attempts": []}
    assert f"wwhub scan: failed: {reason}" in capsys.readouterr().err
    fake_hub.requests.clear()
    assert scan(fake_hub, lake, repo_id) == 0
    assert "skipped 1 (already in the lake)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("files", "corrupt", "reason"),
    [
        single("not-json", not_json(safetensors_file()), NOT_JSON),
        single(
            "length-past-the-end",
            length_past_the_end(safetensors_file()),
            f"corrupt safetensors header: its header length of {len(safetensors_file()) + 100} bytes runs past the "
            f"end of the {len(safetensors_file())}-byte file",
        ),
        # Valid JSON of the wrong shape: huggingface_hub's parser raised TypeError or AttributeError on most of it, a
        # failed attempt retried every night.
        single("json-list", with_header([]), "corrupt safetensors header: a list, not an object of tensors"),
        single(
            "entry-a-string",
            with_header({"w": "x"}, bytes(16)),
            "corrupt safetensors header: tensor 'w' is a string, not an object with dtype, shape, data_offsets",
        ),
        single(
            "no-dtype",
            with_header({"w": {"shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16)),
            "corrupt safetensors header: tensor 'w' has no dtype",
        ),
        single(
            "no-shape-no-offsets",
            with_header({"w": {"dtype": "F32"}}, bytes(16)),
            "corrupt safetensors header: tensor 'w' has no shape and no data_offsets",
        ),
        single(
            "dtype-a-list",
            with_header({"w": {**F32_2X2, "dtype": ["F32"]}}, bytes(16)),
            """corrupt safetensors header: tensor 'w' has dtype ["F32"], not a dtype name""",
        ),
        single(
            "shape-a-number",
            with_header({"w": {**F32_2X2, "shape": 4}}, bytes(16)),
            "corrupt safetensors header: tensor 'w' has shape 4, not a list of dimensions",
        ),
        single(
            "offsets-not-a-pair",
            with_header({"w": {**F32_2X2, "data_offsets": [16]}}, bytes(16)),
            "corrupt safetensors header: tensor 'w' has data_offsets [16], not a pair [begin, end]",
        ),
        single(
            "offsets-reversed",
            with_header({"w": {**F32_2X2, "data_offsets": [16, 0]}}, bytes(16)),
            "corrupt safetensors header: tensor 'w' has invalid data offsets [16, 0]",
        ),
        single(  # two tensors that share bytes: one would stand for the other's
            "offsets-overlap",
            with_header({"w": F32_2X2, "v": {**F32_2X2, "data_offsets": [8, 24]}}, bytes(32)),
            "corrupt safetensors header: tensor 'v' has data_offsets [8, 24], but should begin at byte 16, where the "
            "tensor before it ends (no overlap, no hole)",
        ),
        single(  # its data runs past the listed size: it was planned, downloaded, then failed as "truncated"
            "data-past-the-end",
            DATA_PAST_THE_END,
            f"corrupt safetensors header: its tensors' data runs to byte {len(DATA_PAST_THE_END) + 16}, past the end "
            f"of the {len(DATA_PAST_THE_END)}-byte file",
        ),
        # An 8-byte file whose header length promises more: the second read drew a 416, a failed attempt.
        single(
            "eight-byte-file",
            struct.pack("<Q", 2),
            "corrupt safetensors header: its header length of 2 bytes runs past the end of the 8-byte file",
        ),
        single(
            "two-byte-file",
            b"\x05\x00",
            "corrupt safetensors header: the file has 2 bytes, fewer than the 8 of a header length",
        ),
        pytest.param(  # a sharded checkpoint: the reason names the shard
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
            NOT_JSON,
            id="sharded",
        ),
        pytest.param(  # an adapter, whose file has another name
            {"adapter_model.safetensors": not_json(safetensors_file()), "adapter_config.json": ADAPTER_CONFIG},
            "adapter_model.safetensors",
            NOT_JSON,
            id="adapter",
        ),
    ],
)
def test_a_corrupt_header_is_a_failed_scan_of_its_commit_skipped_until_a_new_commit(
    fake_hub, tmp_path, capsys, files, corrupt, reason
):
    lake = tmp_path / "lake"
    sha = fake_hub.commit("acme/corrupt", files)
    failed_then_skipped(fake_hub, lake, capsys, "acme/corrupt", f"acme/corrupt@{sha[:12]}/{corrupt}: {reason}")
    assert header_reads(fake_hub, corrupt) == 0  # the next night did not read the header again
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


def test_a_header_longer_than_the_first_read_is_read_whole_by_a_second(fake_hub, tmp_path):
    lake = tmp_path / "lake"
    fake_hub.commit("acme/long", {"model.safetensors": safetensors_file(header_bytes=150_000)})
    assert scan(fake_hub, lake, "acme/long") == 0
    assert records(lake, "acme/long")["models"] == [("scanned", "")]
    reads = [r for method, path, r in fake_hub.requests if path.endswith("model.safetensors") and r and r != "bytes=0-"]
    assert reads[:2] == ["bytes=0-100000", reads[1]] and reads[1].startswith("bytes=8-"), reads


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_an_oversized_config_or_index_is_a_failed_scan_of_its_commit(fake_hub, tmp_path, capsys, monkeypatch, name):
    """A config or an index over its size cap is, like a corrupt header, the commit's file: a failed scan of the
    commit, skipped until a new commit (it was a failed attempt, made again every night). The caps are made small:
    the check is under test, not the size."""
    import flows.sources.hub as hub_source

    monkeypatch.setattr(hub_source, "MAX_CONFIG_BYTES", 1000)
    monkeypatch.setattr(hub_source, "MAX_INDEX_BYTES", 1000)
    lake = tmp_path / "lake"
    big = json.dumps({"weight_map": {"w.weight": SINGLE}, "note": "x" * 2000}).encode()
    sha = fake_hub.commit("acme/big", {SINGLE: safetensors_file(), name: big})
    reason = f"acme/big@{sha[:12]}/{name}: {len(big)} bytes, more than the 1000 this file may have"
    failed_then_skipped(fake_hub, lake, capsys, "acme/big", reason)
    fake_hub.commit("acme/big", {name: json.dumps({"weight_map": {"w.weight": SINGLE}}).encode()})
    assert scan(fake_hub, lake, "acme/big") == 0
    assert rows(lake, "SELECT status FROM models_latest WHERE repo_id = 'acme/big'") == [("scanned",)]


def body_bytes_read(monkeypatch) -> dict[str, int]:
    """The body bytes the client takes off the network for each request, by its Range header ("" for none)."""
    import httpx2

    read: dict[str, int] = {}
    handle_request = httpx2.HTTPTransport.handle_request

    class Counted(httpx2.SyncByteStream):
        def __init__(self, stream, key: str):
            self.stream, self.key = stream, key

        def __iter__(self):
            for chunk in self.stream:
                read[self.key] = read.get(self.key, 0) + len(chunk)
                yield chunk

        def close(self) -> None:
            self.stream.close()

    def counted(transport, request):
        response = handle_request(transport, request)
        response.stream = Counted(response.stream, request.headers.get("Range", ""))
        return response

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", counted)
    return read


@pytest.mark.parametrize("header_bytes", [0, 150_000], ids=["one-read", "two-reads"])
def test_a_header_read_answered_with_the_whole_file_reads_only_the_bytes_asked_for(
    fake_hub, tmp_path, monkeypatch, header_bytes
):
    """A server that ignores Range answers a header read with the whole file (200), which may be a shard of
    gigabytes: the transport reads the bytes asked for, closes the connection, and the header is read as if the
    server had honoured the Range. Bounded by what the client takes off the network: the bytes asked for, and at
    most one read of the connection (64 KiB) past them, of a 16 MB file."""
    weights = {"w.weight": np.random.default_rng(4).standard_normal((4096, 1024)).astype(np.float32)}
    data = save(weights, metadata={"note": "x" * header_bytes} if header_bytes else None)
    fake_hub.commit("acme/whole", {"model.safetensors": data})
    fake_hub.ignore_range(match="model.safetensors")
    read = body_bytes_read(monkeypatch)
    code = main(["analyze", "acme/whole", "--describe", "--format", "json", "--endpoint", fake_hub.endpoint])
    assert code == 0
    header_reads = {r for method, path, r in fake_hub.requests if path.endswith("model.safetensors") and r}
    length = struct.unpack("<Q", data[:8])[0]
    assert header_reads == ({"bytes=0-100000"} if not header_bytes else {"bytes=0-100000", f"bytes=8-{7 + length}"})
    for byte_range in header_reads:
        first, last = (int(v) for v in byte_range.removeprefix("bytes=").split("-"))
        assert last + 1 <= read[byte_range] <= last + 1 + 64 * 1024 < len(data) // 10, (byte_range, read)
