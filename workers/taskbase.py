"""The one house decorator for every Tuneforge task (the idea of Sentry's `instrumented_task`).

Every task gets the same guarantees, so none can forget one: an explicit name (renaming a function
must not orphan messages already queued), late acknowledgement (a message is acknowledged only
after the task ran, so a crashed worker's message is not lost), no result backend (state lives in
PostgreSQL), JSON only, an explicit queue, and explicit time limits.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


def tuneforge_task(
    name: str,
    *,
    queue: str = "default",
    time_limit: int | None = None,
    soft_time_limit: int | None = None,
    **options,
):
    """`celery.shared_task` with Tuneforge's defaults. Time limits default to
    CELERY_TASK_TIME_LIMIT / CELERY_TASK_SOFT_TIME_LIMIT; a long job passes its own."""
    if not name or "." not in name:
        raise ValueError(f"Task names are explicit and dotted ('<app>.<action>'), got {name!r}")
    hard = time_limit if time_limit is not None else settings.CELERY_TASK_TIME_LIMIT
    soft = soft_time_limit if soft_time_limit is not None else settings.CELERY_TASK_SOFT_TIME_LIMIT
    if soft is not None and hard is not None and soft >= hard:
        # Celery would never raise SoftTimeLimitExceeded: the hard limit kills the task first.
        raise ValueError(f"{name}: soft_time_limit ({soft}) must be below time_limit ({hard})")
    return shared_task(
        name=name,
        # Read by `route_task` (Celery's `queue` task attribute is deprecated in favour of routers).
        tuneforge_queue=queue,
        acks_late=True,
        ignore_result=True,
        serializer="json",
        time_limit=hard,
        soft_time_limit=soft,
        **options,
    )


def route_task(name, args, kwargs, options, task=None, **kw):
    """The Celery router (CELERY_TASK_ROUTES) that sends each task to the queue its decorator named.
    A queue passed at publish time (`apply_async(queue=...)`, e.g. a job's device queue) wins."""
    queue = getattr(task, "tuneforge_queue", None)
    return {"queue": queue} if queue else None
