"""The base of every team-scoped API view: resolves the acting team and enforces roles and scopes.

Session users act on their active team with their membership role; API keys act on their own team
with their scopes (read → safe methods, write → changes, inference → prediction routes).
"""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from accounts.models import Role, Team, role_at_least
from accounts.selectors import active_membership_for
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
            raise Forbidden(f"This needs the {role} role in team {self.team.name}; you are {self.role}.",
                            code="insufficient_role")


def team_context_for(request) -> TeamContext:
    if isinstance(request.auth, ApiKey):
        return TeamContext(team=request.auth.team, role=Role.MEMBER, api_key=request.auth, user=None)
    user = request.user
    membership = active_membership_for(user=user)
    if membership is None:
        raise NotFound("You belong to no team yet: create one or accept an invitation.", code="no_team")
    return TeamContext(team=membership.team, role=membership.role, api_key=None, user=user)


class TeamApiView(APIView):
    """Subclasses read `self.ctx.team`. Writes need `write_role` (member by default)."""

    write_role: str = Role.MEMBER
    read_role: str = Role.VIEWER
    scope: str | None = None  # e.g. "inference" on prediction routes

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.ctx = team_context_for(request)
        if request.method in SAFE_METHODS:
            self.ctx.require(role=self.read_role, scope=self.scope)
        else:
            self.ctx.require(role=self.write_role, scope=self.scope)
