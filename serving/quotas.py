"""Quota limiter: every limit that applies to one request checked and counted in ONE Redis round trip.

Policies are data passed in on every call (`check(limits=[...])`): the limiter caches no limit, so a
limit changed in the database applies to the next request in every process.

Windows are fixed and aligned (the UTC minute, hour, day, or calendar month): the counter key names
the window's start, so every process agrees on it and the count is exact (a sliding log would cost a
sorted-set entry per request; a sliding-window estimate is not exact). The price is the known burst
at a boundary (up to twice the limit across two adjacent windows), which the docs explain.

All-or-nothing: the Lua script reads every counter first and increments only if every limit has
room, so a request refused by one limit is counted against none. Token limits reserve up front
(`tokens=max_tokens`) and `settle()` gives back what the answer did not use.
"""

from __future__ import annotations

import calendar
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import redis
from django.conf import settings

from common import metrics

logger = logging.getLogger(__name__)

MONTH = "month"
"""`Limit.window` for a calendar month (UTC); any other window is a whole number of seconds."""

Kind = Literal["requests", "tokens"]

_LUA_DIR = Path(__file__).resolve().parent / "lua"
_SETTLE_SOURCE = (_LUA_DIR / "quota_settle.lua").read_text()


class QuotaBackendUnavailable(Exception):
    """Redis, which holds the counters, could not be reached: the view answers 503 naming the cause."""

    def __init__(self, cause: Exception) -> None:
        self.cause = cause
        super().__init__(f"quota backend (Redis) unavailable: {type(cause).__name__}: {cause}")


