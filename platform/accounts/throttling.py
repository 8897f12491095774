"""Brute-force brakes: failed sign-ins per account and per client address, failed API keys per
client address. Counters live in the cache (Redis in every deployment), so every web process sees
the same counts; `cache.incr` is atomic there, so concurrent failures are all counted.

A counter starts at the first failure and expires after its window; once it reaches its
threshold, the account or address is refused (429 with Retry-After) until the window ends.
Failures of one address never slow another address down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Brake:
    name: str
    threshold_setting: str
    window_setting: str

    @property
    def threshold(self) -> int:
        return int(getattr(settings, self.threshold_setting))

    @property
    def window(self) -> int:
        return int(getattr(settings, self.window_setting))

    def _key(self, ident: str) -> str:
        return f"tuneforge:brake:{self.name}:{ident}"

    def record_failure(self, ident: str) -> None:
        key, window = self._key(ident), self.window
        # The window's end travels with the counter, so Retry-After is exact in every process.
        cache.add(f"{key}:until", time.time() + window, timeout=window)
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr: this failure opens a new window
            cache.set(key, 1, timeout=window)

    def keys(self, ident: str) -> list[str]:
        """The cache keys `retry_after_from` reads (so a caller can fetch them with its own)."""
        key = self._key(ident)
        return [key, f"{key}:until"]

    def retry_after(self, ident: str) -> int | None:
        """Seconds until `ident` may try again, or None when it is not braked."""
        return self.retry_after_from(cache.get_many(self.keys(ident)), ident)

    def retry_after_from(self, values: dict, ident: str) -> int | None:
        """`retry_after` from already fetched `values` of `keys(ident)`."""
        key = self._key(ident)
        if int(values.get(key) or 0) < self.threshold:
            return None
        until = values.get(f"{key}:until") or time.time() + self.window
        return max(1, int(until - time.time() + 0.999))

    def reset(self, ident: str) -> None:
        key = self._key(ident)
        cache.delete_many([key, f"{key}:until"])


LOGIN_BY_ACCOUNT = Brake(
    "login-account", "TUNEFORGE_LOGIN_FAILURES_PER_ACCOUNT", "TUNEFORGE_LOGIN_LOCKOUT_SECONDS"
)
LOGIN_BY_ADDRESS = Brake(
    "login-address", "TUNEFORGE_LOGIN_FAILURES_PER_ADDRESS", "TUNEFORGE_LOGIN_LOCKOUT_SECONDS"
)
API_KEY_BY_ADDRESS = Brake(
    "apikey-address", "TUNEFORGE_API_KEY_FAILURES_PER_ADDRESS", "TUNEFORGE_API_KEY_LOCKOUT_SECONDS"
)


def client_address(request) -> str:
    """The peer address (a proxy in front must set REMOTE_ADDR, e.g. with its PROXY protocol)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def login_retry_after(request, *, email: str) -> int | None:
    waits = [
        LOGIN_BY_ACCOUNT.retry_after((email or "").strip().lower()),
        LOGIN_BY_ADDRESS.retry_after(client_address(request)),
    ]
    waits = [wait for wait in waits if wait]
    return max(waits) if waits else None


def login_failed(request, *, email: str) -> None:
    LOGIN_BY_ACCOUNT.record_failure((email or "").strip().lower())
    LOGIN_BY_ADDRESS.record_failure(client_address(request))


def login_succeeded(*, email: str) -> None:
    LOGIN_BY_ACCOUNT.reset((email or "").strip().lower())
