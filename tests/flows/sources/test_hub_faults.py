"""Scans against a misbehaving hub: every fault mode of tests/fakehub.py, through the real huggingface_hub client
and the `wwhub scan` command. A transient fault costs retries of one request and changes no number; a lasting one
costs one model, recorded with its reason, in bounded time; the token stays on the hub's host and out of the lake."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time

import numpy as np
import pytest

from flows.cli import main
from flows.sources.ratelimit import retry_after_seconds
from flows.sources.transport import HubSettings, uninstall
from tests.fakehub import FakeHub, model_index, write_model
from tests.flows.lake.synth import rows

REPOS = ("acme/flaky-1m", "acme/flaky-2m")
ROWS = "SELECT repo_id, name, layer_id, fit_status, alpha, lambda_max, D FROM layers ORDER BY repo_id, layer_id"
HEADER = "bytes=0-100000"  # huggingface_hub's header read


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Two models: a 3-shard fp32 one (index + Range header reads + 3 downloads) and a single-file bf16 one."""
    root = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(5)
    with FakeHub() as hub:
        for (repo_id, shards, dtype), accuracy in zip(
            [(REPOS[0], 3, "float32"), (REPOS[1], 1, "bfloat16")], (0.7, 0.8), strict=True
        ):
            tensors = {f"l{k}.weight": rng.standard_t(3, (96, 48)).astype(np.float32) for k in range(3)}
            folder = write_model(
                root / repo_id,
                tensors,
                shards=shards,
                dtype=dtype,
                card={"model-index": model_index(repo_id, accuracy)},
            )
            hub.add_folder(repo_id, folder)
        yield hub


@pytest.fixture
def faults(hub):
    hub.clear_faults()
    hub.redirect_match = hub.xet_match = None
    for repo in hub.repos.values():
        repo.gated_tokens = None
    for log in (hub.requests, hub.request_times, hub.auth, hub.cdn_auth):
        log.clear()
    yield hub
    hub.clear_faults()
    hub.redirect_match = hub.xet_match = None


@pytest.fixture(scope="module")
def clean_rows(hub, tmp_path_factory):
    lake = tmp_path_factory.mktemp("clean") / "lake"
    assert scan(hub, lake) == 0
    return rows(lake, ROWS)


def scan(hub, lake, *extra: str, repos=REPOS) -> int:
    return main(["scan", *repos, "--endpoint", hub.endpoint, "--lake", str(lake), *extra])


def status(lake, repo_id: str) -> tuple[str, str]:
    """The newest record of a repo: its models row, or the attempt of a scan that could not scan it."""
    return rows(
        lake,
        "SELECT status, reason FROM (SELECT status, reason, attempted_at AS happened FROM attempts WHERE repo_id = $1 "
        "UNION ALL SELECT status, reason, scanned_at FROM models WHERE repo_id = $1) ORDER BY happened DESC LIMIT 1",
        [repo_id],
    )[0]


def test_flapping_5xx_one_request_in_three_changes_nothing(faults, clean_rows, tmp_path, capsys):
    # Every third request fails, whatever it is: a step of several requests (index, three header reads) would fail
    # on every whole-step retry; retried per request, the scan completes with the same numbers.
    faults.fail_5xx(count=None, every=3)
    assert scan(faults, tmp_path / "lake", "--hub-backoff", "0") == 0
    assert rows(tmp_path / "lake", ROWS) == clean_rows
    assert sum(1 for _, method, path in faults.request_times if method == "GET") > 6


def test_a_429_as_the_hub_answers_it_is_waited_out_not_failed(faults, clean_rows, tmp_path):
    # The Hub's 429 names the seconds to the window's end in RateLimit (no Retry-After). With --hub-retries 0 a
    # failed attempt would cost the model: a rate limit is not one.
    faults.rate_limit("1", count=1, match="/api/models/acme/flaky-1m")
    assert scan(faults, tmp_path / "lake", "--hub-backoff", "0", "--hub-retries", "0") == 0
    times = [t for t, _, path in faults.request_times if path.startswith("/api/models/acme/flaky-1m")]
    assert times[1] - times[0] >= 0.9  # the window's end, not at once
    assert rows(tmp_path / "lake", ROWS) == clean_rows


