"""The workers admin page: staff only; to everyone else it does not exist (404)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from common.errors import ApplicationError
from common.staff import staff_required
from workers import selectors, services

ACTIONS = {
    "drain": (
        services.worker_drain,
        _("Worker %(name)s is draining: it finishes its current job and takes no new one."),
    ),
    "pause": (
        services.worker_pause,
        _("Worker %(name)s is paused: its current job is paused and requeued; it takes no new job."),
    ),
    "resume": (services.worker_resume, _("Worker %(name)s accepts jobs again.")),
}


@require_GET
@staff_required
def worker_list(request):
    return render(request, "workers/list.html", {"workers": selectors.worker_list()})


@require_GET
@staff_required
def worker_table(request):
    """The table alone, fetched by the list page every few seconds to refresh itself."""
    return render(request, "workers/_table.html", {"workers": selectors.worker_list()})


@require_POST
@staff_required
def worker_action(request, name: str, action: str):
    if action not in ACTIONS:
        raise Http404("No such action.")
    service, done = ACTIONS[action]
    try:
        service(name=name, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done % {"name": name})
    return redirect("workers:list")
