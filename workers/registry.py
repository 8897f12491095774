"""The process-local side of the worker registry, wired to Celery's worker signals.

On start (`worker_ready`) a worker registers itself: name, host, pid, the queues it consumes, its
device and the torch/CUDA versions. A daemon thread then heartbeats every
TUNEFORGE_WORKER_HEARTBEAT_SECONDS with the current job and utilisation, on its own database
connection, closed after each write. On a clean shutdown (`worker_shutdown`) it marks itself offline.

Imported by `workers.celery_app`, before Django is set up in a worker: Django-dependent modules
are imported inside the handlers.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading

from celery import signals

log = logging.getLogger(__name__)


class _WorkerState:
    def __init__(self) -> None:
        self.name: str | None = None
        self.queues: list[str] = []
        self.current_job: str | None = None
        # True where tasks run in this process (solo, threads pools); prefork runs them in children.
        self.runs_tasks_here = True
        self.registration: dict | None = None
        self.sampler = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


_state = _WorkerState()


def current_worker_name() -> str | None:
    """The WorkerNode name (Celery hostname) of this worker process; None outside workers."""
    return _state.name


def current_worker_queues() -> list[str]:
    return list(_state.queues)


def set_current_job(job_id: str | None) -> None:
    """Called by the jobs task when it starts (job id) and ends (None) a job. Written at once, and
    reported again by every heartbeat."""
    _state.current_job = job_id
    if _state.name is None:
        return
    from workers.services import worker_set_current_job

    try:
        worker_set_current_job(name=_state.name, job_id=job_id)
    except Exception:  # the registry is bookkeeping: it must never fail a job
        log.exception("Could not record the current job of worker %s", _state.name)


@signals.worker_init.connect(dispatch_uid="tuneforge-worker-init")
def _on_worker_init(sender=None, **kwargs) -> None:
    # Set before the pool forks, so prefork children know their worker's name and queues too.
    _state.name = sender.hostname
    consume_from = sender.app.amqp.queues.consume_from
    _state.queues = sorted(consume_from or sender.app.amqp.queues)


@signals.worker_ready.connect(dispatch_uid="tuneforge-worker-ready")
def _on_worker_ready(sender=None, **kwargs) -> None:
    consumer = sender
    from celery.concurrency.prefork import TaskPool as PreforkPool

    _state.name = consumer.hostname
    _state.runs_tasks_here = not isinstance(consumer.pool, PreforkPool)
    _state.registration = _describe(consumer)
    if not _register():
        log.error("Worker %s could not register; the heartbeat will retry.", _state.name)
    _stop_consuming_unless_accepting(consumer)
    _start_heartbeat()


@signals.worker_shutdown.connect(dispatch_uid="tuneforge-worker-shutdown")
def _on_worker_shutdown(sender=None, **kwargs) -> None:
    if _state.name is None or _state.registration is None:
        return
    _state.stop.set()
    if _state.thread is not None:
        _state.thread.join(timeout=5)
    from django.db import connection

    from workers.services import worker_mark_stopped

    try:
        worker_mark_stopped(name=_state.name)
    except Exception:
        log.exception("Could not mark worker %s offline", _state.name)
    finally:
        connection.close()


def _describe(consumer) -> dict:
    from workers.devices import UtilisationSampler, describe_this_worker_device, software_versions

    device = describe_this_worker_device()
    torch_version, cuda_version = software_versions()
    _state.sampler = UtilisationSampler(gpu_visible_id=device.gpu_visible_id)
    return {
        "name": consumer.hostname,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": list(_state.queues),
        "device_kind": device.device_kind,
        "device_name": device.device_name,
        "device_memory_mb": device.device_memory_mb,
        "device_class": device.device_class,
        "cuda_version": cuda_version,
        "torch_version": torch_version,
        "os_platform": platform.platform(),
    }


def _register() -> bool:
    from django.db import connection

    from workers.services import worker_register

    try:
        worker_register(**_state.registration)
        return True
    except Exception:
        log.exception("Registration of worker %s failed", _state.name)
        return False
    finally:
        connection.close()


def _stop_consuming_unless_accepting(consumer) -> None:
    """A worker restarted while drained or paused comes up without consuming its queues."""
    from django.db import connection

    from workers.selectors import worker_admin_state

    try:
        state = worker_admin_state(name=_state.name)
    except Exception:
        log.exception("Could not read the admin state of worker %s", _state.name)
        return
    finally:
        connection.close()
    if state != "active":
        log.warning(
            "Worker %s is %s: not consuming %s until resumed", _state.name, state, ", ".join(_state.queues)
        )
        for queue in _state.queues:
            consumer.cancel_task_queue(queue)


def _start_heartbeat() -> None:
    from django.conf import settings

    interval = float(settings.TUNEFORGE_WORKER_HEARTBEAT_SECONDS)
    _state.stop.clear()
    _state.thread = threading.Thread(
        target=_heartbeat_loop, args=(interval,), name="tuneforge-heartbeat", daemon=True
    )
    _state.thread.start()


def _heartbeat_loop(interval: float) -> None:
    while not _state.stop.wait(interval):
        _beat_once()


def _beat_once() -> None:
    from django.db import connection

    from workers.services import KEEP, worker_heartbeat

    try:
        utilisation = _state.sampler.sample() if _state.sampler is not None else {}
        current_job = _state.current_job if _state.runs_tasks_here else KEEP
        if not worker_heartbeat(name=_state.name, current_job_id=current_job, utilisation=utilisation):
            _register()
    except Exception:  # a database blip must not kill the heartbeat thread; the next beat retries
        log.exception("Heartbeat of worker %s failed", _state.name)
    finally:
        # Its own connection, closed after each write: an idle worker holds no database connection.
        connection.close()