def test_retry_after_of_a_proxy_is_waited_out_too(faults, clean_rows, tmp_path):
    faults.rate_limit("1", count=1, match="/api/models/acme/flaky-1m", retry_after=True)
    assert scan(faults, tmp_path / "lake", "--hub-backoff", "0", "--hub-retries", "0") == 0
    times = [t for t, _, path in faults.request_times if path.startswith("/api/models/acme/flaky-1m")]
    assert times[1] - times[0] >= 0.9
    assert rows(tmp_path / "lake", ROWS) == clean_rows


def test_the_rate_limit_wait_is_capped_and_the_model_tried_again_next_scan(faults, clean_rows, tmp_path, capsys):
    faults.rate_limit("3600", count=1, match="/api/models/acme/flaky-2m")  # an hour
    started = time.monotonic()
    assert scan(faults, tmp_path / "lake", "--hub-rate-limit-wait", "1") == 1
    assert time.monotonic() - started < 120  # not an hour
    model_status, reason = status(tmp_path / "lake", REPOS[1])
    assert model_status == "unavailable" and "--hub-rate-limit-wait" in reason
    assert "wwhub scan: unavailable: acme/flaky-2m@" in capsys.readouterr().err
    uninstall()  # the next scan is another process: it knows nothing of the window the hub named
    assert scan(faults, tmp_path / "lake") == 0  # scanned by the next scan
    assert rows(tmp_path / "lake", ROWS) == clean_rows


def test_retry_after_as_seconds_or_http_date():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= retry_after_seconds(in_ten) <= 10.0  # a date, parsed to the seconds left (1 s resolution)
    settings = HubSettings(backoff=0.5, max_wait=30)
    assert [settings.wait(a, None) for a in range(3)] == [0.5, 1.0, 2.0]
    assert settings.wait(0, 3600.0) == 30


def test_a_lasting_5xx_costs_one_model_and_two_attempts_per_request(faults, tmp_path, capsys):
    faults.fail_5xx(count=None, match="flaky-1m/resolve")
    assert scan(faults, tmp_path / "lake", "--hub-retries", "1", "--hub-backoff", "0") == 1
    model_status, reason = status(tmp_path / "lake", REPOS[0])
    assert model_status == "unavailable" and "hub unavailable: HTTP 503 (2 attempts" in reason
    assert status(tmp_path / "lake", REPOS[1])[0] == "scanned"
    failing = [path.rsplit("/", 1)[1] for _, method, path in faults.request_times if "flaky-1m/resolve" in path]
    # Each request two attempts: the pin by the resolver (which then falls back to model_info), then the card,
    # after which the model is recorded as unavailable.
    assert failing == [".gitattributes", ".gitattributes", "README.md", "README.md"]
    assert "wwhub scan: unavailable: acme/flaky-1m@" in capsys.readouterr().err
    # A passing outage is not "done": once the hub answers, the next scan scans the model (the other is skipped).
    faults.clear_faults()
    assert scan(faults, tmp_path / "lake") == 0
    assert status(tmp_path / "lake", REPOS[0])[0] == "scanned"
    assert "skipped 1 (already in the lake)" in capsys.readouterr().out


SHARD = "model-00002-of-00003.safetensors"
# Where a 5xx can meet a model's scan: its model_info, a header Range read, a shard's download (its HEAD passes).
FIVE_XX_AT = {
    "model_info": dict(match="/api/models/acme/flaky-1m"),
    "header-read": dict(match=SHARD, ranged=True),
    "download": dict(match=SHARD, ranged=False, method="GET"),
}


def hit(hub, where: str) -> int:
    """The requests that met the fault at ``where``."""
    match, ranged = FIVE_XX_AT[where]["match"], FIVE_XX_AT[where].get("ranged")
    return sum(
        1 for method, path, r in hub.requests if method == "GET" and match in path and ranged in (None, r == HEADER)
    )


