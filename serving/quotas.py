"""Quota limiter: every limit that applies to one request checked and counted in ONE Redis round trip.

A limit's maximum is either given with the call (`Limit("key:42", 60, max_requests=600)`) or named
as a field of a policy hash in Redis (`max_requests="key:42:rpm"`, with `check(policy=...)`), which
the script reads in the same step. The policy hash is a copy of the database's rows, dropped on
every change (serving.quota_policies) and rebuilt from the database when the script reports it
missing, so a limit changed in the database applies to the next request in every process.

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
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import redis
from django.conf import settings

from common import metrics
from serving.metering import CallIncrements

logger = logging.getLogger(__name__)

MONTH = "month"
"""`Limit.window` for a calendar month (UTC); any other window is a whole number of seconds."""

Kind = Literal["requests", "tokens"]

_LUA_DIR = Path(__file__).resolve().parent / "lua"
_CHECK_SOURCE = (_LUA_DIR / "quota_check.lua").read_text()
_CHECK_SHA = hashlib.sha1(_CHECK_SOURCE.encode()).hexdigest()
_SETTLE_SOURCE = (_LUA_DIR / "quota_settle.lua").read_text()


class AccessNotConfirmed(Exception):
    """`check(access=...)` found the caller's address braked or its team's access stamp changed:
    nothing was checked or counted. `values` are what Redis holds under `access.keys` (stored
    bytes or None), for the caller to tell which (`accounts.authentication.PendingAccess.resolve`)."""

    def __init__(self, values: list) -> None:
        self.values = values
        super().__init__("the caller's access changed since it was authenticated")


class AccessCondition(Protocol):
    """The API-key access a check confirms in the same round trip (`PendingAccess` in accounts):
    `keys` = (brake counter, brake window end, access stamp) as stored in Redis; the request is
    refused when the counter is at `threshold` or the stamp's bytes are not `expected_stamp`."""

    keys: tuple[str, str, str]
    threshold: int
    expected_stamp: bytes


class QuotaBackendUnavailable(Exception):
    """Redis, which holds the counters, could not be reached: the view answers 503 naming the cause."""

    def __init__(self, cause: Exception) -> None:
        self.cause = cause
        super().__init__(f"quota backend (Redis) unavailable: {type(cause).__name__}: {cause}")


@dataclass(frozen=True)
class Limit:
    """One policy row: at most `max_requests` requests and/or `max_tokens` tokens per window for
    everything that shares `scope` (e.g. "key:42", "team:7", "endpoint:3"). A maximum given as a
    string names the field of the policy hash that holds it (`check(policy=...)`); that field's
    value '' means no limit."""

    scope: str
    window: int | Literal["month"]
    max_requests: int | str | None = None
    max_tokens: int | str | None = None

    def __post_init__(self) -> None:
        if self.max_requests is None and self.max_tokens is None:
            raise ValueError(f"Limit {self.scope!r}: give max_requests, max_tokens or both")
        if self.window != MONTH and (not isinstance(self.window, int) or self.window <= 0):
            raise ValueError(
                f"Limit {self.scope!r}: window must be seconds > 0 or MONTH, got {self.window!r}"
            )
        for name in ("max_requests", "max_tokens"):
            value = getattr(self, name)
            if isinstance(value, str):
                if not value or value.lstrip("-").isdigit():
                    raise ValueError(f"Limit {self.scope!r}: {name} names no policy field: {value!r}")
            elif value is not None and value < 0:
                raise ValueError(f"Limit {self.scope!r}: {name} must be >= 0, got {value}")


@dataclass(frozen=True)
class PolicySource:
    """Where `check()` finds the maxima that Limits name by field: the hash `key` in Redis (a copy),
    its `epoch_key` (bumped by every change), and `load()`, which reads the fields from the database
    (field -> decimal maximum, or '' for no limit) when the copy is missing."""

    key: str
    epoch_key: str
    load: Callable[[], Mapping[str, str]]
    ttl_seconds: int = 600


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
    # True when the script also confirmed the `access` it was given.
    access_confirmed: bool = False

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
    maximum: int | str
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
        self.check = client.register_script(_CHECK_SOURCE)
        self.settle = client.register_script(_SETTLE_SOURCE)


