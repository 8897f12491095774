"""API keys: services and selectors (the one place that creates, lists and revokes them).

A key is `tf_<prefix>.<secret>`; djangorestframework-api-key generates it and stores the prefix and a
SHA-512 hash. The full key exists only in the return value of `apikey_create`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.authentication import KEY_PREFIX
from accounts.models import ApiKey, ApiKeyScope, Role, Team, User, role_at_least
from accounts.selectors import membership_for
from common.errors import Conflict, Forbidden, InvalidInput, NotFound

NAME_MAX = 50
PUBLIC_ID_PREFIX = "key-"
UNCHANGED: Any = object()
"""`apikey_update(endpoints=UNCHANGED)`: leave that field as it is."""


@dataclass(frozen=True)
class KeyLimitsHooks:
    """How a key's own rate limits are read and written. Serving owns the quota policies (accounts
    imports no app above it) and registers these in its AppConfig.ready: `read(api_key)` returns
    `{requests_per_minute, tokens_per_minute}`; `write(api_key, limits)` validates against the team's
    limits (raising ApplicationError) and stores them, inside the key's own transaction."""

    read: Callable[[ApiKey], dict]
    write: Callable[[ApiKey, dict | None], dict]


_limits_hooks: KeyLimitsHooks | None = None


def register_key_limits(hooks: KeyLimitsHooks) -> None:
    global _limits_hooks
    _limits_hooks = hooks


def apikey_limits(*, api_key: ApiKey) -> dict | None:
    """The key's own limits (each null: the team's), or None where no app provides limits."""
    return _limits_hooks.read(api_key) if _limits_hooks else None


def _write_limits(api_key: ApiKey, limits: dict | None) -> None:
    if _limits_hooks is None:
        raise InvalidInput("Per-key limits are not available on this platform.", field="limits")
    _limits_hooks.write(api_key, limits)


# How to list a team's endpoint slugs, registered at startup by the app that owns endpoints
# (serving, above accounts: accounts never imports it). With none registered, there are none.
_endpoint_providers: list[Callable[[Team], list[str]]] = []


def register_endpoint_provider(provider: Callable[[Team], list[str]]) -> None:
    if provider not in _endpoint_providers:
        _endpoint_providers.append(provider)


def team_endpoint_slugs(*, team: Team) -> list[str]:
    """The slugs of this team's endpoints (never another team's), which a key may be restricted to."""
    return sorted({slug for provider in _endpoint_providers for slug in provider(team)})


def _clean_scopes(scopes: list[str] | None) -> list[str]:
    if not scopes:
        raise InvalidInput(
            "Choose at least one scope: read, write or inference.", field="scopes", code="required"
        )
    valid = {s.value for s in ApiKeyScope}
    unknown = [s for s in scopes if s not in valid]
    if unknown:
        raise InvalidInput(
            f"Unknown scope {unknown[0]!r}: choose among read, write, inference.",
            field="scopes",
            code="invalid_scope",
        )
    # Keep the canonical order so equal scope sets look alike everywhere.
    return [s.value for s in ApiKeyScope if s.value in scopes]


@transaction.atomic
def apikey_create(
    *,
    team: Team,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    user: User | None = None,
    acting_key: ApiKey | None = None,
    endpoints: list[str] | None = None,
    limits: dict | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `team`; returns it with the full key, which is never stored nor shown again.

    A key created by another key can only carry scopes that key has, so a key cannot mint a
    stronger one; it answers to the same person, whose membership and role bound both."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput(
            "Give the key a name, so you can tell it apart later.", field="name", code="required"
        )
    if len(name) > NAME_MAX:
        raise InvalidInput(
            f"A key name has at most {NAME_MAX} characters; this one has {len(name)}.", field="name"
        )
    scopes = _clean_scopes(scopes)
    if acting_key is not None:
        missing = [s for s in scopes if not acting_key.has_scope(s)]
        if missing:
            raise Forbidden(
                f"This API key cannot grant the '{missing[0]}' scope, which it does not have itself.",
                field="scopes",
                code="scope_escalation",
            )
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", field="expires_at", code="expiry_in_past")
    if user is None and acting_key is not None:
        user = acting_key.created_by
    if user is None:
        raise InvalidInput("A key needs the member it acts for.", field="user", code="required")
    endpoints = _clean_endpoints(endpoints)
    if acting_key is not None and acting_key.endpoints is not None:
        if endpoints is None or any(e not in acting_key.endpoints for e in endpoints):
            raise Forbidden(
                "This API key cannot grant endpoints beyond its own.",
                field="endpoints",
                code="scope_escalation",
            )
    api_key, library_key = ApiKey.objects.create_key(
        team=team, name=name, scopes=scopes, expiry_date=expires_at, created_by=user, endpoints=endpoints
    )
    if limits is not None:
        _write_limits(api_key, limits)
    return api_key, KEY_PREFIX + library_key


def _clean_endpoints(endpoints: list[str] | None) -> list[str] | None:
    if endpoints is None:
        return None
    if not isinstance(endpoints, list) or not all(isinstance(e, str) and e.strip() for e in endpoints):
        raise InvalidInput("endpoints must be a list of endpoint slugs, or null for all.", field="endpoints")
    return sorted({e.strip() for e in endpoints})


@transaction.atomic
def apikey_update(
    *,
    team: Team,
    api_key: ApiKey,
    endpoints: list[str] | None = UNCHANGED,
    limits: dict | None = UNCHANGED,
    acting_key: ApiKey | None = None,
) -> ApiKey:
    """Restrict a key to some endpoints (or lift the restriction with null), and/or set its own rate
    limits (null: the team's). Either both change or neither."""
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk, team=team)
    if limits is not UNCHANGED:
        _write_limits(api_key, limits)
    if endpoints is UNCHANGED:
        return api_key
    endpoints = _clean_endpoints(endpoints)
    if acting_key is not None and acting_key.endpoints is not None:
        if endpoints is None or any(e not in acting_key.endpoints for e in endpoints):
            raise Forbidden(
                "This API key cannot grant endpoints beyond its own.",
                field="endpoints",
                code="scope_escalation",
            )
    api_key.endpoints = endpoints
    api_key.save(update_fields=["endpoints"])
    return api_key


def apikey_list(*, team: Team) -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("created_by").filter(team=team)


def apikey_get(*, team: Team, key_id: str) -> ApiKey:
    """A key of this team by its public id `key-<prefix>` (another team's key is a 404)."""
    prefix = key_id[len(PUBLIC_ID_PREFIX) :] if key_id.startswith(PUBLIC_ID_PREFIX) else None
    api_key = apikey_list(team=team).filter(prefix=prefix).first() if prefix else None
    if api_key is None:
        raise NotFound(f"No API key {key_id!r} in team {team.name}.", code="api_key_not_found")
    return api_key


@transaction.atomic
def apikey_revoke(*, team: Team, api_key: ApiKey, user: User | None = None) -> ApiKey:
    """Revokes a key for good. A signed-in member may revoke the keys they created; owners and
    admins any key of the team. (An API key with the write scope may revoke its team's keys.)"""
    if user is not None and api_key.created_by_id != user.pk:
        role = membership_for(user=user, team_id=team.pk).role
        if not role_at_least(role, Role.ADMIN):
            raise Forbidden(
                f"Only owners and admins can revoke keys created by someone else; you are a {role} of {team.name}.",
                code="insufficient_role",
            )
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.revoked:
        raise Conflict(f"The API key {api_key.public_id} was already revoked.", code="already_revoked")
    api_key.revoked = True
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked", "revoked_at"])
    return api_key