@pytest.mark.parametrize(("code", "retries"), [(500, 0), (502, 0), (503, 0), (504, 0), (500, 1)])
@pytest.mark.parametrize("where", list(FIVE_XX_AT))
def test_a_5xx_on_its_last_attempt_is_an_unavailable_attempt_whatever_the_retries(
    faults, clean_rows, tmp_path, code, retries, where
):
    """A 5xx is transient by definition: with --hub-retries 0, or once the retries are spent, the model is an
    unavailable attempt that the next scan makes again, as after a timeout, never a failed model. The client never
    sees the answer: it would call it an HTTP error, or (hf_hub_download's HEAD) retry it itself for seconds and
    then say the file is not in its cache; each request is asked 1 + --hub-retries times."""
    lake = tmp_path / "lake"
    faults.fail_5xx(count=None, status=code, **FIVE_XX_AT[where])
    assert scan(faults, lake, "--hub-retries", str(retries), "--hub-backoff", "0", repos=[REPOS[0]]) == 1
    model_status, reason = status(lake, REPOS[0])
    assert model_status == "unavailable", reason
    assert f"hub unavailable: HTTP {code} ({retries + 1} attempt" in reason, reason
    assert rows(lake, "SELECT count(*) FROM models WHERE repo_id = $1", [REPOS[0]]) == [(0,)]
    assert hit(faults, where) == retries + 1
    faults.clear_faults()
    assert scan(faults, lake, repos=[REPOS[0]]) == 0
    assert rows(lake, ROWS) == [r for r in clean_rows if r[0] == REPOS[0]]


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_5xx_to_the_listing_is_unavailable_whatever_the_retries(faults, code):
    """The reachability probe and a family's listing: a 5xx is the hub unavailable, not another HTTP error."""
    from flows.sources import HUB_UNAVAILABLE, HubError, HubSource

    faults.fail_5xx(count=None, match="/api/models", status=code)
    source = HubSource(faults.endpoint, settings=HubSettings(retries=0, backoff=0))
    for call in (source.check_reachable, lambda: source.list_family({"author": "acme"})):
        with pytest.raises(HubError) as err:
            call()
        assert err.value.kind == HUB_UNAVAILABLE
        assert f"hub unavailable: HTTP {code} (1 attempt, GET {faults.endpoint}/api/models?" in str(err.value)
    assert faults.count("GET", "/api/models") == 2


@pytest.mark.parametrize("fault", ["reset", "truncate", "stall_after_headers"])
@pytest.mark.parametrize("ranged", [True, False], ids=["header-read", "download"])
def test_a_body_that_breaks_off_is_fetched_again(faults, clean_rows, tmp_path, monkeypatch, fault, ranged):
    """A connection reset mid-shard, a body shorter than its Content-Length, or headers then silence: on a header
    Range read (retried by the transport) or on a shard download (resumed by the client with Range)."""
    monkeypatch.setenv("WWHUB_HUB_TIMEOUT", "1")
    getattr(faults, fault)(count=1, match="model-00002-of-00003.safetensors", ranged=ranged)
    assert scan(faults, tmp_path / "lake", "--hub-backoff", "0") == 0
    assert rows(tmp_path / "lake", ROWS) == clean_rows
    assert not [f for f in faults.faults if f.remaining]  # the fault did fire


@pytest.mark.parametrize("retries", [0, 2])
@pytest.mark.parametrize("fault", ["truncate", "reset", "stall_after_headers"])
def test_hub_retries_bound_the_attempts_of_a_download_whose_connection_keeps_dropping(
    faults, clean_rows, tmp_path, monkeypatch, fault, retries
):
    """Every answer for a shard breaks off mid-body, the resumed ones too. huggingface_hub resumes a download on its
    own (up to 5 tries in a row that bring no byte, a second apart, its count reset by any byte that arrives): with
    --hub-retries N the shard is asked for N + 1 times in all, each time from the byte the last one reached, and then
    the model is unavailable. Broken off N times, the download completes with the same numbers."""
    monkeypatch.setenv("WWHUB_HUB_TIMEOUT", "1")  # a stalled body fails after a second
    shard = "model-00002-of-00003.safetensors"
    lake = tmp_path / "lake"
    getattr(faults, fault)(count=None, match=shard, ranged=False)
    assert scan(faults, lake, "--hub-retries", str(retries), "--hub-backoff", "0", repos=[REPOS[0]]) == 1
    downloads = [r for method, path, r in faults.requests if method == "GET" and path.endswith(shard) and r != HEADER]
    assert len(downloads) == retries + 1, downloads
    assert downloads[0] is None and all(r.startswith("bytes=") and r.endswith("-") for r in downloads[1:]), downloads
    model_status, reason = status(lake, REPOS[0])
    assert model_status == "unavailable" and shard in reason and f"({retries + 1} attempt" in reason, reason
    faults.clear_faults()
    getattr(faults, fault)(count=retries, match=shard, ranged=False)
    assert scan(faults, lake, "--hub-retries", str(retries), "--hub-backoff", "0", repos=[REPOS[0]]) == 0
    assert rows(lake, ROWS) == [r for r in clean_rows if r[0] == REPOS[0]]


