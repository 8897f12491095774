"""Writes about fine-tuning jobs that users ask for: submission and control (cancel/pause/resume).

Every status change goes through `finetune.lifecycle`; claiming and running a job is the
runner's (`finetune.runner`), crash recovery the reconciler's (`finetune.reconciler`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Team
from common.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, Unprocessable
from common.json import json_safe
from finetune import selectors
from finetune.artifact_storage import dataset_all_rows_file, dataset_local_files
from finetune.engine import SpecError, validate_spec
from finetune.engine.spec import AUTO
from finetune.engine_specs import engine_spec_for_submission
from finetune.estimates import estimate_for
from finetune.lifecycle import job_dispatch, job_event_record, job_transition
from finetune.models import (
    BaseModel,
    FineTuneJob,
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


# --- submission ---------------------------------------------------------------------------------


@dataclass
class JobRequest:
    dataset_version: str
    model: str | None = None
    task: str | None = None
    method: str = AUTO
    hyperparameters: dict = field(default_factory=dict)
    device_class: str | None = None
    priority: str = "normal"
    suffix: str = ""
    seed: int = 42
    max_steps: int | None = None
    validation_dataset_version: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class PreparedJob:
    request: JobRequest
    base_model: BaseModel
    version: Any  # datasets_app.models.DatasetVersion
    validation_version: Any  # a separate DatasetVersion to evaluate on, or None
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


def _checked_priority(request: JobRequest) -> int:
    """The request's priority value, after checking the fields the engine does not see."""
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
    return priority


METADATA_MAX_PAIRS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 16, 64, 512


def check_metadata(metadata) -> None:
    """OpenAI's limits on a job's metadata: at most 16 pairs, string keys up to 64 characters,
    string values up to 512. Raises InvalidInput naming `metadata` and the offending key."""
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be an object of string keys and string values.", field="metadata")
    if len(metadata) > METADATA_MAX_PAIRS:
        raise InvalidInput(
            f"metadata has {len(metadata)} pairs; at most {METADATA_MAX_PAIRS} are allowed.", field="metadata"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > METADATA_MAX_KEY:
            raise InvalidInput(
                f"metadata key {str(key)[:80]!r} is longer than {METADATA_MAX_KEY} characters.",
                field=f"metadata.{key}",
            )
        if not isinstance(value, str):
            raise InvalidInput(
                f"metadata.{key} must be a string, got {type(value).__name__}.", field=f"metadata.{key}"
            )
        if len(value) > METADATA_MAX_VALUE:
            raise InvalidInput(
                f"metadata.{key} is {len(value)} characters long; at most {METADATA_MAX_VALUE} are allowed.",
                field=f"metadata.{key}",
            )


def _validation_version(*, team: Team, request: JobRequest, training, task: str):
    """The separate version a job evaluates on: the team's, ready, same task, labels the training data has."""
    from datasets_app.selectors import dataset_version_get

    field_name = "validation_dataset_version"
    try:
        version = dataset_version_get(team=team, version_id=request.validation_dataset_version)
    except NotFound as exc:
        raise NotFound(exc.message, code="validation_dataset_version_not_found", field=field_name) from None
    if version.status != "ready":
        raise Unprocessable(
            f"Validation dataset version {version.id} is {version.status}, not ready.",
            code="dataset_version_not_ready",
            field=field_name,
        )
    if version.task != task:
        raise InvalidInput(
            f"Validation dataset version {version.id} holds {version.task} data; the job trains {task}.",
            code="task_mismatch",
            field=field_name,
        )
    unknown = sorted(set(version.labels or []) - set(training.labels or []))
    if unknown:
        raise InvalidInput(
            f"Validation dataset version {version.id} has labels the training data lacks: {', '.join(unknown[:10])}.",
            code="label_mismatch",
            field=field_name,
        )
    return version


def job_prepare(*, team: Team, request: JobRequest) -> PreparedJob:
    """Check a submission against the dataset version, the base-model registry and the engine
    (`validate_spec`), and estimate it. Raises InvalidInput/NotFound/Unprocessable naming the field."""
    from datasets_app.selectors import dataset_version_get
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
    priority = _checked_priority(request)

    check_metadata(request.metadata)
    train_path, valid_path = dataset_local_files(version)
    validation_version = None
    if request.validation_dataset_version:
        validation_version = _validation_version(team=team, request=request, training=version, task=task)
        valid_path = dataset_all_rows_file(validation_version)
    try:
        spec = engine_spec_for_submission(
            base_model=base_model,
            dataset_sha256=version.sha256,
            task=task,
            method=request.method,
            hyperparameters=request.hyperparameters,
            seed=request.seed,
            max_steps=request.max_steps,
            device_class=device_class,
            train_file=train_path,
            validation_file=valid_path,
            output_dir=Path(settings.TUNEFORGE_WORK_DIR) / "validation",
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
        base_model_id=base_model.pk,
    )
    return PreparedJob(
        request=request,
        base_model=base_model,
        version=version,
        validation_version=validation_version,
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
        "warning": selectors.unserved_device_warning(
            device_class=prepared.device_class, queue=prepared.queue
        ),
        "hyperparameters": _resolved_hyperparameters(prepared.validation, request.hyperparameters),
        "labels": prepared.validation.get("labels", []),
        **prepared.estimate,
        "quota": usage,
        "quota_refusal": _quota_refusal_message(team=team, usage=usage, device_class=prepared.device_class),
    }


def _resolved_hyperparameters(validation: dict, submitted: dict) -> dict:
    resolved = dict(submitted)
    for key in (
        "n_epochs",
        "batch_size",
        "learning_rate",
        "max_length",
        "warmup_ratio",
        "eval_every_steps",
        "early_stopping_patience",
        "early_stopping_metric",
    ):
        if key in validation:  # None is a decision too (no early stopping, evaluate each epoch)
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
            validation_dataset_version=prepared.validation_version,
            metadata=request.metadata or {},
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
        job_transition(
            job_id=job.id,
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
        job_transition(
            job_id=job.id,
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
        job_transition(
            job_id=job.id,
            to=JobStatus.PAUSED,
            from_=(JobStatus.QUEUED,),
            message=f"Paused by {who} while queued.",
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
    job_transition(
        job_id=job.id,
        to=JobStatus.QUEUED,
        from_=(JobStatus.PAUSED,),
        queued_at=timezone.now(),
        message=f"Resumed by {_actor_name(actor)}; it will continue {where}.",
        requested_action="",
    )
    job_dispatch(job_id=job.id, queue=job.queue)
    job.refresh_from_db()
    return job
