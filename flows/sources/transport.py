"""HTTP to the hub with bounded time: timeouts, per-request retries, rate limits waited out, the token kept on the hub.

huggingface_hub sends every request through one shared httpx2 client. :func:`install` gives that client a transport
that, for every request the client makes (``model_info``, ``list_models``, header Range reads, downloads):

* applies :class:`HubSettings`' timeouts (the client itself passes none to ``model_info`` and ``list_models``, so a
  stalled server would hang a scan forever);
* keeps every request to the hub inside its rate-limit window (``ratelimit.py``: one budget per bucket for the
  whole process, learnt from the ``RateLimit`` headers): a request that would overrun the window waits for its
  end, and a 429 is waited out (``RateLimit``'s ``t``, or ``Retry-After``) without counting as a failed attempt,
  up to ``rate_limit_wait`` seconds of waiting per scan;
* retries each GET/HEAD on connection errors, timeouts and HTTP 408/5xx, and on a body that breaks off for
  small answers (API JSON, header Range reads: read here, whole; a 206 shorter than its ``Content-Range`` is one
  too, so that bytes cut short are never parsed as the file's), at most ``retries`` times, waiting
  ``backoff`` · 2^attempt seconds or what ``Retry-After`` asks, never more than ``max_wait``; then raises
  :class:`HubUnavailable`. That is not an httpx error, so the client's own retry loops pass it through instead of
  multiplying the attempts: one request, one bounded budget, whatever the call that made it. A 408/429/5xx answer
  of the hub's never reaches the client, whatever ``retries`` (0 included): it is transient by definition, so its
  last attempt is HubUnavailable like a timeout's, where the client would raise an HTTP error (a failed model) or,
  for ``hf_hub_download``'s HEAD, retry it itself and then call the file missing from its cache;
* reads, of a 200 answer to a read of a closed range (a server that ignores ``Range`` sends the whole file, which
  for a header read may be a shard of gigabytes), only the bytes asked for, then closes the connection, and hands the
  client the 206 a server honouring the Range would have sent;
* goes on with a download whose body breaks off (a dropped or reset connection, a body that stalls) from the byte it
  reached, with ``Range``, within that same budget: huggingface_hub's own resume loop (``http_get``: 5 tries in a
  row without a new byte, its count reset by every byte that arrives) never sees the failure, so ``retries`` bounds
  every attempt of a download, to open it or to go on with it;
* refuses a response whose ``X-Repo-Commit`` is not a commit sha (the client builds cache paths from it);
* strips ``Authorization`` from any request to a host other than the endpoint's (a CDN redirect must never see
  ``HF_TOKEN``; httpx2 and the client strip it too, this holds whatever they do).

Retries and these timeouts apply to the hub and the hosts its redirects point to; a request the client makes
elsewhere on its own gets one attempt and keeps its own timeout when that is shorter.

Settings come from ``wwhub scan`` options or ``WWHUB_HUB_*`` variables, read here and nowhere else.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from .ratelimit import RateLimiter, RateLimitExhausted, bucket_of, retry_after_seconds

# Variables for the settings below (the CLI's --hub-* options win over them).
ENV_VARIABLES = {
    "timeout": "WWHUB_HUB_TIMEOUT",
    "retries": "WWHUB_HUB_RETRIES",
    "backoff": "WWHUB_HUB_BACKOFF",
    "max_wait": "WWHUB_HUB_MAX_WAIT",
    "rate_limit_wait": "WWHUB_HUB_RATE_LIMIT_WAIT",
}
RETRY_STATUSES = frozenset({408, 500, 502, 503, 504})
RATE_LIMITED = 429
_IDEMPOTENT = frozenset({"GET", "HEAD"})
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_CLOSED_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_OPEN_RANGE = re.compile(r"^bytes=(\d+)-$")
# Bodies read whole inside the retry loop: API answers and Range reads up to this size (a safetensors header is at
# most 25 MB). Downloads stream, and go on with an open-ended Range where they break off (ResumedBody).
_SMALL_BODY = 32_000_000
# A connection that cannot be opened in this time will not be opened: with the default retries an unreachable hub
# is reported within 30 s (4 attempts · 5 s + 3.5 s of backoff).
_CONNECT_TIMEOUT = 5.0
# A 429 that names no window waits at least this long: with --hub-backoff 0 it would be asked again at once, forever.
_LEAST_RATE_LIMIT_WAIT = 1.0


@dataclass(frozen=True)
class HubSettings:
    """How long to wait for the hub and how often to try again (plain values: they travel to Dask workers).

    ``timeout``: seconds to wait for any read or write on a connection (a stalled server fails after this);
    ``retries``: further attempts of one request after a transient failure; ``backoff``: the first wait, doubled
    at each attempt; ``max_wait``: cap of any single wait after a failure, ``Retry-After`` included;
    ``rate_limit_wait``: the most wall time a scan waits for the hub's rate-limit windows in all (6 h: a night), after
    which the requests that would wait fail and their models are retried by the next scan."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0
    rate_limit_wait: float = 6 * 3600.0

    def __post_init__(self) -> None:
        for name in ("timeout", "backoff", "max_wait", "rate_limit_wait"):
            value = getattr(self, name)
            least = 0 if name == "backoff" else 1e-3
            if not (isinstance(value, int | float) and least <= value < float("inf")):
                raise ValueError(f"hub {name} {value!r}: expected a positive number of seconds")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 20:
            raise ValueError(f"hub retries {self.retries!r}: expected a whole number from 0 to 20")

    @classmethod
    def from_env(cls, **overrides) -> HubSettings:
        """Defaults, then ``WWHUB_HUB_*`` variables, then ``overrides`` that are not None (the CLI's options)."""
        values = {}
        for name, variable in ENV_VARIABLES.items():
            text = os.environ.get(variable, "").strip()
            if not text:
                continue
            kind = int if name == "retries" else float
            try:
                values[name] = kind(text)
            except ValueError:
                raise ValueError(f"{variable}={text!r}: expected a {'whole ' if kind is int else ''}number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValueError as err:
            variables = [ENV_VARIABLES[k] for k in values if k not in overrides or overrides[k] is None]
            raise ValueError(f"{err}" + (f" (from {', '.join(variables)})" if variables else "")) from None

    def wait(self, attempt: int, retry_after: float | None) -> float:
        return min(self.max_wait, retry_after if retry_after is not None else self.backoff * 2**attempt)

    def rate_limit_fallback(self, limited_before: int) -> float:
        """The wait after a 429 that names no window (no ``RateLimit``, ``Retry-After`` or policy: a proxy's):
        doubled at each such 429 of one request from at least a second, up to ``max_wait``, so that a server that
        keeps answering 429 is asked less and less often, and the waits reach ``rate_limit_wait``."""
        return min(self.max_wait, max(self.backoff, _LEAST_RATE_LIMIT_WAIT) * 2**limited_before)


class HubUnavailable(Exception):
    """One request failed on every attempt (connection, timeout, 408/429/5xx)."""


class HubProtocolError(Exception):
    """The hub answered something unsafe to use (e.g. an ``X-Repo-Commit`` that is not a commit sha)."""


def _closed_range(request) -> tuple[int, int] | None:
    """(first, last) byte of a GET's closed ``Range`` (``bytes=A-B``: a header read), else None."""
    asked = _CLOSED_RANGE.match(request.headers.get("Range", "").strip()) if request.method == "GET" else None
    return (int(asked.group(1)), int(asked.group(2))) if asked else None


def _small_body(request) -> bool:
    if request.method != "GET":
        return False
    if request.url.path.startswith("/api/"):
        return True
    closed = _closed_range(request)
    return closed is not None and closed[1] - closed[0] < _SMALL_BODY


def _encoded(response) -> bool:
    """Whether the body is sent encoded (gzip, ...): its byte offsets are then not the file's."""
    return response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")


def _broken_body(err: Exception) -> str:
    """What failed, for a body whose connection broke off while it was read."""
    return f"{err.__class__.__name__} in the body: {err}".rstrip(": ")


def _short_range(request, response) -> str | None:
    """Why a 206 answer, read whole, is not the bytes its ``Content-Range`` names from the offset asked for; None
    when it is. The client notices a connection dropped mid-body only when the body has a length (``Content-Length``
    or chunks): one that ends with the connection, or a proxy's cut one, is just shorter than its range. Parsed as
    the file's bytes, it would read as a corrupt file (a safetensors header that does not parse is the commit's
    fault, never read again); it is a failed attempt instead."""
    if response.status_code != 206:
        return None
    asked = _closed_range(request)
    answered = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
    if asked and answered and int(answered.group(1)) == asked[0]:
        if len(response.content) == int(answered.group(2)) - int(answered.group(1)) + 1:
            return None
    return f"a body of {len(response.content)} bytes for Content-Range {response.headers.get('Content-Range')!r}"


def _range_of_whole_file(request, response, first: int, last: int) -> tuple[object, str | None]:
    """A 200 answer to a read of bytes ``first``-``last`` (the server ignored ``Range``: the body is the whole file,
    perhaps a shard of gigabytes) read up to byte ``last`` only, the connection then closed, and answered as the 206
    a server that honours the Range sends: those bytes (up to the end of a shorter file) with their
    ``Content-Range``, or a 416 when the file ends before ``first``. (response, None), or (None, what failed) when
    the body breaks off first."""
    import httpx2

    kept, position, ended = bytearray(), 0, True
    try:
        # Decoded bytes: their offsets are the file's, whatever Content-Encoding the server chose.
        for chunk in response.iter_bytes():
            kept += chunk[max(first - position, 0) : max(last + 1 - position, 0)]
            position += len(chunk)
            if position > last:
                ended = False
                break
    except httpx2.TransportError as err:
        return None, _broken_body(err)
    finally:
        response.close()
    length = response.headers.get("Content-Length", "")
    size = str(position) if ended else length if length.isdigit() and not _encoded(response) else "*"
    headers = [
        (key, value)
        for key, value in response.headers.multi_items()
        if key.lower() not in ("content-length", "content-encoding", "transfer-encoding", "content-range")
    ]
    extensions = {"http_version": response.extensions.get("http_version", b"HTTP/1.1")}
    if not kept:
        headers.append(("Content-Range", f"bytes */{size}"))
        return httpx2.Response(416, headers=headers, request=request, extensions=extensions), None
    headers.append(("Content-Range", f"bytes {first}-{first + len(kept) - 1}/{size}"))
    return httpx2.Response(206, headers=headers, content=bytes(kept), request=request, extensions=extensions), None


def _refuse_invalid_commit(request, response) -> None:
    """HubProtocolError for an ``X-Repo-Commit`` that is not a commit sha: the client builds cache paths from it."""
    commit = response.headers.get("X-Repo-Commit")
    if commit is not None and not _COMMIT_SHA.match(commit):
        response.close()
        raise HubProtocolError(
            f"{request.method} {request.url}: the hub answered an invalid commit sha {commit[:80]!r}"
        )


def _drop_xet_headers(response) -> None:
    """Answer a file in Xet storage as any other: without ``X-Xet-Hash``, huggingface_hub downloads it over HTTP
    (the Hub serves it so to clients without hf_xet), through this transport. Through hf_xet, it would bypass the
    request budget, the timeouts, the bounded retries and the token stripping, and, in a test, the fake hub."""
    if "X-Xet-Hash" in response.headers:
        del response.headers["X-Xet-Hash"]


def _read_small_body(request, response):
    """A small body of the hub's (an API answer, a Range read), read whole and checked: (response, None, None), or
    (None, what failed, None) for a failed attempt. A 200 to a closed Range (the server ignored it) is read only up
    to the bytes asked for."""
    import httpx2

    closed = _closed_range(request)
    if response.status_code == 200 and closed is not None:
        return (*_range_of_whole_file(request, response, *closed), None)
    try:
        response.read()
    except httpx2.TransportError as err:
        response.close()
        return None, _broken_body(err), None
    short = _short_range(request, response)
    if short:
        return None, short, None
    return response, None, None


def _timeouts(settings: HubSettings, asked: dict, ours: bool) -> dict:
    """Our timeouts for a request to the hub or where it redirects; elsewhere, the client's where shorter."""
    timeout = settings.timeout
    mine = {"connect": min(_CONNECT_TIMEOUT, timeout), "read": timeout, "write": timeout, "pool": timeout}
    if ours:
        return mine
    return {k: v if asked.get(k) is None else min(v, asked[k]) for k, v in mine.items()}


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)


