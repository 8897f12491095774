"""The registry's services and selectors against the database (no worker process)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.errors import NotFound
from tests.factories import WorkerNodeFactory
from workers import services
from workers.models import WorkerNode
from workers.selectors import worker_accepts_jobs, worker_admin_state, worker_list

pytestmark = pytest.mark.django_db

REGISTRATION = {
    "name": "gpu0@node-a.example",
    "host": "node-a.example",
    "pid": 4242,
    "queues": ["gpu", "gpu.h200"],
    "device_kind": "cuda",
    "device_name": "NVIDIA H200",
    "device_memory_mb": 143771,
    "device_class": "h200",
    "cuda_version": "12.8",
    "torch_version": "2.13.0",
}


def _ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_a_registered_worker_is_online_with_everything_it_reported():
    worker = services.worker_register(**REGISTRATION)
    worker.refresh_from_db()
    assert worker.status == "online"
    assert worker.queues == ["gpu", "gpu.h200"]
    assert (worker.device_name, worker.device_memory_mb, worker.device_class) == (
        "NVIDIA H200",
        143771,
        "h200",
    )
    assert (worker.cuda_version, worker.torch_version, worker.pid) == ("12.8", "2.13.0", 4242)
    assert worker.started_at is not None and worker.seconds_since_heartbeat < 5


def test_a_restarted_worker_keeps_its_row_and_its_admin_state():
    first = services.worker_register(**REGISTRATION)
    services.worker_drain(name=first.name, actor=None)
    services.worker_mark_stopped(name=first.name)
    again = services.worker_register(**{**REGISTRATION, "pid": 5151})
    assert again.pk == first.pk
    assert again.pid == 5151
    assert again.admin_state == "draining"
    assert again.status == "draining"


def test_a_heartbeat_records_utilisation_and_the_current_job():
    worker = WorkerNodeFactory(last_heartbeat_at=_ago(20))
    assert services.worker_heartbeat(
        name=worker.name, current_job_id="ftjob-abc", utilisation={"gpu_percent": 99}
    )
    worker.refresh_from_db()
    assert worker.current_job_id == "ftjob-abc"
    assert worker.utilisation == {"gpu_percent": 99}
    assert worker.seconds_since_heartbeat < 5


def test_a_heartbeat_from_a_prefork_parent_leaves_the_current_job_alone():
    worker = WorkerNodeFactory(current_job_id="ftjob-running")
    services.worker_heartbeat(
        name=worker.name, current_job_id=services.KEEP, utilisation={"cpu_percent": 12.5}
    )
    worker.refresh_from_db()
    assert worker.current_job_id == "ftjob-running"


def test_a_heartbeat_for_a_deleted_worker_says_so_so_it_can_register_again():
    assert services.worker_heartbeat(name="gone@nowhere", utilisation={}) is False


def test_the_current_job_shows_as_soon_as_the_worker_starts_it():
    worker = WorkerNodeFactory()
    services.worker_set_current_job(name=worker.name, job_id="ftjob-xyz")
    worker.refresh_from_db()
    assert worker.current_job_id == "ftjob-xyz"
    services.worker_set_current_job(name=worker.name, job_id=None)
    worker.refresh_from_db()
    assert worker.current_job_id is None


def test_a_worker_that_stopped_cleanly_is_offline_at_once():
    worker = WorkerNodeFactory(current_job_id="ftjob-1")
    services.worker_mark_stopped(name=worker.name)
    worker.refresh_from_db()
    assert worker.status == "offline"
    assert worker.current_job_id is None
    services.worker_heartbeat(name=worker.name, utilisation={})
    worker.refresh_from_db()
    assert worker.status == "online"


def test_a_silent_worker_is_offline_and_the_sweep_marks_it(settings):
    settings.TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS = 30
    silent = WorkerNodeFactory(last_heartbeat_at=_ago(31), current_job_id="ftjob-1")
    alive = WorkerNodeFactory(last_heartbeat_at=_ago(3))
    never = WorkerNodeFactory(last_heartbeat_at=None)
    assert silent.status == "offline"  # derived from the heartbeat's age before any sweep

    assert sorted(services.workers_mark_offline()) == sorted([silent.name, never.name])
    silent.refresh_from_db()
    assert silent.offline_since is not None and silent.current_job_id is None
    assert WorkerNode.objects.get(pk=alive.pk).status == "online"
    # A sweep marks each worker once.
    assert services.workers_mark_offline() == []


def test_drain_pause_and_resume_change_the_admin_state_and_record_who_did_it(olga):
    worker = WorkerNodeFactory()
    drained = services.worker_drain(name=worker.name, actor=olga)
    assert (drained.admin_state, drained.status, drained.admin_state_changed_by) == (
        "draining",
        "draining",
        olga,
    )
    paused = services.worker_pause(name=worker.name, actor=olga)
    assert (paused.admin_state, paused.status) == ("paused", "paused")
    resumed = services.worker_resume(name=worker.name, actor=olga)
    assert (resumed.admin_state, resumed.status) == ("active", "online")
    assert resumed.admin_state_changed_at is not None


def test_an_offline_worker_reports_offline_whatever_its_admin_state():
    worker = WorkerNodeFactory(admin_state="paused", last_heartbeat_at=_ago(3600))
    assert worker.status == "offline"


def test_changing_an_unknown_worker_is_a_not_found_naming_it():
    with pytest.raises(NotFound, match="gpu9@nowhere"):
        services.worker_pause(name="gpu9@nowhere", actor=None)


def test_only_an_active_worker_accepts_jobs():
    active = WorkerNodeFactory()
    draining = WorkerNodeFactory(admin_state="draining")
    paused = WorkerNodeFactory(admin_state="paused")
    assert worker_accepts_jobs(name=active.name) is True
    assert worker_accepts_jobs(name=draining.name) is False
    assert worker_accepts_jobs(name=paused.name) is False
    assert worker_accepts_jobs(name="unknown@nowhere") is False
    # Outside any worker process (a test or a shell calling services directly) nothing is refused.
    assert worker_accepts_jobs(name=None) is True


def test_the_admin_state_is_what_a_running_job_polls():
    paused = WorkerNodeFactory(admin_state="paused")
    assert worker_admin_state(name=paused.name) == "paused"
    assert worker_admin_state(name="unknown@nowhere") == "active"
    assert worker_admin_state(name=None) == "active"


def test_the_list_can_keep_one_status():
    online = WorkerNodeFactory(name="a@h")
    WorkerNodeFactory(name="b@h", last_heartbeat_at=_ago(3600))
    paused = WorkerNodeFactory(name="c@h", admin_state="paused")
    assert [w.name for w in worker_list()] == ["a@h", "b@h", "c@h"]
    assert [w.name for w in worker_list(status="online")] == [online.name]
    assert [w.name for w in worker_list(status="paused")] == [paused.name]