def test_a_download_goes_on_from_where_it_broke_off_when_the_server_ignores_range(faults, clean_rows, tmp_path):
    """A server that ignores Range answers the rest of a download with the whole file again: the bytes before the
    break are dropped from it, not written twice."""
    shard = "model-00002-of-00003.safetensors"
    faults.truncate(count=2, match=shard, ranged=False)
    faults.ignore_range(match=shard)
    assert scan(faults, tmp_path / "lake", "--hub-backoff", "0", repos=[REPOS[0]]) == 0
    assert rows(tmp_path / "lake", ROWS) == [r for r in clean_rows if r[0] == REPOS[0]]
    downloads = [r for method, path, r in faults.requests if method == "GET" and path.endswith(shard) and r != HEADER]
    assert len(downloads) == 3 and downloads[0] is None and downloads[1] == downloads[2] != "bytes=0-"


def test_an_encoded_download_that_breaks_off_is_not_resumed_from_a_byte_offset():
    """The offset of a gzip body's bytes is no offset in the file (the Hub serves text files so): it is not asked
    for from there; the break is the download's last attempt."""
    import httpx2

    from flows.sources.ratelimit import RateLimiter
    from flows.sources.transport import HubUnavailable, _transport_class

    class BreaksOff(httpx2.SyncByteStream):
        def __iter__(self):
            yield b"\x1f\x8b" + bytes(30)
            raise httpx2.ReadError("connection reset")

    asked = []

    def answer(request):
        asked.append(request.headers.get("Range"))
        return httpx2.Response(200, headers={"Content-Encoding": "gzip", "Content-Length": "100"}, stream=BreaksOff())

    settings = HubSettings(backoff=0, retries=3)
    transport = _transport_class()(settings, "http://hub.test", RateLimiter(settings.rate_limit_wait))
    transport.inner = httpx2.MockTransport(answer)
    with httpx2.Client(transport=transport) as client:
        with client.stream("GET", "http://hub.test/acme/m/resolve/main/vocab.json") as response:
            with pytest.raises(HubUnavailable, match=r"after 32 bytes, not resumed \(an encoded body\) \(1 attempt"):
                list(response.iter_raw())
    assert asked == [None]


@pytest.mark.parametrize(
    ("asked", "status", "content_range", "content"),
    [
        ("bytes=2-5", 206, "bytes 2-5/10", b"2345"),
        ("bytes=4-99", 206, "bytes 4-9/10", b"456789"),  # past the end of the file: to its end, as a server answers
        ("bytes=20-30", 416, "bytes */10", b""),
    ],
)
def test_a_range_read_answered_with_the_whole_file_is_answered_as_the_range(asked, status, content_range, content):
    """A server that ignores Range sends the whole file (200): the client gets what a server that honours it sends."""
    import httpx2

    from flows.sources.ratelimit import RateLimiter
    from flows.sources.transport import _transport_class

    settings = HubSettings(backoff=0, retries=0)
    transport = _transport_class()(settings, "http://hub.test", RateLimiter(settings.rate_limit_wait))
    transport.inner = httpx2.MockTransport(lambda request: httpx2.Response(200, content=b"0123456789"))
    with httpx2.Client(transport=transport) as client:
        response = client.get("http://hub.test/acme/m/resolve/main/model.safetensors", headers={"Range": asked})
    assert (response.status_code, response.headers["Content-Range"], response.content) == (
        status,
        content_range,
        content,
    )


