"""The hub's request budget, shared by every thread of a process: waited out, never failed on.

The Hub (https://huggingface.co/docs/hub/rate-limits) counts requests per 5-minute fixed window in three buckets:
``api`` (``/api/...``: listings, ``model_info``), ``resolvers`` (``/resolve/``: downloads and Range reads) and
``pages``. Every answer says where the window stands, in the headers of draft-ietf-httpapi-ratelimit-headers-09
(huggingface_hub issue #3553)::

    RateLimit: "api";r=489;t=189                        489 requests left, the window ends in 189 s
    RateLimit-Policy: "fixed window";"api";q=500;w=300  500 requests per 300 s

and past the quota it answers 429 with ``r=0`` and no ``Retry-After``. :class:`RateLimiter` keeps, per bucket, what
the last answer said, less the requests sent since: a request that would overrun the window waits for its end
instead of drawing a 429, and a 429 (from the Hub, or with ``Retry-After`` from a proxy) makes every thread wait
until the window ends; neither counts as a failed attempt. The server's ``r`` is the budget of the account, so
several processes (Dask workers) that each follow it share one budget.

A scan can cap the wall time it spends waiting (``max_total_wait``): past it, a request that would wait raises
:class:`RateLimitExhausted` (its model is recorded as an attempt and retried by the next scan).
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_PARAM = re.compile(r'^\s*([a-z]+)\s*=\s*"?([0-9.]+)"?\s*$')
_NAME = re.compile(r'^\s*"([^"]*)"\s*$')


def bucket_of(path: str) -> str:
    """The Hub's rate-limit bucket of a request path: ``api``, ``resolvers`` or ``pages``."""
    if path.startswith("/api/"):
        return "api"
    if "/resolve/" in path:
        return "resolvers"
    return "pages"


@dataclass(frozen=True)
class WindowInfo:
    """What one answer said about its bucket's window (None: not said)."""

    remaining: int | None = None
    reset_seconds: float | None = None
    quota: int | None = None
    window_seconds: float | None = None


def _fields(value: str) -> tuple[list[str], dict[str, float]]:
    """Quoted names and ``key=number`` parameters of a structured header item (``"api";r=0;t=55``)."""
    names, params = [], {}
    for part in value.split(";"):
        if (name := _NAME.match(part)) is not None:
            names.append(name.group(1))
        elif (param := _PARAM.match(part)) is not None:
            params[param.group(1)] = float(param.group(2))
    return names, params


def parse_window(headers: Mapping[str, str]) -> WindowInfo | None:
    """``RateLimit`` and ``RateLimit-Policy`` of an answer, or None when it carries neither."""
    current, policy = headers.get("RateLimit"), headers.get("RateLimit-Policy")
    if current is None and policy is None:
        return None
    _, now = _fields(current.split(",")[0]) if current else ([], {})
    _, rule = _fields(policy.split(",")[0]) if policy else ([], {})
    return WindowInfo(
        remaining=int(now["r"]) if "r" in now else None,
        reset_seconds=now.get("t"),
        quota=int(rule["q"]) if "q" in rule else None,
        window_seconds=rule.get("w"),
    )


class RateLimitExhausted(Exception):
    """Waiting for the hub's rate limit would pass the scan's cap on the total wait."""


@dataclass
class _Bucket:
    remaining: int | None = None  # what the last answer said (None: unknown, e.g. a new window)
    resets_at: float = 0.0  # monotonic time the current window ends (0: unknown)
    in_flight: int = 0  # requests sent whose answer has not been seen yet
    quota: int | None = None
    window_seconds: float | None = None
    announced: float = 0.0  # the window end the last "waiting" message named


class RateLimiter:
    """Per bucket, the requests the current window still allows; see the module's docstring."""

    def __init__(self, max_total_wait: float, clock: Callable[[], float] = time.monotonic):
        self.max_total_wait = max_total_wait
        self.clock = clock
        self.waited = 0.0  # wall seconds spent waiting since :meth:`begin` (overlapping waits counted once)
        self._blocked_until = 0.0
        self._budget_id: str | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._condition = threading.Condition()

    def begin(self, budget_id: str) -> None:
        """Start counting the total wait afresh for a new scan (a no-op for the scan already counting)."""
        with self._condition:
            if budget_id != self._budget_id:
                self._budget_id, self.waited, self._blocked_until = budget_id, 0.0, 0.0

    def acquire(self, bucket: str) -> None:
        """Wait until ``bucket``'s window allows one more request, then count it as sent."""
        with self._condition:
            state = self._buckets.setdefault(bucket, _Bucket())
            while True:
                now = self.clock()
                if state.resets_at and now >= state.resets_at:
                    state.remaining, state.resets_at = None, 0.0  # a new window: the next answer says how much
                if state.remaining is None or state.remaining - state.in_flight > 0 or not state.resets_at:
                    state.in_flight += 1
                    return
                self._account(bucket, state, now)
                self._condition.wait(timeout=state.resets_at - now)

    def _account(self, bucket: str, state: _Bucket, now: float) -> None:
        """Count the wall time this wait adds to the total (waits of several threads overlap), or refuse it."""
        added = max(0.0, state.resets_at - max(now, self._blocked_until))
        if self.waited + added > self.max_total_wait:
            raise RateLimitExhausted(
                f"the hub's {bucket} rate limit would make this scan wait more than "
                f"{self.max_total_wait:g} s in all (--hub-rate-limit-wait)"
            )
        self.waited += added
        self._blocked_until = max(self._blocked_until, state.resets_at)
        if state.announced != state.resets_at:
            state.announced = state.resets_at
            policy = (
                f" ({state.quota} requests per {state.window_seconds:.0f} s)"
                if state.quota is not None and state.window_seconds is not None
                else ""
            )
            logger.warning(
                "hub rate limit: the %s bucket is spent%s; waiting %.0f s for its window to end",
                bucket,
                policy,
                state.resets_at - now,
            )

    def observe(self, bucket: str, headers: Mapping[str, str] | None, limited: bool, fallback_wait: float) -> None:
        """Learn from an answer (``headers`` None: no answer came). ``limited``: it was a 429, so the bucket waits
        until the window ends: ``t`` of ``RateLimit``, else ``Retry-After``, else the policy's window, else
        ``fallback_wait`` seconds (the caller's backoff, longer at each bare 429 of one request)."""
        info = parse_window(headers) if headers is not None else None
        with self._condition:
            state = self._buckets.setdefault(bucket, _Bucket())
            state.in_flight = max(0, state.in_flight - 1)
            now = self.clock()
            if info is not None:
                state.quota = info.quota if info.quota is not None else state.quota
                state.window_seconds = info.window_seconds if info.window_seconds is not None else state.window_seconds
                if info.remaining is not None:
                    state.remaining = info.remaining
                if info.reset_seconds is not None:
                    state.resets_at = now + info.reset_seconds
            if limited:
                state.remaining = 0
                if info is None or info.reset_seconds is None:
                    retry_after = _retry_after(headers)
                    wait = retry_after if retry_after is not None else state.window_seconds or fallback_wait
                    state.resets_at = now + wait
            self._condition.notify_all()


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    return retry_after_seconds(headers.get("Retry-After")) if headers is not None else None


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110 §10.2.3). None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