@functools.cache
def _resumed_body_class():
    import httpx2

    class ResumedBody(httpx2.SyncByteStream):
        """A download's body that, where its connection breaks off, goes on from the byte it reached (``Range``)
        within the request's tries, or raises HubUnavailable once they are spent. huggingface_hub's own resume loop
        (``http_get``: up to 5 tries in a row without new bytes, its count reset by any byte that arrives, a second
        apart) never sees a failure, so --hub-retries bounds a download's attempts, whatever breaks: its connection
        opening or its body. A body the server encodes (gzip), or one of a closed range, does not go on: its first
        break is the last."""

        def __init__(self, transport, request, response, bucket: str | None, tries: _Tries):
            self.transport, self.request, self.response = transport, request, response
            self.bucket, self.tries = bucket, tries
            asked = _OPEN_RANGE.match(request.headers.get("Range", "").strip())
            self.start = int(asked.group(1)) if asked else 0
            closed = asked is None and "Range" in request.headers
            self.unresumable = "an encoded body" if _encoded(response) else "a closed range" if closed else ""

        def __iter__(self):
            received = skip = 0
            while True:
                try:
                    for chunk in self.response.stream:
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                        if chunk:
                            received += len(chunk)
                            yield chunk
                    return
                except httpx2.TransportError as err:
                    self.response.close()
                    failure = f"{_describe(err)} in the body after {received} bytes"
                if self.unresumable:
                    where = f"{self.tries}, GET {self.request.url}"
                    raise HubUnavailable(f"{failure}, not resumed ({self.unresumable}) ({where})")
                offset = self.start + received
                self.response, skip = self._rest(offset, failure)

        def _rest(self, offset: int, failure: str):
            """The rest of the download from byte ``offset`` on, after its body broke off with ``failure``, within
            the request's tries: (the response, the bytes at its start to drop: all before ``offset`` when the
            server ignored Range and sent the whole file again)."""
            while True:
                self.transport._failed(self.request, failure, None, self.tries)
                headers = self.request.headers.copy()
                headers["Range"] = f"bytes={offset}-"
                rest = httpx2.Request("GET", self.request.url, headers=headers, extensions=self.request.extensions)
                response = self.transport._send(rest, True, self.bucket, self.tries)
                if response.status_code == 200:
                    return response, offset
                answered = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
                if response.status_code == 206 and answered and int(answered.group(1)) == offset:
                    return response, 0
                failure = f"HTTP {response.status_code} for the rest from byte {offset}"
                response.close()

        def close(self) -> None:
            self.response.close()

    return ResumedBody