def test_a_hub_that_never_answers_costs_one_model_in_bounded_time(faults, tmp_path):
    faults.stall(match="/api/models/acme/flaky-1m")
    started = time.monotonic()
    code = scan(faults, tmp_path / "lake", "--hub-timeout", "0.5", "--hub-retries", "1", "--hub-backoff", "0")
    assert code == 1
    model_status, reason = status(tmp_path / "lake", REPOS[0])
    assert model_status == "unavailable" and "ReadTimeout" in reason and "(2 attempts" in reason
    assert status(tmp_path / "lake", REPOS[1])[0] == "scanned"
    # Not a speed assertion: a hang would never get here. Two 0.5 s timeouts plus the other model's scan.
    assert time.monotonic() - started < 120


def test_gated_repo_is_recorded_as_gated_and_scanned_once_a_token_has_access(faults, tmp_path, monkeypatch, capsys):
    faults.gate(REPOS[0], "hf_member")
    lake = tmp_path / "lake"
    assert scan(faults, lake) == 1
    model_status, reason = status(lake, REPOS[0])
    assert model_status == "gated" and "accept its license" in reason and "HF_TOKEN" in reason
    monkeypatch.setenv("HF_TOKEN", "hf_stranger")
    assert scan(faults, lake, repos=[REPOS[0]]) == 1
    assert "the token sent has no access yet" in status(lake, REPOS[0])[1]
    monkeypatch.setenv("HF_TOKEN", "hf_member")
    assert scan(faults, lake, repos=[REPOS[0]]) == 0  # a gated row does not count as scanned
    assert status(lake, REPOS[0])[0] == "scanned"
    missing = main(["scan", "acme/nope", "--endpoint", faults.endpoint, "--lake", str(lake)])
    assert missing == 2 and "repository not found" in capsys.readouterr().err  # not the gated message


def test_token_reaches_the_hub_only_never_the_cdn_nor_the_lake(faults, clean_rows, tmp_path, monkeypatch):
    token = "hf_SecretTokenThatMustNotLeak"
    monkeypatch.setenv("HF_TOKEN", token)
    faults.gate(REPOS[0], token)
    faults.gate(REPOS[1], token)
    faults.redirect_downloads(match=".safetensors")
    lake = tmp_path / "lake"
    assert scan(faults, lake) == 0
    assert rows(lake, ROWS) == clean_rows
    assert any(auth == f"Bearer {token}" for path, auth in faults.auth if "/resolve/" in path)
    assert len(faults.cdn_auth) >= 4  # header reads and downloads went to the CDN...
    assert all(auth is None for _, auth in faults.cdn_auth)  # ...without the token
    for path in lake.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("redirected", [False, True])
def test_files_in_xet_storage_are_downloaded_through_the_transport(faults, clean_rows, tmp_path, redirected):
    # With hf_xet installed, huggingface_hub would fetch a Xet-backed file through Xet storage, outside the
    # transport: no request budget, timeouts, bounded retries or token stripping. The Hub serves it over HTTP too.
    faults.xet_backed(match=".safetensors")
    if redirected:
        faults.redirect_downloads(match=".safetensors")
    lake = tmp_path / "lake"
    assert scan(faults, lake) == 0
    assert rows(lake, ROWS) == clean_rows
    assert not any("xet-read-token" in path for _, path, _ in faults.requests)
    hub_reads = [path for path, _ in faults.auth if "/resolve/" in path and "safetensors" in path]
    http_reads = faults.cdn_auth if redirected else hub_reads
    assert len(http_reads) >= 4  # the header reads and the downloads of both models, over HTTP


def test_transport_strips_authorization_off_the_hub_host():
    """The hub's origin is (scheme, host, port): another port on the same host is another host."""
    from flows.sources.transport import origin

    assert origin("http://127.0.0.1:8000/a") == origin("http://127.0.0.1:8000/b")
    assert origin("http://127.0.0.1:8000/a") != origin("http://127.0.0.1:8001/a")
    assert origin("https://huggingface.co/x") == ("https", "huggingface.co", 443)


