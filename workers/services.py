"""Writes to the worker registry, and the admin controls that reach live workers.

Workers write their own rows (registration, heartbeats, goodbye); admins change `admin_state`
(drain, pause, resume), which is both recorded here and sent to the live worker as a Celery control
command so it stops (or resumes) consuming its queues. The database is the source of truth: a
worker that missed the control command still refuses jobs (it checks `worker_accepts_jobs` and
hands the message back), and a worker that restarts while drained comes up not consuming.
"""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from workers import worker_state
from workers.models import WorkerNode
from workers.selectors import worker_get

log = logging.getLogger(__name__)

# Heartbeats from a process that does not run the tasks itself (prefork's parent) must not overwrite
# the current job, which the child that runs the job writes through `set_current_job`.
KEEP = object()


@transaction.atomic
def worker_register(
    *,
    name: str,
    host: str,
    pid: int,
    queues: list[str],
    device_kind: str,
    device_name: str,
    device_memory_mb: int | None,
    device_class: str,
    cuda_version: str,
    torch_version: str,
    os_platform: str = "",
) -> WorkerNode:
    """Record a worker that has just started (or re-registers after its row vanished). A restarted
    worker keeps its row, and so its admin state: a drained slot stays drained across restarts."""
    now = timezone.now()
    worker, _ = WorkerNode.objects.update_or_create(
        name=name,
        defaults={
            "host": host,
            "pid": pid,
            "queues": list(queues),
            "device_kind": device_kind,
            "device_name": device_name,
            "device_memory_mb": device_memory_mb,
            "device_class": device_class,
            "cuda_version": cuda_version,
            "torch_version": torch_version,
            "os_platform": os_platform,
            "started_at": now,
            "last_heartbeat_at": now,
            "offline_since": None,
            "current_job_id": None,
            "utilisation": {},
        },
    )
    log.info("Worker %s registered (queues %s, %s %s)", name, ",".join(queues), device_kind, device_name)
    return worker


def worker_heartbeat(*, name: str, current_job_id=KEEP, utilisation: dict) -> bool:
    """Record that `name` is alive, with its current job and utilisation. False when the worker has
    no row (an admin deleted it): the caller registers again."""
    now = timezone.now()
    fields = {"last_heartbeat_at": now, "offline_since": None, "utilisation": utilisation, "updated_at": now}
    if current_job_id is not KEEP:
        fields["current_job_id"] = current_job_id
    return WorkerNode.objects.filter(name=name).update(**fields) == 1


def worker_set_current_job(*, name: str, job_id: str | None) -> None:
    """Show the job a worker has just started (or finished) without waiting for the next heartbeat."""
    WorkerNode.objects.filter(name=name).update(current_job_id=job_id, updated_at=timezone.now())


def worker_mark_stopped(*, name: str) -> None:
    """A clean shutdown: the worker says goodbye, so it shows offline at once."""
    now = timezone.now()
    WorkerNode.objects.filter(name=name).update(offline_since=now, current_job_id=None, updated_at=now)
    log.info("Worker %s stopped", name)


@transaction.atomic
def workers_mark_offline() -> list[str]:
    """Mark offline every worker whose last heartbeat is older than
    TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS (run by beat every 10 s). Returns the names it marked.
    Recovering the jobs of a dead worker is the jobs reconciler's business, not this one's."""
    silent = Q(offline_since__isnull=True) & (
        Q(last_heartbeat_at__lt=WorkerNode.stale_before()) | Q(last_heartbeat_at__isnull=True)
    )
    names = list(
        WorkerNode.objects.select_for_update(skip_locked=True).filter(silent).values_list("name", flat=True)
    )
    if names:
        now = timezone.now()
        WorkerNode.objects.filter(silent, name__in=names).update(
            offline_since=now, current_job_id=None, updated_at=now
        )
        log.warning("Marked offline (no heartbeat): %s", ", ".join(names))
    return names


def worker_ping_received(*, name: str | None, token: str) -> None:
    """Record that `name` ran the diagnostic `workers.ping` task carrying `token`."""
    if name is None:
        return
    now = timezone.now()
    WorkerNode.objects.filter(name=name).update(last_ping=token[:64], last_ping_at=now, updated_at=now)


