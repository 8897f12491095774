"""Writes about fine-tuning jobs: submission, control (cancel/pause/resume), claiming by a worker,
crash recovery (the reconciler) and the results.

Every status change goes through `_transition`: one conditional UPDATE (`WHERE status IN (...)`)
and a `JobEvent`, in one transaction. Zero rows updated means another actor changed the job first,
which is how duplicate deliveries, races between cancel and completion, and zombie workers are
told apart from real transitions.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Team
from common.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, Unprocessable
from finetune import selectors
from finetune.estimates import estimate_for
from finetune.models import (
    TERMINAL_STATUSES,
    BaseModel,
    FineTuneJob,
    JobAttempt,
    JobEvent,
    JobStatus,
    Priority,
)

logger = logging.getLogger(__name__)

SUFFIX_FORMAT = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
# SpecError fields that name engine inputs the platform fills in itself.
_SPEC_FIELD_TO_API = {
    "base_model": "model",
    "train_file": "dataset_version",
    "validation_file": "dataset_version",
    "device": "device_class",
}


# --- events and transitions ---------------------------------------------------------------------


def job_event_record(
    *,
    job_id: str,
    message: str,
    level: str = JobEvent.Level.INFO,
    type: str = JobEvent.Type.MESSAGE,
    data: dict | None = None,
) -> JobEvent:
    return JobEvent.objects.create(job_id=job_id, message=message, level=level, type=type, data=data)


def _transition(
    job_id: str,
    *,
    to: str,
    from_: tuple[str, ...],
    message: str,
    level: str = JobEvent.Level.INFO,
    data: dict | None = None,
    guard: dict | None = None,
    **fields: Any,
) -> bool:
    """Move the job to `to` if it is in one of `from_` (and matches `guard`), recording an event.
    Returns False, changing nothing, when another actor moved it first."""
    now = timezone.now()
    if to in TERMINAL_STATUSES:
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        updated = FineTuneJob.objects.filter(pk=job_id, status__in=from_, **(guard or {})).update(
            status=to, updated_at=now, **fields
        )
        if updated:
            job_event_record(job_id=job_id, message=message, level=level, data={"status": to, **(data or {})})
    return bool(updated)


def _fail(
    job_id: str, *, code: str, message: str, param: str = "", from_=(JobStatus.RUNNING,), guard=None
) -> bool:
    return _transition(
        job_id,
        to=JobStatus.FAILED,
        from_=from_,
        guard=guard,
        level=JobEvent.Level.ERROR,
        message=f"Job failed: {message}",
        data={"error": {"code": code, "message": message, "param": param or None}},
        error_code=code,
        error_message=message,
        error_param=param,
        requested_action="",
    )


# --- dispatch -----------------------------------------------------------------------------------


def _publish(job_id: str, queue: str) -> None:
    from finetune.tasks import run_job

    try:
        run_job.apply_async(args=[job_id], queue=queue)
    except Exception:  # broker down: the job stays queued in PostgreSQL and the reconciler re-sends
        logger.exception("could not publish job %s to queue %s; the reconciler will retry", job_id, queue)


def job_dispatch(*, job_id: str, queue: str) -> None:
    """Send a "one unit of work on `queue`" message naming `job_id`, once the transaction commits.
    The worker takes the best queued job of that queue in fair-share order (maybe another one);
    every queued job has at least one message in flight, so none starves."""
    FineTuneJob.objects.filter(pk=job_id).update(last_dispatched_at=timezone.now())
    transaction.on_commit(lambda: _publish(job_id, queue))


# --- submission ---------------------------------------------------------------------------------


@dataclass
class JobRequest:
    dataset_version: str
    model: str | None = None
    task: str | None = None
    method: str = "lora"
    hyperparameters: dict = field(default_factory=dict)
    device_class: str | None = None
    priority: str = "normal"
    suffix: str = ""
    seed: int = 42
    max_steps: int | None = None


@dataclass
class PreparedJob:
    request: JobRequest
    base_model: BaseModel
    version: Any  # datasets_app.models.DatasetVersion
    task: str
    device_class: str
    queue: str
    priority: int
    validation: dict
    estimate: dict


def _spec_error_to_api(exc) -> InvalidInput:
    field_name = exc.field
    head = field_name.split(".", 1)[0]
    api_field = _SPEC_FIELD_TO_API.get(head, field_name)
    return InvalidInput(f"{field_name}: {exc.message}", code=exc.code, field=api_field)


def _validation_spec(
    *, request: JobRequest, base_model: BaseModel, version, task: str, device_class: str, work_dir: Path
) -> dict:
    """The engine spec used to check a submission on the web host (which may have no GPU: GPU-only
    choices, i.e. bf16/fp16 precision and QLoRA, are checked again by the worker that runs it)."""
    from finetune.artifacts import dataset_local_files

    train_path, valid_path = dataset_local_files(version)
    hyperparameters = dict(request.hyperparameters)
    method = request.method
    if device_class != selectors.CPU_DEVICE_CLASS:
        if hyperparameters.get("precision") in ("bf16", "fp16"):
            hyperparameters["precision"] = "auto"
        method = "lora" if method == "qlora" else method
    return {
        "base_model": base_model.source,
        "task": task,
        "method": method,
        "train_file": str(train_path),
        "validation_file": str(valid_path) if valid_path else None,
        "output_dir": str(work_dir),
        "hyperparameters": hyperparameters,
        "seed": request.seed,
        "device": "cpu",
        "dataset_hash": version.sha256,
        "max_steps": request.max_steps,
        "cache_dir": str(Path(settings.TUNEFORGE_CACHE_DIR) / "engine"),
    }


def job_prepare(*, team: Team, request: JobRequest) -> PreparedJob:
    """Check a submission against the dataset version, the base-model registry and the engine
    (`validate_spec`), and estimate it. Raises InvalidInput/NotFound/Unprocessable naming the field."""
    from datasets_app.selectors import dataset_version_get
    from finetune.engine import JobSpec, SpecError, validate_spec
    from workers.routing import queue_for_device

    base_model = selectors.base_model_get(name=request.model)
    try:
        version = dataset_version_get(team=team, version_id=request.dataset_version)
    except NotFound as exc:
        raise NotFound(exc.message, code="dataset_version_not_found", field="dataset_version") from None
    if version.status != "ready":
        raise Unprocessable(
            f"Dataset version {version.id} is {version.status}, not ready: only ready versions can be trained on.",
            code="dataset_version_not_ready",
            field="dataset_version",
        )
    task = request.task or version.task
    if task != version.task:
        raise InvalidInput(
            f"Dataset version {version.id} holds {version.task} data; it cannot train a {task} job.",
            code="task_mismatch",
            field="task",
        )
    if base_model.tasks and task not in base_model.tasks:
        raise InvalidInput(
            f"Base model {base_model.name} supports {', '.join(base_model.tasks)}, not {task}.",
            code="unsupported_task",
            field="model",
        )
    device_class = request.device_class or settings.TUNEFORGE_DEFAULT_DEVICE_CLASS
    queue = queue_for_device(device_class)
    try:
        priority = Priority[request.priority.upper()].value if isinstance(request.priority, str) else None
    except KeyError:
        priority = None
    if priority is None:
        raise InvalidInput(
            f"priority must be low, normal or high, got {request.priority!r}.", field="priority"
        )
    if not SUFFIX_FORMAT.match(request.suffix or ""):
        raise InvalidInput("suffix may hold up to 64 letters, digits, '.', '_' or '-'.", field="suffix")
    if not isinstance(request.hyperparameters, dict):
        raise InvalidInput("hyperparameters must be an object.", field="hyperparameters")

    work_dir = Path(settings.TUNEFORGE_WORK_DIR) / "validation"
    try:
        spec = JobSpec.from_dict(
            _validation_spec(
                request=request,
                base_model=base_model,
                version=version,
                task=task,
                device_class=device_class,
                work_dir=work_dir,
            )
        )
        validation = validate_spec(spec)
    except SpecError as exc:
        raise _spec_error_to_api(exc) from None
    validation = json_safe(validation)
    estimate = estimate_for(
        validation=validation,
        device_class=device_class,
        method=request.method,
        parameters_millions=base_model.parameters_millions,
    )
    return PreparedJob(
        request=request,
        base_model=base_model,
        version=version,
        task=task,
        device_class=device_class,
        queue=queue,
        priority=priority,
        validation=validation,
        estimate=estimate,
    )


def job_estimate(*, team: Team, request: JobRequest) -> dict:
    """What a submission would do and cost, without creating anything."""
    prepared = job_prepare(team=team, request=request)
    usage = selectors.team_quota_usage(team=team)
    return {
        "object": "fine_tuning.job.estimate",
        "model": prepared.base_model.name,
        "dataset_version": prepared.version.id,
        "task": prepared.task,
        "method": request.method,
        "device_class": prepared.device_class,
        "hyperparameters": _resolved_hyperparameters(prepared.validation, request.hyperparameters),
        "labels": prepared.validation.get("labels", []),
        **prepared.estimate,
        "quota": usage,
        "quota_refusal": _quota_refusal_message(team=team, usage=usage, device_class=prepared.device_class),
    }


def _resolved_hyperparameters(validation: dict, submitted: dict) -> dict:
    resolved = dict(submitted)
    for key in ("n_epochs", "batch_size", "learning_rate", "max_length"):
        if validation.get(key) is not None:
            resolved[key] = validation[key]
    return resolved


def _quota_refusal(*, team: Team, usage: dict, device_class: str) -> QuotaExceeded | None:
    if usage["concurrent_jobs"] >= usage["max_concurrent_jobs"]:
        return QuotaExceeded(
            f"Concurrency limit reached: {usage['concurrent_jobs']} of {usage['max_concurrent_jobs']} concurrent "
            f"jobs running or queued ({usage['running_jobs']} running, {usage['queued_jobs']} queued) for team "
            f"{team.name}. Wait for one to finish or cancel one.",
            code="concurrent_jobs_limit",
            details={
                "limit": "max_concurrent_jobs",
                "used": usage["concurrent_jobs"],
                "max": usage["max_concurrent_jobs"],
            },
            headers={"Retry-After": "60"},
        )
    if device_class != selectors.CPU_DEVICE_CLASS and usage["gpu_hours_used"] >= usage["monthly_gpu_hours"]:
        resets = selectors.next_month_start()
        return QuotaExceeded(
            f"Monthly GPU-hours quota used up: {usage['gpu_hours_used']:.2f} of {usage['monthly_gpu_hours']:.2f} "
            f"GPU-hours consumed this month by team {team.name}. It resets on {resets:%Y-%m-%d}; "
            f"CPU jobs are not counted.",
            code="gpu_hours_quota",
            details={
                "limit": "monthly_gpu_hours",
                "used": usage["gpu_hours_used"],
                "max": usage["monthly_gpu_hours"],
                "resets_at": resets.isoformat(),
            },
            headers={"Retry-After": str(max(1, int((resets - timezone.now()).total_seconds())))},
        )
    return None


def _quota_refusal_message(*, team: Team, usage: dict, device_class: str) -> str | None:
    refusal = _quota_refusal(team=team, usage=usage, device_class=device_class)
    return refusal.message if refusal else None


def _check_quota(*, team: Team, device_class: str, exclude_job_id: str | None = None) -> None:
    """Raise QuotaExceeded (HTTP 429) naming the limit and the numbers. Call inside a transaction
    holding the team row lock, so two submissions cannot both take the last slot."""
    usage = selectors.team_quota_usage(team=team, exclude_job_id=exclude_job_id)
    refusal = _quota_refusal(team=team, usage=usage, device_class=device_class)
    if refusal is not None:
        raise refusal


def job_create(*, team: Team, user, request: JobRequest) -> FineTuneJob:
    """Submit a job: validate it (nothing is written if that fails), check the team's quotas, create
    it (`validating_files` → `queued`) and publish its message once the transaction commits."""
    prepared = job_prepare(team=team, request=request)
    with transaction.atomic():
        locked_team = Team.objects.select_for_update().get(pk=team.pk)
        _check_quota(team=locked_team, device_class=prepared.device_class)
        job = FineTuneJob.objects.create(
            team=locked_team,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            base_model=prepared.base_model,
            dataset_version=prepared.version,
            task=prepared.task,
            method=request.method,
            hyperparameters=request.hyperparameters,
            resolved_hyperparameters=_resolved_hyperparameters(prepared.validation, request.hyperparameters),
            seed=request.seed,
            max_steps=request.max_steps,
            suffix=request.suffix or "",
            device_class=prepared.device_class,
            queue=prepared.queue,
            priority=prepared.priority,
            status=JobStatus.VALIDATING_FILES,
            estimate=prepared.estimate,
            validation=prepared.validation,
            total_steps=prepared.validation.get("total_steps") or 0,
        )
        who = getattr(user, "email", None) or "an API key"
        job_event_record(
            job_id=job.id,
            message=f"Created fine-tuning job {job.id} ({who}).",
            data={"status": JobStatus.VALIDATING_FILES},
        )
        v = prepared.validation
        job_event_record(
            job_id=job.id,
            message=(
                f"Files validated: {v.get('n_train')} training rows, {v.get('n_valid')} validation rows"
                + (f", {len(v.get('labels') or [])} labels" if v.get("labels") else "")
                + f"; about {prepared.estimate['trained_tokens']:,} tokens to train over "
                f"{v.get('n_epochs')} epochs ({v.get('total_steps')} steps)."
            ),
            data={
                "validation": {
                    k: v.get(k)
                    for k in ("n_train", "n_valid", "total_steps", "n_epochs", "batch_size", "max_length")
                }
            },
        )
        _transition(
            job.id,
            to=JobStatus.QUEUED,
            from_=(JobStatus.VALIDATING_FILES,),
            message=f"Queued on {job.queue} ({job.device_class}).",
            queued_at=timezone.now(),
        )
        job_dispatch(job_id=job.id, queue=job.queue)
    job.refresh_from_db()
    return job


# --- control ------------------------------------------------------------------------------------


def _actor_name(actor) -> str:
    return getattr(actor, "email", None) or "an API key"


def _locked(job: FineTuneJob) -> FineTuneJob:
    return FineTuneJob.objects.select_for_update().get(pk=job.pk)


def _request_action(job: FineTuneJob, action: str, *, message: str) -> None:
    """Flag a running job for its worker's reporter (read within TUNEFORGE_JOB_CONTROL_POLL_SECONDS);
    asking twice records nothing new."""
    if job.requested_action != action:
        FineTuneJob.objects.filter(pk=job.pk).update(requested_action=action)
        job_event_record(job_id=job.id, message=message)


@transaction.atomic
def job_cancel(*, job: FineTuneJob, actor) -> FineTuneJob:
    """Cancel a job. A waiting job (queued, paused) is cancelled at once and leaves the queue; a
    running one is asked to stop (its worker sees the flag within about a second and stops at the
    next step) and becomes `cancelled` when the worker confirms."""
    job = _locked(job)
    who = _actor_name(actor)
    if job.status in (JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.PAUSED):
        _transition(
            job.id,
            to=JobStatus.CANCELLED,
            from_=(job.status,),
            message=f"Cancelled by {who}.",
            requested_action="",
        )
    elif job.status == JobStatus.RUNNING:
        _request_action(
            job,
            FineTuneJob.RequestedAction.CANCEL,
            message=f"Cancellation requested by {who}; stopping at the next step.",
        )
    else:
        raise Conflict(
            f"Job {job.id} has already {job.status}; there is nothing to cancel.",
            code="job_not_cancellable",
            field="status",
        )
    job.refresh_from_db()
    return job


@transaction.atomic
def job_pause(*, job: FineTuneJob, actor) -> FineTuneJob:
    """Pause a job. A running job checkpoints at its next step, frees its worker and becomes
    `paused`; a queued job leaves the queue at once."""
    job = _locked(job)
    who = _actor_name(actor)
    if job.status == JobStatus.QUEUED:
        _transition(
            job.id, to=JobStatus.PAUSED, from_=(JobStatus.QUEUED,), message=f"Paused by {who} while queued."
        )
    elif job.status == JobStatus.RUNNING:
        if job.requested_action == FineTuneJob.RequestedAction.CANCEL:
            raise Conflict(
                f"Job {job.id} is being cancelled; it cannot be paused.",
                code="job_not_pausable",
                field="status",
            )
        _request_action(
            job,
            FineTuneJob.RequestedAction.PAUSE,
            message=f"Pause requested by {who}; checkpointing at the next step.",
        )
    else:
        raise Conflict(
            f"Job {job.id} is {job.status}; only queued or running jobs can be paused.",
            code="job_not_pausable",
            field="status",
        )
    job.refresh_from_db()
    return job


@transaction.atomic
def job_resume(*, job: FineTuneJob, actor) -> FineTuneJob:
    """Requeue a paused job; it continues from its last checkpoint. Counts against the quotas again."""
    job = _locked(job)
    if job.status != JobStatus.PAUSED:
        raise Conflict(
            f"Job {job.id} is {job.status}; only paused jobs can be resumed.",
            code="job_not_resumable",
            field="status",
        )
    Team.objects.select_for_update().get(pk=job.team_id)
    _check_quota(team=job.team, device_class=job.device_class, exclude_job_id=job.id)
    checkpoint = job.resume_checkpoint
    where = (
        f"from its checkpoint at step {checkpoint.step}"
        if checkpoint
        else "from the start (no checkpoint yet)"
    )
    _transition(
        job.id,
        to=JobStatus.QUEUED,
        from_=(JobStatus.PAUSED,),
        queued_at=timezone.now(),
        message=f"Resumed by {_actor_name(actor)}; it will continue {where}.",
        requested_action="",
    )
    job_dispatch(job_id=job.id, queue=job.queue)
    job.refresh_from_db()
    return job


# --- claiming -----------------------------------------------------------------------------------


def local_worker_name() -> str:
    from workers.worker_state import current_worker_name

    return current_worker_name() or f"{socket.gethostname()}:{os.getpid()}"


def job_claim(*, queue: str, worker: str) -> FineTuneJob | None:
    """Claim the best queued job of `queue` in fair-share order for `worker`, or None.

    The row is chosen with SELECT ... FOR UPDATE SKIP LOCKED (two workers never wait on, or pick,
    the same row) and taken with one conditional UPDATE (status queued → running, attempts + 1);
    zero rows means another worker took it. A job that already lost its worker
    TUNEFORGE_JOB_MAX_CRASHES times is failed instead of run again.
    """
    now = timezone.now()
    with transaction.atomic():
        candidates = selectors.fair_share_order(
            FineTuneJob.objects.filter(queue=queue, status=JobStatus.QUEUED)
        )
        job_id = (
            candidates.select_for_update(skip_locked=True, of=("self",)).values_list("id", flat=True).first()
        )
        if job_id is None:
            return None
        claimed = FineTuneJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            worker=worker,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            requested_action="",
            updated_at=now,
        )
        if not claimed:
            return None
        job = FineTuneJob.objects.select_related("base_model", "dataset_version", "resume_checkpoint").get(
            pk=job_id
        )
        if job.started_at is None:
            FineTuneJob.objects.filter(pk=job_id).update(started_at=now)
            job.started_at = now
        checkpoint = job.resume_checkpoint
        JobAttempt.objects.create(
            job=job,
            number=job.attempts,
            worker=worker,
            device_class=job.device_class,
            started_at=now,
            last_seen_at=now,
            resumed_from_step=checkpoint.step if checkpoint else None,
        )
        where = f", resuming from the checkpoint at step {checkpoint.step}" if checkpoint else ""
        job_event_record(
            job_id=job.id,
            message=f"Running on worker {worker} (attempt {job.attempts}){where}.",
            data={"status": JobStatus.RUNNING, "worker": worker, "attempt": job.attempts},
        )
    return job


# --- running ------------------------------------------------------------------------------------


def job_execute(*, job_id: str) -> None:
    """The body of the `finetune.run_job` task: take one unit of work from the queue of `job_id`
    (the job itself or a fairer one) and run it to its end, pause or cancellation."""
    from workers.services import set_current_job

    hint = FineTuneJob.objects.filter(pk=job_id).values("queue").first()
    if hint is None:
        return
    job = job_claim(queue=hint["queue"], worker=local_worker_name())
    if job is None:
        return  # duplicate delivery: nothing queued for this message
    set_current_job(job.id)
    try:
        from finetune.runner import run_claimed_job

        run_claimed_job(job)
    finally:
        set_current_job(None)


def job_attempt_end(*, job_id: str, number: int, outcome: str) -> None:
    now = timezone.now()
    JobAttempt.objects.filter(job_id=job_id, number=number, ended_at__isnull=True).update(
        ended_at=now, last_seen_at=now, outcome=outcome
    )


def ownership_guard(job: FineTuneJob) -> dict:
    """The condition under which the worker that claimed `job` still owns it."""
    return {"worker": job.worker, "attempts": job.attempts}


# --- recovery -----------------------------------------------------------------------------------


def _broker_message_counts(queues: set[str]) -> dict[str, int | None]:
    """Messages waiting in each broker queue (None when the broker cannot be asked)."""
    from workers.celery_app import app

    counts: dict[str, int | None] = {}
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            for queue in queues:
                channel = conn.channel()
                try:
                    counts[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue that does not exist (e.g. after FLUSHDB) holds nothing
                    counts[queue] = 0
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001 - a closed channel is what we wanted
                        pass
    except Exception:
        logger.exception("broker unreachable while reconciling jobs")
        return dict.fromkeys(queues)
    return counts


def jobs_reconcile() -> dict:
    """Repair what a crash or a broker loss left behind (run by beat every few seconds):

    - a running job whose heartbeat is older than TUNEFORGE_JOB_STALE_AFTER_SECONDS lost its worker
      (kill -9, machine lost): it is requeued to resume from its last checkpoint, or failed after
      TUNEFORGE_JOB_MAX_CRASHES losses, or finished as cancelled/paused if that was asked;
    - queued jobs without a message in the broker (Redis flushed or restarted) get a fresh one.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.TUNEFORGE_JOB_STALE_AFTER_SECONDS)
    report = {"requeued": [], "failed": [], "cancelled": [], "paused": [], "redispatched": []}
    stale_ids = list(
        FineTuneJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before).values_list(
            "id", flat=True
        )
    )
    for job_id in stale_ids:
        outcome = _recover_stale_job(job_id=job_id, stale_before=stale_before)
        if outcome:
            report[outcome].append(job_id)
    report["redispatched"] = _redispatch_orphans(now=now)
    return report


