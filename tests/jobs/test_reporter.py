"""The worker-side reporter on its own: batched metric points that a resumed run continues without
duplicates, captured Python logging, bounded logs, and a worker that lost its job."""

from __future__ import annotations

import logging

import pytest

from finetune.job_reporter import CANCEL, JobReporter, StopReason
from finetune.models import FineTuneJob, JobEvent, MetricPoint
from finetune.runner import job_claim
from tests.jobs.conftest import submit

pytestmark = pytest.mark.django_db(transaction=True)  # the reporter's pump thread has its own connection


@pytest.fixture
def running_job(alice_client, dataset_version):
    job_id = submit(alice_client, dataset_version)["id"]
    job = job_claim(queue="cpu", worker="tester@host")
    assert job is not None and job.id == job_id
    return job


def _steps(job, kind="train"):
    return list(
        MetricPoint.objects.filter(job=job, kind=kind).order_by("step").values_list("step", flat=True)
    )


def test_points_are_written_in_batches_and_a_resumed_series_overwrites_instead_of_duplicating(running_job):
    reporter = JobReporter(running_job)
    for step in range(1, 11):
        reporter.on_step({"step": step, "epoch": step / 10, "train_loss": 1.0 / step, "learning_rate": 1e-4})
    assert _steps(running_job) == []  # buffered, nothing written per step
    reporter.flush()
    assert _steps(running_job) == list(range(1, 11))

    resumed = JobReporter(running_job)  # a run resumed from the checkpoint at step 5 repeats 6..10
    for step in range(6, 16):
        resumed.on_step({"step": step, "epoch": step / 10, "train_loss": 0.5, "learning_rate": 1e-4})
    resumed.flush()

    assert _steps(running_job) == list(range(1, 16))
    assert MetricPoint.objects.get(job=running_job, kind="train", step=8).values["train_loss"] == 0.5
    job = FineTuneJob.objects.get(pk=running_job.pk)
    assert job.latest_metrics["step"] == 15 and job.heartbeat_at > running_job.heartbeat_at


def test_progress_never_goes_back_while_a_resumed_run_repeats_steps(running_job):
    from finetune.engine import Progress

    def progress(step: int) -> Progress:
        return Progress(
            step=step,
            total_steps=40,
            epoch=step / 10,
            percent=100 * step / 40,
            eta_seconds=1.0,
            samples_per_second=1.0,
            tokens_per_second=1.0,
        )

    first = JobReporter(running_job)
    first.on_progress(progress(14))
    first.flush()
    # The worker is lost; the next attempt resumes from the checkpoint at step 10.
    FineTuneJob.objects.filter(pk=running_job.pk).update(attempts=2)
    resumed_job = FineTuneJob.objects.get(pk=running_job.pk)
    resumed = JobReporter(resumed_job)
    seen = []
    for step in range(11, 17):
        resumed.on_progress(progress(step))
        resumed.flush()
        seen.append(FineTuneJob.objects.values_list("step", "percent").get(pk=running_job.pk))
    assert seen == sorted(seen) and seen[0] == (14, 35.0), seen
    assert seen[-1] == (16, 40.0)


def test_python_logging_of_the_training_process_becomes_job_log_lines(running_job, alice_client):
    reporter = JobReporter(running_job)
    reporter.start()
    try:
        logging.getLogger("transformers.modeling_utils").warning("Some weights were newly initialized")
        logging.getLogger("celery.worker").warning("worker plumbing, not the job's story")
        reporter.on_log("info", "plan: 80 training rows")
    finally:
        reporter.stop()
    logs = alice_client.get(f"/api/v1/jobs/{running_job.id}/logs").content.decode()
    assert "WARN  transformers.modeling_utils: Some weights were newly initialized" in logs
    assert "INFO  plan: 80 training rows" in logs
    assert "worker plumbing" not in logs


def test_only_the_newest_log_lines_are_kept_and_the_dropped_ones_are_counted(
    running_job, alice_client, settings
):
    settings.TUNEFORGE_JOB_LOG_MAX_LINES = 50
    reporter = JobReporter(running_job)
    for n in range(70):  # a flood between two flushes
        reporter.on_log("info", f"line {n}")
    reporter.flush()
    for n in range(70, 100):
        reporter.on_log("info", f"line {n}")
    reporter.flush()

    kept = list(
        JobEvent.objects.filter(job=running_job, source="log")
        .order_by("id")
        .values_list("message", flat=True)
    )
    assert kept == [f"line {n}" for n in range(50, 100)]
    job = FineTuneJob.objects.get(pk=running_job.pk)
    assert (job.log_lines, job.log_lines_dropped) == (50, 50)
    text = alice_client.get(f"/api/v1/jobs/{running_job.id}/logs").content.decode()
    assert text.startswith("# 50 earlier log lines were dropped")


