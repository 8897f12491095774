"""The base of every team-scoped API view: resolves the acting team and enforces roles and scopes.

Session users act on their active team with their membership role; API keys act on their own team
with their scopes (read → safe methods, write → changes, inference → prediction routes).
"""

from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from accounts.models import Role, Team, role_at_least
from accounts.selectors import active_membership_for, membership_for
from common.errors import Forbidden, NotFound
from serving.models import ApiKey


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
            return
        if not role_at_least(self.role, role):
            raise Forbidden(
                f"This needs the {role} role in team {self.team.name}; you are {self.role}.",
                code="insufficient_role",
            )


def team_context_for(request, *, team_id: str | None = None) -> TeamContext:
    """The acting team: the one named by `team_id` (a 404 unless the caller belongs to it), else the
    session user's active team, or an API key's own team."""
    if isinstance(request.auth, ApiKey):
        if team_id is not None and team_id != request.auth.team_id:
            raise NotFound(f"No team {team_id!r} for this API key.", code="team_not_found")
        return TeamContext(team=request.auth.team, role=Role.MEMBER, api_key=request.auth, user=None)
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


# --- OpenAPI helpers: the shapes every list and error response shares -------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    details = serializers.DictField(required=False)


class ErrorSerializer(serializers.Serializer):
    """The native API's error body: `{"error": {"code", "message", "field", "details"}}`."""

    error = ErrorDetailSerializer()


_list_schemas: dict[str, type[serializers.Serializer]] = {}


def list_schema(item: type[serializers.Serializer], *, name: str) -> type[serializers.Serializer]:
    """The schema of a paginated list of `item`s (`{"object":"list","data","has_more",...}`)."""
    if name not in _list_schemas:
        _list_schemas[name] = type(
            name,
            (serializers.Serializer,),
            {
                "object": serializers.CharField(help_text="Always `list`."),
                "data": item(many=True),
                "has_more": serializers.BooleanField(),
                "first_id": serializers.CharField(required=False),
                "last_id": serializers.CharField(required=False),
            },
        )
    return _list_schemas[name]
