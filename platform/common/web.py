"""Small helpers every app's web views share: the acting membership and what its role may do."""

from django.http import Http404
from django.utils.translation import gettext as _

from accounts.models import Role, role_at_least


def membership_or_404(request):
    """The signed-in user's active membership; a 404 page for a user without a team."""
    membership = request.membership
    if not membership:
        raise Http404(_("You belong to no team yet."))
    return membership


def can_write(membership) -> bool:
    """Members and above change things; viewers only read."""
    return role_at_least(membership.role, Role.MEMBER)