def test_a_worker_that_lost_its_job_stops_and_writes_nothing_more(running_job):
    reporter = JobReporter(running_job)
    FineTuneJob.objects.filter(pk=running_job.pk).update(status="queued", worker="")  # the reconciler took it
    reporter.on_step({"step": 1, "epoch": 0.1, "train_loss": 1.0, "learning_rate": 1e-4})
    reporter.flush()
    assert reporter.control() == CANCEL and reporter.stop_reason == StopReason.LOST_OWNERSHIP
    assert _steps(running_job) == []


def test_cancel_and_pause_flags_reach_the_engine_through_control(running_job, alice_client, settings):
    settings.TUNEFORGE_JOB_CONTROL_POLL_SECONDS = 0.1
    reporter = JobReporter(running_job)
    reporter.start()
    try:
        assert reporter.control() == "continue"
        alice_client.post(f"/api/v1/jobs/{running_job.id}/pause")
        from tests.celery_harness import wait_until

        wait_until(lambda: reporter.control() == "pause", timeout=3, message="the pause flag")
        assert reporter.stop_reason == StopReason.USER
    finally:
        reporter.stop()


def test_progress_of_a_running_job_shows_in_the_api_with_eta_and_throughput(running_job, alice_client):
    from finetune.engine import Progress

    reporter = JobReporter(running_job)
    reporter.on_step({"step": 12, "epoch": 1.2, "train_loss": 0.7, "learning_rate": 1e-4})
    reporter.on_progress(
        Progress(
            step=12,
            total_steps=40,
            epoch=1.2,
            percent=30.0,
            eta_seconds=21.5,
            samples_per_second=48.0,
            tokens_per_second=1536.0,
        )
    )
    reporter.flush()

    body = alice_client.get(f"/api/v1/jobs/{running_job.id}").json()
    assert body["status"] == "running"
    assert body["progress"] == {
        "step": 12,
        "total_steps": 40,
        "epoch": 1.2,
        "percent": 30.0,
        "eta_seconds": 21.5,
        "samples_per_second": 48.0,
        "tokens_per_second": 1536.0,
    }
    points = alice_client.get(f"/api/v1/jobs/{running_job.id}/metrics?kind=train").json()["data"]
    assert [p["step"] for p in points] == [12] and points[0]["values"]["train_loss"] == 0.7


def _trial(trial, rung, status, **extra):
    return {
        "trial": trial,
        "rung": rung,
        "method": "full",
        "learning_rate": 1e-4,
        "auto_learning_rate": 1e-4,
        "steps": 0,
        "planned_steps": 20,
        "train_rows": 80,
        "status": status,
        "metric": "valid_accuracy",
        "value": None,
        "metrics": {},
        "curve": [],
        "eval_curve": [],
        "seconds": 0.0,
        "winner": False,
        **extra,
    }


def test_search_trials_keep_their_last_report_and_a_search_run_again_replaces_the_old_rows(running_job):
    from finetune.models import SearchTrial

    reporter = JobReporter(running_job)
    reporter.on_trial(_trial(0, 0, "running"))
    reporter.on_trial(_trial(0, 0, "completed", steps=20, value=0.5, curve=[{"step": 1, "train_loss": 1.3}]))
    reporter.on_trial(_trial(1, 0, "completed", steps=20, value=float("nan")))
    reporter.on_trial(_trial(1, 1, "running"))
    reporter.flush()
    rows = {(t.trial, t.rung): t for t in SearchTrial.objects.filter(job=running_job)}
    assert set(rows) == {(0, 0), (1, 0), (1, 1)}
    assert rows[(0, 0)].status == "completed" and rows[(0, 0)].value == 0.5 and rows[(0, 0)].curve
    assert rows[(1, 0)].value is None  # a NaN score is stored as unknown

    again = JobReporter(running_job)  # e.g. resumed after a pause during the search
    again.on_trial(_trial(0, 0, "running"))
    again.flush()
    assert list(SearchTrial.objects.filter(job=running_job).values_list("trial", "rung", "status")) == [
        (0, 0, "running")
    ]