def worker_drain(*, name: str, actor) -> WorkerNode:
    """Let the worker finish its current job and take no new one."""
    return _set_admin_state(name=name, state=WorkerNode.AdminState.DRAINING, actor=actor)


def worker_pause(*, name: str, actor) -> WorkerNode:
    """Take no new job, and pause the current one (the jobs reporter sees the state, checkpoints and
    requeues the job, which resumes from its checkpoint on another worker or after resume)."""
    return _set_admin_state(name=name, state=WorkerNode.AdminState.PAUSED, actor=actor)


def worker_resume(*, name: str, actor) -> WorkerNode:
    """Accept jobs again: the worker consumes its queues again."""
    return _set_admin_state(name=name, state=WorkerNode.AdminState.ACTIVE, actor=actor)


@transaction.atomic
def _set_admin_state(*, name: str, state: str, actor) -> WorkerNode:
    worker = worker_get(name=name, for_update=True)
    worker.admin_state = state
    worker.admin_state_changed_at = timezone.now()
    worker.admin_state_changed_by = actor if getattr(actor, "pk", None) else None
    worker.save(
        update_fields=["admin_state", "admin_state_changed_at", "admin_state_changed_by", "updated_at"]
    )
    log.info("Worker %s set to %s by %s", name, state, actor)
    queues = list(worker.queues)
    consume = state == WorkerNode.AdminState.ACTIVE
    transaction.on_commit(lambda: worker_send_consumption_control(name=name, consume=consume, queues=queues))
    return worker


def worker_send_consumption_control(*, name: str, consume: bool, queues: list[str]) -> None:
    """Tell one live worker to start (or stop) consuming `queues`. Best effort: the recorded admin
    state is what counts; a worker that misses this still refuses (and hands back) jobs, and its
    heartbeat sends the command again while what it consumes differs from that state."""
    command = "add_consumer" if consume else "cancel_consumer"
    # The current app, not an import of workers.celery_app: that module connects the signal
    # handlers, which call these services.
    from celery import current_app as app

    for queue in queues:
        try:
            getattr(app.control, command)(queue, destination=[name])
        except Exception as exc:  # broker down or a transport without broadcast: the state above still holds
            log.warning("Could not send %s(%s) to worker %s: %s", command, queue, name, exc)


def hand_back(task, *, job_id: str | None = None) -> str:
    """Give a job message back to the queue it came from, unclaimed, so another worker takes it.
    Called by a task that finds its worker is not accepting jobs (draining, paused, or unknown):
    re-publishes the same task with the same arguments to the same queue, and tells this worker to
    stop consuming its queues (it evidently missed the drain/pause command). Returns the queue."""
    from workers.worker_state import current_worker_name, current_worker_queues

    request = task.request
    delivery = request.delivery_info or {}
    queue = delivery.get("routing_key") or task.queue or "default"
    task.apply_async(args=list(request.args or ()), kwargs=dict(request.kwargs or {}), queue=queue)
    name = current_worker_name()
    log.warning(
        "Worker %s is not accepting jobs: handed %s%s back to queue %s",
        name,
        task.name,
        f" (job {job_id})" if job_id else "",
        queue,
    )
    if name is None:
        return queue
    state = WorkerNode.objects.filter(name=name).values_list("admin_state", flat=True).first()
    if state in (WorkerNode.AdminState.DRAINING, WorkerNode.AdminState.PAUSED):
        worker_send_consumption_control(name=name, consume=False, queues=current_worker_queues() or [queue])
    else:
        # Not registered (its row was deleted, or registration failed): the heartbeat registers it
        # again within seconds. It keeps consuming meanwhile, so pause briefly rather than spin on
        # the message it may fetch straight back.
        time.sleep(1)
    return queue


def set_current_job(job_id: str | None) -> None:
    """Called by the jobs task when it starts (job id) and ends (None) a job. Written at once, and
    reported again by every heartbeat."""
    worker_state.state.current_job = job_id
    if worker_state.state.name is None:
        return
    try:
        worker_set_current_job(name=worker_state.state.name, job_id=job_id)
    except Exception:  # the registry is bookkeeping: it must never fail a job
        log.exception("Could not record the current job of worker %s", worker_state.state.name)
