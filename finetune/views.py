"""Web pages for fine-tuning: job list, new-job form with its estimate, job page with live
progress, charts, controls and (once finished) the confusion matrix and misclassified examples,
the comparison of runs, model version page. Same services and selectors as the API."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import can_write, membership_or_404
from common.errors import ApplicationError, InvalidInput, NotFound
from finetune import job_insights, selectors, services
from finetune.forms import JobForm
from finetune.models import ACTIVE_STATUSES, JobStatus, MetricPoint

TAIL = 60  # events shown on the job page (the full log is a download)


def _job_or_404(membership, job_id: str):
    try:
        return selectors.job_get(team=membership.team, job_id=job_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


JOBS_PAGE_SIZE = 50


def _job_page(request, membership):
    """One page of the team's jobs (newest first) with their queue positions: a fixed number of
    queries whatever the team's history."""
    jobs = selectors.job_list(team=membership.team).order_by("-created_at", "-id")
    page = Paginator(jobs, JOBS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    positions = selectors.queue_positions_for(page.object_list)
    for job in page.object_list:
        job.queue_position = positions.get(job.id)
    return page, any(job.status in ACTIVE_STATUSES for job in page.object_list)


@login_required
def job_list(request):
    membership = membership_or_404(request)
    page, active = _job_page(request, membership)
    return render(
        request,
        "finetune/job_list.html",
        {
            "page": page,
            "jobs": page.object_list,
            "can_write": can_write(membership),
            "active": active,
            "usage": selectors.team_quota_usage(team=membership.team),
        },
    )


@login_required
def job_list_rows(request):
    """What the jobs list polls while a job on it is active: only the status, progress and result
    cells of that page's rows (swapped in out of band), so the rest of the page, the ticked Compare
    boxes included, stays as the user left it. The answer for a page with no active job carries no
    poll trigger: polling stops."""
    membership = membership_or_404(request)
    page, active = _job_page(request, membership)
    return render(
        request,
        "finetune/_job_list_poll.html",
        {"page": page, "jobs": page.object_list, "active": active, "oob": True},
    )


@login_required
def job_new(request):
    membership = membership_or_404(request)
    team = membership.team
    if not can_write(membership):
        messages.error(request, _("Viewers cannot submit jobs; ask an owner for the member role."))
        return redirect("finetune:list")
    source = _source_job(membership, request.POST.get("from_job") or request.GET.get("from"))
    if source:
        initial = JobForm.initial_from_job(source)
    elif "dataset_version" in request.GET:
        # "Fine-tune this" on a dataset version page links here with the version chosen.
        initial = {"dataset_version": request.GET["dataset_version"]}
    else:
        initial = None
    form = JobForm(request.POST or None, team=team, initial=initial)
    estimate = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            job_request = form.job_request(source=source)
            try:
                if request.POST.get("action") == "launch":
                    job = services.job_create(team=team, user=request.user, request=job_request)
                    messages.success(request, _("Job %(id)s submitted.") % {"id": job.id})
                    return redirect("finetune:detail", job_id=job.id)
                estimate = services.job_estimate(team=team, request=job_request)
            except ApplicationError as exc:
                field = _form_field_for(exc.field)
                form.add_error(field if field in form.fields else None, exc.message)
                status = exc.status_code
        else:
            status = 400
    return render(
        request,
        "finetune/job_new.html",
        {
            "form": form,
            "estimate": estimate,
            "has_versions": bool(form.fields["dataset_version"].choices),
            "source": source,
        },
        status=status,
    )


def _form_field_for(api_field: str | None) -> str | None:
    """The new-job form's field for an error's API field ("hyperparameters.search.trials" → search_trials)."""
    if not api_field:
        return None
    parts = api_field.split(".")
    if parts[:2] == ["hyperparameters", "search"]:
        return {"trials": "search_trials", "budget_minutes": "search_budget_minutes"}.get(parts[-1], "search")
    return parts[-1]


def _source_job(membership, job_id: str | None):
    """The job a new one copies its spec from ("New job from this one"): the team's own only."""
    return _job_or_404(membership, job_id) if job_id else None


def _readable_job(request, job_id: str):
    """(membership, job) for reading a job page: a platform admin (staff) may read any team's job,
    read only (membership is then None unless the job is of the admin's own team)."""
    membership = request.membership or None  # a lazy object: unwrap "no team" to None
    if membership is None and not request.user.is_staff:
        membership_or_404(request)
    try:
        job = selectors.job_get_for_reader(
            team=membership.team if membership else None, user=request.user, job_id=job_id
        )
    except NotFound as exc:
        raise Http404(exc.message) from None
    return (membership if membership and membership.team_id == job.team_id else None), job


def _cursor(request, name: str) -> int | None:
    raw = request.GET.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit():
        raise InvalidInput(f"{name} must be a whole number, got {raw!r}.", field=name)
    return int(raw)


def _metric_rows(job) -> list[tuple[str, str, float]]:
    """(series, metric, value) of the latest train and eval points; the step-0 evaluation is the
    untuned base model's score and says so."""
    rows = []
    for kind, values in selectors.job_latest_metrics(job=job).items():
        step = values.get("step")
        if kind == MetricPoint.Kind.TRAIN:
            series = _("Training (step %(n)s)") % {"n": step}
        elif step == 0:
            series = _("Untuned baseline (step 0)")
        else:
            series = _("Validation (step %(n)s)") % {"n": step}
        rows += [
            (series, name, value)
            for name, value in values.items()
            if name not in ("step", "epoch")
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ]
    return rows


def _elapsed_seconds(job) -> float | None:
    if job.started_at is None:
        return None
    return ((job.finished_at or timezone.now()) - job.started_at).total_seconds()


def _chart_labels(job) -> dict:
    return {
        "step": _("Step"),
        "train_loss": _("Training loss"),
        "valid_loss": _("Validation loss"),
        "metric": job_insights.main_metric(job),
        "learning_rate": _("Learning rate"),
        "kept_step": _("kept"),
    }


def _live_context(membership, job, *, after_event=None, after_train=None, after_eval=None) -> dict:
    positions = selectors.queue_positions_for([job])
    waiting = job.status in (JobStatus.VALIDATING_FILES, JobStatus.QUEUED)
    events = job_insights.job_page_events(job=job, after_id=after_event, limit=TAIL)
    chart = job_insights.job_chart_points(job=job, after_train_step=after_train, after_eval_step=after_eval)
    kept = job_insights.job_kept_checkpoint(job=job)
    # job_charts.js marks this step on the curves (first render and the poll that brings the result).
    chart["kept_step"] = kept["step"] if kept else None
    return {
        "job": job,
        "queue_position": positions.get(job.id),
        "metrics": _metric_rows(job),
        "events": events,
        "last_event_id": events[-1].id if events else (after_event or 0),
        "chart": chart,
        "kept": kept,
        "elapsed_seconds": _elapsed_seconds(job),
        "can_write": membership is not None and can_write(membership),
        "staff_view": membership is None,
        "unserved": waiting
        and selectors.unserved_device_warning(device_class=job.device_class, queue=job.queue) is not None,
        "active": job.status in ACTIVE_STATUSES,
        "log_limit": settings.TUNEFORGE_JOB_LOG_MAX_LINES,
        "checkpoint": job.resume_checkpoint,
        "search": job_insights.job_search_trials(job=job),
    }


def _results_context(request, job) -> dict:
    if not job.is_terminal:
        return {"results": None, "misclassified": None}
    return {
        "results": job_insights.job_results(job=job),
        "misclassified": job_insights.job_misclassified(job=job, page=request.GET.get("errors_page") or 1),
    }


@login_required
def job_detail(request, job_id: str):
    membership, job = _readable_job(request, job_id)
    context = _live_context(membership, job)
    context.update(_results_context(request, job))
    context["chart_data"] = {**context["chart"], "labels": _chart_labels(job)}
    if context["search"] is not None:
        context["search_chart_data"] = {
            **context["search"]["chart"],
            "labels": {
                "step": _("Step"),
                "train_loss": _("Training loss"),
                "metric": context["search"]["metric"],
            },
        }
    return render(request, "finetune/job_detail.html", context)


@login_required
def job_live(request, job_id: str):
    """The live part of the job page, polled by htmx while the job is active: the status card in
    full (it is small) and, out of band, only the events and metric points after the cursors the
    previous answer carried. The answer for a finished job carries no poll trigger (polling stops)
    and brings the results section along."""
    membership, job = _readable_job(request, job_id)
    try:
        cursors = {name: _cursor(request, name) for name in ("after_event", "after_train", "after_eval")}
    except InvalidInput as exc:
        return HttpResponseBadRequest(exc.message)
    context = _live_context(membership, job, **cursors)
    context["update"] = request.htmx or any(v is not None for v in cursors.values())
    context.update(_results_context(request, job))
    return render(request, "finetune/_job_live.html", context)


@login_required
def job_compare(request):
    """2–5 of the team's jobs side by side (`?ids=a,b` or repeated `ids` from the list's checkboxes)."""
    membership = membership_or_404(request)
    ids = job_insights.parse_job_ids(request.GET.getlist("ids"))
    try:
        comparison = job_insights.job_compare(team=membership.team, job_ids=ids)
    except NotFound as exc:
        raise Http404(exc.message) from None
    except InvalidInput as exc:
        return render(request, "finetune/job_compare.html", {"error": exc.message, "ids": ids}, status=400)
    chart_data = {
        "labels": {"step": _("Step"), "train_loss": _("Training loss"), "valid_loss": _("Validation loss")},
        "series": comparison["series"],
    }
    return render(
        request, "finetune/job_compare.html", {"comparison": comparison, "chart_data": chart_data, "ids": ids}
    )


ACTIONS = {"cancel": services.job_cancel, "pause": services.job_pause, "resume": services.job_resume}


@login_required
@require_POST
def job_action(request, job_id: str, action: str):
    membership = membership_or_404(request)
    job = _job_or_404(membership, job_id)
    if action not in ACTIONS:
        raise Http404(action)
    if not can_write(membership):
        messages.error(request, _("Viewers cannot cancel, pause or resume jobs."))
        return redirect("finetune:detail", job_id=job.id)
    try:
        job = ACTIONS[action](job=job, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        done = {
            "cancel": _("Cancellation requested."),
            "pause": _("Pause requested."),
            "resume": _("Job resumed."),
        }
        messages.success(request, done[action])
    return redirect("finetune:detail", job_id=job.id)
