"""The effective Celery configuration, read from the app itself: a misspelt setting name in Django
settings is silently ignored by Celery, so only the app's view of it can be trusted."""

from django.conf import settings

from workers.celery_app import app
from workers.taskbase import tuneforge_task


def _queue_of(task, **publish_options) -> str:
    """The queue Celery's own router picks when `task` is published with these options."""
    options = app.amqp.router.route(publish_options, task.name, task_type=task)
    return options["queue"].name


def test_the_app_runs_with_the_house_rules():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_default_queue == "default"
    assert conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_reject_on_worker_lost is False


def test_the_app_uses_the_broker_from_settings():
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert (
        app.connection_for_write()
        .as_uri(include_password=True)
        .startswith(settings.CELERY_BROKER_URL.rstrip("/")[:20])
    )


def test_beat_marks_silent_workers_offline_every_ten_seconds():
    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert "workers.mark_offline" in entries
    assert entries["workers.mark_offline"]["schedule"] == 10.0
    # A silent worker is marked offline within 60 s with the default settings: stale after the
    # threshold, noticed by the next sweep at the latest.
    assert settings.TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS + entries["workers.mark_offline"]["schedule"] <= 60
    # The entry names a task the workers know, or beat would send messages nobody can run.
    import workers.tasks  # noqa: F401

    assert "workers.mark_offline" in app.tasks


def test_the_registry_tasks_carry_the_house_options():
    import workers.tasks  # noqa: F401

    for name in ("workers.mark_offline", "workers.ping"):
        task = app.tasks[name]
        assert task.acks_late is True
        assert task.ignore_result is True
        assert task.serializer == "json"
        assert _queue_of(task) == "default"
        assert task.time_limit and task.soft_time_limit and task.soft_time_limit < task.time_limit


def test_the_house_decorator_gives_every_task_explicit_limits_and_queue():
    @tuneforge_task(
        "workers.test_probe", queue="gpu.h200", time_limit=7200, soft_time_limit=7000, max_retries=0
    )
    def probe(job_id: str) -> None:
        return None

    task = app.tasks["workers.test_probe"]
    assert (task.time_limit, task.soft_time_limit, task.max_retries) == (7200, 7000, 0)
    assert task.acks_late is True and task.ignore_result is True
    # Publishing goes to the task's queue, not the default one, unless the caller names another.
    assert _queue_of(task) == "gpu.h200"
    assert _queue_of(task, queue="gpu.a100") == "gpu.a100"


def test_the_house_decorator_refuses_limits_that_cannot_work():
    import pytest

    with pytest.raises(ValueError, match="soft_time_limit"):
        tuneforge_task("workers.bad_limits", time_limit=10, soft_time_limit=10)
    with pytest.raises(ValueError, match="explicit and dotted"):
        tuneforge_task("nodots")
