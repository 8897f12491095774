"""What a worker process knows about itself: its registry name, its queues and its current job.

Set by the Celery signal handlers (`workers.signal_handlers`), read by tasks and services; this
module imports nothing of the project, so anything may ask it.
"""

from __future__ import annotations

import threading


class _WorkerState:
    def __init__(self) -> None:
        self.name: str | None = None
        self.queues: list[str] = []
        self.current_job: str | None = None
        # True where tasks run in this process (solo, threads pools); prefork runs them in children.
        self.runs_tasks_here = True
        self.registration: dict | None = None
        self.sampler = None
        # The Celery consumer (set on worker_ready): the heartbeat compares the queues it consumes
        # with the recorded admin state.
        self.consumer = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


state = _WorkerState()


def current_worker_name() -> str | None:
    """The WorkerNode name (Celery hostname) of this worker process; None outside workers."""
    return state.name


def current_worker_queues() -> list[str]:
    return list(state.queues)
