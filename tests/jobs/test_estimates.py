"""Duration estimates: a built-in table before any run, then the throughput workers measured."""

from __future__ import annotations

from django.utils import translation

from finetune.estimates import STARTUP_SECONDS, duration_range_text
from finetune.models import ThroughputSample
from tests.jobs.conftest import job_payload


def _estimate(client, version) -> dict:
    response = client.post("/api/v1/jobs/estimate", job_payload(version), format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def _record(base_model, tokens_per_second: float, *, method="full", max_length=32) -> None:
    ThroughputSample.objects.create(
        base_model=base_model,
        method=method,
        max_length=max_length,
        device_class="cpu",
        tokens_per_second=tokens_per_second,
        samples_per_second=tokens_per_second / 20,
        trained_tokens=10_000,
        train_seconds=10_000 / tokens_per_second,
    )


def test_before_any_run_the_table_gives_a_wide_range(alice_client, dataset_version, base_model):
    # A model this size makes the tiny test run take milliseconds; a 100M model shows the range.
    base_model.parameters_millions = 100.0
    base_model.save(update_fields=["parameters_millions"])
    estimate = _estimate(alice_client, dataset_version)
    assert estimate["estimate_basis"] == "table" and estimate["measured_runs"] == 0
    assert (
        estimate["estimated_seconds_low"] < estimate["estimated_seconds"] < estimate["estimated_seconds_high"]
    )


def test_recorded_runs_calibrate_the_estimate_slowest_to_fastest(alice_client, dataset_version, base_model):
    for tps in (1_000.0, 2_000.0, 4_000.0):
        _record(base_model, tps)
    _record(base_model, 100_000.0, method="lora")  # another method: not this kind of run
    _record(base_model, 100_000.0, max_length=512)  # far longer sequences: not comparable
    estimate = _estimate(alice_client, dataset_version)
    tokens = estimate["trained_tokens"]
    assert estimate["estimate_basis"] == "measured" and estimate["measured_runs"] == 3
    assert estimate["tokens_per_second"] == 2_000.0  # the median run
    assert estimate["estimated_seconds_low"] == round(STARTUP_SECONDS + tokens / 4_000.0, 1)
    assert estimate["estimated_seconds_high"] == round(STARTUP_SECONDS + tokens / 1_000.0, 1)


def test_durations_read_in_minutes_and_hours_never_raw_seconds():
    with translation.override("en"):
        assert duration_range_text(25 * 60, 35 * 60) == "about 25–35 min"
        assert duration_range_text(30, 50) == "under a minute"
        assert duration_range_text(1.4 * 3600, 2.1 * 3600) == "about 1.5–2 h"
        assert duration_range_text(41 * 60, 41 * 60) == "about 41 min"


def test_the_pages_show_the_eta_and_the_real_time_against_the_estimate_in_minutes_and_hours(
    alice, alice_client, dataset_version
):
    from datetime import timedelta

    from django.test import Client
    from django.utils import timezone

    from finetune.models import FineTuneJob

    web = Client()
    web.force_login(alice)
    running = alice_client.post("/api/v1/jobs", job_payload(dataset_version), format="json").json()["id"]
    finished = alice_client.post("/api/v1/jobs", job_payload(dataset_version), format="json").json()["id"]
    now = timezone.now()
    FineTuneJob.objects.filter(pk=running).update(
        status="running", started_at=now - timedelta(minutes=5), step=10, eta_seconds=5400.0
    )
    # The run: estimated at 64 s, it took 41 minutes.
    job = FineTuneJob.objects.get(pk=finished)
    estimate = {
        **job.estimate,
        "estimated_seconds": 64.0,
        "estimated_seconds_low": 50.0,
        "estimated_seconds_high": 80.0,
    }
    FineTuneJob.objects.filter(pk=finished).update(
        status="failed", started_at=now - timedelta(minutes=41), finished_at=now, estimate=estimate
    )

    listing = web.get("/jobs/").content.decode()
    assert "about 1 h 30 min left" in listing and "5400" not in listing
    assert "took about 41 min" in listing

    page = web.get(f"/jobs/{running}/").content.decode()
    assert "about 1 h 30 min left" in page and "Running for 5 min. " in page
    assert '<span class="estimate-versus">Estimated: ' in page  # live, beside the running time
    page = web.get(f"/jobs/{finished}/").content.decode()
    assert "Took <strong>about 41 min</strong> <span" in page  # the estimate card
    assert "Took 41 min from start to finish. " in page
    assert "Estimated: about 1 min (38.4× as long as estimated)." in page
