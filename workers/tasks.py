"""The registry's own tasks: the offline sweep (beat) and a routing probe."""

from workers.selectors import worker_accepts_jobs
from workers.services import hand_back, worker_ping_received, workers_mark_offline
from workers.taskbase import tuneforge_task
from workers.worker_state import current_worker_name


@tuneforge_task("workers.mark_offline", queue="default", time_limit=60, soft_time_limit=50)
def mark_offline() -> list[str]:
    return workers_mark_offline()


@tuneforge_task("workers.ping", queue="default", bind=True, time_limit=30, soft_time_limit=20)
def ping(self, token: str) -> None:
    """A probe that behaves like a job message: sent to a queue (`ping.apply_async(args=[token],
    queue="gpu.h200")`), it is taken by a worker that would take a job there now, and recorded on that
    worker's row (`last_ping`, `last_ping_at`). A worker that is not accepting jobs hands it back."""
    name = current_worker_name()
    if not worker_accepts_jobs(name=name):
        hand_back(self)
        return
    worker_ping_received(name=name, token=token)
