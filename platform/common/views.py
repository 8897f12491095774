from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _


@login_required
def home(request):
    """The dashboard: where a signed-in user lands."""
    from common.dashboard import dashboard_for

    if not request.membership:
        # A user without a team (just signed up, or left their last one) has no dashboard yet.
        messages.info(request, _("Welcome! Create a team, or accept an invitation, to start."))
        return redirect("accounts:team_new")

    return render(request, "common/home.html", dashboard_for(membership=request.membership))
