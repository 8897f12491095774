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
from django.utils.translation import gettext

from accounts.models import Team
from common.errors import ApplicationError, Conflict, InvalidInput, NotFound, QuotaExceeded, Unprocessable
from common.json import json_safe
from finetune import selectors
from finetune.artifact_storage import dataset_all_rows_file, dataset_local_files
from finetune.engine import SpecError, validate_spec
from finetune.engine.spec import AUTO
from finetune.engine_specs import engine_spec_for_submission
from finetune.estimates import estimate_for
from finetune.lifecycle import (
    CHECK_FILES_QUEUE,
    CHECK_FILES_TASK,
    job_dispatch,
    job_event_record,
    job_fail,
    job_transition,
)
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
            gettext("priority must be low, normal or high, got %(value)r.") % {"value": request.priority},
            field="priority",
        )
    if not SUFFIX_FORMAT.match(request.suffix or ""):
        raise InvalidInput(
            gettext("suffix may hold up to 64 letters, digits, '.', '_' or '-'."), field="suffix"
        )
    if not isinstance(request.hyperparameters, dict):
        raise InvalidInput(gettext("hyperparameters must be an object."), field="hyperparameters")
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


def _validation_version_get(*, team: Team, request: JobRequest):
    """The separate version a job evaluates on (the team's), or None; NotFound names the field."""
    from datasets_app.selectors import dataset_version_get

    if not request.validation_dataset_version:
        return None
    try:
        return dataset_version_get(team=team, version_id=request.validation_dataset_version)
    except NotFound as exc:
        raise NotFound(
            exc.message, code="validation_dataset_version_not_found", field="validation_dataset_version"
        ) from None


def _check_validation_version(*, version, training, task: str) -> None:
    """A separate validation version must be ready, of the job's task, with labels the training data has."""
    field_name = "validation_dataset_version"
    if version.status != "ready":
        raise Unprocessable(
            gettext("Validation dataset version %(id)s is %(status)s, not ready.")
            % {"id": version.id, "status": version.status},
            code="dataset_version_not_ready",
            field=field_name,
        )
    if version.task != task:
        raise InvalidInput(
            gettext("Validation dataset version %(id)s holds %(data)s data; the job trains %(task)s.")
            % {"id": version.id, "data": version.task, "task": task},
            code="task_mismatch",
            field=field_name,
        )
    unknown = sorted(set(version.labels or []) - set(training.labels or []))
    if unknown:
        raise InvalidInput(
            gettext("Validation dataset version %(id)s has labels the training data lacks: %(labels)s.")
            % {"id": version.id, "labels": ", ".join(unknown[:10])},
            code="label_mismatch",
            field=field_name,
        )


def job_prepare(*, team: Team, request: JobRequest, check_files: bool = True) -> PreparedJob:
    """Check a submission against the dataset version, the base-model registry and the engine
    (`validate_spec`), and estimate it. Raises InvalidInput/NotFound/Unprocessable naming the field.

    `check_files=False` stops after the request's own fields and the lookups (the model, the files
    exist in the team): the OpenAI face creates the job `validating_files` then and the
    `finetune.check_job_files` task runs the whole check (`job_files_check`) later. The files
    check proper is the readiness of the versions, their task and labels, and `validate_spec`
    reading their rows (which also checks the hyperparameters against them)."""
    from datasets_app.selectors import dataset_version_get
    from workers.routing import queue_for_device

    base_model = selectors.base_model_get(name=request.model)
    try:
        version = dataset_version_get(team=team, version_id=request.dataset_version)
    except NotFound as exc:
        raise NotFound(exc.message, code="dataset_version_not_found", field="dataset_version") from None
    validation_version = _validation_version_get(team=team, request=request)
    task = request.task or version.task
    if task != version.task:
        raise InvalidInput(
            gettext("Dataset version %(id)s holds %(data)s data; it cannot train a %(task)s job.")
            % {"id": version.id, "data": version.task, "task": task},
            code="task_mismatch",
            field="task",
        )
    if base_model.tasks and task not in base_model.tasks:
        raise InvalidInput(
            gettext("Base model %(model)s supports %(tasks)s, not %(task)s.")
            % {"model": base_model.name, "tasks": ", ".join(base_model.tasks), "task": task},
            code="unsupported_task",
            field="model",
        )
    device_class = request.device_class or settings.TUNEFORGE_DEFAULT_DEVICE_CLASS
    queue = queue_for_device(device_class)
    priority = _checked_priority(request)
    check_metadata(request.metadata)
    prepared = PreparedJob(
        request=request,
        base_model=base_model,
        version=version,
        validation_version=validation_version,
        task=task,
        device_class=device_class,
        queue=queue,
        priority=priority,
        validation={},
        estimate={},
    )
    if check_files:
        _check_files(prepared)
    return prepared


