"""What survives crashes: a worker killed with kill -9, a job that keeps killing its worker, a
flushed broker; and who goes first when one worker serves two teams."""

from __future__ import annotations

import re

import pytest
import redis
from django.conf import settings

from finetune.models import FineTuneJob, JobAttempt, JobEvent, MetricPoint
from finetune.reconciler import jobs_reconcile
from tests.celery_harness import messages_waiting, wait_for_heartbeats, wait_until
from tests.jobs.conftest import FAST_WORKER_ENV, make_dataset_version, submit, wait_for_job, wait_for_status

pytestmark = pytest.mark.slow

STALE = "2"  # seconds of heartbeat silence after which a running job counts as lost
RECOVERY_ENV = {**FAST_WORKER_ENV, "TUNEFORGE_JOB_STALE_AFTER_SECONDS": STALE}


@pytest.fixture
def fast_reconciler(settings):
    settings.TUNEFORGE_JOB_STALE_AFTER_SECONDS = float(STALE)
    settings.TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS = 0.5
    return settings


def _reconcile_until(predicate, *, timeout: float, what: str) -> None:
    """Run the reconciler (as beat would) until `predicate` holds."""
    wait_until(lambda: (jobs_reconcile(), predicate())[1], timeout=timeout, interval=0.3, message=what)


def _status(job_id: str) -> str:
    return FineTuneJob.objects.values_list("status", flat=True).get(pk=job_id)


def test_a_job_whose_worker_is_killed_resumes_from_its_checkpoint_on_another_worker(
    alice_client, dataset_version, start_worker
):
    total = 800
    a = start_worker(queues="cpu", name="doomed", env=RECOVERY_ENV)
    job = submit(
        alice_client,
        dataset_version,
        max_steps=total,
        hyperparameters={"eval_every_steps": 500, "save_every_steps": 100},
    )
    wait_for_job(
        alice_client,
        job["id"],
        lambda b: (
            b["progress"]["step"] >= 150
            and alice_client.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()["data"]
        ),
        timeout=60,
        what="a checkpoint and progress past it",
    )

    a.kill_hard()
    killed_at = FineTuneJob.objects.get(pk=job["id"]).step
    assert 0 < killed_at < total, "the run ended before the kill; make it longer"
    # A second worker that also runs the reconciler task, as beat would send it.
    rescuer = start_worker(queues="default,cpu", name="rescuer", env=RECOVERY_ENV)
    from finetune.tasks import reconcile_jobs

    def requeued() -> bool:
        reconcile_jobs.apply_async()
        return FineTuneJob.objects.get(pk=job["id"]).attempts >= 2

    try:
        wait_until(requeued, timeout=30, interval=1.0, message="the reconciler task to requeue the job")
    except AssertionError:
        raise AssertionError(rescuer.output()) from None
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=120)

    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2 and done["crashes"] == 1
    assert done["worker"].startswith("rescuer-")
    steps = list(
        MetricPoint.objects.filter(job_id=job["id"], kind="train")
        .order_by("step")
        .values_list("step", flat=True)
    )
    assert steps == list(range(1, total + 1))  # strictly increasing, no gaps, no duplicates
    attempts = list(JobAttempt.objects.filter(job_id=job["id"]).order_by("number"))
    assert [a.outcome for a in attempts] == ["lost", "succeeded"]
    assert attempts[1].resumed_from_step is not None and attempts[1].resumed_from_step <= killed_at
    logs = alice_client.get(f"/api/v1/jobs/{job['id']}/logs").content.decode()
    assert (
        "stopped responding" in logs
        and f"resume from its checkpoint at step {attempts[1].resumed_from_step}" in logs
    )
    assert f"resumed from the checkpoint at step {attempts[1].resumed_from_step}" in logs
    _assert_no_worker_paths(job["id"])


def _assert_no_worker_paths(job_id: str) -> None:
    """What a user reads about a job names checkpoints by step, never by a worker's local folder."""
    messages = list(JobEvent.objects.filter(job_id=job_id).values_list("message", flat=True))
    assert messages
    leaked = [m for m in messages if str(settings.TUNEFORGE_WORK_DIR) in m or re.search(r"(^|\s)/\w", m)]
    assert leaked == [], leaked


