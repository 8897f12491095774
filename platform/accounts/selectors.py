"""Reads about users and teams, always from the acting user's point of view.

A team, member or invitation the actor cannot see is a `NotFound`, never a `Forbidden`: an outsider
learns nothing about other teams, not even that an id exists.
"""

import hashlib

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import Invitation, Membership, Team, User
from common.errors import NotFound


def active_membership_for(*, user: User) -> Membership | None:
    """The membership the UI acts on: the active team if the user still belongs to it, else the oldest."""
    memberships = Membership.objects.select_related("team").filter(user=user)
    if user.active_team_id:
        active = memberships.filter(team_id=user.active_team_id).first()
        if active is not None:
            return active
    return memberships.order_by("created_at").first()


def team_list_for_user(*, user: User) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("name")


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.select_related("team").filter(user=user).order_by("team__name")


def membership_for(*, user: User, team_id: str) -> Membership:
    """The user's membership in a team; `NotFound` if they are not in it (or it does not exist)."""
    membership = Membership.objects.select_related("team").filter(user=user, team_id=team_id).first()
    if membership is None:
        raise NotFound(f"No team {team_id!r} among your teams.", code="team_not_found")
    return membership


def member_list(*, team: Team) -> QuerySet[User]:
    """The team's members as users, each annotated with `role` and `joined_at` in this team."""
    in_team = Membership.objects.filter(team=team, user=OuterRef("pk"))
    return User.objects.filter(memberships__team=team).annotate(
        role=Subquery(in_team.values("role")[:1]),
        joined_at=Subquery(in_team.values("created_at")[:1]),
    )


def member_get(*, team: Team, user_id) -> Membership:
    membership = None
    if str(user_id).isdigit() and len(str(user_id)) <= 18:  # a bigint, not a database error
        membership = (
            Membership.objects.select_related("user", "team").filter(team=team, user_id=int(user_id)).first()
        )
    if membership is None:
        raise NotFound(f"No member with user id {user_id!r} in team {team.name}.", code="member_not_found")
    return membership


def owner_count(*, team: Team) -> int:
    return Membership.objects.filter(team=team, role="owner").count()


def invitation_list(*, team: Team, status: str | None = None) -> QuerySet[Invitation]:
    invitations = Invitation.objects.select_related("invited_by").filter(team=team)
    if status:
        invitations = invitations.filter(status=status)
    return invitations


def invitation_get(*, team: Team, invitation_id: str) -> Invitation:
    invitation = Invitation.objects.filter(team=team, pk=invitation_id).first()
    if invitation is None:
        raise NotFound(f"No invitation {invitation_id!r} in team {team.name}.", code="invitation_not_found")
    return invitation


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_by_token(*, token: str) -> Invitation:
    """The invitation a link's token opens, whatever its state (callers say why it cannot be used)."""
    invitation = None
    if token:
        invitation = (
            Invitation.objects.select_related("team", "invited_by")
            .filter(token_hash=invitation_token_hash(token))
            .first()
        )
    if invitation is None:
        raise NotFound(
            "This invitation link is not valid: check that it was copied whole, or ask for a new one.",
            code="invitation_not_found",
            field="token",
        )
    return invitation
