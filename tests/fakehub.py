"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only), on 127.0.0.1.

It serves repos that tests generate, with the routes and headers the real ``huggingface_hub`` client uses:

* ``GET /api/models`` (``author``, ``search``, ``filter``, ``sort``, ``limit``, ``expand``, ``full``), in pages of
  up to 1 000 with an absolute ``Link: <url>; rel="next"`` header. As the Hub documents it (huggingface_hub's
  ``list_models``: ``expand``, ``full``), an item holds ``_id, id, likes, downloads, trendingScore, private, tags,
  pipeline_tag, library_name, createdAt`` and **no** ``sha`` or ``lastModified``; ``expand=sha&expand=lastModified``
  answers only the expanded properties (and the ids), ``full=true`` adds ``sha``, ``lastModified`` and ``siblings``
  (file names, no sizes). Sorted by any documented key (``downloads``, ``likes``, ``createdAt``, ``lastModified``,
  ``trendingScore``), largest first;
* ``GET /api/models/{org}/{name}/tree/{rev}`` (the file list ``snapshot_download`` asks for);
* ``GET /api/models/{org}/{name}[/revision/{rev}]``: ``id, sha, siblings, cardData, tags, ...``; 404 with
  ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound``; with ``expand=...`` only those properties, and
  ``evalResults`` (from the repo's ``.eval_results/*.yaml``) only when expanded, as the Hub does;
* ``HEAD``/``GET /{org}/{name}/resolve/{rev}/{path}``: ``X-Repo-Commit``, quoted ``ETag``, ``Content-Length``,
  ``Range`` → 206; missing file → 404 ``EntryNotFound``;
* datasets (``commit(..., repo_type="dataset")``): ``GET /api/datasets/{org}/{name}[/revision/{rev}]`` and
  ``/datasets/{org}/{name}/resolve/{rev}/{path}``, answered like the model routes.

Each repo keeps its commits, so an old sha stays downloadable after a new commit.

Rate limits (https://huggingface.co/docs/hub/rate-limits, and huggingface_hub issue #3553 for the headers): ``quota``
sets a fixed window per bucket (``api``: ``/api/...``; ``resolvers``: ``/resolve/``; ``pages``: the rest). Every answer
of a bucket with a quota carries ``RateLimit: "api";r=REMAINING;t=SECONDS_TO_WINDOW_END`` and ``RateLimit-Policy:
"fixed window";"api";q=QUOTA;w=WINDOW``; past the quota the answer is 429 with those headers and no ``Retry-After``.
``requests_by_bucket`` and ``limited_by_bucket`` count what each bucket answered.

Fault switches apply to requests whose path contains ``match``, for a number of requests (bursts) or until cleared:
``fail_5xx`` (a burst, or ``every=3``: one request in three, flapping; ``method="GET"``: a download whose HEAD
passes), ``rate_limit`` (a 429 as the Hub answers it,
or with ``Retry-After`` as a proxy or mirror may),
``slow``, ``stall`` (accepts and never answers), ``stall_after_headers`` (headers, part of the body, then nothing),
``truncate`` (a body shorter than its ``Content-Length``), ``cut_file`` (the first half of a file sent as if it were
all of it, ``Content-Length`` included, as a proxy that cuts files answers; a Range answer keeps its ``Content-Range``),
``close_early`` (a body sent without ``Content-Length``, its end marked by closing the connection as HTTP/1.1 allows,
and the connection closed halfway: a dropped connection the client cannot tell from the body's end, but by a Range
answer's ``Content-Range``), ``reset`` (a connection reset in the middle of a body), ``ignore_range``,
``wrong_etag``, ``lose_file`` (a listed file answered 404 ``EntryNotFound``, as storage not yet in step with a push
answers). A stalled request is released when the hub stops.
``ranged=False`` limits a fault to downloads (no ``Range``, or an open-ended one: a download resumed), ``ranged=True``
to reads of a closed range (``bytes=A-B``: header reads).

Repos can be ``gate``d (401/403 with the Hub's ``GatedRepo`` error code unless the request carries an allowed
token), and downloads can be redirected to a second server on another port (``redirect_downloads``, CDN-style, with
``Range``), which records the ``Authorization`` header of every request it gets (``cdn_auth``). ``xet_backed``
answers files as the Hub answers files in Xet storage (``X-Xet-Hash``, a ``xet-auth`` link), their bytes over HTTP.
``lie_about_sha`` makes the hub answer a hostile commit sha. The hostile files themselves are made by the tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import yaml


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    created: float
    _card: dict | None = field(default=None, repr=False)
    _card_read: bool = field(default=False, repr=False)

    @property
    def card(self) -> dict | None:
        """The README's front matter, parsed once (listings of thousands of repos ask for it every page)."""
        if not self._card_read:
            self._card, self._card_read = card_metadata(self.files.get("README.md")), True
        return self._card


@dataclass
class Fault:
    kind: str
    match: str | None
    remaining: int | None  # None: until cleared
    value: float = 0.0
    every: int = 1  # fire on every n-th matching request (1: each one)
    seen: int = 0
    header: str = ""  # the seconds (or HTTP date) a 429 names
    retry_after: bool = False  # a 429 with Retry-After (a proxy's way) instead of the Hub's RateLimit header
    ranged: bool | None = None  # True: only closed Range reads (headers); False: only downloads; None: both
    method: str | None = None  # only requests of this method (GET: a download's body, not its HEAD); None: all


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)
    hidden: bool = False
    downloads: int = 0
    likes: int = 0
    trending_score: float = 0.0
    gated_tokens: set[str] | None = None  # None: not gated
    fake_sha: str | None = None  # a hostile hub answers this instead of the commit sha

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def commit_at(self, revision: str) -> Commit | None:
        if revision in ("main", "HEAD"):
            return self.head
        for commit in self.commits:
            if commit.sha == revision or (len(revision) >= 7 and commit.sha.startswith(revision)):
                return commit
        return None


def iso_time(seconds: float) -> str:
    """A time as the Hub writes it: ``2025-09-30T12:34:56.789Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def rate_limit_headers(bucket: str, remaining: int, reset: int, quota: int, window: float) -> dict[str, str]:
    """The Hub's rate-limit headers (draft-ietf-httpapi-ratelimit-headers-09, as huggingface_hub #3553 shows them)."""
    return {
        "RateLimit": f'"{bucket}";r={remaining};t={reset}',
        "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w={int(window)}',
    }


def card_metadata(readme: bytes | None) -> dict | None:
    """YAML front matter of a README, or None when missing or malformed."""
    if not readme:
        return None
    match = re.match(rb"^---\s*\n(.*?)\n---\s*(\n|$)", readme, re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


# What a listing item holds unless ``expand`` or ``full`` asks for more (the Hub's documented default).
LISTING_FIELDS = (
    "_id",
    "id",
    "likes",
    "downloads",
    "trendingScore",
    "private",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
)
# ``full=true`` adds these; its siblings are file names only (sizes need ``model_info`` per repo).
FULL_FIELDS = LISTING_FIELDS + ("sha", "lastModified", "siblings")
# The sort keys the Hub's listing takes (huggingface_hub spells them created_at, ... and translates).
LISTING_SORT_KEYS = ("downloads", "likes", "createdAt", "lastModified", "trendingScore")
# The Hub's largest listing page.
MAX_PAGE = 1000


def bucket_of(path: str) -> str:
    """The rate-limit bucket of a request path, as the Hub's documentation draws them."""
    if path.startswith("/api/"):
        return "api"
    if "/resolve/" in path:
        return "resolvers"
    return "pages"


@dataclass
class Window:
    """A fixed rate-limit window of one bucket: ``quota`` requests per ``seconds``, windows aligned to the clock."""

    quota: int
    seconds: float
    start: float = 0.0
    used: int = 0

    def take(self, now: float) -> tuple[bool, int, int]:
        """Count one request: (allowed, remaining after it, whole seconds to the window's end)."""
        start = now - (now % self.seconds)
        if start != self.start:
            self.start, self.used = start, 0
        allowed = self.used < self.quota
        if allowed:
            self.used += 1
        return allowed, self.quota - self.used, max(1, math.ceil(self.start + self.seconds - now))


class FakeHub:
    def __init__(self, page_size: int = MAX_PAGE):
        self.repos: dict[str, Repo] = {}
        self.datasets: dict[str, Repo] = {}
        self.page_size = page_size
        self.requests: list[tuple[str, str, str | None]] = []
        self.faults: list[Fault] = []
        self.auth: list[tuple[str, str | None]] = []  # (path, Authorization header) of every hub request
        self.cdn_auth: list[tuple[str, str | None]] = []  # the same for the CDN server
        self.request_times: list[tuple[float, str, str]] = []  # (time, method, path)
        self.redirect_match: str | None = None
        self.xet_match: str | None = None
        self.windows: dict[str, Window] = {}
        self.requests_by_bucket: dict[str, int] = {}
        self.limited_by_bucket: dict[str, int] = {}
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._cdn: ThreadingHTTPServer | None = None

    # ---- repos -------------------------------------------------------------------------------------------------
    def commit(
        self, repo_id: str, files: dict[str, bytes | Path], replace: bool = False, repo_type: str = "model"
    ) -> str:
        """Add a commit with ``files`` (on top of the previous commit's files unless ``replace``). Returns the sha."""
        with self._lock:
            repos = self.datasets if repo_type == "dataset" else self.repos
            repo = repos.setdefault(repo_id, Repo(repo_id))
            content = {} if replace or not repo.commits else dict(repo.head.files)
            for name, data in files.items():
                content[name] = data.read_bytes() if isinstance(data, Path) else bytes(data)
            digest = hashlib.sha1(repo_id.encode())
            for name in sorted(content):
                digest.update(name.encode() + b"\0" + hashlib.sha1(content[name]).digest())
            digest.update(str(len(repo.commits)).encode())
            repo.commits.append(Commit(digest.hexdigest(), content, time.time()))
            return repo.head.sha

    def add_folder(self, repo_id: str, folder: Path) -> str:
        return self.commit(repo_id, {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()})

    def hide(self, repo_id: str) -> None:
        """Make a repo answer 404 RepoNotFound (deleted, or private and no token)."""
        self.repos.setdefault(repo_id, Repo(repo_id)).hidden = True

    def gate(self, repo_id: str, *tokens: str) -> None:
        """Gate a repo as the Hub does: its info and card stay public, its other files answer 401 (no token) or
        403 (a token without access) with ``X-Error-Code: GatedRepo``; a request with one of ``tokens`` passes."""
        self.repos[repo_id].gated_tokens = set(tokens)

    def lie_about_sha(self, repo_id: str, sha: str) -> None:
        """Answer ``sha`` (e.g. ``../../../tmp/x``) as the repo's commit, in model info and X-Repo-Commit."""
        self.repos[repo_id].fake_sha = sha

    def redirect_downloads(self, match: str | None = None) -> None:
        """Answer ``resolve`` requests (whose path contains ``match``) with a 302 to the CDN server, on another
        port: another host for HTTP clients, which must not send it the hub's token."""
        self.redirect_match = match or ""

    def xet_backed(self, match: str | None = None) -> None:
        """Answer ``resolve`` requests (whose path contains ``match``) as the Hub answers them for a file in Xet
        storage (most large files since 2025): ``X-Xet-Hash`` and ``Link: <{endpoint}/api/models/{repo}/
        xet-read-token/{sha}>; rel="xet-auth"`` beside the usual headers, the bytes still served over HTTP (as the
        Hub serves them to clients without hf_xet). This server has no Xet storage: its token route answers 404, so a
        client that takes the Xet path fails."""
        self.xet_match = match or ""

    # ---- faults ------------------------------------------------------------------------------------------------
    def _add_fault(
        self, kind: str, match: str | None, count: int | None, value: float = 0.0, ranged: bool | None = None
    ) -> None:
        with self._lock:
            self.faults.append(Fault(kind, match, count, value, ranged=ranged))

    def fail_5xx(
        self,
        count: int | None = 1,
        match: str | None = None,
        status: int = 503,
        every: int = 1,
        ranged: bool | None = None,
        method: str | None = None,
    ) -> None:
        """``count`` failures in a row, or with ``every=3`` one request in three (``count=None``: until cleared);
        ``ranged`` False: downloads only (not header reads); ``method`` ``"GET"``: not the HEAD before a download."""
        with self._lock:
            self.faults.append(Fault("5xx", match, count, status, every=every, ranged=ranged, method=method))

    def quota(self, bucket: str, requests: int, seconds: float) -> None:
        """Limit ``bucket`` (api, resolvers, pages) to ``requests`` per fixed window of ``seconds``, as the Hub does
        (the real free tier: api 1 000, resolvers 5 000 per 300 s)."""
        with self._lock:
            self.windows[bucket] = Window(requests, seconds)

    def rate_limit(
        self,
        seconds: str,
        count: int = 1,
        match: str | None = None,
        retry_after: bool = False,
        ranged: bool | None = None,
    ) -> None:
        """429 Too Many Requests as the Hub answers it: ``RateLimit: "BUCKET";r=0;t=SECONDS``, no Retry-After. With
        ``retry_after``, the way a proxy or mirror may answer instead: ``Retry-After: SECONDS`` (seconds or an HTTP
        date) and no RateLimit header. ``ranged`` False: downloads only."""
        with self._lock:
            self.faults.append(Fault("429", match, count, value=0.0, retry_after=retry_after, ranged=ranged))
            self.faults[-1].header = seconds

    def stall(self, match: str | None = None, count: int | None = None) -> None:
        """Accept the connection, read the request, and never answer (until the hub stops)."""
        self._add_fault("stall", match, count)

    def stall_after_headers(
        self, match: str | None = None, count: int | None = None, ranged: bool | None = None
    ) -> None:
        """Send the status line, the headers and a part of the body, then nothing (until the hub stops)."""
        self._add_fault("stall_after_headers", match, count, ranged=ranged)

    def reset(self, count: int = 1, match: str | None = None, ranged: bool | None = None) -> None:
        """Send part of a body, then reset the connection (TCP RST)."""
        self._add_fault("reset", match, count, ranged=ranged)

    def slow(self, seconds: float, match: str | None = None, count: int | None = None) -> None:
        self._add_fault("slow", match, count, seconds)

    def truncate(self, count: int = 1, match: str | None = None, ranged: bool | None = None) -> None:
        """Send fewer bytes than the Content-Length promises, then close the connection."""
        self._add_fault("truncate", match, count, ranged=ranged)

    def close_early(self, count: int | None = 1, match: str | None = None, ranged: bool | None = None) -> None:
        """Send the answer without ``Content-Length`` (its end is the connection's close) and close the connection
        halfway through the body: nothing in the framing tells the client the body is short."""
        self._add_fault("close_early", match, count, ranged=ranged)

    def cut_file(self, count: int | None = 1, match: str | None = None, ranged: bool | None = None) -> None:
        """Send the first half of a file as the whole answer (its ``Content-Length`` says so): nothing for the client
        to notice but the file's size."""
        self._add_fault("cut_file", match, count, ranged=ranged)

    def lose_file(self, match: str, count: int | None = None) -> None:
        """Answer ``resolve`` requests for a file (whose path contains ``match``) as for a file the commit does not
        have (404, ``X-Error-Code: EntryNotFound``), while model info still lists it: storage and listing out of
        step."""
        self._add_fault("lost", match, count)

    def ignore_range(self, match: str | None = None, count: int | None = None) -> None:
        self._add_fault("ignore_range", match, count)

    def wrong_etag(self, match: str | None = None, count: int | None = None) -> None:
        self._add_fault("wrong_etag", match, count)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, kind: str, path: str, method: str, ranged: bool = False) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind != kind or (fault.match and fault.match not in path):
                    continue
                if fault.ranged is not None and fault.ranged != ranged:
                    continue
                if fault.method is not None and fault.method != method:
                    continue
                body_faults = ("truncate", "cut_file", "close_early", "ignore_range", "reset", "stall_after_headers")
                if kind in body_faults and method != "GET":
                    continue
                fault.seen += 1
                if fault.seen % fault.every:
                    continue
                if fault.remaining is not None:
                    if fault.remaining <= 0:
                        continue
                    fault.remaining -= 1
                return fault
        return None

    # ---- server ------------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the hub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        class Cdn(_CdnHandler):
            pass

        Handler.hub = Cdn.hub = hub
        self._release.clear()
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._cdn = _Server(("127.0.0.1", 0), Cdn)
        for server in (self._server, self._cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    @property
    def cdn_endpoint(self) -> str:
        assert self._cdn is not None, "start() the hub first"
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def stop(self) -> None:
        self._release.set()  # stalled requests end
        for server in (self._server, self._cdn):
            if server is not None:
                server.shutdown()
                server.server_close()
        self._server = self._cdn = None

    def blob(self, sha256: str) -> bytes | None:
        for repo in self.repos.values():
            for commit in repo.commits:
                for data in commit.files.values():
                    if hashlib.sha256(data).hexdigest() == sha256:
                        return data
        return None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def count(self, method: str, substring: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and substring in p)

    # ---- API payloads ------------------------------------------------------------------------------------------
    def sha_of(self, repo: Repo, commit: Commit) -> str:
        return repo.fake_sha or commit.sha

    def model_payload(self, repo: Repo, commit: Commit) -> dict:
        card = commit.card
        tags = list((card or {}).get("tags") or [])
        base = (card or {}).get("base_model")
        for b in [base] if isinstance(base, str) else base or []:
            tags.append(f"base_model:{b}")
        # The API's library_name, pipeline_tag and tags are strings (huggingface_hub's ModelInfo): what a card
        # writes there in another type stays in cardData only.
        library = _text((card or {}).get("library_name"))
        if library:
            tags.append(library)
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": self.sha_of(repo, commit),
            "private": False,
            "gated": "manual" if repo.gated_tokens is not None else False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "trendingScore": repo.trending_score,
            "tags": [str(tag) for tag in tags if isinstance(tag, str | int | float)],
            "pipeline_tag": _text((card or {}).get("pipeline_tag")),
            "library_name": library,
            "lastModified": iso_time(commit.created),
            "createdAt": iso_time(repo.commits[0].created),
            "cardData": card,
            "siblings": [
                {"rfilename": name, "size": len(data), "blobId": hashlib.sha1(data).hexdigest()}
                for name, data in sorted(commit.files.items())
            ],
        }

    def take_request(self, path: str) -> tuple[bool, dict[str, str]]:
        """Count a request against its bucket's window: (allowed, the RateLimit headers to answer with)."""
        bucket = bucket_of(path)
        with self._lock:
            self.requests_by_bucket[bucket] = self.requests_by_bucket.get(bucket, 0) + 1
            window = self.windows.get(bucket)
            if window is None:
                return True, {}
            allowed, remaining, reset = window.take(time.time())
            if not allowed:
                self.limited_by_bucket[bucket] = self.limited_by_bucket.get(bucket, 0) + 1
        return allowed, rate_limit_headers(bucket, remaining, reset, window.quota, window.seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (a timeout in a test, a killed scan) resets its connection: not a server error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    _rate_headers: dict[str, str] = {}  # noqa: RUF012 - replaced per request, never mutated

    def end_headers(self) -> None:
        # Every answer of a bucket with a quota says where the window stands (the Hub's way), errors included.
        for key, value in self._rate_headers.items():
            self.send_header(key, value)
        super().end_headers()

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, payload, headers: dict | None = None) -> None:
        body = json.dumps(payload, default=_json_date).encode()
        self._send(200, body, {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, extra: dict | None = None, head: bool = False) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(
            status,
            body,
            {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message, **(extra or {})},
            head=head,
        )

    def _range_read(self) -> bool:
        """A read of a closed range (``bytes=A-B``, a header read), not a download (no ``Range``, or ``bytes=A-``:
        a download resumed from byte A)."""
        return re.fullmatch(r"bytes=\d+-\d+", (self.headers.get("Range") or "").strip()) is not None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        parsed = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parsed.path)
        hub.requests.append((method, path, self.headers.get("Range")))
        hub.auth.append((path, self.headers.get("Authorization")))
        hub.request_times.append((time.monotonic(), method, path))
        allowed, self._rate_headers = hub.take_request(path)
        if not allowed:
            self._error(429, "RateLimited", "rate limit reached: retry after the window ends", head=method == "HEAD")
            return
        slow = hub._take_fault("slow", path, method)
        if slow:
            time.sleep(slow.value)
        if hub._take_fault("stall", path, method):
            hub._release.wait(300)
            self.close_connection = True
            return
        failure = hub._take_fault("5xx", path, method, self._range_read())
        if failure:
            self._error(int(failure.value), "ServerError", "injected failure", head=method == "HEAD")
            return
        limited = hub._take_fault("429", path, method, self._range_read())
        if limited:
            self._rate_headers = {}  # this answer's own headers say it all
            if limited.retry_after:
                headers = {"Retry-After": limited.header}
            else:
                window = hub.windows.get(bucket_of(path)) or Window(500, 300)
                headers = rate_limit_headers(bucket_of(path), 0, int(limited.header), window.quota, window.seconds)
            self._error(429, "RateLimited", "too many requests", headers, method == "HEAD")
            return
        query = urllib.parse.parse_qs(parsed.query)
        if path == "/api/models":
            self._list_models(query)
            return
        match = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if match:
            blobs = (query.get("blobs") or [""])[0].lower() == "true"
            self._model_info(match.group(1), match.group(2) or "main", [], "dataset", blobs=blobs)
            return
        match = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            self._resolve(method, match.group(1), urllib.parse.unquote(match.group(2)), match.group(3), path, "dataset")
            return
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?", path)
        if match:
            self._tree(match.group(1), urllib.parse.unquote(match.group(2)))
            return
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if match:
            blobs = (query.get("blobs") or [""])[0].lower() == "true"
            self._model_info(match.group(1), match.group(2) or "main", query.get("expand") or [], blobs=blobs)
            return
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            self._resolve(method, match.group(1), urllib.parse.unquote(match.group(2)), match.group(3), path)
            return
        self._error(404, "NotFound", f"no route for {path}", head=method == "HEAD")

    def _visible(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        repo = (self.hub.datasets if repo_type == "dataset" else self.hub.repos).get(repo_id)
        return None if repo is None or repo.hidden or not repo.commits else repo

    def _list_models(self, query: dict) -> None:
        hub = self.hub
        author = (query.get("author") or [None])[0]
        search = ((query.get("search") or [""])[0]).lower()
        filters = query.get("filter") or []
        limit = int((query.get("limit") or [0])[0] or 0)
        offset = int((query.get("offset") or [0])[0] or 0)
        expand = query.get("expand") or []
        full = (query.get("full") or [""])[0].lower() == "true"
        sort = (query.get("sort") or [None])[0]
        if expand and full:
            self._error(400, "BadRequest", "expand cannot be combined with full")
            return
        if sort is not None and sort not in LISTING_SORT_KEYS:
            self._error(400, "BadRequest", f"invalid sort {sort!r}")
            return
        models = []
        for repo_id in sorted(hub.repos):
            repo = self._visible(repo_id)
            # Author and search depend on the id alone: checked before the payload, which hashes every file.
            if repo is None or author and repo_id.split("/")[0] != author or search and search not in repo_id.lower():
                continue
            payload = hub.model_payload(repo, repo.head)
            if filters and not set(filters) <= set(payload["tags"]):
                continue
            models.append(payload)
        if sort is not None:
            # Largest first (the Hub's direction=-1); the ids' order breaks ties.
            models.sort(key=lambda m: m[sort], reverse=True)
        if limit:
            models = models[:limit]
        size = min(hub.page_size, MAX_PAGE)
        page = models[offset : offset + size]
        headers = {}
        if offset + size < len(models):
            params = {k: v for k, v in query.items() if k != "offset"}
            params["offset"] = [str(offset + size)]
            url = f"{hub.endpoint}/api/models?{urllib.parse.urlencode(params, doseq=True)}"
            headers["Link"] = f'<{url}>; rel="next"'
        fields = ("_id", "id", *expand) if expand else FULL_FIELDS if full else LISTING_FIELDS
        items = []
        for model in page:
            item = {k: model[k] for k in fields if k in model}
            if "siblings" in item:
                item["siblings"] = [{"rfilename": s["rfilename"]} for s in item["siblings"]]
            items.append(item)
        self._json(items, headers)

    def _model_info(
        self, repo_id: str, revision: str, expand: list[str], repo_type: str = "model", blobs: bool = True
    ) -> None:
        repo = self._visible(repo_id, repo_type)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return
        commit = repo.commit_at(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        payload = self.hub.model_payload(repo, commit)
        if not blobs:
            # File sizes only when asked (huggingface_hub's files_metadata=True sends blobs=True).
            payload["siblings"] = [{"rfilename": s["rfilename"]} for s in payload["siblings"]]
        if expand:
            # Like the Hub: only the expanded properties (plus the ids), and evalResults only when expanded.
            payload = {k: v for k, v in payload.items() if k in ("_id", "id") or k in expand}
            if "evalResults" in expand:
                payload["evalResults"] = eval_results_payload(commit.files)
        self._json(payload)

    def _tree(self, repo_id: str, revision: str) -> None:
        repo = self._visible(repo_id)
        commit = repo.commit_at(revision) if repo else None
        if commit is None:
            self._error(404, "RepoNotFound" if repo is None else "RevisionNotFound", f"{repo_id}@{revision}")
            return
        self._json(
            [
                {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for name, data in sorted(commit.files.items())
            ]
        )

    def _resolve(
        self, method: str, repo_id: str, revision: str, filename: str, path: str, repo_type: str = "model"
    ) -> None:
        head = method == "HEAD"
        repo = self._visible(repo_id, repo_type)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
            return
        commit = repo.commit_at(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return
        gated = repo.gated_tokens is not None and filename not in ("README.md", ".gitattributes")
        if gated and (self.headers.get("Authorization") or "").removeprefix("Bearer ") not in repo.gated_tokens:
            denied = self.headers.get("Authorization") is not None
            message = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list."
                if denied
                else f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            )
            self._error(403 if denied else 401, "GatedRepo", message, head=head)
            return
        data = commit.files.get(filename)
        if data is None or self.hub._take_fault("lost", path, method):
            self._error(
                404,
                "EntryNotFound",
                f"{filename} does not exist at {revision}",
                {"X-Repo-Commit": self.hub.sha_of(repo, commit)},
                head=head,
            )
            return
        etag = hashlib.sha256(data).hexdigest()
        if self.hub._take_fault("wrong_etag", path, method):
            etag = "0" * 64
        xet = {}
        if self.hub.xet_match is not None and self.hub.xet_match in path and repo_type == "model":
            sha = self.hub.sha_of(repo, commit)
            xet = {
                "X-Xet-Hash": hashlib.sha256(b"xet" + data).hexdigest(),
                "Link": f'<{self.hub.endpoint}/api/models/{repo_id}/xet-read-token/{sha}>; rel="xet-auth"',
            }
        if self.hub.redirect_match is not None and self.hub.redirect_match in path:
            # CDN-style: the file's metadata on the redirect itself, the bytes on another host.
            self._send(
                302,
                b"",
                {
                    "Location": f"{self.hub.cdn_endpoint}/blobs/{hashlib.sha256(data).hexdigest()}?signed=1",
                    "X-Repo-Commit": self.hub.sha_of(repo, commit),
                    "X-Linked-Etag": f'"{etag}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{etag}"',
                    **xet,
                },
                head=head,
            )
            return
        headers = {
            "X-Repo-Commit": self.hub.sha_of(repo, commit),
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            **xet,
        }
        status, body = 200, data
        byte_range = self.headers.get("Range")
        if byte_range and not (method == "GET" and self.hub._take_fault("ignore_range", path, method)):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", byte_range.strip())
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head=head)
                    return
                status, body = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        self._send_body(status, body, headers, path, method, head)

    def _send_body(self, status: int, body: bytes, headers: dict, path: str, method: str, head: bool) -> None:
        """A file's bytes, unless a body fault is switched on for this request."""
        hub = self.hub
        ranged = self._range_read()
        if method == "GET" and hub._take_fault("cut_file", path, method, ranged):
            body = body[: len(body) // 2]
            headers = dict(headers, **{"Content-Length": str(len(body))})
        for kind in ("truncate", "reset", "stall_after_headers", "close_early"):
            if method == "GET" and hub._take_fault(kind, path, method, ranged):
                break
        else:
            self._send(status, body, headers, head=head)
            return
        if kind == "close_early":
            headers = {key: value for key, value in headers.items() if key != "Content-Length"}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        if kind == "stall_after_headers":
            hub._release.wait(300)
        elif kind == "reset":
            # SO_LINGER 0: closing sends RST, not FIN; the client sees a reset connection mid-body.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _CdnHandler(_Handler):
    """The CDN: blobs by sha256 under ``/blobs/``, with Range; it records the Authorization header it gets."""

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        path = urllib.parse.urlsplit(self.path).path
        hub.cdn_auth.append((path, self.headers.get("Authorization")))
        data = hub.blob(path.rsplit("/", 1)[-1]) if path.startswith("/blobs/") else None
        if data is None:
            self._error(404, "NotFound", f"no blob {path}", head=method == "HEAD")
            return
        headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "Accept-Ranges": "bytes"}
        status, body = 200, data
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", (self.headers.get("Range") or "").strip())
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        headers["Content-Length"] = str(len(body))
        self._send_body(status, body, headers, path, method, method == "HEAD")


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _json_date(value) -> str:
    """A YAML date or time of a card, as the Hub's JSON writes it (a JavaScript Date: ISO 8601, UTC)."""
    if isinstance(value, dt.datetime):
        return iso_time(value.timestamp())
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00.000Z"
    raise TypeError(f"{value!r} is not JSON")


def eval_results_payload(files: dict[str, bytes]) -> list[dict]:
    """``evalResults`` as the Hub's API returns them: one item per entry of each ``.eval_results/*.yaml`` file, or
    an ``error`` item for a file that does not parse."""
    items = []
    for name, data in sorted(files.items()):
        if not (name.startswith(".eval_results/") and name.endswith((".yaml", ".yml"))):
            continue
        try:
            entries = yaml.safe_load(data)
            if not isinstance(entries, list):
                raise ValueError("expected a list of results")
        except (yaml.YAMLError, ValueError) as err:
            items.append({"filename": name, "error": str(err)})
            continue
        items += [{"filename": name, "data": entry} for entry in entries]
    return items


def write_model(
    folder: Path,
    tensors: dict[str, np.ndarray],
    shards: int = 1,
    dtype: str = "float32",
    card: dict | None = None,
    card_text: str | None = None,
) -> Path:
    """Write a model folder: ``model.safetensors`` or ``model-0000k-of-0000n.safetensors`` + index, and README.md.

    ``dtype`` float32 | float16 | bfloat16 (written through torch). ``card`` becomes YAML front matter;
    ``card_text`` is written verbatim (for malformed cards).
    """
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    names = list(tensors)
    converted = {n: torch.from_numpy(np.ascontiguousarray(tensors[n])).to(torch_dtype) for n in names}
    if shards == 1:
        save_file(converted, str(folder / "model.safetensors"))
    else:
        groups = [list(g) for g in np.array_split(np.array(names, dtype=object), shards)]
        weight_map = {}
        for k, group in enumerate(groups, start=1):
            filename = f"model-{k:05d}-of-{shards:05d}.safetensors"
            save_file({n: converted[n] for n in group}, str(folder / filename))
            weight_map.update({n: filename for n in group})
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in converted.values())},
            "weight_map": weight_map,
        }
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    if card_text is not None:
        (folder / "README.md").write_text(card_text)
    elif card is not None:
        (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n\n# Model card\n")
    return folder


def model_index(name: str, accuracy: float, dataset: str = "digits", metric: str = "accuracy") -> list[dict]:
    """A card's ``model-index`` with one result, as the Hub's eval widget reads it."""
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "image-classification", "name": "Image Classification"},
                    "dataset": {"name": dataset, "type": dataset, "split": "test"},
                    "metrics": [{"type": metric, "value": accuracy, "name": metric}],
                }
            ],
        }
    ]
