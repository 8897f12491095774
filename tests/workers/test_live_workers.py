"""Real Celery worker processes (the production command) against the test database and broker:
registration, heartbeats, death by kill -9, and admins draining, pausing and resuming them."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.celery_harness import messages_waiting, wait_for_heartbeats, wait_until, worker_env
from workers.celery_app import app
from workers.models import WorkerNode
from workers.services import worker_pause, worker_resume, workers_mark_offline

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Fast registry clocks for the worker processes, so the tests wait seconds, not minutes.
FAST = {"TUNEFORGE_WORKER_HEARTBEAT_SECONDS": "0.5", "TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS": "3"}


def _queue() -> str:
    return f"wq-{uuid.uuid4().hex[:8]}"


def _row(name: str) -> WorkerNode | None:
    return WorkerNode.objects.filter(name=name).first()


def _consumed_queues(name: str) -> set[str] | None:
    """The queues a live worker consumes right now, as it reports them itself."""
    replies = app.control.inspect(destination=[name], timeout=2).active_queues() or {}
    if name not in replies:
        return None
    return {queue["name"] for queue in replies[name]}


def _ping(queue: str, token: str) -> None:
    from workers.tasks import ping

    ping.apply_async(args=[token], queue=queue)


def test_a_worker_registers_its_queues_device_and_versions_and_heartbeats(start_worker):
    queue = _queue()
    worker = start_worker(queues=f"{queue},cpu", name="reg", env=FAST)
    wait_until(lambda: _row(worker.hostname) is not None, timeout=10, message="registration")
    row = _row(worker.hostname)
    assert row.status == "online"
    assert sorted(row.queues) == sorted([queue, "cpu"])
    assert row.pid == worker.pid
    assert row.host == socket.gethostname()
    assert row.device_kind == "cpu" and row.device_class == "cpu" and row.device_memory_mb > 0
    import torch

    assert row.torch_version == torch.__version__
    assert row.cuda_version == (torch.version.cuda or "")

    first_beat = row.last_heartbeat_at
    wait_until(lambda: _row(worker.hostname).last_heartbeat_at > first_beat, timeout=5, message="a heartbeat")
    utilisation = _row(worker.hostname).utilisation
    assert {"cpu_percent", "rss_mb", "memory_total_mb"} <= set(utilisation)
    assert utilisation["rss_mb"] > 20

    _ping(queue, "hello")
    wait_until(lambda: _row(worker.hostname).last_ping == "hello", timeout=10, message="the ping to run")

    worker.stop()  # a clean shutdown says goodbye
    row = _row(worker.hostname)
    assert row.status == "offline" and row.offline_since is not None


def test_a_worker_killed_with_sigkill_is_marked_offline_once_its_heartbeat_is_stale(start_worker, settings):
    settings.TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS = 3
    worker = start_worker(queues=_queue(), name="victim", env=FAST)
    wait_until(lambda: _row(worker.hostname) is not None, timeout=10, message="registration")
    assert workers_mark_offline() == []

    worker.kill_hard()
    killed_at = time.monotonic()
    assert _row(worker.hostname).offline_since is None  # no goodbye from a killed process
    wait_until(lambda: worker.hostname in workers_mark_offline(), timeout=10, message="the sweep to mark it")
    assert time.monotonic() - killed_at < 60
    row = _row(worker.hostname)
    assert row.status == "offline" and row.offline_since is not None


def test_draining_through_the_api_stops_consumption_and_resume_restores_it(start_worker, olga_client):
    queue = _queue()
    worker = start_worker(queues=queue, name="drainee", env=FAST)
    name = worker.hostname
    wait_until(lambda: _row(name) is not None, timeout=10, message="registration")
    _ping(queue, "before")
    wait_until(lambda: _row(name).last_ping == "before", timeout=10, message="the first ping")

    response = olga_client.post(f"/api/v1/workers/{name}/drain")
    assert response.status_code == 200 and response.json()["status"] == "draining"
    wait_until(lambda: _consumed_queues(name) == set(), timeout=10, message="the worker to stop consuming")

    _ping(queue, "while-drained")
    wait_for_heartbeats(name, count=4)  # time enough to have taken it, were it consuming
    assert _row(name).last_ping == "before"
    assert messages_waiting(queue) == 1

    response = olga_client.post(f"/api/v1/workers/{name}/resume")
    assert response.status_code == 200 and response.json()["status"] == "online"
    wait_until(lambda: _row(name).last_ping == "while-drained", timeout=10, message="the waiting ping to run")
    assert _consumed_queues(name) == {queue}


def test_a_worker_that_missed_the_pause_command_hands_a_job_message_back(start_worker):
    queue = _queue()
    # A slow heartbeat: the job message arrives before the heartbeat would notice the pause.
    worker = start_worker(
        queues=queue,
        name="deaf",
        env={
            **FAST,
            "TUNEFORGE_WORKER_HEARTBEAT_SECONDS": "30",
            "TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS": "90",
        },
    )
    name = worker.hostname
    wait_until(lambda: _row(name) is not None, timeout=10, message="registration")
    # Paused in the database only, as if the control broadcast never reached the worker.
    WorkerNode.objects.filter(name=name).update(admin_state="paused")

    _ping(queue, "handed-back")
    wait_until(lambda: _consumed_queues(name) == set(), timeout=10, message="the worker to stop consuming")
    assert _row(name).last_ping == ""  # it did not run it...
    assert messages_waiting(queue) == 1  # ...it put it back for another worker
    assert f"handed workers.ping back to queue {queue}" in worker.output()

    worker_resume(name=name, actor=None)
    wait_until(
        lambda: _row(name).last_ping == "handed-back", timeout=10, message="the handed-back ping to run"
    )


def test_a_worker_that_missed_the_pause_and_resume_commands_follows_the_recorded_state_by_its_heartbeat(
    start_worker,
):
    queue = _queue()
    worker = start_worker(queues=queue, name="hardofhearing", env=FAST)
    name = worker.hostname
    wait_until(lambda: _consumed_queues(name) == {queue}, timeout=10, message="the worker to consume")
    # Recorded in the database only, as if the broadcast reached the worker before it listened.
    WorkerNode.objects.filter(name=name).update(admin_state="paused")
    wait_until(lambda: _consumed_queues(name) == set(), timeout=10, message="the worker to stop consuming")
    _ping(queue, "after-resume")
    wait_for_heartbeats(name, count=3)
    assert _row(name).last_ping == "" and messages_waiting(queue) == 1

    WorkerNode.objects.filter(name=name).update(admin_state="active")
    wait_until(lambda: _row(name).last_ping == "after-resume", timeout=10, message="the waiting ping to run")
    assert _consumed_queues(name) == {queue}


def test_a_worker_whose_row_was_deleted_registers_again_and_keeps_taking_work(start_worker):
    queue = _queue()
    worker = start_worker(
        queues=queue, name="phoenix", env={**FAST, "TUNEFORGE_WORKER_HEARTBEAT_SECONDS": "2"}
    )
    name = worker.hostname
    wait_until(lambda: _row(name) is not None, timeout=10, message="registration")
    WorkerNode.objects.filter(name=name).delete()  # an admin tidied the registry up
    _ping(queue, "after-delete")  # unknown to the registry: handed back until it registers again
    wait_until(lambda: _row(name) is not None, timeout=10, message="registration again")
    wait_until(lambda: _row(name).last_ping == "after-delete", timeout=15, message="the ping to run")
    assert _consumed_queues(name) == {queue}


def test_the_launcher_restarts_a_crashed_worker_which_stays_paused_and_stops_all_on_sigterm(transactional_db):
    from tests.celery_harness import purge_broker

    purge_broker()
    name = f"cpu@{socket.gethostname()}"
    WorkerNode.objects.filter(name=name).delete()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "workers.gpu_launcher", "--cpu", "--stop-timeout", "15"],
        cwd=ROOT,
        env=worker_env(**FAST),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: _row(name) is not None and _row(name).status == "online",
            timeout=30,
            message="registration",
        )
        first_pid = _row(name).pid
        assert _row(name).queues == ["cpu"]
        worker_pause(name=name, actor=None)
        wait_until(
            lambda: _consumed_queues(name) == set(), timeout=10, message="the paused worker to stop consuming"
        )

        os.kill(first_pid, signal.SIGKILL)  # the worker crashes; the launcher starts a new one
        wait_until(
            lambda: _row(name).pid != first_pid, timeout=30, message="the restarted worker to register"
        )
        wait_until(
            lambda: _consumed_queues(name) is not None, timeout=15, message="the restarted worker to answer"
        )
        assert _consumed_queues(name) == set()  # still paused: it came up without consuming
        assert _row(name).status == "paused"

        worker_resume(name=name, actor=None)
        wait_until(
            lambda: _consumed_queues(name) == {"cpu"}, timeout=10, message="the resumed worker to consume"
        )

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == 0
        assert _row(name).status == "offline"  # the worker said goodbye on its way out
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(timeout=10)
        output = launcher.stdout.read() if launcher.stdout else ""
        print(output[-5000:])