def test_settings_come_from_the_environment_and_the_options_win(monkeypatch):
    monkeypatch.setenv("WWHUB_HUB_TIMEOUT", "7")
    monkeypatch.setenv("WWHUB_HUB_RETRIES", "5")
    settings = HubSettings.from_env(retries=1, backoff=None)
    assert (settings.timeout, settings.retries, settings.backoff) == (7.0, 1, 0.5)
    monkeypatch.setenv("WWHUB_HUB_BACKOFF", "-1")
    with pytest.raises(ValueError, match="WWHUB_HUB_BACKOFF"):
        HubSettings.from_env()


def test_other_hosts_get_one_attempt_and_never_the_token(faults):
    """A request the client makes on its own to another host (not the hub, not where the hub redirected): one
    attempt, its answer handed back as it is, and no Authorization header."""
    from huggingface_hub.utils import get_session

    from flows.sources.transport import install

    install(HubSettings(backoff=0), faults.endpoint)
    with FakeHub() as other:
        other.fail_5xx(count=None)
        response = get_session().get(f"{other.endpoint}/api/models", headers={"Authorization": "Bearer hf_x"})
        assert response.status_code == 503
        assert other.auth == [("/api/models", None)]


def test_a_listing_with_a_hostile_sha_is_never_a_path_and_the_model_is_recorded_with_why(faults, tmp_path, capsys):
    """A sha that is not a commit sha is not trusted: the repo is pinned by its model_info when scanned, and where
    that lies too, the model is an attempt that names the sha (not silently left out of the scan)."""
    faults.lie_about_sha(REPOS[0], "../../../tmp/x")
    try:
        lake = tmp_path / "lake"
        assert main(["scan", "--author", "acme", "--endpoint", faults.endpoint, "--lake", str(lake)]) == 1
    finally:
        faults.repos[REPOS[0]].fake_sha = None
    assert "invalid commit sha '../../../tmp/x'; pinned by its model_info when scanned" in capsys.readouterr().err
    assert [r[0] for r in rows(lake, "SELECT repo_id FROM models")] == [REPOS[1]]
    assert status(lake, REPOS[0]) == (
        "failed",
        f"{REPOS[0]}@main: the hub answered an invalid commit sha '../../../tmp/x'",
    )
    # lake/models/acme__flaky-1m@../../../tmp/x.parquet would have landed here:
    assert not (tmp_path.parent / "tmp" / "x.parquet").exists()


def shard_fault(hub, fault: str) -> None:
    """A lasting fault on the download of the 3-shard model's second shard (its header read by Range passes)."""
    match = "model-00002-of-00003.safetensors"
    if fault == "5xx":
        hub.fail_5xx(count=None, match=match, ranged=False)
    elif fault == "cut_file":
        hub.cut_file(count=None, match=match, ranged=False)
    else:  # the hub's resolvers rate limit, past --hub-rate-limit-wait
        hub.rate_limit("3600", count=1, match=match, ranged=False)


@pytest.mark.parametrize("fault", ["5xx", "cut_file", "rate_limit"])
def test_a_shard_the_hub_cannot_deliver_is_an_attempt_retried_by_the_next_scan(faults, clean_rows, tmp_path, fault):
    """Headers read, the first shard analyzed, then the hub fails the second shard's download for good: the model
    is not a failed or partial commit (which the next scan would count as done) but an attempt."""
    lake = tmp_path / "lake"
    shard_fault(faults, fault)
    assert scan(faults, lake, "--hub-backoff", "0", "--hub-retries", "1", "--hub-rate-limit-wait", "1") == 1
    model_status, reason = status(lake, REPOS[0])
    assert model_status == "unavailable" and "model-00002-of-00003.safetensors" in reason
    assert rows(lake, "SELECT count(*) FROM models WHERE repo_id = $1", [REPOS[0]]) == [(0,)]
    assert rows(lake, "SELECT count(*) FROM layers WHERE repo_id = $1", [REPOS[0]]) == [(0,)]
    faults.clear_faults()
    uninstall()  # the next scan is another process: it knows nothing of the window the hub named
    assert scan(faults, lake) == 0
    assert status(lake, REPOS[0])[0] == "scanned"
    assert rows(lake, ROWS) == clean_rows


