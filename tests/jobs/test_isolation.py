"""Every jobs route against the outsider (404, never 403) and the viewer (reads yes, writes no)."""

from __future__ import annotations

import pytest

from finetune.engine.vocabulary import Method, Task
from finetune.models import FineTuneJob, ModelVersion
from tests.jobs.conftest import job_payload, submit

pytestmark = pytest.mark.django_db

JOB_READS = ["", "/events", "/metrics", "/checkpoints", "/logs"]
JOB_WRITES = ["/cancel", "/pause", "/resume"]


@pytest.fixture
def alice_job(alice_client, dataset_version):
    return submit(alice_client, dataset_version)["id"]


@pytest.fixture
def alice_model(alice_job, team):
    job = FineTuneJob.objects.get(pk=alice_job)
    return ModelVersion.objects.create(
        team=team,
        name=f"ft:tiny-bert:{team.slug}::{job.id}",
        job=job,
        base_model=job.base_model,
        task=Task.CLASSIFICATION,
        method=Method.FULL,
        storage_prefix=f"teams/{team.id}/models/mv-x",
        files=[{"path": "label_map.json", "size": 2}],
    )


@pytest.mark.parametrize("suffix", JOB_READS)
def test_charlie_cannot_read_alices_job(charlie_client, alice_job, suffix):
    response = charlie_client.get(f"/api/v1/jobs/{alice_job}{suffix}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize("suffix", JOB_WRITES)
def test_charlie_cannot_control_alices_job(charlie_client, alice_job, suffix):
    assert charlie_client.post(f"/api/v1/jobs/{alice_job}{suffix}").status_code == 404
    assert FineTuneJob.objects.get(pk=alice_job).status == "queued"


@pytest.mark.parametrize("url", ["/api/v1/models/{id}", "/api/v1/models/{id}/files/label_map.json"])
def test_charlie_cannot_see_or_download_alices_models(charlie_client, alice_model, url):
    assert charlie_client.get(url.format(id=alice_model.id)).status_code == 404
    assert charlie_client.get("/api/v1/models").json()["data"] == []


@pytest.mark.parametrize("suffix", JOB_READS)
def test_a_viewer_reads_every_job_route(vera_client, alice_job, suffix):
    assert vera_client.get(f"/api/v1/jobs/{alice_job}{suffix}").status_code == 200


@pytest.mark.parametrize("suffix", JOB_WRITES)
def test_a_viewer_cannot_control_a_job(vera_client, alice_job, suffix):
    response = vera_client.post(f"/api/v1/jobs/{alice_job}{suffix}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_role"


def test_a_viewer_cannot_submit_or_estimate(vera_client, dataset_version):
    assert vera_client.post("/api/v1/jobs", job_payload(dataset_version), format="json").status_code == 403
    assert (
        vera_client.post("/api/v1/jobs/estimate", job_payload(dataset_version), format="json").status_code
        == 403
    )


def test_anonymous_callers_must_authenticate(anon_client, alice_job):
    for url in ("/api/v1/jobs", f"/api/v1/jobs/{alice_job}", "/api/v1/models", "/api/v1/base-models"):
        assert anon_client.get(url).status_code in (401, 403)


def test_a_model_file_that_was_not_recorded_cannot_be_fetched(alice_client, alice_model):
    response = alice_client.get(f"/api/v1/models/{alice_model.id}/files/../../../etc/passwd")
    assert response.status_code == 404


def test_an_api_key_with_read_scope_reads_but_cannot_submit(team, alice, alice_job, dataset_version):
    from rest_framework.test import APIClient

    from accounts.apikeys import apikey_create

    _, key = apikey_create(team=team, name="ci", scopes=["read"], user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(f"/api/v1/jobs/{alice_job}").status_code == 200
    response = client.post("/api/v1/jobs", job_payload(dataset_version), format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"


def test_the_jobs_routes_are_in_the_openapi_schema(alice_client):
    schema = alice_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/estimate",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/jobs/{job_id}/metrics",
        "/api/v1/jobs/{job_id}/logs",
        "/api/v1/base-models",
        "/api/v1/models/{version_id}/files/{path}",
    ):
        assert path in paths, path


def test_v1_models_lists_the_teams_fine_tuned_models_and_no_one_elses(
    anon_client, team, charlie_team, alice_model
):
    from tests.factories import ApiKeyFactory

    mine = ApiKeyFactory(team=team, scopes=["inference"])
    theirs = ApiKeyFactory(team=charlie_team, scopes=["inference"])

    listed = anon_client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {mine.raw}").json()["data"]
    assert [m["id"] for m in listed] == ["tiny-bert", alice_model.name]
    assert listed[1]["owned_by"] == team.id
    one = anon_client.get(f"/v1/models/{alice_model.name}", HTTP_AUTHORIZATION=f"Bearer {mine.raw}")
    assert one.status_code == 200 and one.json()["id"] == alice_model.name
    other = anon_client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {theirs.raw}").json()["data"]
    assert [m["id"] for m in other] == ["tiny-bert"]
    assert (
        anon_client.get(
            f"/v1/models/{alice_model.name}", HTTP_AUTHORIZATION=f"Bearer {theirs.raw}"
        ).status_code
        == 404
    )


def test_a_platform_admin_reads_any_teams_job_but_cannot_change_it(charlie, alice_job):
    from tests.conftest import _client_for

    charlie.is_staff = True
    charlie.save()
    staff = _client_for(charlie)

    assert staff.get(f"/api/v1/jobs/{alice_job}").json()["id"] == alice_job
    page = staff.get(f"/jobs/{alice_job}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "as a platform admin: read only" in html
    assert "/cancel" not in html and "/pause" not in html
    assert staff.get(f"/jobs/{alice_job}/live/").status_code == 200
    assert staff.post(f"/api/v1/jobs/{alice_job}/cancel").status_code == 404
    assert FineTuneJob.objects.get(pk=alice_job).status == "queued"


def test_a_job_no_online_worker_serves_says_so_at_submission_and_on_its_page(alice_client, dataset_version):
    from tests.factories import WorkerNodeFactory

    estimate = alice_client.post(
        "/api/v1/jobs/estimate", job_payload(dataset_version, device_class="h100"), format="json"
    )
    assert "No online worker serves device class 'h100'" in estimate.json()["warning"]
    job = submit(alice_client, dataset_version, device_class="h100")
    assert "No online worker serves device class 'h100'" in job["warning"]
    page = alice_client.get(f"/jobs/{job['id']}/").content.decode()
    assert "No online worker serves device class h100 right now" in page

    WorkerNodeFactory(queues=["gpu", "gpu.h100"], device_class="h100")
    assert alice_client.get(f"/api/v1/jobs/{job['id']}").json()["warning"] is None
    assert "No online worker serves" not in alice_client.get(f"/jobs/{job['id']}/").content.decode()
    cpu_job = submit(alice_client, dataset_version)
    assert "'cpu'" in cpu_job["warning"]  # nobody serves the cpu queue in this test either
