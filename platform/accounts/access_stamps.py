"""Per-team access stamps: what lets a web process cache who may call what (an API key's scopes,
its owner's role, an endpoint's routing) and still see every change on the very next request.

A write that changes what a team's keys may do or where its endpoints route (a key revoked,
restricted or deleted, a member removed, demoted or joining, an endpoint published, switched,
rolled back, deployed or unpublished) sets the team's stamp in Redis to a new random token
(`accounts.receivers` and `serving.apps` do it from the models' signals, so no service can forget).
A cached entry remembers the stamp it was read under and is used only while Redis still holds
that stamp. Reading it is one GET, folded into the brake lookup API-key authentication does anyway,
instead of the two to four PostgreSQL queries the entries replace.

The stamp is set twice: at once, so a reader inside the writer's own transaction (as tests are)
sees the change, and again after commit, so a process that re-read the database between the first
set and the commit (and so cached what it saw then) drops that too. A cache reads the stamp
*before* it reads the database. A random token, not a counter: Redis losing the key (a flush, a
restart without persistence) can never bring back a stamp an old entry holds. Entries also expire
after `MAX_AGE_S`, which bounds what a write outside the models' signals (a raw SQL fix) can
leave stale.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.cache import cache
from django.db import transaction

MAX_AGE_S = 60.0
_PREFIX = "tuneforge:access-stamp:"

T = TypeVar("T")


logger = logging.getLogger(__name__)


def stamp_key(team_id: Any) -> str:
    return f"{_PREFIX}{team_id}"


def _new_stamp(team_ids: Iterable[Any]) -> None:
    try:
        cache.set_many({stamp_key(t): secrets.token_hex(8) for t in team_ids}, timeout=None)
    except Exception:  # noqa: BLE001 - e.g. `seed_demo` before the embedded Redis runs
        # No Redis, no process can have read a stamp from it: cached entries also expire in 60 s.
        logger.warning("access stamps: Redis unreachable, teams %s not re-stamped", list(team_ids))


def bump(*team_ids: Any) -> None:
    """Invalidate every process's cached access entries of these teams (now and after commit)."""
    team_ids = tuple(t for t in team_ids if t)
    if not team_ids:
        return
    _new_stamp(team_ids)
    transaction.on_commit(lambda: _new_stamp(team_ids), robust=True)


def stamp_of(value: Any, team_id: Any) -> str:
    """The stamp `value` (as read from the cache, None when Redis has none) stands for; a missing one
    is created, so entries cached under it stay valid until the next bump."""
    if value is not None:
        return value
    key = stamp_key(team_id)
    cache.add(key, secrets.token_hex(8), timeout=None)
    return cache.get(key) or ""


def current(team_id: Any) -> str:
    """The team's stamp now (one Redis GET)."""
    return stamp_of(cache.get(stamp_key(team_id)), team_id)


@dataclass
class _Entry(Generic[T]):
    value: T
    stamp: str | None
    loaded_at: float


class StampedCache(Generic[T]):
    """A bounded, thread-safe map of per-team entries that holds an entry only while its team's stamp
    is unchanged and it is younger than MAX_AGE_S. `get(key, stamp, load)` returns the cached value or
    `load()`'s, caching the latter under `stamp` (the caller read that stamp before `load` runs).
    A None value (nothing found) is not cached."""

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Any, _Entry[T]] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, key: Any) -> T | None:
        """The cached value whatever its stamp (to learn which team's stamp to read)."""
        with self._lock:
            entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def peek_fresh(self, key: Any) -> tuple[T, str] | None:
        """(the cached value, the stamp it was read under) while it is younger than MAX_AGE_S and
        has a stamp; None otherwise. The caller must still confirm that stamp is current."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry.stamp is None or time.monotonic() - entry.loaded_at >= MAX_AGE_S:
            return None
        return entry.value, entry.stamp

    def get(self, key: Any, stamp: str | None, load: Callable[[], T | None]) -> T | None:
        """With `stamp` None (not known yet), `load()` answers and its value is kept for `peek` only."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            fresh = entry is not None and now - entry.loaded_at < MAX_AGE_S
            if fresh and stamp is not None and entry.stamp == stamp:
                self._entries.move_to_end(key)
                return entry.value
        value = load()
        with self._lock:
            if value is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = _Entry(value, stamp, now)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