@pytest.mark.parametrize(
    ("repo", "lost", "what"),
    [
        (REPOS[1], "/model.safetensors", " safetensors headers (model.safetensors)"),  # a single-file checkpoint
        (REPOS[0], "/model-00002-of-00003.safetensors", " safetensors headers (model-00002-of-00003.safetensors)"),
        (REPOS[0], "/model.safetensors.index.json", "/model.safetensors.index.json"),
        (REPOS[1], "/README.md", "/README.md"),
    ],
)
def test_a_listed_file_the_hub_answers_404_for_is_an_attempt_retried_by_the_next_scan(
    faults, clean_rows, tmp_path, repo, lost, what
):
    """model_info lists the file at the commit, its read answers 404 EntryNotFound (storage not in step with the
    listing, as just after a push): not a failed model (which no scan would try again; huggingface_hub called it
    'not a safetensors repo') but an unavailable attempt, scanned by the next scan once the file is there."""
    lake = tmp_path / "lake"
    faults.lose_file(lost)
    assert scan(faults, lake, repos=(repo,)) == 1
    model_status, reason = status(lake, repo)
    commit = rows(lake, "SELECT revision FROM attempts WHERE repo_id = $1", [repo])[0][0]
    assert (model_status, reason) == (
        "unavailable",
        f"{repo}@{commit[:12]}{what}: listed at this commit, but the hub answered 404 (entry not found) when it was "
        "read",
    )
    assert rows(lake, "SELECT count(*) FROM models WHERE repo_id = $1", [repo]) == [(0,)]
    faults.clear_faults()
    assert scan(faults, lake, repos=(repo,)) == 0
    assert status(lake, repo)[0] == "scanned"
    assert rows(lake, ROWS.replace("ORDER BY", f"WHERE repo_id = '{repo}' ORDER BY")) == [
        r for r in clean_rows if r[0] == repo
    ]


def test_force_with_a_shard_the_hub_cannot_deliver_keeps_the_last_good_scan(faults, clean_rows, tmp_path):
    lake = tmp_path / "lake"
    assert scan(faults, lake) == 0
    faults.fail_5xx(count=None, match="model-00002-of-00003.safetensors", ranged=False)
    assert scan(faults, lake, "--force", "--hub-backoff", "0", "--hub-retries", "1") == 1
    assert status(lake, REPOS[0])[0] == "unavailable"  # the attempt is recorded...
    latest = rows(lake, "SELECT repo_id, status FROM models_latest ORDER BY repo_id")
    assert latest == [(REPOS[0], "scanned"), (REPOS[1], "scanned")]  # ...and the good scan still stands
    assert rows(lake, ROWS) == clean_rows


def test_a_4xx_keeps_the_reason_the_hub_gave(faults, tmp_path):
    """huggingface_hub puts the server's own words on a line after its "Bad request:": the reason keeps them."""
    faults.fail_5xx(count=None, match="/api/models/acme/flaky-1m", status=400)
    scan(faults, tmp_path / "lake")
    model_status, reason = status(tmp_path / "lake", REPOS[0])
    assert model_status == "failed" and "hub answered HTTP 400: " in reason
    assert "injected failure" in reason and "\n" not in reason


def test_the_clients_own_warnings_stay_out_of_the_output(faults, tmp_path):
    """huggingface_hub logs the requests it retries and the downloads it resumes (the transport takes both over for
    the hub and the hosts it redirects to; the client still would for others); wwhub reports the outcome once, so
    without --debug every line on stderr is wwhub's own (a process, as a user runs it)."""
    faults.truncate(count=None, match="model-00002-of-00003.safetensors", ranged=False)
    command = [sys.executable, "-m", "flows", "scan", *REPOS, "--endpoint", faults.endpoint]
    done = subprocess.run(
        [*command, "--lake", str(tmp_path / "lake"), "--hub-backoff", "0"], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert any("unavailable: acme/flaky-1m" in line for line in lines), lines
    assert [line for line in lines if not line.startswith("wwhub")] == []
