"""Submitting jobs through the native API: validation, estimates, quotas, the queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from finetune.engine.vocabulary import Method, Task
from finetune.models import FineTuneJob, JobAttempt
from tests.factories import TeamFactory
from tests.jobs.conftest import job_payload, make_dataset_version, submit

pytestmark = pytest.mark.django_db


def test_a_submitted_job_is_queued_with_its_estimate_events_and_queue_position(alice_client, dataset_version):
    body = submit(alice_client, dataset_version, suffix="first")

    assert body["id"].startswith("ftjob-")
    assert body["status"] == "queued"
    assert body["model"] == "tiny-bert"
    assert body["dataset_version"] == dataset_version.id
    assert body["queue_position"] == 1
    assert body["priority"] == "normal"
    assert body["estimate"]["total_steps"] == 40
    assert body["estimate"]["trained_tokens"] > 0
    assert body["hyperparameters"]["batch_size"] == 8
    assert body["progress"]["total_steps"] == 40
    assert body["error"] is None
    events = alice_client.get(f"/api/v1/jobs/{body['id']}/events").json()["data"]
    messages = [e["message"] for e in reversed(events)]
    assert messages[0].startswith("Created fine-tuning job")
    assert messages[1].startswith("Files validated: 80 training rows, 16 validation rows, 4 labels")
    assert messages[2] == "Queued on cpu (cpu)."
    assert all(e["object"] == "fine_tuning.job.event" and e["id"].startswith("ftevent-") for e in events)
    assert [e["data"]["status"] for e in reversed(events) if e["data"] and "status" in e["data"]] == [
        "validating_files",
        "queued",
    ]


def test_the_estimate_is_returned_before_launch_and_creates_nothing(alice_client, dataset_version):
    response = alice_client.post("/api/v1/jobs/estimate", job_payload(dataset_version), format="json")
    assert response.status_code == 200, response.json()
    estimate = response.json()
    assert estimate["trained_tokens"] > 0
    assert estimate["n_epochs"] >= 1 and estimate["total_steps"] == 40
    assert estimate["device_class"] == "cpu"
    assert estimate["estimated_seconds"] > 0
    assert estimate["labels"] == sorted(dataset_version.labels)
    assert estimate["quota"]["max_concurrent_jobs"] == 2
    assert estimate["quota_refusal"] is None
    dry = alice_client.post("/api/v1/jobs?dry_run=true", job_payload(dataset_version), format="json")
    assert dry.status_code == 200 and dry.json()["trained_tokens"] == estimate["trained_tokens"]
    assert not FineTuneJob.objects.exists()


def test_a_gpu_estimate_is_faster_than_a_cpu_one_and_counts_gpu_hours(alice_client, dataset_version):
    cpu = alice_client.post("/api/v1/jobs/estimate", job_payload(dataset_version), format="json").json()
    h100 = alice_client.post(
        "/api/v1/jobs/estimate", job_payload(dataset_version, device_class="h100"), format="json"
    ).json()
    assert h100["tokens_per_second"] > 100 * cpu["tokens_per_second"]
    assert h100["trained_tokens"] == cpu["trained_tokens"]
    assert h100["estimated_seconds"] <= cpu["estimated_seconds"]
    assert h100["gpu_hours"] > 0 and cpu["gpu_hours"] == 0


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"model": "no-such-model"}, "model", "Unknown base model 'no-such-model'"),
        ({"hyperparameters": {"batch_size": 0}}, "hyperparameters.batch_size", "must be at least 1"),
        (
            {"hyperparameters": {"learning_rat": 0.1}},
            "hyperparameters.learning_rat",
            "unknown hyperparameter",
        ),
        (
            {"hyperparameters": {"max_length": 4096}},
            "hyperparameters.max_length",
            "exceeds the model's limit",
        ),
        ({"device_class": "tpu9"}, "device_class", "Unknown device class 'tpu9'"),
        ({"priority": "urgent"}, "priority", "is not a valid choice"),
        ({"suffix": "has:colon"}, "suffix", "suffix may hold"),
        ({"task": Task.CHAT_SFT}, "task", "holds classification data"),
        ({"epochs": 3}, "epochs", "Unknown field"),
        ({"hyperparameters": {"learning_rate": 0}}, "hyperparameters.learning_rate", "must be positive"),
        ({"hyperparameters": {"learning_rate": -1e-4}}, "hyperparameters.learning_rate", "must be positive"),
        ({"hyperparameters": {"max_length": 0}}, "hyperparameters.max_length", "at least"),
        (
            {"method": Method.LORA, "hyperparameters": {"target_modules": ["q_proj"]}},
            "hyperparameters.target_modules",
            "q_proj",
        ),
        ({"method": Method.QLORA}, "method", "CUDA"),
    ],
)
def test_a_bad_spec_is_refused_naming_its_field_and_nothing_is_created(
    alice_client, dataset_version, overrides, field, fragment
):
    response = alice_client.post("/api/v1/jobs", job_payload(dataset_version, **overrides), format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["field"] == field
    assert fragment in error["message"]
    assert not FineTuneJob.objects.exists()


def test_another_teams_dataset_version_is_not_found(charlie_client, charlie_team, dataset_version):
    response = charlie_client.post("/api/v1/jobs", job_payload(dataset_version), format="json")
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "dataset_version"


def test_a_dataset_version_still_processing_cannot_be_trained_on(alice_client, team, base_model):
    version = make_dataset_version(team, status="processing")
    response = alice_client.post("/api/v1/jobs", job_payload(version), format="json")
    assert response.status_code == 422
    assert "processing, not ready" in response.json()["error"]["message"]


def test_the_concurrency_quota_refuses_a_third_job_naming_the_limit_and_numbers(
    alice_client, dataset_version
):
    submit(alice_client, dataset_version)
    submit(alice_client, dataset_version)
    response = alice_client.post("/api/v1/jobs", job_payload(dataset_version), format="json")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "concurrent_jobs_limit"
    assert "2 of 2 concurrent jobs running or queued" in error["message"]
    assert error["details"] == {"limit": "max_concurrent_jobs", "used": 2, "max": 2}
    assert FineTuneJob.objects.count() == 2
    estimate = alice_client.post("/api/v1/jobs/estimate", job_payload(dataset_version), format="json").json()
    assert "2 of 2 concurrent jobs" in estimate["quota_refusal"]


def test_a_paused_or_finished_job_does_not_count_against_concurrency(alice_client, dataset_version):
    first = submit(alice_client, dataset_version)
    second = submit(alice_client, dataset_version)
    alice_client.post(f"/api/v1/jobs/{first['id']}/pause")
    alice_client.post(f"/api/v1/jobs/{second['id']}/cancel")
    submit(alice_client, dataset_version)
    submit(alice_client, dataset_version)
    resumed = alice_client.post(f"/api/v1/jobs/{first['id']}/resume")
    assert resumed.status_code == 429
    assert "2 of 2 concurrent jobs" in resumed.json()["error"]["message"]


def test_the_monthly_gpu_hours_quota_refuses_gpu_jobs_but_not_cpu_jobs(alice_client, team, dataset_version):
    team.monthly_gpu_hours = 5
    team.save()
    done = submit(alice_client, dataset_version, device_class="h100")
    job = FineTuneJob.objects.get(pk=done["id"])
    FineTuneJob.objects.filter(pk=job.pk).update(status="succeeded")
    now = timezone.now()
    start = max(now - timedelta(hours=6), now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    JobAttempt.objects.create(
        job=job,
        number=1,
        worker="gpu0@host",
        device_class="h100",
        started_at=start,
        last_seen_at=start + timedelta(hours=5, minutes=30),
        ended_at=start + timedelta(hours=5, minutes=30),
        outcome="succeeded",
    )

    response = alice_client.post(
        "/api/v1/jobs", job_payload(dataset_version, device_class="h100"), format="json"
    )

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "gpu_hours_quota"
    assert "5.50 of 5.00 GPU-hours consumed this month" in error["message"]
    assert error["details"]["limit"] == "monthly_gpu_hours"
    assert int(response["Retry-After"]) > 0
    assert alice_client.post("/api/v1/jobs", job_payload(dataset_version), format="json").status_code == 201


def test_gpu_hours_of_earlier_months_do_not_count(alice_client, team, dataset_version):
    team.monthly_gpu_hours = 1
    team.save()
    done = submit(alice_client, dataset_version, device_class="gpu")
    FineTuneJob.objects.filter(pk=done["id"]).update(status="succeeded")
    last_month = timezone.now().replace(day=1) - timedelta(days=3)
    JobAttempt.objects.create(
        job_id=done["id"],
        number=1,
        worker="w",
        device_class="gpu",
        started_at=last_month,
        last_seen_at=last_month + timedelta(hours=20),
        ended_at=last_month + timedelta(hours=20),
    )
    assert (
        alice_client.post(
            "/api/v1/jobs", job_payload(dataset_version, device_class="gpu"), format="json"
        ).status_code
        == 201
    )


def test_a_viewer_can_read_jobs_but_cannot_submit_or_control_them(alice_client, vera_client, dataset_version):
    job = submit(alice_client, dataset_version)
    assert vera_client.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert vera_client.post("/api/v1/jobs", job_payload(dataset_version), format="json").status_code == 403
    for action in ("cancel", "pause", "resume"):
        assert vera_client.post(f"/api/v1/jobs/{job['id']}/{action}").status_code == 403
    assert FineTuneJob.objects.get(pk=job["id"]).status == "queued"


def test_cancelling_a_queued_job_removes_it_from_the_queue(alice_client, bob_client, dataset_version):
    first = submit(alice_client, dataset_version)
    second = submit(bob_client, dataset_version)
    assert alice_client.get(f"/api/v1/jobs/{second['id']}").json()["queue_position"] == 2

    cancelled = bob_client.post(f"/api/v1/jobs/{first['id']}/cancel").json()

    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert cancelled["queue_position"] is None
    assert alice_client.get(f"/api/v1/jobs/{second['id']}").json()["queue_position"] == 1
    again = alice_client.post(f"/api/v1/jobs/{first['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_only_paused_jobs_can_be_resumed(alice_client, dataset_version):
    job = submit(alice_client, dataset_version)
    response = alice_client.post(f"/api/v1/jobs/{job['id']}/resume")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_resumable"
    paused = alice_client.post(f"/api/v1/jobs/{job['id']}/pause").json()
    assert paused["status"] == "paused"
    resumed = alice_client.post(f"/api/v1/jobs/{job['id']}/resume").json()
    assert resumed["status"] == "queued" and resumed["queue_position"] == 1


def test_base_models_are_listed_for_the_submit_form(vera_client, base_model):
    body = vera_client.get("/api/v1/base-models").json()
    assert [m["id"] for m in body["data"]] == ["tiny-bert"]
    assert body["data"][0]["tasks"] == [Task.CLASSIFICATION, Task.MULTILABEL_CLASSIFICATION]


def test_job_lists_are_per_team_and_filter_by_status(alice_client, charlie_client, team, dataset_version):
    job = submit(alice_client, dataset_version)
    assert [j["id"] for j in alice_client.get("/api/v1/jobs").json()["data"]] == [job["id"]]
    assert alice_client.get("/api/v1/jobs?status=running").json()["data"] == []
    assert alice_client.get("/api/v1/jobs?status=bogus").status_code == 400
    assert charlie_client.get("/api/v1/jobs").json()["data"] == []


def test_fair_share_puts_the_team_with_fewer_running_jobs_first_then_priority_then_age(team, base_model):
    from finetune.selectors import fair_share_order

    other = TeamFactory(name="Other team")
    version = make_dataset_version(team)
    other_version = make_dataset_version(other)

    def job(team_, version_, priority, status="queued"):
        return FineTuneJob.objects.create(
            team=team_,
            base_model=base_model,
            dataset_version=version_,
            task=Task.CLASSIFICATION,
            method=Method.FULL,
            device_class="cpu",
            queue="cpu",
            priority=priority,
            status=status,
        )

    job(team, version, 1, status="running")
    a_high = job(team, version, 2)
    a_normal = job(team, version, 1)
    b_low = job(other, other_version, 0)
    b_normal = job(other, other_version, 1)

    order = list(fair_share_order(FineTuneJob.objects.filter(status="queued")).values_list("id", flat=True))

    assert order == [b_normal.id, b_low.id, a_high.id, a_normal.id]


def test_queue_positions_alternate_between_teams_so_a_busy_team_does_not_hold_the_line(
    alice_client, charlie_client, team, charlie_team, dataset_version
):
    team.max_concurrent_jobs = 5
    team.save()
    a = [submit(alice_client, dataset_version)["id"] for _ in range(3)]
    b = submit(charlie_client, make_dataset_version(charlie_team))["id"]

    positions = {j["id"]: j["queue_position"] for j in alice_client.get("/api/v1/jobs").json()["data"]}

    assert positions == {a[0]: 1, a[1]: 3, a[2]: 4}
    assert charlie_client.get(f"/api/v1/jobs/{b}").json()["queue_position"] == 2
