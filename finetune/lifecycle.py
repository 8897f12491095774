"""Every status change of a fine-tuning job and the event that records it.

A change is one conditional UPDATE (`WHERE status IN (...)`, plus the ownership guard of the
worker that claimed the job) and a `JobEvent`, in one transaction. Zero rows updated means another
actor changed the job first: that is how duplicate deliveries, races between cancel and completion,
and zombie workers are told apart from real transitions. Services, the runner, the reporter and the
reconciler all change a job through this module and nothing else.

Dispatch publishes the `finetune.run_job` and `finetune.check_job_files` tasks by name, so this
module needs no task code.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from finetune.models import TERMINAL_STATUSES, FineTuneJob, JobAttempt, JobEvent, JobStatus

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "finetune.run_job"
# Checks a job's training and validation files (a job created through /v1/ is `validating_files`
# until this ran); served by the short-task worker of the `default` queue.
CHECK_FILES_TASK = "finetune.check_job_files"
CHECK_FILES_QUEUE = "default"


def job_event_record(
    *,
    job_id: str,
    message: str,
    level: str = JobEvent.Level.INFO,
    type: str = JobEvent.Type.MESSAGE,
    data: dict | None = None,
    code: str = "",
    params: dict | None = None,
) -> JobEvent:
    """`message` is the stored English text (the API and the log download show it); `code` and
    `params`, kept in `data`, let the job page show the event in the reader's language."""
    return JobEvent.objects.create(
        job_id=job_id,
        message=message,
        level=level,
        type=type,
        data=event_data(data, code=code, params=params),
    )


def event_data(data: dict | None, *, code: str = "", params: dict | None = None) -> dict | None:
    if not code:
        return data
    return {**(data or {}), "code": code, "params": params or {}}


def ownership_guard(job: FineTuneJob) -> dict:
    """The condition under which the worker that claimed `job` still owns it."""
    return {"worker": job.worker, "attempts": job.attempts}


def job_transition(
    *,
    job_id: str,
    to: str,
    from_: tuple[str, ...],
    message: str,
    level: str = JobEvent.Level.INFO,
    data: dict | None = None,
    guard: dict | None = None,
    code: str = "",
    params: dict | None = None,
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
            job_event_record(
                job_id=job_id,
                message=message,
                level=level,
                data={"status": to, **(data or {})},
                code=code,
                params=params,
            )
    return bool(updated)


def job_fail(
    *,
    job_id: str,
    code: str,
    message: str,
    param: str = "",
    from_: tuple[str, ...] = (JobStatus.RUNNING,),
    guard: dict | None = None,
) -> bool:
    """Fail the job with a readable reason (stored as its `{code, message, param}` error)."""
    return job_transition(
        job_id=job_id,
        to=JobStatus.FAILED,
        from_=from_,
        guard=guard,
        level=JobEvent.Level.ERROR,
        message=f"Job failed: {message}",
        data={"error": {"code": code, "message": message, "param": param or None}},
        code="failed",
        params={"error_code": code, "message": message},
        error_code=code,
        error_message=message,
        error_param=param,
        requested_action="",
    )


def job_attempt_end(*, job_id: str, number: int, outcome: str) -> None:
    now = timezone.now()
    JobAttempt.objects.filter(job_id=job_id, number=number, ended_at__isnull=True).update(
        ended_at=now, last_seen_at=now, outcome=outcome
    )


def publish_job_task(*, job_id: str, queue: str, task: str = RUN_JOB_TASK) -> None:
    """Send the task message now (by task name). A broker that is down is logged, not raised: the
    job stays queued (or validating_files) in PostgreSQL and the reconciler re-sends it."""
    from workers.celery_app import app

    try:
        app.send_task(task, args=[job_id], queue=queue)
    except Exception:
        logger.exception(
            "could not publish %s for job %s to queue %s; the reconciler will retry", task, job_id, queue
        )


def job_dispatch(*, job_id: str, queue: str, task: str = RUN_JOB_TASK) -> None:
    """Send a message naming `job_id` once the transaction commits. By default that is "one unit of
    work on `queue`": the worker takes the best queued job of that queue in fair-share order (maybe
    another one); every queued job has at least one message in flight, so none starves.
    With `task=CHECK_FILES_TASK` it asks the default-queue worker to check the job's files."""
    FineTuneJob.objects.filter(pk=job_id).update(last_dispatched_at=timezone.now())
    transaction.on_commit(lambda: publish_job_task(job_id=job_id, queue=queue, task=task))