def _check_files(prepared: PreparedJob) -> None:
    """The files check: fills `prepared.validation` and `prepared.estimate`, or raises naming the field."""
    request, version, task = prepared.request, prepared.version, prepared.task
    if version.status != "ready":
        raise Unprocessable(
            gettext("Dataset version %(id)s is %(status)s, not ready: only ready versions can be trained on.")
            % {"id": version.id, "status": version.status},
            code="dataset_version_not_ready",
            field="dataset_version",
        )
    train_path, valid_path = dataset_local_files(version)
    if prepared.validation_version is not None:
        _check_validation_version(version=prepared.validation_version, training=version, task=task)
        valid_path = dataset_all_rows_file(prepared.validation_version)
    try:
        spec = engine_spec_for_submission(
            base_model=prepared.base_model,
            dataset_sha256=version.sha256,
            task=task,
            method=request.method,
            hyperparameters=request.hyperparameters,
            seed=request.seed,
            max_steps=request.max_steps,
            device_class=prepared.device_class,
            train_file=train_path,
            validation_file=valid_path,
            output_dir=Path(settings.TUNEFORGE_WORK_DIR) / "validation",
        )
        validation = validate_spec(spec)
    except SpecError as exc:
        api_error = _spec_error_to_api(exc)
        if prepared.validation_version is not None and exc.field.split(".", 1)[0] == "validation_file":
            api_error.field = "validation_dataset_version"  # the separate file, not the training split
        raise api_error from None
    prepared.validation = json_safe(validation)
    prepared.estimate = estimate_for(
        validation=prepared.validation,
        device_class=prepared.device_class,
        method=request.method,
        parameters_millions=prepared.base_model.parameters_millions,
        base_model_id=prepared.base_model.pk,
        search=(request.hyperparameters or {}).get("search"),
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
        "quota_refusal": _quota_refusal_message(team=team, usage=usage, device_class=prepared.device_class)
        or _search_refusal_message(team=team, usage=usage, prepared=prepared),
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
        "early_stopping_start_step",
    ):
        if key in validation:  # None is a decision too (no early stopping, evaluate each epoch)
            resolved[key] = validation[key]
    return resolved


def _quota_refusal(*, team: Team, usage: dict, device_class: str) -> QuotaExceeded | None:
    if usage["concurrent_jobs"] >= usage["max_concurrent_jobs"]:
        return QuotaExceeded(
            gettext(
                "Concurrency limit reached: %(used)s of %(max)s concurrent jobs running or queued "
                "(%(running)s running, %(queued)s queued) for team %(team)s. Wait for one to finish or cancel one."
            )
            % {
                "used": usage["concurrent_jobs"],
                "max": usage["max_concurrent_jobs"],
                "running": usage["running_jobs"],
                "queued": usage["queued_jobs"],
                "team": team.name,
            },
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
            gettext(
                "Monthly GPU-hours quota used up: %(used).2f of %(max).2f GPU-hours consumed this month by team "
                "%(team)s. It resets on %(resets)s; CPU jobs are not counted."
            )
            % {
                "used": usage["gpu_hours_used"],
                "max": usage["monthly_gpu_hours"],
                "team": team.name,
                "resets": f"{resets:%Y-%m-%d}",
            },
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


def _search_quota_refusal(*, team: Team, usage: dict, prepared: PreparedJob) -> QuotaExceeded | None:
    """A job with a budgeted search on a GPU is refused when its search budget plus the estimated
    full run would take more GPU-hours than the team has left this month (the search's time is
    counted like any other, as part of the job's attempts)."""
    search = (prepared.request.hyperparameters or {}).get("search")
    if not isinstance(search, dict) or prepared.device_class == selectors.CPU_DEVICE_CLASS:
        return None
    budget_hours = float(search.get("budget_minutes") or 0) / 60.0
    estimate = prepared.estimate or {}
    # estimate_for's gpu_hours include the search budget already; without an estimate (files not
    # checked yet) the budget alone is known.
    needed = float(estimate.get("gpu_hours") or 0.0) or budget_hours
    left = max(0.0, usage["monthly_gpu_hours"] - usage["gpu_hours_used"])
    if needed <= left:
        return None
    resets = selectors.next_month_start()
    return QuotaExceeded(
        gettext(
            "Not enough GPU-hours left for this search and run: the search budget (%(budget)s min) plus the "
            "estimated run need %(needed).2f GPU-hours, and team %(team)s has %(left).2f of %(max).2f left "
            "this month. Lower hyperparameters.search.budget_minutes or turn the search off."
        )
        % {
            "budget": f"{float(search.get('budget_minutes') or 0):g}",
            "needed": needed,
            "team": team.name,
            "left": left,
            "max": usage["monthly_gpu_hours"],
        },
        code="gpu_hours_quota",
        details={
            "limit": "monthly_gpu_hours",
            "field": "hyperparameters.search.budget_minutes",
            "needed": round(needed, 4),
            "left": round(left, 4),
            "used": usage["gpu_hours_used"],
            "max": usage["monthly_gpu_hours"],
            "resets_at": resets.isoformat(),
        },
        headers={"Retry-After": str(max(1, int((resets - timezone.now()).total_seconds())))},
    )


def _search_refusal_message(*, team: Team, usage: dict, prepared: PreparedJob) -> str | None:
    refusal = _search_quota_refusal(team=team, usage=usage, prepared=prepared)
    return refusal.message if refusal else None


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


def job_create(*, team: Team, user, request: JobRequest, check_files_later: bool = False) -> FineTuneJob:
    """Submit a job: validate it (nothing is written if that fails), check the team's quotas, create
    it (`validating_files` → `queued`) and publish its message once the transaction commits.

    With `check_files_later` (the OpenAI face) only the request's own fields are checked here: the
    job is stored `validating_files` and the `finetune.check_job_files` task on the default queue
    checks the files (`job_files_check`), then queues or fails it."""
    prepared = job_prepare(team=team, request=request, check_files=not check_files_later)
    with transaction.atomic():
        locked_team = Team.objects.select_for_update().get(pk=team.pk)
        _check_quota(team=locked_team, device_class=prepared.device_class)
        refusal = _search_quota_refusal(
            team=locked_team, usage=selectors.team_quota_usage(team=locked_team), prepared=prepared
        )
        if refusal is not None:
            raise refusal
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
            resolved_hyperparameters=request.hyperparameters,
            seed=request.seed,
            max_steps=request.max_steps,
            suffix=request.suffix or "",
            device_class=prepared.device_class,
            queue=prepared.queue,
            priority=prepared.priority,
            status=JobStatus.VALIDATING_FILES,
        )
        who = getattr(user, "email", None) or "an API key"
        job_event_record(
            job_id=job.id,
            message=f"Created fine-tuning job {job.id} ({who}).",
            data={"status": JobStatus.VALIDATING_FILES},
            code="created",
            params={"job": job.id, "who": getattr(user, "email", None) or ""},
        )
        if check_files_later:
            job_dispatch(job_id=job.id, queue=CHECK_FILES_QUEUE, task=CHECK_FILES_TASK)
        else:
            _files_accepted(job_id=job.id, prepared=prepared)
    job.refresh_from_db()
    return job


