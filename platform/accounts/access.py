"""Who acts, on which team, with which rights: the base of every team-scoped view.

Session users act on their active team (or the team in the URL) with their membership role. An API
key acts on its own team with its scopes, and never with more than its creator's *current* role
there: the creator's membership is read from the database on every request (no per-process cache),
so a demotion or a removal takes effect at once in every web process. A key whose creator left
the team stops authenticating (see `accounts.authentication`).
"""

from rest_framework.exceptions import APIException
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.request import Empty
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import AccessChanged, ApiKeyAuthentication, pending_access
from accounts.models import ApiKey, Role, Team, role_at_least
from accounts.selectors import active_membership_for, membership_for
from common.errors import Forbidden, NotFound
from common.openai_compat import OpenAIFaceMixin


class TeamContext:
    def __init__(self, *, team: Team, role: str, api_key: ApiKey | None, user) -> None:
        self.team = team
        self.role = role
        self.api_key = api_key
        self.user = user

    def require(self, *, role: str = Role.VIEWER, scope: str | None = None) -> None:
        if self.api_key is not None:
            needed = scope or ("read" if role == Role.VIEWER else "write")
            if not self.api_key.has_scope(needed):
                raise Forbidden(f"This API key lacks the '{needed}' scope.", code="missing_scope")
            # The key speaks for its creator: their current role caps what it may do.
            if not role_at_least(self.role, role):
                raise Forbidden(
                    f"This needs the {role} role in team {self.team.name}; the key's owner is now "
                    f"{self.role} there, and a key never grants more than its owner's role.",
                    code="insufficient_role",
                )
            return
        if not role_at_least(self.role, role):
            raise Forbidden(
                f"This needs the {role} role in team {self.team.name}; you are {self.role}.",
                code="insufficient_role",
            )


def team_context_for(request, *, team_id: str | None = None) -> TeamContext:
    """The acting team: the one named by `team_id` (a 404 unless the caller belongs to it), else the
    session user's active team, or an API key's own team (with its creator's current role)."""
    if isinstance(request.auth, ApiKey):
        api_key = request.auth
        if team_id is not None and team_id != api_key.team_id:
            raise NotFound(f"No team {team_id!r} for this API key.", code="team_not_found")
        # Set by ApiKeyAuthentication from this request's own query of the creator's membership.
        role = getattr(api_key, "owner_role", None) or Role.VIEWER
        return TeamContext(team=api_key.team, role=role, api_key=api_key, user=None)
    user = request.user
    if team_id is not None:
        membership = membership_for(user=user, team_id=team_id)
    else:
        membership = active_membership_for(user=user)
    if membership is None:
        raise NotFound("You belong to no team yet: create one or accept an invitation.", code="no_team")
    return TeamContext(team=membership.team, role=membership.role, api_key=None, user=user)


class TeamApiView(APIView):
    """Subclasses read `self.ctx.team`. Writes need `write_role` (member by default)."""

    write_role: str = Role.MEMBER
    read_role: str = Role.VIEWER
    scope: str | None = None  # e.g. "inference" on prediction routes
    # Routes such as /teams/{team_id}/members act on the team in the URL instead of the active one.
    team_url_kwarg: str | None = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        team_id = kwargs.get(self.team_url_kwarg) if self.team_url_kwarg else None
        self.ctx = team_context_for(request, team_id=team_id)
        if request.method in SAFE_METHODS:
            self.ctx.require(role=self.read_role, scope=self.scope)
        else:
            self.ctx.require(role=self.write_role, scope=self.scope)


class ConfirmsAccessLater:
    """Mixed (first) into the inference views, whose quota check confirms an API key's access in
    its own Redis round trip: the key is authenticated from this process's cached entry and the
    brake and access-stamp read it would cost is folded into the check (`PendingAccess`), so a
    predict waits for one round trip, not two.

    A request that answers without reaching the check (a 404, a bad input) confirms its access
    before the answer leaves. When the stamp turns out changed (a key revoked, restricted, an
    endpoint switched, in any process), nothing was counted or run yet: the request is answered
    again from the start with the key read afresh, as every request was before."""

    confirms_access_later = True
    _access_changed = False

    def handle_exception(self, exc):
        if isinstance(exc, AccessChanged):
            self._access_changed = True
            return Response(status=503)  # never sent: dispatch answers the request again
        return super().handle_exception(exc)

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        first = self.request
        pending = pending_access(getattr(first, "_auth", None))
        if pending is not None and not self._access_changed:
            try:
                pending.confirm()
                return response
            except APIException as exc:  # the address is braked, or Redis cannot be reached
                return self.finalize_response(first, self.handle_exception(exc), *args, **kwargs)
            except AccessChanged:
                self._access_changed = True
        if not self._access_changed:
            return response
        self.confirms_access_later = False
        self._access_changed = False
        self._parsed_by_first = first
        return super().dispatch(request, *args, **kwargs)

    def initialize_request(self, request, *args, **kwargs):
        drf_request = super().initialize_request(request, *args, **kwargs)
        first = getattr(self, "_parsed_by_first", None)
        if first is not None and first._data is not Empty:
            # The body stream was read by the first answer: reuse what it parsed.
            drf_request._data, drf_request._files, drf_request._full_data = (
                first._data,
                first._files,
                first._full_data,
            )
        return drf_request


# --- web views -----------------------------------------------------------------------------------


class NoTeamYet(Exception):
    """A signed-in user without a team asked for a team's page: `ActiveTeamMiddleware` sends them to
    create a team (or accept an invitation) instead of a dead end."""


def membership_or_404(request):
    """The signed-in user's active membership; a user without a team is sent to create one
    (`NoTeamYet`, turned into a redirect by `accounts.middleware.ActiveTeamMiddleware`)."""
    membership = request.membership
    if not membership:
        raise NoTeamYet
    return membership


def can_write(membership) -> bool:
    """Members and above change things; viewers only read."""
    return role_at_least(membership.role, Role.MEMBER)


# --- the OpenAI-compatible face (`/v1/`) ---------------------------------------------------------


class OpenAIApiView(OpenAIFaceMixin, APIView):
    """Base of every `/v1/` view: API keys only, OpenAI's error shape. By default the `read` scope
    (and the viewer role) for GET, `write` (and the member role) for changes."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.ctx = team_context_for(request)
        self.check_access(request)

    def check_access(self, request) -> None:
        self.ctx.require(role=Role.VIEWER if request.method in SAFE_METHODS else Role.MEMBER)