def test_a_worker_killed_mid_epoch_resumes_from_a_time_based_checkpoint(
    alice_client, team, base_model, start_worker
):
    steps_per_epoch = (
        500  # 4000 rows in batches of 8: one long epoch, no epoch-end checkpoint before the kill
    )
    version = make_dataset_version(team, repeat=50)
    a = start_worker(queues="cpu", name="mid-epoch", env=RECOVERY_ENV)
    job = submit(
        alice_client,
        version,
        max_steps=None,
        hyperparameters={
            "n_epochs": 1,
            "eval_every_steps": None,
            "save_every_steps": None,
            "checkpoint_every_minutes": 0.02,
        },
    )
    wait_for_job(
        alice_client,
        job["id"],
        lambda b: (
            (ckpts := alice_client.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()["data"])
            and b["progress"]["step"] > max(c["step_number"] for c in ckpts)
        ),
        timeout=90,
        what="a time-based checkpoint and progress past it",
    )
    a.kill_hard()
    killed_at = FineTuneJob.objects.get(pk=job["id"]).step
    assert killed_at < steps_per_epoch, "the epoch ended before the kill; make it longer"
    rescuer = start_worker(queues="default,cpu", name="mid-epoch-rescuer", env=RECOVERY_ENV)
    from finetune.tasks import reconcile_jobs

    def requeued() -> bool:
        reconcile_jobs.apply_async()
        return FineTuneJob.objects.get(pk=job["id"]).attempts >= 2

    try:
        wait_until(requeued, timeout=30, interval=1.0, message="the reconciler task to requeue the job")
    except AssertionError:
        raise AssertionError(rescuer.output()) from None
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=180)

    assert done["status"] == "succeeded", done["error"]
    resumed_from = JobAttempt.objects.get(job_id=job["id"], number=2).resumed_from_step
    assert resumed_from is not None and 0 < resumed_from <= killed_at
    assert resumed_from % steps_per_epoch != 0  # not an epoch boundary: the clock made this checkpoint
    steps = list(
        MetricPoint.objects.filter(job_id=job["id"], kind="train")
        .order_by("step")
        .values_list("step", flat=True)
    )
    assert steps == list(range(1, steps_per_epoch + 1))
    _assert_no_worker_paths(job["id"])


def test_a_job_that_kills_its_worker_three_times_fails_with_a_clear_error(
    alice_client, dataset_version, start_worker, fast_reconciler
):
    job = submit(alice_client, dataset_version, max_steps=100_000)
    for attempt in (1, 2, 3):
        worker = start_worker(queues="cpu", name=f"crash{attempt}", env=RECOVERY_ENV)
        wait_for_job(
            alice_client,
            job["id"],
            lambda b, n=attempt: b["attempts"] == n and b["status"] == "running",
            timeout=60,
            what=f"attempt {attempt} to run",
        )
        worker.kill_hard()
        _reconcile_until(lambda: _status(job["id"]) != "running", timeout=20, what="the loss to be noticed")

    failed = alice_client.get(f"/api/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "worker_lost"
    assert "lost 3 times" in failed["error"]["message"]
    assert "lower hyperparameters.batch_size or hyperparameters.max_length" in failed["error"]["message"]
    assert failed["attempts"] == 3 and failed["crashes"] == 3
    jobs_reconcile()  # nothing left to do: no endless redelivery
    assert _status(job["id"]) == "failed"


def test_queued_jobs_survive_a_flushed_broker_through_the_reconciler(
    alice_client, dataset_version, start_worker, fast_reconciler
):
    job = submit(alice_client, dataset_version)
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # the message is gone
    worker = start_worker(queues="cpu", name="after-flush", env=FAST_WORKER_ENV)
    wait_for_heartbeats(worker.hostname, count=3)  # up and polling its queue for a while
    assert _status(job["id"]) == "queued"  # nothing told the worker about it

    report = jobs_reconcile()
    assert report["redispatched"] == [job["id"]]
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=60)

    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 1
    events = [
        e["message"] for e in alice_client.get(f"/api/v1/jobs/{job['id']}/events?limit=100").json()["data"]
    ]
    assert any("its message was lost by the broker" in m for m in events)


def test_a_duplicate_message_never_runs_a_job_twice(alice_client, dataset_version, start_worker):
    from finetune.tasks import run_job

    job = submit(alice_client, dataset_version)
    for _ in range(3):
        run_job.apply_async(args=[job["id"]], queue="cpu")
    worker = start_worker(queues="cpu", name="dupes", env=FAST_WORKER_ENV)
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=60)
    wait_until(lambda: messages_waiting("cpu") == 0, timeout=30, message="the extra messages to be taken")
    wait_for_heartbeats(worker.hostname)  # and run: the worker is past them

    assert done["status"] == "succeeded"
    assert FineTuneJob.objects.get(pk=job["id"]).attempts == 1
    assert JobAttempt.objects.filter(job_id=job["id"]).count() == 1


def test_with_one_worker_the_other_teams_job_runs_second(
    alice_client, charlie_client, team, charlie_team, dataset_version, start_worker
):
    team.max_concurrent_jobs = 5
    team.save()
    start_worker(queues="cpu", name="fair", env=FAST_WORKER_ENV)
    a_jobs = [submit(alice_client, dataset_version)["id"] for _ in range(3)]
    b_job = submit(charlie_client, make_dataset_version(charlie_team))["id"]

    wait_until(
        lambda: FineTuneJob.objects.filter(status="succeeded").count() == 4,
        timeout=120,
        message="all four jobs to finish",
    )

    order = list(FineTuneJob.objects.order_by("started_at").values_list("id", flat=True))
    assert order == [a_jobs[0], b_job, a_jobs[1], a_jobs[2]]
