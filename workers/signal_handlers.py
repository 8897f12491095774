"""Celery worker signal handlers: the process-local side of the worker registry.

On start (`worker_ready`) a worker registers itself: name, host, pid, the queues it consumes, its
device and the torch/CUDA versions. A daemon thread then heartbeats every
TUNEFORGE_WORKER_HEARTBEAT_SECONDS with the current job and utilisation, on its own database
connection, closed after each write. On a clean shutdown (`worker_shutdown`) it marks itself offline.

Connected by `workers.celery_app`, before Django is set up in a worker: Django-dependent modules
are imported inside the handlers.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading

from celery import signals

from workers.worker_state import state

log = logging.getLogger(__name__)


@signals.worker_init.connect(dispatch_uid="tuneforge-worker-init")
def _on_worker_init(sender=None, **kwargs) -> None:
    # Set before the pool forks, so prefork children know their worker's name and queues too.
    state.name = sender.hostname
    consume_from = sender.app.amqp.queues.consume_from
    state.queues = sorted(consume_from or sender.app.amqp.queues)


@signals.worker_ready.connect(dispatch_uid="tuneforge-worker-ready")
def _on_worker_ready(sender=None, **kwargs) -> None:
    consumer = sender
    from celery.concurrency.prefork import TaskPool as PreforkPool

    state.name = consumer.hostname
    state.runs_tasks_here = not isinstance(consumer.pool, PreforkPool)
    state.registration = _describe(consumer)
    state.consumer = consumer
    if not _register():
        log.error("Worker %s could not register; the heartbeat will retry.", state.name)
    _stop_consuming_unless_accepting(consumer)
    _start_heartbeat()


@signals.worker_shutdown.connect(dispatch_uid="tuneforge-worker-shutdown")
def _on_worker_shutdown(sender=None, **kwargs) -> None:
    if state.name is None or state.registration is None:
        return
    state.stop.set()
    if state.thread is not None:
        state.thread.join(timeout=5)
    from django.db import connection

    from workers.services import worker_mark_stopped

    try:
        worker_mark_stopped(name=state.name)
    except Exception:
        log.exception("Could not mark worker %s offline", state.name)
    finally:
        connection.close()


def _describe(consumer) -> dict:
    from workers.devices import UtilisationSampler, describe_this_worker_device, software_versions

    device = describe_this_worker_device()
    torch_version, cuda_version = software_versions()
    state.sampler = UtilisationSampler(gpu_visible_id=device.gpu_visible_id)
    return {
        "name": consumer.hostname,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": list(state.queues),
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
        worker_register(**state.registration)
        return True
    except Exception:
        log.exception("Registration of worker %s failed", state.name)
        return False
    finally:
        connection.close()


def _stop_consuming_unless_accepting(consumer) -> None:
    """A worker restarted while drained or paused comes up without consuming its queues."""
    from django.db import connection

    from workers.selectors import worker_admin_state

    try:
        admin_state = worker_admin_state(name=state.name)
    except Exception:
        log.exception("Could not read the admin state of worker %s", state.name)
        return
    finally:
        connection.close()
    if admin_state != "active":
        log.warning(
            "Worker %s is %s: not consuming %s until resumed",
            state.name,
            admin_state,
            ", ".join(state.queues),
        )
        for queue in state.queues:
            consumer.cancel_task_queue(queue)


def _start_heartbeat() -> None:
    from django.conf import settings

    interval = float(settings.TUNEFORGE_WORKER_HEARTBEAT_SECONDS)
    state.stop.clear()
    state.thread = threading.Thread(
        target=_heartbeat_loop, args=(interval,), name="tuneforge-heartbeat", daemon=True
    )
    state.thread.start()


def _heartbeat_loop(interval: float) -> None:
    while not state.stop.wait(interval):
        _beat_once()


def _beat_once() -> None:
    from django.db import connection

    from workers.services import KEEP, worker_heartbeat

    try:
        utilisation = state.sampler.sample() if state.sampler is not None else {}
        current_job = state.current_job if state.runs_tasks_here else KEEP
        if not worker_heartbeat(name=state.name, current_job_id=current_job, utilisation=utilisation):
            _register()
        _converge_consumption()
    except Exception:  # a database blip must not kill the heartbeat thread; the next beat retries
        log.exception("Heartbeat of worker %s failed", state.name)
    finally:
        # Its own connection, closed after each write: an idle worker holds no database connection.
        connection.close()


def _converge_consumption() -> None:
    """Consume exactly when the recorded admin state says so. The pause/drain/resume broadcast is
    lost when it reaches a worker whose control channel is not listening yet (just started, or
    reconnecting to the broker); the heartbeat notices the difference and sends the same command to
    this worker through the broker, so the worker's own event loop applies it."""
    from workers.selectors import worker_admin_state
    from workers.services import worker_send_consumption_control

    if state.consumer is None or state.consumer.task_consumer is None:
        return
    consuming = {queue.name for queue in state.consumer.task_consumer.queues}
    accepting = worker_admin_state(name=state.name) == "active"
    if accepting:
        missing = [queue for queue in state.queues if queue not in consuming]
        if missing:
            worker_send_consumption_control(name=state.name, consume=True, queues=missing)
    else:
        still_consumed = [queue for queue in state.queues if queue in consuming]
        if still_consumed:
            worker_send_consumption_control(name=state.name, consume=False, queues=still_consumed)