@dataclass(frozen=True)
class Limit:
    """One policy row: at most `max_requests` requests and/or `max_tokens` tokens per window for
    everything that shares `scope` (e.g. "key:42", "team:7", "endpoint:3")."""

    scope: str
    window: int | Literal["month"]
    max_requests: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_requests is None and self.max_tokens is None:
            raise ValueError(f"Limit {self.scope!r}: give max_requests, max_tokens or both")
        if self.window != MONTH and (not isinstance(self.window, int) or self.window <= 0):
            raise ValueError(
                f"Limit {self.scope!r}: window must be seconds > 0 or MONTH, got {self.window!r}"
            )
        for name in ("max_requests", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Limit {self.scope!r}: {name} must be >= 0, got {value}")


@dataclass(frozen=True)
class LimitState:
    """One counter after the call: what the view reports in the x-ratelimit-* headers."""

    limit: Limit
    kind: Kind
    maximum: int
    used: int
    reset_seconds: float

    @property
    def remaining(self) -> int:
        return max(0, self.maximum - self.used)


@dataclass(frozen=True)
class Reservation:
    """Tokens counted up front; `settle()` gives back the unused part to exactly these counters."""

    keys: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    states: tuple[LimitState, ...] = ()
    refused_by: tuple[LimitState, ...] = ()
    reservation: Reservation | None = None
    # True when Redis was down and TUNEFORGE_QUOTA_FAIL_OPEN let the request through uncounted.
    degraded: bool = False

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until every refusing window has reset (the Retry-After header)."""
        if not self.refused_by:
            return 0
        return max(1, math.ceil(max(s.reset_seconds for s in self.refused_by)))


@dataclass
class _Counter:
    key: str
    limit: Limit
    kind: Kind
    maximum: int
    cost: int
    window_end: float
    ttl_seconds: int = field(default=0)


def window_bounds(window: int | Literal["month"], now: float) -> tuple[float, float]:
    """(start, end) in epoch seconds of the aligned UTC window that contains `now`."""
    if window == MONTH:
        moment = datetime.fromtimestamp(now, UTC)
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        days = calendar.monthrange(moment.year, moment.month)[1]
        return start.timestamp(), start.timestamp() + days * 86400
    start = now - (now % window)
    return start, start + window


def _counters(limits: Sequence[Limit], *, tokens: int, now: float, prefix: str) -> list[_Counter]:
    counters = []
    for limit in limits:
        start, end = window_bounds(limit.window, now)
        for kind, maximum, cost in (
            ("requests", limit.max_requests, 1),
            ("tokens", limit.max_tokens, tokens),
        ):
            if maximum is None:
                continue
            key = f"{prefix}:quota:{limit.scope}:{kind}:{limit.window}:{int(start)}"
            # A relative TTL, not EXPIREAT: the caller's clock names the window, so a Redis whose clock
            # differs must not drop the counter early. A minute of slack lets a late settle() find it.
            ttl = max(1, math.ceil(end - now)) + 60
            counters.append(_Counter(key, limit, kind, maximum, cost, end, ttl))
    return counters


class _Scripts:
    """The Lua scripts, registered once per client: redis-py's Script sends EVALSHA and, on
    NOSCRIPT (a restarted or flushed Redis), loads the script and retries."""

    def __init__(self, client: redis.Redis) -> None:
        self.check = client.register_script((_LUA_DIR / "quota_check.lua").read_text())
        self.settle = client.register_script(_SETTLE_SOURCE)


_clients: dict[str, tuple[redis.Redis, _Scripts]] = {}


def quota_client(url: str | None = None) -> redis.Redis:
    """The process's Redis client for quotas (a connection pool per URL), with short timeouts so a
    dead Redis answers 503 in well under a second instead of hanging the request."""
    return _client_and_scripts(url)[0]


def _client_and_scripts(url: str | None, client: redis.Redis | None = None) -> tuple[redis.Redis, _Scripts]:
    if client is not None:
        # Kept on the client itself: a cache keyed by id() would hand a new client the scripts of a
        # collected one that happened to have the same id.
        scripts = getattr(client, "_tuneforge_quota_scripts", None)
        if scripts is None:
            scripts = _Scripts(client)
            client._tuneforge_quota_scripts = scripts
        return client, scripts
    url = url or settings.REDIS_URL
    if url not in _clients:
        timeout = settings.TUNEFORGE_QUOTA_REDIS_TIMEOUT
        made = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        _clients[url] = (made, _Scripts(made))
    return _clients[url]


def _fail_open(fail_open: bool | None) -> bool:
    return settings.TUNEFORGE_QUOTA_FAIL_OPEN if fail_open is None else fail_open


def check(
    *,
    limits: Sequence[Limit],
    tokens: int = 0,
    client: redis.Redis | None = None,
    url: str | None = None,
    prefix: str = "tf",
    fail_open: bool | None = None,
    now: float | None = None,
) -> QuotaDecision:
    """Check and count one request against every limit at once (all-or-nothing).

    `tokens` is what the request may use (its `max_tokens`, or its input's tokens): counted against
    each token limit now; `settle(decision.reservation, used_tokens=...)` gives back the rest.
    Raises QuotaBackendUnavailable when Redis cannot be reached, unless fail-open is set
    (argument, else TUNEFORGE_QUOTA_FAIL_OPEN): then the request is allowed, uncounted, and logged.
    """
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    now = time.time() if now is None else now
    counters = _counters(limits, tokens=tokens, now=now, prefix=prefix)
    if not counters:
        return QuotaDecision(allowed=True)
    redis_client, scripts = _client_and_scripts(url, client)
    argv: list[int] = []
    for counter in counters:
        argv += [counter.maximum, counter.cost, counter.ttl_seconds]
    try:
        reply = scripts.check(keys=[c.key for c in counters], args=argv, client=redis_client)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if _fail_open(fail_open):
            logger.warning("Quota check skipped, request let through (fail open): %s", exc)
            return QuotaDecision(allowed=True, degraded=True)
        raise QuotaBackendUnavailable(exc) from exc
    allowed = bool(reply[0])
    states = tuple(
        LimitState(
            limit=c.limit,
            kind=c.kind,
            maximum=c.maximum,
            used=int(used),
            reset_seconds=max(0.0, c.window_end - now),
        )
        for c, used in zip(counters, reply[1], strict=True)
    )
    refused_flags = reply[2]
    refused = tuple(s for s, flag in zip(states, refused_flags, strict=True) if int(flag))
    token_keys = tuple(c.key for c in counters if c.kind == "tokens")
    reservation = Reservation(keys=token_keys, tokens=tokens) if allowed and token_keys and tokens else None
    if not allowed:
        for state in refused:
            metrics.QUOTA_REFUSALS.labels(kind=state.kind, scope=state.limit.scope.split(":", 1)[0]).inc()
    return QuotaDecision(allowed=allowed, states=states, refused_by=refused, reservation=reservation)


def settle(
    reservation: Reservation | None,
    *,
    used_tokens: int,
    client: redis.Redis | None = None,
    url: str | None = None,
) -> None:
    """Give back `reservation.tokens - used_tokens` to every token counter the request reserved on
    (atomically; a counter never goes below zero; a counter whose window is gone is left alone).
    An answer that used more than it reserved is counted in full (never refused after the fact)."""
    if reservation is None or not reservation.keys:
        return
    if used_tokens < 0:
        raise ValueError(f"used_tokens must be >= 0, got {used_tokens}")
    redis_client, scripts = _client_and_scripts(url, client)
    try:
        scripts.settle(
            keys=list(reservation.keys), args=[reservation.tokens - used_tokens], client=redis_client
        )
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The answer was already given: a failed give-back only leaves the window over-counted.
        logger.warning("Quota settle failed, %s reserved tokens not given back: %s", reservation.tokens, exc)


def queue_settle(pipe: redis.client.Pipeline, reservation: Reservation | None, *, used_tokens: int) -> None:
    """Queue `settle()` on a caller's pipeline, to share its round trip (metering's, after an answer).
    EVAL, not EVALSHA: a pipeline cannot reload a script Redis forgot without an extra round trip."""
    if reservation is None or not reservation.keys:
        return
    if used_tokens < 0:
        raise ValueError(f"used_tokens must be >= 0, got {used_tokens}")
    pipe.eval(_SETTLE_SOURCE, len(reservation.keys), *reservation.keys, reservation.tokens - used_tokens)


def format_reset(seconds: float) -> str:
    """A duration as OpenAI writes it in x-ratelimit-reset-*: "17ms", "1s", "6m0s", "1h2m3s"."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def ratelimit_headers(decision: QuotaDecision) -> dict[str, str]:
    """OpenAI's rate-limit headers for a limited response (and Retry-After on a refusal).

    Of several limits of one kind, the headers show the tightest: the one with the fewest remaining
    (on a tie, the one that resets last), which is the one the client must pace itself by."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        of_kind = [s for s in decision.states if s.kind == kind]
        if not of_kind:
            continue
        tightest = min(of_kind, key=lambda s: (s.remaining, -s.reset_seconds))
        headers[f"x-ratelimit-limit-{kind}"] = str(tightest.maximum)
        headers[f"x-ratelimit-remaining-{kind}"] = str(tightest.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = format_reset(tightest.reset_seconds)
    if not decision.allowed:
        headers["Retry-After"] = str(decision.retry_after_seconds)
    return headers


def current_usage(
    limit: Limit,
    *,
    client: redis.Redis | None = None,
    url: str | None = None,
    prefix: str = "tf",
    now: float | None = None,
) -> dict[str, int]:
    """What `limit`'s counters hold now ({"requests": n, "tokens": n}, for the kinds it limits),
    read without counting anything (one MGET). Raises QuotaBackendUnavailable like check()."""
    now = time.time() if now is None else now
    counters = _counters([limit], tokens=0, now=now, prefix=prefix)
    if not counters:
        return {}
    redis_client, _scripts = _client_and_scripts(url, client)
    try:
        values = redis_client.mget([c.key for c in counters])
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise QuotaBackendUnavailable(exc) from exc
    return {c.kind: int(v or 0) for c, v in zip(counters, values, strict=True)}
