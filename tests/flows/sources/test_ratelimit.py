"""The hub's rate limits are waited out, never failed on: parsed from the headers the Hub documents, shared by every
thread, paced below the quota, capped by the scan's total wait."""

import threading
import time

import pytest
from huggingface_hub import HfApi

from flows.sources import ModelRef
from flows.sources.hub import HubSource
from flows.sources.ratelimit import RateLimiter, RateLimitExhausted, WindowInfo, bucket_of, parse_window
from flows.sources.transport import HubSettings, install
from tests.fakehub import write_model


def test_the_hubs_headers_are_read_as_documented():
    # The examples of huggingface_hub issue #3553 (draft-ietf-httpapi-ratelimit-headers-09).
    info = parse_window({"RateLimit": '"api";r=489;t=189', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'})
    assert info == WindowInfo(remaining=489, reset_seconds=189.0, quota=500, window_seconds=300.0)
    assert parse_window({"RateLimit": '"api";r=0;t=55'}) == WindowInfo(0, 55.0, None, None)
    assert parse_window({"Content-Type": "application/json"}) is None
    assert [bucket_of(p) for p in ("/api/models", "/acme/m/resolve/main/x.bin", "/acme/m")] == [
        "api",
        "resolvers",
        "pages",
    ]


def test_a_spent_window_makes_the_next_request_wait_for_its_end():
    limiter = RateLimiter(max_total_wait=60)
    for remaining in (1, 0):
        limiter.acquire("api")
        limiter.observe("api", {"RateLimit": f'"api";r={remaining};t=0.4'}, limited=False, fallback_wait=1)
    started = time.monotonic()
    limiter.acquire("api")  # the window said r=0: wait for its end (0.4 s), then go
    assert 0.3 <= time.monotonic() - started < 2.0
    assert limiter.waited == pytest.approx(0.4, abs=0.1)


def test_a_429_holds_every_thread_until_the_window_ends_and_counts_the_wait_once():
    limiter = RateLimiter(max_total_wait=60)
    limiter.acquire("api")
    limiter.observe("api", {"RateLimit": '"api";r=0;t=0.5'}, limited=True, fallback_wait=1)
    started, finished = time.monotonic(), []

    def request():
        limiter.acquire("api")
        finished.append(time.monotonic() - started)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(finished) == 3 and min(finished) >= 0.4
    # Three threads waited side by side for the same window: half a second of the scan's wait, not 1.5 s.
    assert limiter.waited == pytest.approx(0.5, abs=0.1)


def test_retry_after_of_a_proxy_is_honoured_when_the_hub_headers_are_absent():
    limiter = RateLimiter(max_total_wait=60)
    limiter.acquire("api")
    limiter.observe("api", {"Retry-After": "0.3"}, limited=True, fallback_wait=5)
    started = time.monotonic()
    limiter.acquire("api")
    assert 0.2 <= time.monotonic() - started < 2.0


def test_the_total_wait_is_capped_per_scan():
    limiter = RateLimiter(max_total_wait=1)
    limiter.begin("scan-1")
    limiter.acquire("api")
    limiter.observe("api", {"RateLimit": '"api";r=0;t=120'}, limited=True, fallback_wait=1)
    with pytest.raises(RateLimitExhausted, match="--hub-rate-limit-wait"):
        limiter.acquire("api")
    limiter.begin("scan-1")  # the same scan: still spent
    assert limiter.waited == 0.0  # refused waits are not counted
    limiter.max_total_wait = 0.3
    limiter.observe("api", {"RateLimit": '"api";r=0;t=0.2'}, limited=True, fallback_wait=1)
    limiter.begin("scan-2")
    limiter.acquire("api")  # a new scan's budget: waits 0.2 s and goes
    assert limiter.waited == pytest.approx(0.2, abs=0.1)


@pytest.fixture
def quota_hub(fake_hub, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(12):
        folder = write_model(tmp_path / f"q{i}", {"w.weight": rng.standard_normal((20, 10)).astype(np.float32)})
        fake_hub.add_folder(f"acme/q{i}", folder)
    return fake_hub


def test_requests_pace_below_the_quota_without_a_single_429(quota_hub):
    """12 model_info calls against 5 per 1-second window: the first answer tells the budget, each window is spent
    and then waited out, so the hub never has to refuse one."""
    quota_hub.quota("api", 5, 1)
    install(HubSettings(retries=0), quota_hub.endpoint)
    api = HfApi(endpoint=quota_hub.endpoint)
    started = time.monotonic()
    infos = [api.model_info(f"acme/q{i}") for i in range(12)]
    assert len({info.sha for info in infos}) == 12
    assert quota_hub.limited_by_bucket == {} and quota_hub.requests_by_bucket["api"] == 12
    assert time.monotonic() - started >= 1.0  # at least two window ends were waited for


def test_threads_share_one_budget_and_a_429_is_not_a_failed_attempt(quota_hub):
    """Four threads, 12 calls, 4 per window, and retries=0: whatever 429 the in-flight requests draw is waited out
    (a 429 is not an attempt), so every call succeeds."""
    quota_hub.quota("api", 4, 1)
    install(HubSettings(retries=0), quota_hub.endpoint)
    api = HfApi(endpoint=quota_hub.endpoint)
    results, errors = [], []

    def work(indices):
        for i in indices:
            try:
                results.append(api.model_info(f"acme/q{i}").sha)
            except Exception as err:  # noqa: BLE001 - collected for the assertion
                errors.append(err)

    threads = [threading.Thread(target=work, args=(range(k, 12, 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(results) == 12


def test_past_the_wait_cap_a_request_fails_naming_the_cap(quota_hub):
    from flows.sources import HUB_UNAVAILABLE, HubError

    quota_hub.quota("api", 1, 60)
    source = HubSource(endpoint=quota_hub.endpoint, settings=HubSettings(rate_limit_wait=0.5))
    source.check_reachable()  # spends the window
    with pytest.raises(HubError, match="rate limit would make this scan wait more than 0.5 s") as raised:
        source.check_reachable()
    assert raised.value.kind == HUB_UNAVAILABLE
    assert quota_hub.limited_by_bucket == {}  # refused before sending: the hub never saw the second request


def test_a_429_that_names_no_window_is_asked_less_and_less_often_until_the_cap(quota_hub, monkeypatch):
    """A proxy's bare 429 (no RateLimit, no Retry-After, no policy), answered for good, with --hub-backoff 0: the
    waits grow (1, 2, 4 s ...) and count against the scan's total wait, so the request fails within the cap
    instead of asking again at once, forever."""
    from flows.sources import HUB_UNAVAILABLE, HubError
    from tests.fakehub import _Handler

    monkeypatch.setattr(_Handler, "_model_info", lambda self, *args, **kwargs: self._error(429, "", "slow down"))
    settings = HubSettings(backoff=0, retries=0, rate_limit_wait=2.5)
    assert [settings.rate_limit_fallback(n) for n in range(3)] == [1.0, 2.0, 4.0]
    source = HubSource(endpoint=quota_hub.endpoint, settings=settings)
    with pytest.raises(HubError, match="wait more than 2.5 s") as raised:
        source.resolve(ModelRef("acme/q0", "main", "q"))
    assert raised.value.kind == HUB_UNAVAILABLE
    assert quota_hub.count("GET", "/api/models/acme/q0") == 2  # asked, waited 1 s, asked; 2 s more passes the cap
