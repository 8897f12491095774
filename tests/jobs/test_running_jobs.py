"""Jobs trained for real by real Celery worker processes: from submission to model version,
cancel, pause and resume, live progress and logs."""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.storage import default_storage

from finetune.models import BaseModel, FineTuneJob, MetricPoint, ModelVersion, ThroughputSample
from tests.jobs.conftest import FAST_WORKER_ENV, job_payload, submit, wait_for_job, wait_for_status

pytestmark = pytest.mark.slow

# Long enough to act on while it runs (a few seconds per hundred steps on a shared CPU).
LONG = {"max_steps": 100_000, "hyperparameters": {"eval_every_steps": 200, "save_every_steps": 50}}


def _train_steps(job_id: str) -> list[int]:
    return list(
        MetricPoint.objects.filter(job_id=job_id, kind="train")
        .order_by("step")
        .values_list("step", flat=True)
    )


def test_a_submitted_job_trains_on_a_worker_and_produces_a_model_version_with_artifacts(
    alice_client, dataset_version, start_worker, team
):
    start_worker(queues="cpu", name="e2e", env=FAST_WORKER_ENV)
    job = submit(alice_client, dataset_version, suffix="e2e")

    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=90)

    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == 40 and done["progress"]["percent"] == 100
    assert done["trained_tokens"] > 0 and done["attempts"] == 1
    assert done["fine_tuned_model"] == f"ft:tiny-bert:{team.slug}:e2e:{job['id']}"
    assert done["hyperparameters"]["learning_rate"] > 0  # resolved from "auto"
    assert done["setup_seconds"] > 0 and done["first_step_at"]
    version = ModelVersion.objects.get(pk=done["result_model_version"])
    assert version.team_id == team.id and version.name == done["fine_tuned_model"]
    paths = {f["path"] for f in version.files}
    assert {
        "label_map.json",
        "metrics.json",
        "spec.json",
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    } <= paths
    assert not any(p.startswith("checkpoints/") for p in paths)
    assert version.storage_prefix.startswith(f"teams/{team.id}/models/{version.id}")
    for entry in version.files:
        assert default_storage.size(f"{version.storage_prefix}/{entry['path']}") == entry["size"]
    assert version.labels == sorted(dataset_version.labels)
    # The worker recorded the speed it measured, and the next estimate of this kind is computed from it.
    sample = ThroughputSample.objects.get(job_id=job["id"])
    assert sample.method == "full" and sample.device_class == "cpu" and sample.tokens_per_second > 0
    estimate = alice_client.post("/api/v1/jobs/estimate", job_payload(dataset_version), format="json").json()
    assert estimate["estimate_basis"] == "measured" and estimate["measured_runs"] == 1
    lineage = version.lineage
    assert lineage["dataset_sha256"] == dataset_version.sha256
    assert lineage["dataset_version"] == dataset_version.id and lineage["base_model"] == "tiny-bert"
    assert lineage["seed"] == 42 and lineage["resolved_spec"]["hyperparameters"]["batch_size"] == 8
    assert lineage["resolved_spec"]["train_file"] == dataset_version.normalized_file.name
    assert lineage["code_version"].startswith(("git:", "tuneforge=="))
    assert version.metrics["train"]["steps"] == 40

    # What the API shows about it.
    assert _train_steps(job["id"]) == list(range(1, 41))
    metrics = alice_client.get(f"/api/v1/jobs/{job['id']}/metrics?after_step=30&kind=train").json()["data"]
    assert [p["step"] for p in metrics] == list(range(31, 41))
    assert "train_loss" in metrics[0]["values"]
    evals = alice_client.get(f"/api/v1/jobs/{job['id']}/metrics?kind=eval").json()["data"]
    assert [p["step"] for p in evals] == [0, 20, 40] and "valid_accuracy" in evals[-1]["values"]
    events = alice_client.get(f"/api/v1/jobs/{job['id']}/events?limit=100").json()["data"]
    assert events[0]["message"].startswith("Model version") or events[0]["message"].startswith("Succeeded")
    assert any(e["type"] == "metrics" for e in events)
    logs = alice_client.get(f"/api/v1/jobs/{job['id']}/logs")
    assert logs["Content-Type"].startswith("text/plain")
    text = logs.content.decode()
    assert "plan: 80 training rows, 16 validation rows, 40 steps" in text
    assert "Running on worker e2e-" in text and "Succeeded after 40 steps" in text
    model = alice_client.get(f"/api/v1/models/{version.id}").json()
    assert model["name"] == done["fine_tuned_model"] and model["lineage"]["job"] == job["id"]
    assert [m["id"] for m in alice_client.get("/api/v1/models").json()["data"]] == [version.id]
    download = alice_client.get(f"/api/v1/models/{version.id}/files/label_map.json")
    assert download.status_code == 200
    assert json.loads(b"".join(download.streaming_content))["labels"] == sorted(dataset_version.labels)
    # The artifacts name the base model as the registry does, never the worker's local path to it.
    spec = json.loads(
        b"".join(alice_client.get(f"/api/v1/models/{version.id}/files/spec.json").streaming_content)
    )
    card = b"".join(
        alice_client.get(f"/api/v1/models/{version.id}/files/README.md").streaming_content
    ).decode()
    assert spec["base_model_name"] == "tiny-bert" and "`tiny-bert`" in card
    assert BaseModel.objects.get(name="tiny-bert").source not in card


