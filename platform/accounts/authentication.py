"""API-key authentication for both API faces (`Authorization: Bearer tf_...` or `X-Api-Key`)."""

import copy
import re
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts import access_stamps
from accounts.models import ApiKey, Membership
from accounts.throttling import API_KEY_BY_ADDRESS, client_address

KEY_PREFIX = "tf_"
# Checked before any query, so junk never reaches the database.
KEY_FORMAT = re.compile(r"^tf_([A-Za-z0-9]{8})\.([A-Za-z0-9]{32})$")
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MALFORMED = "Malformed API key: expected 'tf_' followed by the key shown once at creation."


def presented_key(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.META.get("HTTP_X_API_KEY") or None


@dataclass(frozen=True)
class _KeyEntry:
    """What authenticating a key reads from the database: the key (with its team) and its creator's
    role in the team (None: no longer a member). Never handed out: each request gets a copy."""

    api_key: ApiKey
    owner_role: str | None


# prefix -> _KeyEntry, valid while the key's team's access stamp is unchanged (accounts.access_stamps):
# a revocation, a restriction, a removal or a demotion bumps the stamp, so it counts on the next
# request in every process, as it did when every request read the database.
_keys: access_stamps.StampedCache[_KeyEntry] = access_stamps.StampedCache()


def _load_key(prefix: str) -> _KeyEntry | None:
    api_key = ApiKey.objects.select_related("team").filter(prefix=prefix).first()
    if api_key is None:
        return None
    role = (
        Membership.objects.filter(team_id=api_key.team_id, user_id=api_key.created_by_id)
        .values_list("role", flat=True)
        .first()
        if api_key.created_by_id
        else None
    )
    return _KeyEntry(api_key=api_key, owner_role=role)


def _copy_of(api_key: ApiKey) -> ApiKey:
    # Model instances copy their state and relation cache (Model.__getstate__); the team is copied
    # too, so nothing one request sets on its key or team reaches another request.
    mine = copy.copy(api_key)
    mine._state.fields_cache = {"team": copy.copy(api_key.team)}
    return mine


def key_team_hint(raw: str) -> str | None:
    """The team of a token's key as this process last saw it (no query), to read its access stamp
    along with the brakes; None for a token not seen yet or malformed."""
    match = KEY_FORMAT.match(raw)
    entry = _keys.peek(match.group(1)) if match else None
    return entry.api_key.team_id if entry is not None else None


class AccessBackendUnavailable(exceptions.APIException):
    """503: Redis, which holds the brakes and the access stamps, cannot be reached, so no API key's
    access can be confirmed: the call is refused (fail closed) with the cause named."""

    status_code = 503
    default_code = "access_backend_unavailable"


def _backend_down(exc: Exception) -> AccessBackendUnavailable:
    return AccessBackendUnavailable(
        f"API keys cannot be checked now: the access backend (Redis) is unavailable: "
        f"{type(exc).__name__}: {exc}"
    )


class AccessChanged(Exception):
    """A request authenticated from this process's cached key entry (`PendingAccess`) found the
    team's access stamp changed when it was confirmed: nothing was counted or done, and the view
    answers the request again with the key read afresh (`accounts.access.ConfirmsAccessLater`)."""


@dataclass
class PendingAccess:
    """What an API-key request authenticated from the cached key entry has not read yet: its
    address's brake and its team's access stamp (the MGET `ApiKeyAuthentication` makes otherwise).
    The quota check reads them in its own round trip (`serving.quotas.check(access=...)`: the
    Redis keys below, the brake's threshold and the stamp's stored bytes); a request that never
    reaches the check confirms them with `confirm()` before it answers. Until then the request
    has only read (no count, no inference), so a changed stamp means answering it again."""

    address: str
    team_id: str
    stamp: str
    keys: tuple[str, str, str]  # as stored in Redis: brake counter, brake window end, access stamp
    threshold: int
    expected_stamp: bytes
    # Set once the brake and stamp were read, whatever they said (the answer reports that).
    checked: bool = False

    def resolve(self, values: list) -> None:
        """Given what Redis holds under `keys` (stored bytes or None): raise Throttled while the
        address is braked, AccessChanged when the stamp differs; otherwise the access holds."""
        self.checked = True
        brake_key, until_key = API_KEY_BY_ADDRESS.keys(self.address)
        loaded = [cache.loaded_value(v) for v in values]
        wait = API_KEY_BY_ADDRESS.retry_after_from({brake_key: loaded[0], until_key: loaded[1]}, self.address)
        if wait:
            raise _brake_refusal(wait)
        if loaded[2] != self.stamp:
            raise AccessChanged(self.team_id)

    def confirm(self) -> None:
        """Read the brake and the stamp now (one MGET) and `resolve` them."""
        if self.checked:
            return
        self.checked = True  # a failed read answers 503 once, not again at the end of the view
        try:
            values = cache.stored_values(list(self.keys))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _backend_down(exc) from exc
        self.resolve(values)


def pending_access(api_key) -> PendingAccess | None:
    """The request's unconfirmed access, if it was authenticated from the cached entry."""
    pending = getattr(api_key, "pending_access", None)
    return pending if pending is not None and not pending.checked else None


def _brake_refusal(wait: int) -> exceptions.Throttled:
    return exceptions.Throttled(
        wait=wait, detail=f"Too many failed API-key attempts from this address; retry in {wait} s."
    )


def _can_defer_access() -> bool:
    # Folding the read into the quota check needs the cache and the quota counters in one Redis.
    cache_settings = settings.CACHES["default"]
    return cache_settings["BACKEND"] == "common.cache.PooledRedisCache" and (
        cache_settings["LOCATION"] == settings.REDIS_URL
    )


def key_from_token(raw: str, *, stamp: str | None = None) -> ApiKey:
    """The usable key for a presented token; raises AuthenticationFailed saying why not. `stamp` is
    the access stamp of the key's team read before this call (None: unknown, read the database)."""
    match = KEY_FORMAT.match(raw)
    if not match:
        raise exceptions.AuthenticationFailed(MALFORMED, code="malformed_api_key")
    library_key = raw[len(KEY_PREFIX) :]
    entry = _keys.get(match.group(1), stamp, lambda: _load_key(match.group(1)))
    if entry is None or not entry.api_key.is_valid(library_key):
        raise exceptions.AuthenticationFailed(
            "Invalid API key: it matches no key of this platform.", code="invalid_api_key"
        )
    api_key = _copy_of(entry.api_key)
    if api_key.revoked:
        raise exceptions.AuthenticationFailed("This API key was revoked.", code="revoked_api_key")
    if api_key.has_expired:
        raise exceptions.AuthenticationFailed("This API key has expired.", code="expired_api_key")
    # Keys die with their creator's membership, and carry no more than the creator's current role.
    if entry.owner_role is None:
        raise exceptions.AuthenticationFailed(
            "This API key no longer works: the key's owner is no longer a member of the team.",
            code="owner_not_member",
        )
    api_key.owner_role = entry.owner_role
    api_key.access_stamp = stamp
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = entry.api_key.last_used_at = now
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """request.user is an `ApiKeyUser` (the key's team, not a person), request.auth the ApiKey."""

    def authenticate(self, request):
        raw = presented_key(request)
        if raw is None:
            return None
        address = client_address(request)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if getattr(view, "confirms_access_later", False):
            deferred = self._from_cached_entry(raw, address)
            if deferred is not None:
                return deferred
        # One Redis round trip: this address's brake and the key's team's access stamp.
        team_id = key_team_hint(raw)
        extra = [access_stamps.stamp_key(team_id)] if team_id else []
        try:
            values = cache.get_many([*API_KEY_BY_ADDRESS.keys(address), *extra])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _backend_down(exc) from exc
        wait = API_KEY_BY_ADDRESS.retry_after_from(values, address)
        if wait:
            raise _brake_refusal(wait)
        try:
            if not raw.startswith(KEY_PREFIX):
                # No other authenticator reads these headers, so a foreign token is an error, not a pass.
                raise exceptions.AuthenticationFailed(MALFORMED, code="malformed_api_key")
            stamp = access_stamps.stamp_of(values.get(extra[0]), team_id) if extra else None
            api_key = key_from_token(raw, stamp=stamp)
        except exceptions.AuthenticationFailed as exc:
            if exc.get_codes() in ("malformed_api_key", "invalid_api_key"):  # guesses, not lapsed keys
                API_KEY_BY_ADDRESS.record_failure(address)
            raise
        return (ApiKeyUser(api_key), api_key)

    @staticmethod
    def _from_cached_entry(raw: str, address: str):
        """(user, key) from the entry this process cached under the stamp it last saw, with the
        brake and stamp reads left to the quota check (`PendingAccess`); None when there is no
        usable entry or the token does not pass with it: the full path then decides, brake first,
        so a braked address learns nothing about the tokens it tries."""
        match = KEY_FORMAT.match(raw)
        cached = _keys.peek_fresh(match.group(1)) if match else None
        if cached is None or not _can_defer_access():
            return None
        entry, stamp = cached
        try:
            api_key = key_from_token(raw, stamp=stamp)
        except exceptions.AuthenticationFailed:
            return None
        brake_key, until_key = API_KEY_BY_ADDRESS.keys(address)
        stamp_key = access_stamps.stamp_key(entry.api_key.team_id)
        api_key.pending_access = PendingAccess(
            address=address,
            team_id=entry.api_key.team_id,
            stamp=stamp,
            keys=(cache.stored_key(brake_key), cache.stored_key(until_key), cache.stored_key(stamp_key)),
            threshold=API_KEY_BY_ADDRESS.threshold,
            expected_stamp=cache.stored_value(stamp),
        )
        return (ApiKeyUser(api_key), api_key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tuneforge"'


class ApiKeyUser:
    """The principal behind an API key: a team, not a person. Quacks enough like a user for DRF."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.team = api_key.team
        self.pk = None
        self.id = None
        self.email = f"{api_key.public_id}@api-keys.tuneforge"

    def __str__(self) -> str:
        return self.api_key.public_id