class _Links:
    """The gate's own connections to one Redis, each used by one thread at a time, on which a write
    can be sent without waiting for its reply (`send_later`): the reply is read before the
    connection's next command, when it has long arrived. So a request costs one wait, the check's:
    its settle and metering go out before the answer does but are not waited for.

    Why that loses nothing: the command is in the kernel's socket buffer (on loopback, in Redis's)
    when `send_later` returns, and Redis runs what it received even if the sender is killed next.
    A connection Redis closed (a restart, an idle timeout) is noticed before the write, by the
    replies still due on it or a poll for unexpected data, and replaced: a write is never sent into
    a dead socket. An error reply to a deferred write is logged when it is read."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._make = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list[list] = []  # [connection, replies not yet read]
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self) -> list:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return [self._make(), 0]

    def _give(self, link: list) -> None:
        with self._lock:
            self._idle.append(link)

    @staticmethod
    def _settle_up(link: list) -> None:
        """Read the replies still due on `link`; raise ConnectionError if it is dead."""
        conn = link[0]
        if not conn.is_connected:
            link[1] = 0
            return
        while link[1]:
            link[1] -= 1
            try:
                conn.read_response()
            except redis.ResponseError as exc:
                logger.warning("A quota settle / metering write failed in Redis: %s", exc)
        if conn.can_read():
            raise redis.ConnectionError("unexpected data on an idle quota connection")

    def _use(self, work: Callable[[object], object]) -> object:
        link = self._take()
        reused = link[0].is_connected
        try:
            try:
                self._settle_up(link)
                result = work(link)
            except redis.ConnectionError:
                if not reused:
                    raise
                # A connection that died while idle: the command did not reach Redis; once more
                # on a fresh one.
                link[0].disconnect()
                link[1] = 0
                result = work(link)
        except BaseException:
            link[0].disconnect()
            link[1] = 0
            self._give(link)
            raise
        self._give(link)
        return result

    def evalsha(self, sha: str, source: str, keys: Sequence[str], args: Sequence) -> object:
        """Run a script and wait for its reply (EVALSHA; on NOSCRIPT, EVAL, which also caches it)."""

        def work(link: list) -> object:
            conn = link[0]
            conn.send_command("EVALSHA", sha, len(keys), *keys, *args, check_health=False)
            try:
                return conn.read_response()
            except redis.exceptions.NoScriptError:
                conn.send_command("EVAL", source, len(keys), *keys, *args, check_health=False)
                return conn.read_response()

        return self._use(work)

    def send_later(self, source: str, keys: Sequence[str], args: Sequence) -> None:
        """Send a script (EVAL: it must not depend on Redis still knowing it) and do not wait."""

        def work(link: list) -> None:
            link[0].send_command("EVAL", source, len(keys), *keys, *args, check_health=False)
            link[1] += 1

        self._use(work)


_clients: dict[str, tuple[redis.Redis, _Scripts, _Links]] = {}


def quota_client(url: str | None = None) -> redis.Redis:
    """The process's Redis client for quotas (a connection pool per URL), with short timeouts so a
    dead Redis answers 503 in well under a second instead of hanging the request."""
    return _process_client(url)[0]


def _process_client(url: str | None) -> tuple[redis.Redis, _Scripts, _Links]:
    url = url or settings.REDIS_URL
    if url not in _clients:
        timeout = settings.TUNEFORGE_QUOTA_REDIS_TIMEOUT
        made = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        _clients[url] = (made, _Scripts(made), _Links(made))
    return _clients[url]


def _client_and_scripts(url: str | None, client: redis.Redis | None = None) -> tuple[redis.Redis, _Scripts]:
    if client is not None:
        # Kept on the client itself: a cache keyed by id() would hand a new client the scripts of a
        # collected one that happened to have the same id.
        scripts = getattr(client, "_tuneforge_quota_scripts", None)
        if scripts is None:
            scripts = _Scripts(client)
            client._tuneforge_quota_scripts = scripts
        return client, scripts
    return _process_client(url)[:2]


def _fail_open(fail_open: bool | None) -> bool:
    return settings.TUNEFORGE_QUOTA_FAIL_OPEN if fail_open is None else fail_open


def _access_held(reply: list) -> list:
    if reply[0] == -2:
        raise AccessNotConfirmed(list(reply[1:]))
    return reply


def check(
    *,
    limits: Sequence[Limit],
    tokens: int = 0,
    client: redis.Redis | None = None,
    url: str | None = None,
    prefix: str = "tf",
    fail_open: bool | None = None,
    now: float | None = None,
    policy: PolicySource | None = None,
    access: AccessCondition | None = None,
) -> QuotaDecision:
    """Check and count one request against every limit at once (all-or-nothing).

    `tokens` is what the request may use (its `max_tokens`, or its input's tokens): counted against
    each token limit now; `settle(decision.reservation, used_tokens=...)` gives back the rest.
    Maxima named by field are read from `policy`'s hash in the same script; when the hash lacks
    one, `policy.load()` reads them from the database and the script runs again with them (a cold
    start or a change costs one more round trip; every other request, one).
    Raises QuotaBackendUnavailable when Redis cannot be reached, unless fail-open is set
    (argument, else TUNEFORGE_QUOTA_FAIL_OPEN): then the request is allowed, uncounted, and logged.
    A request with a policy whose rows set no limit at all is allowed then too (nothing to count).
    `access`, when given, is confirmed first in the same script (a round trip even with no limit):
    AccessNotConfirmed when it does not hold, with nothing counted.
    """
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    now = time.time() if now is None else now
    counters = _counters(limits, tokens=tokens, now=now, prefix=prefix)
    if not counters and access is None:
        return QuotaDecision(allowed=True)
    if policy is None and any(isinstance(c.maximum, str) for c in counters):
        raise ValueError("check(): a limit names a policy field, and no policy was given")
    keys = [policy.key, policy.epoch_key] if policy is not None else []
    head: list = [2 if policy is not None else 0]
    if access is not None:
        keys += access.keys
        head += [3, access.threshold, access.expected_stamp]
    else:
        head += [0, 0, ""]
    keys += [c.key for c in counters]
    triples: list = []
    for counter in counters:
        triples += [counter.maximum, counter.cost, counter.ttl_seconds]
    try:
        if client is None:
            links = _process_client(url)[2]

            def run(args: list) -> list:
                return links.evalsha(_CHECK_SHA, _CHECK_SOURCE, keys, args)

        else:
            scripts = _client_and_scripts(url, client)[1]

            def run(args: list) -> list:
                return scripts.check(keys=keys, args=args, client=client)

        reply = _access_held(run(head + [0, "", 0] + triples))
        loads = 0
        while reply[0] == -1:
            if loads == 3:
                raise RuntimeError("quota policies changed three times during one check")
            loads += 1
            # The policy's copy is missing: load it under the epoch the script saw (a change made
            # meanwhile bumps the epoch, and the script then refuses this load and asks again).
            fields = [item for pair in policy.load().items() for item in pair]
            reply = _access_held(
                run(head + [len(fields) // 2, reply[1], policy.ttl_seconds] + fields + triples)
            )
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if policy is not None and not any(policy.load().values()):
            return QuotaDecision(allowed=True)
        if _fail_open(fail_open):
            logger.warning("Quota check skipped, request let through (fail open): %s", exc)
            return QuotaDecision(allowed=True, degraded=True)
        raise QuotaBackendUnavailable(exc) from exc
    allowed, used, refused_flags, maxima = reply
    allowed = bool(allowed)
    states, refused, token_keys = [], [], []
    for counter, count, flag, maximum in zip(counters, used, refused_flags, maxima, strict=True):
        if maximum < 0:
            continue  # its policy field says: no limit
        state = LimitState(
            limit=counter.limit,
            kind=counter.kind,
            maximum=maximum,
            used=count,
            reset_seconds=max(0.0, counter.window_end - now),
        )
        states.append(state)
        if flag:
            refused.append(state)
        if counter.kind == "tokens":
            token_keys.append(counter.key)
    reservation = (
        Reservation(keys=tuple(token_keys), tokens=tokens) if allowed and token_keys and tokens else None
    )
    if not allowed:
        for state in refused:
            metrics.QUOTA_REFUSALS.labels(kind=state.kind, scope=state.limit.scope.split(":", 1)[0]).inc()
    return QuotaDecision(
        allowed=allowed,
        states=tuple(states),
        refused_by=tuple(refused),
        reservation=reservation,
        access_confirmed=access is not None,
    )


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
            keys=list(reservation.keys),
            args=[reservation.tokens - used_tokens, len(reservation.keys)],
            client=redis_client,
        )
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The answer was already given: a failed give-back only leaves the window over-counted.
        logger.warning("Quota settle failed, %s reserved tokens not given back: %s", reservation.tokens, exc)


def settle_and_meter_later(
    reservation: Reservation | None, *, used_tokens: int, call: CallIncrements, url: str | None = None
) -> None:
    """`settle()` and meter one call (`serving.metering.call_increments`) in one atomic script, sent
    on the process's quota connections without waiting for the reply (see `_Links`): the request
    has made its one round trip, the check's. Raises redis.ConnectionError / TimeoutError if Redis
    cannot be written to."""
    if used_tokens < 0:
        raise ValueError(f"used_tokens must be >= 0, got {used_tokens}")
    token_keys = list(reservation.keys) if reservation is not None else []
    delta = reservation.tokens - used_tokens if reservation is not None else 0
    args: list = [delta, len(token_keys), call.minute]
    for field_name, amount in call.increments:
        args += [field_name, amount]
    _process_client(url)[2].send_later(_SETTLE_SOURCE, [*token_keys, call.hash_key, call.minutes_key], args)


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
