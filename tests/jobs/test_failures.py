"""How jobs fail: a readable error code, message and field, and the task's house options."""

from __future__ import annotations

import pytest
import torch
from django.conf import settings

from finetune.engine import SpecError
from finetune.models import FineTuneJob, JobAttempt
from finetune.runner import failure_for
from tests.jobs.conftest import FAST_WORKER_ENV, submit, wait_for_status


@pytest.mark.slow
def test_failures_on_the_worker_name_their_code_field_and_fix(alice_client, dataset_version, start_worker):
    # A CPU machine listening on the GPU queue, with a 4-second job time limit.
    start_worker(queues="cpu,gpu", name="fails", env={**FAST_WORKER_ENV, "TUNEFORGE_JOB_TIME_LIMIT": "4"})
    no_gpu = submit(alice_client, dataset_version, device_class="gpu")
    too_long = submit(alice_client, dataset_version, max_steps=1_000_000)

    failed = wait_for_status(alice_client, no_gpu["id"], "failed", "succeeded", timeout=60)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "device_unavailable" and failed["error"]["param"] == "device"
    assert "no CUDA GPU" in failed["error"]["message"]
    assert JobAttempt.objects.get(job_id=no_gpu["id"]).outcome == "failed"
    log = alice_client.get(f"/api/v1/jobs/{no_gpu['id']}/logs").content.decode()
    assert "ERROR" in log and "Traceback" in log

    stopped = wait_for_status(alice_client, too_long["id"], "failed", "succeeded", timeout=60)
    assert stopped["error"]["code"] == "time_limit_exceeded"
    assert "ran longer than the 4 s limit" in stopped["error"]["message"]
    assert 0 < stopped["progress"]["step"] < 1_000_000


@pytest.mark.django_db
def test_running_out_of_memory_advises_a_smaller_batch_or_max_length(alice_client, dataset_version):
    job = FineTuneJob.objects.get(pk=submit(alice_client, dataset_version, device_class="h100")["id"])
    code, message, param = failure_for(
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), job
    )
    assert code == "out_of_memory" and param == "hyperparameters.batch_size"
    assert "ran out of GPU memory (batch_size=8, max_length=32)" in message
    assert "Lower hyperparameters.batch_size or hyperparameters.max_length" in message
    code, message, param = failure_for(SpecError("hyperparameters.lora_r", "must be at least 1"), job)
    assert (code, param) == ("invalid", "hyperparameters.lora_r") and "must be at least 1" in message


def test_the_training_task_has_long_explicit_limits_and_the_house_options():
    from finetune.tasks import reconcile_jobs, run_job

    assert run_job.name == "finetune.run_job" and reconcile_jobs.name == "finetune.reconcile_jobs"
    assert run_job.acks_late and run_job.ignore_result and run_job.serializer == "json"
    assert run_job.soft_time_limit == settings.TUNEFORGE_JOB_TIME_LIMIT == 24 * 3600
    assert run_job.time_limit > run_job.soft_time_limit > settings.CELERY_TASK_TIME_LIMIT
    assert reconcile_jobs.time_limit <= settings.CELERY_TASK_TIME_LIMIT


def test_beat_runs_the_jobs_reconciler_every_few_seconds():
    entry = settings.CELERY_BEAT_SCHEDULE["finetune-reconcile-jobs"]
    assert entry["task"] == "finetune.reconcile_jobs"
    assert entry["schedule"] == settings.TUNEFORGE_JOB_RECONCILE_SECONDS == 10


@pytest.mark.django_db
def test_a_job_message_goes_to_its_device_class_queue_on_commit(
    alice_client, dataset_version, django_capture_on_commit_callbacks
):
    from workers.celery_app import app

    def waiting(queue: str) -> int:
        with app.connection_for_write() as conn:
            try:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except Exception:  # no such queue yet
                return 0

    app.control.purge()
    before = waiting("gpu.h200")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = submit(alice_client, dataset_version, device_class="h200")
    assert len(callbacks) == 1
    assert FineTuneJob.objects.get(pk=job["id"]).queue == "gpu.h200"
    assert waiting("gpu.h200") == before + 1
    app.control.purge()
