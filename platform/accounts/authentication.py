"""API-key authentication for both API faces (`Authorization: Bearer tf_...` or `X-Api-Key`)."""

import re
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

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


def key_from_token(raw: str) -> ApiKey:
    """The usable key for a presented token; raises AuthenticationFailed saying why not."""
    match = KEY_FORMAT.match(raw)
    if not match:
        raise exceptions.AuthenticationFailed(MALFORMED, code="malformed_api_key")
    library_key = raw[len(KEY_PREFIX) :]
    api_key = ApiKey.objects.select_related("team").filter(prefix=match.group(1)).first()
    if api_key is None or not api_key.is_valid(library_key):
        raise exceptions.AuthenticationFailed(
            "Invalid API key: it matches no key of this platform.", code="invalid_api_key"
        )
    if api_key.revoked:
        raise exceptions.AuthenticationFailed("This API key was revoked.", code="revoked_api_key")
    if api_key.has_expired:
        raise exceptions.AuthenticationFailed("This API key has expired.", code="expired_api_key")
    # Keys die with their creator's membership, and carry no more than the creator's current role.
    # Read per request, never cached: a removal counts at once in every process.
    role = (
        Membership.objects.filter(team_id=api_key.team_id, user_id=api_key.created_by_id)
        .values_list("role", flat=True)
        .first()
        if api_key.created_by_id
        else None
    )
    if role is None:
        raise exceptions.AuthenticationFailed(
            "This API key no longer works: the key's owner is no longer a member of the team.",
            code="owner_not_member",
        )
    api_key.owner_role = role
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """request.user is an `ApiKeyUser` (the key's team, not a person), request.auth the ApiKey."""

    def authenticate(self, request):
        raw = presented_key(request)
        if raw is None:
            return None
        address = client_address(request)
        wait = API_KEY_BY_ADDRESS.retry_after(address)
        if wait:
            raise exceptions.Throttled(
                wait=wait, detail=f"Too many failed API-key attempts from this address; retry in {wait} s."
            )
        try:
            if not raw.startswith(KEY_PREFIX):
                # No other authenticator reads these headers, so a foreign token is an error, not a pass.
                raise exceptions.AuthenticationFailed(MALFORMED, code="malformed_api_key")
            api_key = key_from_token(raw)
        except exceptions.AuthenticationFailed as exc:
            if exc.get_codes() in ("malformed_api_key", "invalid_api_key"):  # guesses, not lapsed keys
                API_KEY_BY_ADDRESS.record_failure(address)
            raise
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