def test_cancel_stops_a_running_job_within_ten_seconds_and_removes_a_queued_one(
    alice_client, bob_client, dataset_version, start_worker
):
    start_worker(queues="cpu", name="cancel", env=FAST_WORKER_ENV)
    running = submit(alice_client, dataset_version, **LONG)
    waiting = submit(bob_client, dataset_version, **LONG)
    wait_for_job(
        alice_client,
        running["id"],
        lambda b: b["status"] == "running" and b["progress"]["step"] > 0,
        timeout=60,
        what="training to start",
    )

    assert alice_client.get(f"/api/v1/jobs/{waiting['id']}").json()["queue_position"] == 1
    assert bob_client.post(f"/api/v1/jobs/{waiting['id']}/cancel").json()["status"] == "cancelled"
    asked = time.monotonic()
    body = alice_client.post(f"/api/v1/jobs/{running['id']}/cancel").json()
    assert body["status"] == "running" and body["requested_action"] == "cancel"
    stopped = wait_for_status(alice_client, running["id"], "cancelled", "failed", "succeeded", timeout=10)
    assert time.monotonic() - asked < 10

    assert stopped["status"] == "cancelled"
    assert 0 < stopped["progress"]["step"] < 100_000
    assert not ModelVersion.objects.exists()
    assert FineTuneJob.objects.get(pk=waiting["id"]).attempts == 0  # it never ran


def test_pause_checkpoints_and_frees_the_worker_and_resume_continues_from_the_checkpoint(
    alice_client, dataset_version, start_worker
):
    start_worker(queues="cpu", name="pause", env=FAST_WORKER_ENV)
    total = 1000
    job = submit(
        alice_client,
        dataset_version,
        max_steps=total,
        hyperparameters={"eval_every_steps": 100, "save_every_steps": 100},
    )
    wait_for_job(alice_client, job["id"], lambda b: b["progress"]["step"] >= 30, timeout=60, what="step 30")

    alice_client.post(f"/api/v1/jobs/{job['id']}/pause")
    paused = wait_for_status(alice_client, job["id"], "paused", "succeeded", "failed", timeout=15)
    assert paused["status"] == "paused", "the run ended before the pause took effect; make it longer"
    checkpoints = alice_client.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()["data"]
    paused_at = paused["progress"]["step"]
    assert checkpoints[0]["step_number"] == paused_at and checkpoints[0]["files"]
    other = submit(alice_client, dataset_version)  # the worker is free: another job runs meanwhile
    assert (
        wait_for_status(alice_client, other["id"], "succeeded", "failed", timeout=60)["status"] == "succeeded"
    )

    resumed = alice_client.post(f"/api/v1/jobs/{job['id']}/resume").json()
    assert resumed["status"] == "queued"
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=90)

    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["step"] == total == done["progress"]["total_steps"]
    assert done["attempts"] == 2
    assert _train_steps(job["id"]) == list(range(1, total + 1))  # continued, no step twice
    logs = alice_client.get(f"/api/v1/jobs/{job['id']}/logs").content.decode()
    assert f"resuming from the checkpoint at step {paused_at}" in logs
    version = ModelVersion.objects.get(job_id=job["id"])
    assert version.metrics["train"]["steps"] == total


def test_pausing_the_worker_checkpoints_and_requeues_its_job_which_resumes_when_a_worker_takes_it(
    alice_client, dataset_version, start_worker
):
    from tests.celery_harness import messages_waiting, wait_for_heartbeats, wait_until
    from workers.models import WorkerNode
    from workers.services import worker_pause, worker_resume

    worker = start_worker(queues="cpu", name="wpause", env=FAST_WORKER_ENV)
    wait_until(
        lambda: WorkerNode.objects.filter(name=worker.hostname).exists(), timeout=10, message="registration"
    )
    total = 1000
    job = submit(
        alice_client,
        dataset_version,
        max_steps=total,
        hyperparameters={"eval_every_steps": 500, "save_every_steps": 500},
    )
    wait_for_job(alice_client, job["id"], lambda b: b["progress"]["step"] >= 30, timeout=60, what="step 30")

    worker_pause(name=worker.hostname, actor=None)
    requeued = wait_for_job(
        alice_client,
        job["id"],
        lambda b: b["status"] != "running",
        timeout=15,
        what="the job to leave the paused worker",
    )
    assert requeued["status"] == "queued", "the run ended before the pause took effect; make it longer"
    assert requeued["queue_position"] == 1
    step = requeued["progress"]["step"]
    assert alice_client.get(f"/api/v1/jobs/{job['id']}/checkpoints").json()["data"][0]["step_number"] == step
    # Its message waits in the broker through the paused worker's next heartbeats: nothing takes it.
    wait_until(lambda: messages_waiting("cpu") == 1, timeout=15, message="the requeued job's message")
    wait_for_heartbeats(worker.hostname, count=3)
    assert messages_waiting("cpu") == 1
    assert FineTuneJob.objects.get(pk=job["id"]).status == "queued"  # a paused worker takes nothing

    worker_resume(name=worker.hostname, actor=None)
    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=90)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    assert _train_steps(job["id"]) == list(range(1, total + 1))
