"""Reads about users and teams, always from the acting user's point of view."""

from django.db.models import QuerySet

from accounts.models import Membership, Team, User


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
