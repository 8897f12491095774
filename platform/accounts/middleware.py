from django.contrib import messages
from django.shortcuts import redirect
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _


def _active_membership(request):
    from accounts.selectors import active_membership_for

    user = request.user
    return active_membership_for(user=user) if user.is_authenticated and user.pk is not None else None


class ActiveTeamMiddleware:
    """Puts the signed-in user's active membership on the request (loaded only when used)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = SimpleLazyObject(lambda: _active_membership(request))
        return self.get_response(request)

    def process_exception(self, request, exception):
        from accounts.access import NoTeamYet

        if isinstance(exception, NoTeamYet):
            messages.info(
                request, _("This page belongs to a team: create one or accept an invitation first.")
            )
            return redirect("accounts:team_new")
        return None
