"""The budgeted search on the platform: trials recorded by a real worker and shown on the job page
and in the API, the GPU-hours refusal, and the new-job form's checkbox."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from finetune.models import FineTuneJob, JobAttempt, SearchTrial
from finetune.openai_jobs import job_hyperparameters
from tests.jobs.conftest import FAST_WORKER_ENV, job_payload, submit, wait_for_job, wait_for_status
from tests.jobs.test_web import _form

# The first rate is far too small to learn anything: it cannot win.
SEARCH = {"trials": 3, "budget_minutes": 30, "learning_rates": [1e-9, 1e-2, 5e-3]}


def _web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _json_script(page: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return json.loads(match.group(1))


@pytest.mark.slow
def test_a_job_with_a_search_records_every_trial_and_trains_the_winner(
    alice, alice_client, charlie_client, dataset_version, start_worker
):
    start_worker(queues="cpu", name="search", env=FAST_WORKER_ENV)
    job = submit(alice_client, dataset_version, hyperparameters={"learning_rate": "auto", "search": SEARCH})

    done = wait_for_status(alice_client, job["id"], "succeeded", "failed", timeout=150)

    assert done["status"] == "succeeded", done["error"]
    search = done["search"]
    runs = search["trial_runs"]
    assert search["trials"] == 3 and {r["trial"] for r in runs} == {0, 1, 2}
    # Halving: three trials at rung 0, the better two again at rung 1 with twice the steps.
    assert [r["rung"] for r in runs].count(0) == 3 and [r["rung"] for r in runs].count(1) == 2
    assert all(r["status"] in ("completed", "pruned") and len(r["curve"]) == r["steps"] for r in runs)
    assert [r["status"] for r in runs if r["rung"] == 0].count("pruned") == 1
    deepest = [r for r in runs if r["rung"] == 1]
    best = max(deepest, key=lambda r: (r["value"], -r["metrics"]["valid_loss"], -r["trial"]))
    assert search["winner"]["trial"] == best["trial"] and search["winner"]["rung"] == 1
    assert [r["trial"] for r in runs if r["winner"]] == [best["trial"]]
    # The full run used the winner's rate, and the OpenAI face says so as a multiple of "auto".
    assert done["hyperparameters"]["learning_rate"] == best["learning_rate"]
    assert done["progress"]["step"] == 40
    db_job = FineTuneJob.objects.get(pk=job["id"])
    assert job_hyperparameters(db_job)["learning_rate_multiplier"] == pytest.approx(
        best["learning_rate"] / best["auto_learning_rate"], rel=1e-5
    )
    assert db_job.model_version.metrics["search"]["winner"]["trial"] == best["trial"]

    page = _web(alice).get(f"/jobs/{job['id']}/").content.decode()
    assert "Learning rate and method search" in page and page.count('class="trial-row') == 5
    assert re.search(f'class="trial-row winner" data-trial="{best["trial"]}" data-rung="1"', page)
    chart = _json_script(page, "search-data")
    assert len(chart["series"]) == 5 and sum(s["winner"] for s in chart["series"]) == 1
    assert all(s["train"] and s["eval"] for s in chart["series"])

    assert charlie_client.get(f"/api/v1/jobs/{job['id']}").status_code == 404


@pytest.mark.slow
def test_a_search_is_cancelled_like_any_job(alice_client, dataset_version, start_worker):
    start_worker(queues="cpu", name="search-cancel", env=FAST_WORKER_ENV)
    # A long run makes long trials (rung 0: 300 steps each), so the cancel lands mid-trial.
    job = submit(
        alice_client,
        dataset_version,
        max_steps=100_000,
        hyperparameters={"learning_rate": "auto", "search": {"trials": 3, "budget_minutes": 30}},
    )
    wait_for_status(alice_client, job["id"], "running", timeout=60)
    wait_until_trial = wait_for_job(
        alice_client,
        job["id"],
        lambda b: any(r["status"] == "running" for r in b["search"]["trial_runs"]),
        timeout=60,
        what="a trial to start",
    )
    assert wait_until_trial["status"] == "running"

    body = alice_client.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert body["requested_action"] == "cancel"
    stopped = wait_for_status(alice_client, job["id"], "cancelled", "failed", "succeeded", timeout=20)

    assert stopped["status"] == "cancelled", stopped["error"]
    assert stopped["result_model_version"] is None and stopped["progress"]["step"] == 0
    statuses = [r["status"] for r in stopped["search"]["trial_runs"]]
    assert "cancelled" in statuses and "running" not in statuses
    assert stopped["search"]["winner"] is None


def test_another_team_sees_no_search_page(charlie, alice_client, dataset_version):
    job = submit(alice_client, dataset_version, hyperparameters={"learning_rate": "auto", "search": SEARCH})
    SearchTrial.objects.create(job_id=job["id"], trial=0, rung=0, method="full", learning_rate=1e-3)
    assert _web(charlie).get(f"/jobs/{job['id']}/").status_code == 404
    assert _web(charlie).get(f"/jobs/{job['id']}/live/").status_code == 404


def test_a_running_search_shows_its_trials_as_they_come(alice, alice_client, dataset_version):
    job = submit(alice_client, dataset_version, hyperparameters={"learning_rate": "auto", "search": SEARCH})
    FineTuneJob.objects.filter(pk=job["id"]).update(status="running", started_at=timezone.now())
    web = _web(alice)
    assert "No trial has run yet." in web.get(f"/jobs/{job['id']}/").content.decode()
    SearchTrial.objects.create(
        job_id=job["id"],
        trial=0,
        rung=0,
        method="full",
        learning_rate=1e-9,
        auto_learning_rate=1e-4,
        steps=2,
        planned_steps=20,
        status="running",
        metric="valid_accuracy",
        curve=[{"step": 1, "train_loss": 1.4}, {"step": 2, "train_loss": 1.39}],
    )
    live = web.get(f"/jobs/{job['id']}/live/?after_event=0", HTTP_HX_REQUEST="true").content.decode()
    assert "2 / 20" in live and "running" in live
    # The job's own progress stays at step 0 until the full run: the search says how far it is
    # (3 trials at 20 steps, then the better 2 at 40: 140 trial steps in 5 runs).
    assert 'id="search-progress" max="100" value="1.4"' in live
    assert "0 of 5 trial runs done (rung 1 of 2, within 30 minutes)" in live
    update = _json_script(live, "search-update")
    assert update["series"][0]["train"] == [[1, 1.4], [2, 1.39]]
    body = alice_client.get(f"/api/v1/jobs/{job['id']}").json()
    assert body["search"]["winner"] is None and body["search"]["trial_runs"][0]["status"] == "running"
    assert job_hyperparameters(FineTuneJob.objects.get(pk=job["id"]))["learning_rate_multiplier"] is None


def test_a_search_that_would_overrun_the_gpu_hours_left_is_refused(alice_client, team, dataset_version):
    team.monthly_gpu_hours = 2
    team.save()
    earlier = submit(alice_client, dataset_version, device_class="h100")
    FineTuneJob.objects.filter(pk=earlier["id"]).update(status="succeeded")
    start = max(
        timezone.now() - timedelta(hours=2),
        timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0),
    )
    JobAttempt.objects.create(
        job_id=earlier["id"],
        number=1,
        worker="gpu0",
        device_class="h100",
        started_at=start,
        last_seen_at=start + timedelta(minutes=30),
        ended_at=start + timedelta(minutes=30),
    )
    long_search = job_payload(
        dataset_version,
        device_class="h100",
        hyperparameters={"learning_rate": "auto", "search": {"trials": 4, "budget_minutes": 120}},
    )

    estimate = alice_client.post("/api/v1/jobs/estimate", long_search, format="json").json()
    assert estimate["search_seconds"] == 7200 and estimate["estimated_seconds"] > 7200
    assert "search budget (120 min)" in estimate["quota_refusal"]
    refused = alice_client.post("/api/v1/jobs", long_search, format="json")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "gpu_hours_quota" and "1.50 of 2.00 left" in error["message"]
    assert error["details"]["field"] == "hyperparameters.search.budget_minutes"
    assert FineTuneJob.objects.count() == 1  # nothing half-written

    short = job_payload(
        dataset_version,
        device_class="h100",
        hyperparameters={"learning_rate": "auto", "search": {"trials": 4, "budget_minutes": 10}},
    )
    assert alice_client.post("/api/v1/jobs", short, format="json").status_code == 201


def test_the_api_names_a_bad_search_setting(alice_client, dataset_version):
    bad = job_payload(
        dataset_version,
        hyperparameters={"learning_rate": "auto", "search": {"trials": 1, "budget_minutes": 5}},
    )
    response = alice_client.post("/api/v1/jobs", bad, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "hyperparameters.search.trials" and "between 2 and 16" in error["message"]


def test_the_new_job_form_turns_the_search_on_with_its_trials_and_budget(alice, dataset_version):
    web = _web(alice)
    blank = web.get("/jobs/new/").content.decode()
    assert "Search learning rate and method first" in blank
    assert 'data-shown-by="id_search"' in blank  # forms.js hides trials and budget while unticked

    on = {"search": "on", "search_trials": "3", "search_budget_minutes": "5"}
    estimated = web.post("/jobs/new/", _form(dataset_version, action="estimate", **on))
    assert estimated.status_code == 200
    assert "Includes the search budget (300 s)" in estimated.content.decode()

    missing = web.post("/jobs/new/", _form(dataset_version, action="estimate", search="on", search_trials=""))
    assert missing.status_code == 400 and "Required when the search is on." in missing.content.decode()
    fixed_rate = web.post(
        "/jobs/new/", _form(dataset_version, action="estimate", learning_rate="0.001", **on)
    )
    assert (
        fixed_rate.status_code == 400
        and "the search chooses the learning rate" in fixed_rate.content.decode()
    )

    launched = web.post("/jobs/new/", _form(dataset_version, action="launch", **on))
    assert launched.status_code == 302
    job = FineTuneJob.objects.get()
    assert job.hyperparameters["search"] == {"trials": 3, "budget_minutes": 5}
    again = web.get(f"/jobs/new/?from={job.id}").content.decode()
    assert re.search(r'name="search"[^>]*checked', again)

    plain = web.post("/jobs/new/", _form(dataset_version, action="launch", search_trials="3"))
    assert plain.status_code == 302
    assert "search" not in FineTuneJob.objects.exclude(pk=job.pk).get().hyperparameters
