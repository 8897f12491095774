"""Web pages for fine-tuning: job list, new-job form with its estimate, job page with live
progress and controls, model version page. Same services and selectors as the API."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.access import can_write, membership_or_404
from common.errors import ApplicationError, NotFound
from finetune import selectors, services
from finetune.forms import JobForm
from finetune.models import ACTIVE_STATUSES, JobStatus

TAIL = 60  # events shown on the job page (the full log is a download)


def _job_or_404(membership, job_id: str):
    try:
        return selectors.job_get(team=membership.team, job_id=job_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


@login_required
def job_list(request):
    membership = membership_or_404(request)
    jobs = list(selectors.job_list(team=membership.team)[:100])
    positions = selectors.queue_positions_for(jobs)
    for job in jobs:
        job.queue_position = positions.get(job.id)
    return render(
        request,
        "finetune/job_list.html",
        {
            "jobs": jobs,
            "can_write": can_write(membership),
            "refresh": any(job.status in ACTIVE_STATUSES for job in jobs),
            "usage": selectors.team_quota_usage(team=membership.team),
        },
    )


@login_required
def job_new(request):
    membership = membership_or_404(request)
    team = membership.team
    if not can_write(membership):
        messages.error(request, _("Viewers cannot submit jobs; ask an owner for the member role."))
        return redirect("finetune:list")
    # "Fine-tune this" on a dataset version page links here with the version chosen.
    initial = (
        {"dataset_version": request.GET["dataset_version"]} if "dataset_version" in request.GET else None
    )
    form = JobForm(request.POST or None, team=team, initial=initial)
    estimate = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            job_request = form.job_request()
            try:
                if request.POST.get("action") == "launch":
                    job = services.job_create(team=team, user=request.user, request=job_request)
                    messages.success(request, _("Job %(id)s submitted.") % {"id": job.id})
                    return redirect("finetune:detail", job_id=job.id)
                estimate = services.job_estimate(team=team, request=job_request)
            except ApplicationError as exc:
                field = exc.field.split(".")[-1] if exc.field else None
                form.add_error(field if field in form.fields else None, exc.message)
                status = exc.status_code
        else:
            status = 400
    return render(
        request,
        "finetune/job_new.html",
        {"form": form, "estimate": estimate, "has_versions": bool(form.fields["dataset_version"].choices)},
        status=status,
    )


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


def _live_context(membership, job) -> dict:
    positions = selectors.queue_positions_for([job])
    waiting = job.status in (JobStatus.VALIDATING_FILES, JobStatus.QUEUED)
    events = list(selectors.job_event_list(job=job).order_by("-id")[:TAIL])[::-1]
    return {
        "job": job,
        "queue_position": positions.get(job.id),
        "metrics": [
            (kind, name, value)
            for kind, values in selectors.job_latest_metrics(job=job).items()
            for name, value in values.items()
            if name not in ("step", "epoch")
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
        ],
        "events": events,
        "can_write": membership is not None and can_write(membership),
        "staff_view": membership is None,
        "unserved": waiting
        and selectors.unserved_device_warning(device_class=job.device_class, queue=job.queue) is not None,
        "active": job.status in ACTIVE_STATUSES,
        "log_limit": settings.TUNEFORGE_JOB_LOG_MAX_LINES,
        "checkpoint": job.resume_checkpoint,
    }


@login_required
def job_detail(request, job_id: str):
    membership, job = _readable_job(request, job_id)
    return render(request, "finetune/job_detail.html", _live_context(membership, job))


@login_required
def job_live(request, job_id: str):
    """The live part of the job page, re-fetched every few seconds while the job is active."""
    membership, job = _readable_job(request, job_id)
    return render(request, "finetune/_job_live.html", _live_context(membership, job))


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
