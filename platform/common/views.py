from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def home(request):
    """The dashboard: where a signed-in user lands."""
    from common.dashboard import dashboard_for

    return render(request, "common/home.html", dashboard_for(membership=request.membership))