def _transport_class():
    import httpx2

    resumed_body = _resumed_body_class()

    class HubTransport(httpx2.BaseTransport):
        """See the module's docstring. Retries and our timeouts are for the hub and the hosts it redirects to (a
        CDN); anything else the client asks on its own (e.g. its agent registry) gets one attempt and keeps its own,
        shorter, timeout."""

        def __init__(self, settings: HubSettings, endpoint: str, limiter: RateLimiter):
            self.settings = settings
            self.hub_origin = origin(endpoint)
            self.served_by_hub = {self.hub_origin}
            self.limiter = limiter
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request):
            target = origin(str(request.url))
            if target != self.hub_origin:
                request.headers.pop("Authorization", None)
            ours = target in self.served_by_hub
            request.extensions["timeout"] = _timeouts(self.settings, request.extensions.get("timeout") or {}, ours)
            retries = self.settings.retries if ours and request.method in _IDEMPOTENT else 0
            # The hub itself counts requests per bucket; the hosts it redirects to (a CDN) do not.
            bucket = bucket_of(request.url.path) if target == self.hub_origin else None
            tries = _Tries(retries)
            response = self._send(request, ours, bucket, tries)
            if ours and request.method == "GET" and response.status_code in (200, 206) and not _small_body(request):
                body = resumed_body(self, request, response, bucket, tries)
                return httpx2.Response(
                    response.status_code, headers=response.headers, stream=body, extensions=response.extensions
                )
            return response

        def _send(self, request, ours: bool, bucket: str | None, tries: _Tries):
            """The answer to ``request``, after as many attempts as ``tries`` has left (a download's body asks for
            its rest within the same count); HubUnavailable when they are spent."""
            limited = 0
            while True:
                if bucket is not None:
                    try:
                        self.limiter.acquire(bucket)
                    except RateLimitExhausted as err:
                        raise HubUnavailable(f"{err} ({request.method} {request.url})") from None
                response, failure, retry_after = self._attempt(request, ours, bucket, limited)
                if response is not None:
                    if ours and response.headers.get("Location"):
                        # Where the hub sends us (a CDN) is the hub's too: retried, but never sent the token.
                        self.served_by_hub.add(origin(str(request.url.join(response.headers["Location"]))))
                    return response
                if failure == RATE_LIMITED:
                    limited += 1
                    continue  # not a failed attempt: the limiter waits for the window's end
                if not ours and isinstance(failure, Exception) and tries.spent:
                    raise failure
                self._failed(request, failure, retry_after, tries)

        def _failed(self, request, failure, retry_after: float | None, tries: _Tries) -> None:
            """Count a failed attempt: HubUnavailable when it was the last one, else the wait before the next."""
            if tries.spent:
                raise HubUnavailable(f"{_describe(failure)} ({tries}, {request.method} {request.url})")
            time.sleep(self.settings.wait(tries.failed, retry_after))
            tries.failed += 1

        def _attempt(self, request, ours: bool, bucket: str | None, limited_before: int):
            """(response, None, None) to hand back, or (None, what failed, Retry-After seconds) to try again;
            ``RATE_LIMITED`` for a 429 the limiter now waits out. Every answer from the hub is shown to the limiter.
            ``limited_before``: the 429s this request drew already (a 429 that says no window waits longer each time).
            A 408/429/5xx of the hub's is a failed attempt whatever the retries (with none left, HubUnavailable). A
            small body of the hub's is read here, whole and checked, whatever the retries: a broken one is a failed
            attempt, never bytes handed to the client as the file's.
            """
            try:
                response = self.inner.handle_request(request)
            except httpx2.TransportError as err:
                if bucket is not None:
                    self.limiter.observe(bucket, None, limited=False, fallback_wait=0)
                return None, err, None
            limited = response.status_code == RATE_LIMITED and request.method in _IDEMPOTENT
            if bucket is not None:
                fallback = self.settings.rate_limit_fallback(limited_before)
                self.limiter.observe(bucket, response.headers, limited=limited, fallback_wait=fallback)
            _refuse_invalid_commit(request, response)
            if ours:
                _drop_xet_headers(response)
            if limited and bucket is not None:
                response.close()
                return None, RATE_LIMITED, None
            if ours and response.status_code in RETRY_STATUSES | {RATE_LIMITED}:
                response.close()
                return None, f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))
            if ours and _small_body(request):
                return _read_small_body(request, response)
            return response, None, None

        def close(self) -> None:
            self.inner.close()

    return HubTransport