def _recover_stale_job(*, job_id: str, stale_before) -> str | None:
    with transaction.atomic():
        job = (
            FineTuneJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=job_id, status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
            .select_related("resume_checkpoint")
            .first()
        )
        if job is None:
            return None
        silent = int((timezone.now() - job.heartbeat_at).total_seconds())
        attempt = JobAttempt.objects.filter(job=job, number=job.attempts).first()
        if attempt is not None and attempt.ended_at is None:
            attempt.ended_at, attempt.outcome = attempt.last_seen_at, JobAttempt.Outcome.LOST
            attempt.save(update_fields=["ended_at", "outcome"])
        crashes = job.crashes + 1
        FineTuneJob.objects.filter(pk=job.pk).update(crashes=crashes)
        lost = f"Worker {job.worker} stopped responding (no heartbeat for {silent} s)"
        guard = ownership_guard(job)
        checkpoint = job.resume_checkpoint
        if job.requested_action == FineTuneJob.RequestedAction.CANCEL:
            _transition(
                job.id,
                to=JobStatus.CANCELLED,
                from_=(JobStatus.RUNNING,),
                guard=guard,
                message=f"{lost}; the job was being cancelled, so it is cancelled.",
                requested_action="",
            )
            return "cancelled"
        if job.requested_action == FineTuneJob.RequestedAction.PAUSE:
            _transition(
                job.id,
                to=JobStatus.PAUSED,
                from_=(JobStatus.RUNNING,),
                guard=guard,
                requested_action="",
                message=f"{lost}; the job was being paused, so it is paused"
                + (f" at its checkpoint from step {checkpoint.step}." if checkpoint else "."),
            )
            return "paused"
        limit = settings.TUNEFORGE_JOB_MAX_CRASHES
        if crashes >= limit:
            _fail(
                job.id,
                code="worker_lost",
                guard=guard,
                message=(
                    f"The worker running this job was lost {crashes} times (last: {job.worker}, no "
                    f"heartbeat for {silent} s). It is not retried again, to avoid an endless loop: a job "
                    f"that repeatedly kills its worker is usually out of memory; lower "
                    f"hyperparameters.batch_size or hyperparameters.max_length."
                ),
            )
            return "failed"
        where = (
            f"from its checkpoint at step {checkpoint.step}"
            if checkpoint
            else "from the start (no checkpoint yet)"
        )
        requeued = _transition(
            job.id,
            to=JobStatus.QUEUED,
            from_=(JobStatus.RUNNING,),
            guard=guard,
            level=JobEvent.Level.WARN,
            message=f"{lost}; requeued ({crashes} of {limit} losses allowed), it will resume {where}.",
            queued_at=timezone.now(),
            worker="",
        )
        if requeued:
            job_dispatch(job_id=job.id, queue=job.queue)
            return "requeued"
    return None


