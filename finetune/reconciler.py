"""The reconciler: repairs what a crash or a broker loss left behind (run by beat every few seconds).

- a running job whose heartbeat is older than TUNEFORGE_JOB_STALE_AFTER_SECONDS lost its worker
  (kill -9, machine lost): it is requeued to resume from its last checkpoint, or failed after
  TUNEFORGE_JOB_MAX_CRASHES losses, or finished as cancelled/paused if that was asked;
- queued jobs without a message in the broker (Redis flushed or restarted) get a fresh one;
- jobs still `validating_files` a while after their check was sent get the check sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from finetune.lifecycle import (
    CHECK_FILES_QUEUE,
    CHECK_FILES_TASK,
    job_dispatch,
    job_event_record,
    job_fail,
    job_transition,
    ownership_guard,
)
from finetune.models import FineTuneJob, JobAttempt, JobEvent, JobStatus

logger = logging.getLogger(__name__)


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
    - queued jobs without a message in the broker (Redis flushed or restarted) get a fresh one;
    - jobs still `validating_files` a while after their check was sent get the check sent again.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.TUNEFORGE_JOB_STALE_AFTER_SECONDS)
    report = {
        "requeued": [],
        "failed": [],
        "cancelled": [],
        "paused": [],
        "redispatched": [],
        "rechecked": [],
    }
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
    report["rechecked"] = _redispatch_file_checks(now=now)
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
            job_transition(
                job_id=job.id,
                to=JobStatus.CANCELLED,
                from_=(JobStatus.RUNNING,),
                guard=guard,
                message=f"{lost}; the job was being cancelled, so it is cancelled.",
                code="worker_lost_cancelled",
                params={"worker": job.worker, "seconds": silent},
                requested_action="",
            )
            return "cancelled"
        if job.requested_action == FineTuneJob.RequestedAction.PAUSE:
            job_transition(
                job_id=job.id,
                to=JobStatus.PAUSED,
                from_=(JobStatus.RUNNING,),
                guard=guard,
                requested_action="",
                message=f"{lost}; the job was being paused, so it is paused"
                + (f" at its checkpoint from step {checkpoint.step}." if checkpoint else "."),
                code="worker_lost_paused",
                params={"worker": job.worker, "seconds": silent},
            )
            return "paused"
        limit = settings.TUNEFORGE_JOB_MAX_CRASHES
        if crashes >= limit:
            job_fail(
                job_id=job.id,
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
        requeued = job_transition(
            job_id=job.id,
            to=JobStatus.QUEUED,
            from_=(JobStatus.RUNNING,),
            guard=guard,
            level=JobEvent.Level.WARN,
            message=f"{lost}; requeued ({crashes} of {limit} losses allowed), it will resume {where}.",
            code="worker_lost_requeued" if checkpoint else "worker_lost_requeued_from_start",
            params={
                "worker": job.worker,
                "seconds": silent,
                "crashes": crashes,
                "limit": limit,
                "step": checkpoint.step if checkpoint else None,
            },
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
                    code="resent",
                    params={"queue": queue},
                    level=JobEvent.Level.WARN,
                )
                job_dispatch(job_id=job_id, queue=queue)
            sent.append(job_id)
    return sent


def _redispatch_file_checks(*, now) -> list[str]:
    """Jobs still `validating_files` TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS after their check was
    sent lost that message (or it waits behind a stopped default-queue worker): send it again. The
    check is idempotent, so a duplicate only finds the job already checked."""
    grace = now - timedelta(seconds=settings.TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS)
    waiting = FineTuneJob.objects.filter(status=JobStatus.VALIDATING_FILES)
    stuck = waiting.filter(last_dispatched_at__lt=grace) | waiting.filter(last_dispatched_at__isnull=True)
    sent: list[str] = []
    for job_id in stuck.order_by(F("last_dispatched_at").asc(nulls_first=True)).values_list("id", flat=True):
        with transaction.atomic():
            job_event_record(
                job_id=job_id,
                message="Files check re-sent: its message was lost by the broker.",
                level=JobEvent.Level.WARN,
            )
            job_dispatch(job_id=job_id, queue=CHECK_FILES_QUEUE, task=CHECK_FILES_TASK)
        sent.append(job_id)
    return sent