@dataclass
class _Tries:
    """One request's attempts: ``retries`` more after the first, ``failed`` of them spent so far."""

    retries: int
    failed: int = 0

    @property
    def spent(self) -> bool:
        return self.failed >= self.retries

    def __str__(self) -> str:
        return f"{self.failed + 1} attempt{'s' if self.failed else ''}"


def _describe(failure) -> str:
    if isinstance(failure, Exception):
        return f"{failure.__class__.__name__}: {failure}" if str(failure) else failure.__class__.__name__
    return str(failure)


_installed: tuple[HubSettings, tuple] | None = None
_lock = threading.Lock()
# One budget per hub for the whole process, whatever client or settings come and go.
_limiters: dict[tuple, RateLimiter] = {}


def rate_limiter(endpoint: str, settings: HubSettings) -> RateLimiter:
    """The process's rate limiter for the hub at ``endpoint`` (created on first use)."""
    with _lock:
        return _limiter_for(endpoint, settings)


def _limiter_for(endpoint: str, settings: HubSettings) -> RateLimiter:
    limiter = _limiters.setdefault(origin(endpoint), RateLimiter(settings.rate_limit_wait))
    limiter.max_total_wait = settings.rate_limit_wait
    return limiter


def install(settings: HubSettings, endpoint: str) -> None:
    """Make huggingface_hub's shared client use the hub transport with ``settings`` for ``endpoint``. Idempotent;
    with other settings or another endpoint the client is rebuilt."""
    global _installed
    key = (settings, origin(endpoint))
    with _lock:
        if _installed == key:
            return
        import httpx2
        from huggingface_hub.utils import set_client_factory
        from huggingface_hub.utils._http import hf_request_event_hook

        transport_class = _transport_class()
        limiter = _limiter_for(endpoint, settings)

        def client_factory():
            # huggingface_hub's own client, with our transport under it (its request hook handles HF_HUB_OFFLINE).
            return httpx2.Client(
                transport=transport_class(settings, endpoint, limiter),
                event_hooks={"request": [hf_request_event_hook]},
                follow_redirects=True,
                timeout=None,
            )

        set_client_factory(client_factory)
        _installed = key


def uninstall() -> None:
    """Back to huggingface_hub's own client (tests, and code that shares the process with other users)."""
    global _installed
    with _lock:
        if _installed is None:
            return
        from huggingface_hub.utils import set_client_factory
        from huggingface_hub.utils._http import default_client_factory

        set_client_factory(default_client_factory)
        _installed = None
        _limiters.clear()