def _redispatch_orphans(*, now) -> list[str]:
    """Queued jobs outnumbering the messages in their queue get fresh messages (oldest dispatch
    first), skipping jobs dispatched within TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS (their message
    may be on its way to a worker). Extra messages are harmless: each claims at most one job."""
    grace = now - timedelta(seconds=settings.TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS)
    queued = FineTuneJob.objects.filter(status=JobStatus.QUEUED)
    queues = set(queued.values_list("queue", flat=True).distinct())
    if not queues:
        return []
    counts = _broker_message_counts(queues)
    sent: list[str] = []
    for queue in queues:
        waiting = counts.get(queue)
        if waiting is None:
            continue
        jobs_here = queued.filter(queue=queue)
        deficit = jobs_here.count() - waiting
        if deficit <= 0:
            continue
        candidates = jobs_here.filter(last_dispatched_at__lt=grace) | jobs_here.filter(
            last_dispatched_at__isnull=True
        )
        for job_id in candidates.order_by(F("last_dispatched_at").asc(nulls_first=True)).values_list(
            "id", flat=True
        )[:deficit]:
            with transaction.atomic():
                job_event_record(
                    job_id=job_id,
                    message=f"Re-sent to queue {queue}: its message was lost by the broker.",
                    level=JobEvent.Level.WARN,
                )
                job_dispatch(job_id=job_id, queue=queue)
            sent.append(job_id)
    return sent


def json_safe(value):
    """JSON for PostgreSQL: non-finite floats become null, numpy/tensor scalars plain numbers."""
    import math

    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return json_safe(value.item())
    return str(value)
