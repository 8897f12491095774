"""Pages for platform staff beside the workers page: the base-model registry and every team's
jobs. To anyone else they do not exist (404)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Team
from common.errors import ApplicationError
from common.staff import staff_required
from finetune import registry, selectors
from finetune.forms import BaseModelForm
from finetune.models import BaseModel, JobStatus
from workers.routing import known_device_classes

PAGE_SIZE = 50
FILTERS = ("team", "status", "device_class", "base_model")


@require_http_methods(["GET", "POST"])
@staff_required
def base_model_list(request):
    form = BaseModelForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                model = registry.base_model_add(
                    name=data["name"],
                    display_name=data["display_name"],
                    source=data["source"],
                    kind=data["kind"],
                    tasks=data["tasks"],
                    max_length=data["max_length"],
                    device_class=data["device_class"],
                    description=data["description"],
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    _("%(name)s was added. A worker is checking that it loads; it is enabled once it does.")
                    % {"name": model.name},
                )
                return redirect("staff:base_models")
        else:
            status = 400
    return render(
        request,
        "finetune/staff_base_models.html",
        {"models": selectors.base_model_list_all(), "form": form},
        status=status,
    )


BASE_MODEL_ACTIONS = {
    "enable": (
        lambda name, device: registry.base_model_set_enabled(name=name, enabled=True),
        gettext_lazy("enabled"),
    ),
    "disable": (
        lambda name, device: registry.base_model_set_enabled(name=name, enabled=False),
        gettext_lazy("disabled"),
    ),
    "default": (
        lambda name, device: registry.base_model_make_default(name=name),
        gettext_lazy("now the default"),
    ),
    "check": (
        lambda name, device: registry.base_model_recheck(name=name, device_class=device),
        gettext_lazy("being checked"),
    ),
}


@require_POST
@staff_required
def base_model_action(request, name: str, action: str):
    if action not in BASE_MODEL_ACTIONS:
        raise Http404("No such action.")
    service, done = BASE_MODEL_ACTIONS[action]
    try:
        service(name, request.POST.get("device_class") or settings.TUNEFORGE_DEFAULT_DEVICE_CLASS)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(name)s is %(what)s.") % {"name": name, "what": done})
    return redirect("staff:base_models")


@require_GET
@staff_required
def job_list_all(request):
    chosen = {key: request.GET.get(key) or "" for key in FILTERS}
    try:
        jobs = selectors.job_list_all(
            team_id=chosen["team"] or None,
            status=chosen["status"] or None,
            device_class=chosen["device_class"] or None,
            base_model=chosen["base_model"] or None,
        )
        error = None
    except ApplicationError as exc:
        jobs, error = selectors.job_list_all(), exc.message
        chosen["status"] = ""
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "finetune/staff_jobs.html",
        {
            "page": page,
            "chosen": chosen,
            "error": error,
            "query": urlencode({k: v for k, v in chosen.items() if v}),
            "teams": Team.objects.order_by("name").values_list("id", "name"),
            "statuses": JobStatus.choices,
            "device_classes": list(known_device_classes()),
            "base_models": BaseModel.objects.order_by("name").values_list("name", flat=True),
        },
    )
