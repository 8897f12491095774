"""Reads of the worker registry. The registry is platform-wide (not team-scoped): only staff see it."""

from common.errors import InvalidInput, NotFound
from workers.models import WorkerNode

STATUSES = ("online", "offline", "draining", "paused")


def worker_list(*, status: str | None = None) -> list[WorkerNode]:
    """Every known worker, by name; `status` keeps only workers in that status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"Unknown status {status!r}; use one of: {', '.join(STATUSES)}.", field="status")
    workers = list(WorkerNode.objects.select_related("admin_state_changed_by").order_by("name"))
    if status is not None:
        # Status depends on the age of the heartbeat, which the model computes; worker counts are small.
        workers = [worker for worker in workers if worker.status == status]
    return workers


def worker_get(*, name: str, for_update: bool = False) -> WorkerNode:
    """The worker called `name`, or NotFound. `for_update` locks its row (inside a transaction)."""
    rows = (
        WorkerNode.objects.select_for_update()
        if for_update
        else WorkerNode.objects.select_related("admin_state_changed_by")
    )
    worker = rows.filter(name=name).first()
    if worker is None:
        raise NotFound(f"No worker named {name!r}.", code="worker_not_found", field="name")
    return worker


def worker_admin_state(*, name: str | None) -> str:
    """ "active" | "draining" | "paused". Outside a worker (name None) or for an unknown worker, "active":
    a running job keeps running unless an admin asked otherwise."""
    if name is None:
        return WorkerNode.AdminState.ACTIVE
    state = WorkerNode.objects.filter(name=name).values_list("admin_state", flat=True).first()
    return state or WorkerNode.AdminState.ACTIVE


def worker_accepts_jobs(*, name: str | None) -> bool:
    """Whether this worker may claim a new job: False when draining, paused, or unknown to the registry.
    None (not in a worker process: tests and management commands calling services directly) is True."""
    if name is None:
        return True
    state = WorkerNode.objects.filter(name=name).values_list("admin_state", flat=True).first()
    return state == WorkerNode.AdminState.ACTIVE


def queues_served_now() -> set[str]:
    """The queues at least one online worker accepting jobs consumes right now."""
    return {queue for worker in worker_list(status="online") for queue in worker.queues or ()}


def workers_by_device_class() -> list[dict]:
    """Online workers accepting jobs, per device class: how many, and how many of them are idle
    (what a team sees on its dashboard before choosing a device class; no worker names)."""
    rows: dict[str, dict] = {}
    for worker in worker_list(status="online"):
        device_class = worker.device_class or worker.device_kind or "cpu"
        row = rows.setdefault(device_class, {"device_class": device_class, "online": 0, "idle": 0})
        row["online"] += 1
        if not worker.current_job_id:
            row["idle"] += 1
    return sorted(rows.values(), key=lambda row: row["device_class"])
