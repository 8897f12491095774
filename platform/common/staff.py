"""The gate of the platform-staff pages (workers, base models, all jobs): to anyone who is not
staff these pages do not exist (404, as for another team's object)."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import Http404


def staff_required(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper
