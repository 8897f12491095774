"""The jobs pages: list, new-job form with its estimate, job page with controls, model page."""

from __future__ import annotations

import pytest
from django.test import Client

from finetune.engine.vocabulary import Method, Task
from finetune.models import FineTuneJob, ModelVersion
from tests.jobs.conftest import submit

pytestmark = pytest.mark.django_db


def _web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _form(version, **overrides) -> dict:
    data = {
        "dataset_version": version.id,
        "model": "tiny-bert",
        "task": "",
        "method": Method.FULL,
        "n_epochs": "auto",
        "batch_size": "8",
        "learning_rate": "auto",
        "max_length": "32",
        "eval_every_steps": "",
        "save_every_steps": "",
        "max_steps": "40",
        "device_class": "cpu",
        "priority": "normal",
        "suffix": "web",
        "seed": "42",
    }
    data.update(overrides)
    return data


def _model_version(job_id: str, team) -> ModelVersion:
    job = FineTuneJob.objects.get(pk=job_id)
    FineTuneJob.objects.filter(pk=job_id).update(status="succeeded")
    return ModelVersion.objects.create(
        team=team,
        name=f"ft:tiny-bert:{team.slug}::{job.id}",
        job=job,
        base_model=job.base_model,
        task=Task.CLASSIFICATION,
        method=Method.FULL,
        labels=["a", "b"],
        metrics={"final": {"valid_accuracy": 0.75}},
        lineage={
            "base_model": "tiny-bert",
            "dataset_version": job.dataset_version_id,
            "dataset_sha256": "abc",
            "seed": 42,
            "code_version": "git:123",
            "resolved_spec": {"seed": 42},
        },
        storage_prefix=f"teams/{team.id}/models/x",
        files=[{"path": "label_map.json", "size": 10}],
    )


def test_the_new_job_form_shows_the_estimate_before_launching(alice, dataset_version):
    web = _web(alice)
    assert web.get("/jobs/new/").status_code == 200

    estimated = web.post("/jobs/new/", _form(dataset_version, action="estimate"))

    assert estimated.status_code == 200
    page = estimated.content.decode()
    assert 'id="estimate"' in page and "tokens to train" in page and "40 steps" in page
    # A range in words, and the method "auto" would pick, before launch (no earlier run: the table).
    assert "from a built-in table" in page and " s</strong>" not in page
    assert "Method full" in page and ("min" in page or "under a minute" in page)
    assert "Not before step 27 of 40." in page  # early stopping counts from two thirds of the steps
    assert 'value="launch"' in page
    assert not FineTuneJob.objects.exists()

    launched = web.post("/jobs/new/", _form(dataset_version, action="launch"))
    job = FineTuneJob.objects.get()
    assert launched.status_code == 302 and launched["Location"] == f"/jobs/{job.id}/"
    assert (
        job.suffix == "web"
        and job.hyperparameters["batch_size"] == 8
        and job.hyperparameters["n_epochs"] == "auto"
    )


def test_the_form_names_a_bad_field_and_shows_a_quota_refusal_clearly(alice, alice_client, dataset_version):
    web = _web(alice)
    bad = web.post("/jobs/new/", _form(dataset_version, batch_size="lots", action="estimate"))
    assert bad.status_code == 400 and "Enter &quot;auto&quot; or a number." in bad.content.decode()
    too_long = web.post("/jobs/new/", _form(dataset_version, max_length="4096", action="estimate"))
    assert too_long.status_code == 400 and "exceeds the model&#x27;s limit" in too_long.content.decode()

    submit(alice_client, dataset_version)
    submit(alice_client, dataset_version)
    estimated = web.post("/jobs/new/", _form(dataset_version, action="estimate")).content.decode()
    assert "2 of 2 concurrent jobs running or queued" in estimated and 'value="launch"' not in estimated
    refused = web.post("/jobs/new/", _form(dataset_version, action="launch"))
    assert refused.status_code == 429
    assert "2 of 2 concurrent jobs running or queued" in refused.content.decode()
    assert FineTuneJob.objects.count() == 2


def test_the_job_list_shows_status_progress_and_queue_position(alice, bob_client, dataset_version):
    first = submit(bob_client, dataset_version, suffix="one")
    second = submit(bob_client, dataset_version)
    page = _web(alice).get("/jobs/").content.decode()
    assert first["id"] in page and second["id"] in page
    assert "#2 in queue" in page and "badge queued" in page
    assert "2 of 2 concurrent jobs" in page


def test_the_job_page_shows_progress_events_and_controls_for_members(
    alice, vera, dataset_version, alice_client
):
    job = submit(alice_client, dataset_version)
    page = _web(alice).get(f"/jobs/{job['id']}/").content.decode()
    assert 'id="job-progress"' in page and "Position 1 in the queue" in page
    assert "Files validated: 80 training rows" in page
    assert f"/jobs/{job['id']}/cancel/" in page and f"/jobs/{job['id']}/pause/" in page
    assert f"/api/v1/jobs/{job['id']}/logs" in page
    live = _web(alice).get(f"/jobs/{job['id']}/live/")
    assert live.status_code == 200 and 'data-active="1"' in live.content.decode()

    viewer_page = _web(vera).get(f"/jobs/{job['id']}/").content.decode()
    assert f"/jobs/{job['id']}/cancel/" not in viewer_page
    _web(vera).post(f"/jobs/{job['id']}/cancel/")
    assert FineTuneJob.objects.get(pk=job["id"]).status == "queued"

    response = _web(alice).post(f"/jobs/{job['id']}/pause/", follow=True)
    assert FineTuneJob.objects.get(pk=job["id"]).status == "paused"
    assert "Pause requested." in response.content.decode()
    resumed = _web(alice).post(f"/jobs/{job['id']}/resume/", follow=True)
    assert (
        FineTuneJob.objects.get(pk=job["id"]).status == "queued"
        and "Job resumed." in resumed.content.decode()
    )
    refused = _web(alice).post(f"/jobs/{job['id']}/resume/", follow=True).content.decode()
    assert "only paused jobs can be resumed" in refused


def test_the_model_page_shows_metrics_lineage_and_files(alice, team, alice_client, dataset_version):
    job = submit(alice_client, dataset_version)
    version = _model_version(job["id"], team)
    response = _web(alice).get(f"/jobs/models/{version.id}/")
    page = response.content.decode()
    assert response.status_code == 200, page[-3000:]
    assert version.name in page and "validation accuracy" in page and "0.75" in page
    assert "git:123" in page and f"/api/v1/models/{version.id}/files/label_map.json" in page
    assert version.id in _web(alice).get(f"/jobs/{job['id']}/").content.decode()


def test_another_team_gets_404_on_every_page(charlie, team, alice_client, dataset_version):
    job = submit(alice_client, dataset_version)
    version = _model_version(submit(alice_client, dataset_version)["id"], team)
    web = _web(charlie)
    assert job["id"] not in web.get("/jobs/").content.decode()
    for url in (f"/jobs/{job['id']}/", f"/jobs/{job['id']}/live/", f"/jobs/models/{version.id}/"):
        assert web.get(url).status_code == 404, url
    for action in ("cancel", "pause", "resume"):
        assert web.post(f"/jobs/{job['id']}/{action}/").status_code == 404
    assert FineTuneJob.objects.get(pk=job["id"]).status == "queued"


def test_the_dashboard_counts_the_teams_jobs(alice, alice_client, dataset_version):
    submit(alice_client, dataset_version)
    page = _web(alice).get("/").content.decode()
    assert (
        "Fine-tuning jobs" in page
        and "<strong>1</strong> queued" in page
        and "<strong>0</strong> running" in page
    )


def test_viewers_are_sent_back_from_the_new_job_form(vera, dataset_version):
    response = _web(vera).get("/jobs/new/", follow=True)
    assert "Viewers cannot submit jobs" in response.content.decode()
    assert _web(vera).post("/jobs/new/", _form(dataset_version, action="launch")).status_code == 302
    assert not FineTuneJob.objects.exists()


def test_admins_manage_base_models_and_read_jobs_and_model_versions(team, alice_client, dataset_version):
    from tests.factories import UserFactory

    staff = _web(UserFactory(email="root@example.com", is_staff=True, is_superuser=True))
    job = submit(alice_client, dataset_version)
    version = _model_version(submit(alice_client, dataset_version)["id"], team)
    assert staff.get("/admin/finetune/basemodel/add/").status_code == 200
    assert staff.get("/admin/finetune/finetunejob/add/").status_code == 403
    page = staff.get(f"/admin/finetune/finetunejob/{job['id']}/change/")
    assert page.status_code == 200 and 'name="priority"' in page.content.decode()
    assert 'name="status"' not in page.content.decode()  # state changes only through the services
    assert staff.get(f"/admin/finetune/modelversion/{version.id}/change/").status_code == 200
    assert staff.get(f"/admin/finetune/modelversion/{version.id}/delete/").status_code == 403