def _files_accepted(*, job_id: str, prepared: PreparedJob) -> None:
    """Store what the files check found, record it, and queue the job on its device queue."""
    v, request = prepared.validation, prepared.request
    FineTuneJob.objects.filter(pk=job_id).update(
        hyperparameters=request.hyperparameters,
        resolved_hyperparameters=_resolved_hyperparameters(v, request.hyperparameters),
        estimate=prepared.estimate,
        validation=v,
        total_steps=v.get("total_steps") or 0,
    )
    job_event_record(
        job_id=job_id,
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
        code="files_validated",
        params={
            "train": v.get("n_train"),
            "valid": v.get("n_valid"),
            "tokens": prepared.estimate["trained_tokens"],
            "epochs": v.get("n_epochs"),
            "steps": v.get("total_steps"),
        },
    )
    job_transition(
        job_id=job_id,
        to=JobStatus.QUEUED,
        from_=(JobStatus.VALIDATING_FILES,),
        message=f"Queued on {prepared.queue} ({prepared.device_class}).",
        code="queued",
        params={"queue": prepared.queue, "device": prepared.device_class},
        queued_at=timezone.now(),
    )
    job_dispatch(job_id=job_id, queue=prepared.queue)


# The OpenAI face stores a submitted learning_rate_multiplier here until the files check resolves
# it against the engine's automatic rate (which needs the files).
LEARNING_RATE_MULTIPLIER = "learning_rate_multiplier"


def _stored_request(job: FineTuneJob) -> JobRequest:
    return JobRequest(
        dataset_version=job.dataset_version_id,
        model=job.base_model.name,
        task=job.task,
        method=job.method,
        hyperparameters=dict(job.hyperparameters or {}),
        device_class=job.device_class,
        priority=Priority(job.priority).label,
        suffix=job.suffix,
        seed=job.seed,
        max_steps=job.max_steps,
        validation_dataset_version=job.validation_dataset_version_id,
        metadata=job.metadata or {},
    )


def _file_param(field_name: str | None) -> str:
    head = (field_name or "").split(".", 1)[0]
    return {"dataset_version": "training_file", "validation_dataset_version": "validation_file"}.get(head, "")


def job_files_check(*, job_id: str) -> str | None:
    """The body of `finetune.check_job_files`: run the submission check (`job_prepare`, the same
    one the native API runs before creating a job) on a `validating_files` job, then queue it on its
    device queue, or fail it with `{code, message, param}` naming the file and the problem.
    Idempotent: a job no longer validating (checked already, cancelled) is left alone.
    Returns the status it moved the job to, or None."""
    with transaction.atomic():
        job = (
            FineTuneJob.objects.select_for_update(of=("self",))
            .select_related("base_model")
            .filter(pk=job_id, status=JobStatus.VALIDATING_FILES)
            .first()
        )
        if job is None:
            return None
        request = _stored_request(job)
        multiplier = request.hyperparameters.pop(LEARNING_RATE_MULTIPLIER, None)
        try:
            prepared = job_prepare(team=job.team, request=request)
            if multiplier is not None:
                # The multiplier scales the automatic rate this first check resolved.
                request.hyperparameters["learning_rate"] = prepared.validation["learning_rate"] * multiplier
                prepared = job_prepare(team=job.team, request=request)
        except ApplicationError as exc:
            param = _file_param(exc.field)
            file_id = {
                "training_file": job.dataset_version_id,
                "validation_file": job.validation_dataset_version_id,
            }
            named = file_id.get(param)
            message = exc.message if not named or named in exc.message else f"File {named}: {exc.message}"
            job_fail(
                job_id=job.id,
                code=exc.code,
                message=message,
                param=exc.field or "",
                from_=(JobStatus.VALIDATING_FILES,),
            )
            return JobStatus.FAILED
        except Exception as exc:  # noqa: BLE001 - e.g. the base model's tokenizer cannot be read here
            # Failed, not retried: the reconciler would otherwise re-send this check forever.
            logger.exception("files check of job %s crashed", job.id)
            job_fail(
                job_id=job.id,
                code="files_check_error",
                message=f"The files of job {job.id} could not be checked: {type(exc).__name__}: {exc}",
                from_=(JobStatus.VALIDATING_FILES,),
            )
            return JobStatus.FAILED
        _files_accepted(job_id=job.id, prepared=prepared)
    return JobStatus.QUEUED


# --- control ------------------------------------------------------------------------------------


def _actor_name(actor) -> str:
    return getattr(actor, "email", None) or "an API key"


def _locked(job: FineTuneJob) -> FineTuneJob:
    return FineTuneJob.objects.select_for_update().get(pk=job.pk)


def _actor_email(actor) -> str:
    """The actor as an event parameter: "" for an API key (the page says so in its language)."""
    return getattr(actor, "email", None) or ""


def _request_action(job: FineTuneJob, action: str, *, message: str, code: str, params: dict) -> None:
    """Flag a running job for its worker's reporter (read within TUNEFORGE_JOB_CONTROL_POLL_SECONDS);
    asking twice records nothing new."""
    if job.requested_action != action:
        FineTuneJob.objects.filter(pk=job.pk).update(requested_action=action)
        job_event_record(job_id=job.id, message=message, code=code, params=params)


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
            code="cancelled_by",
            params={"who": _actor_email(actor)},
            requested_action="",
        )
    elif job.status == JobStatus.RUNNING:
        _request_action(
            job,
            FineTuneJob.RequestedAction.CANCEL,
            message=f"Cancellation requested by {who}; stopping at the next step.",
            code="cancel_requested",
            params={"who": _actor_email(actor)},
        )
    else:
        raise Conflict(
            gettext("Job %(id)s has already %(status)s; there is nothing to cancel.")
            % {"id": job.id, "status": job.status},
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
            code="paused_by",
            params={"who": _actor_email(actor)},
        )
    elif job.status == JobStatus.RUNNING:
        if job.requested_action == FineTuneJob.RequestedAction.CANCEL:
            raise Conflict(
                gettext("Job %(id)s is being cancelled; it cannot be paused.") % {"id": job.id},
                code="job_not_pausable",
                field="status",
            )
        _request_action(
            job,
            FineTuneJob.RequestedAction.PAUSE,
            message=f"Pause requested by {who}; checkpointing at the next step.",
            code="pause_requested",
            params={"who": _actor_email(actor)},
        )
    else:
        raise Conflict(
            gettext("Job %(id)s is %(status)s; only queued or running jobs can be paused.")
            % {"id": job.id, "status": job.status},
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
            gettext("Job %(id)s is %(status)s; only paused jobs can be resumed.")
            % {"id": job.id, "status": job.status},
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
        code="resumed" if checkpoint else "resumed_from_start",
        params={"who": _actor_email(actor), "step": checkpoint.step if checkpoint else None},
        requested_action="",
    )
    job_dispatch(job_id=job.id, queue=job.queue)
    job.refresh_from_db()
    return job
