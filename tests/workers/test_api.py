"""The workers admin API: staff see and steer every worker; to anyone else the routes do not exist."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import WorkerNodeFactory
from workers.models import WorkerNode

pytestmark = pytest.mark.django_db

NAME = "gpu0@node-a.example"


@pytest.fixture
def worker():
    return WorkerNodeFactory(name=NAME, current_job_id="ftjob-abc")


def test_staff_list_every_worker_with_status_device_and_utilisation(olga_client, worker):
    WorkerNodeFactory(
        name="cpu@node-b.example",
        device_kind="cpu",
        queues=["cpu"],
        last_heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    response = olga_client.get("/api/v1/workers")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["has_more"] is False
    by_name = {w["name"]: w for w in body["data"]}
    assert by_name["cpu@node-b.example"]["status"] == "offline"
    gpu = by_name[NAME]
    assert gpu["object"] == "worker"
    assert gpu["status"] == "online"
    assert gpu["queues"] == ["gpu", "gpu.h200"]
    assert (gpu["device_name"], gpu["device_class"], gpu["device_memory_mb"]) == (
        "NVIDIA H200",
        "h200",
        143771,
    )
    assert (gpu["cuda_version"], gpu["torch_version"]) == ("12.8", "2.13.0")
    assert gpu["current_job_id"] == "ftjob-abc"
    assert gpu["utilisation"]["gpu_percent"] == 73
    assert gpu["seconds_since_heartbeat"] < 5


def test_staff_can_filter_the_list_by_status(olga_client, worker):
    WorkerNodeFactory(name="gpu1@node-a.example", admin_state="paused")
    response = olga_client.get("/api/v1/workers?status=paused")
    assert [w["name"] for w in response.json()["data"]] == ["gpu1@node-a.example"]


def test_an_unknown_status_filter_is_a_clear_400(olga_client):
    response = olga_client.get("/api/v1/workers?status=sleeping")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "status"
    assert "sleeping" in response.json()["error"]["message"]


def test_a_worker_name_with_at_and_dots_works_in_the_url_plain_or_encoded(olga_client, worker):
    assert olga_client.get(f"/api/v1/workers/{NAME}").json()["name"] == NAME
    assert olga_client.get("/api/v1/workers/gpu0%40node-a.example").json()["name"] == NAME


def test_an_unknown_worker_is_a_404_naming_it(olga_client):
    response = olga_client.get("/api/v1/workers/gpu7@nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "worker_not_found"
    assert "gpu7@nowhere" in response.json()["error"]["message"]
    assert olga_client.post("/api/v1/workers/gpu7@nowhere/drain").status_code == 404


@pytest.mark.parametrize(
    ("action", "admin_state", "status"),
    [("drain", "draining", "draining"), ("pause", "paused", "paused")],
)
def test_staff_drain_or_pause_a_worker_and_resume_it(olga_client, olga, worker, action, admin_state, status):
    response = olga_client.post(f"/api/v1/workers/{NAME}/{action}")
    assert response.status_code == 200
    assert (response.json()["admin_state"], response.json()["status"]) == (admin_state, status)
    assert response.json()["admin_state_changed_by"] == olga.email
    assert WorkerNode.objects.get(name=NAME).admin_state == admin_state

    response = olga_client.post(f"/api/v1/workers/{NAME}/resume")
    assert response.status_code == 200
    assert (response.json()["admin_state"], response.json()["status"]) == ("active", "online")


def test_repeating_an_action_is_harmless(olga_client, worker):
    olga_client.post(f"/api/v1/workers/{NAME}/drain")
    response = olga_client.post(f"/api/v1/workers/{NAME}/drain")
    assert response.status_code == 200 and response.json()["admin_state"] == "draining"


ROUTES = [
    ("get", "/api/v1/workers"),
    ("get", f"/api/v1/workers/{NAME}"),
    ("post", f"/api/v1/workers/{NAME}/drain"),
    ("post", f"/api/v1/workers/{NAME}/pause"),
    ("post", f"/api/v1/workers/{NAME}/resume"),
]


@pytest.mark.parametrize(("method", "url"), ROUTES)
@pytest.mark.parametrize("persona", ["alice_client", "bob_client", "vera_client", "charlie_client"])
def test_the_routes_do_not_exist_for_anyone_but_staff(request, worker, persona, method, url):
    client = request.getfixturevalue(persona)
    response = getattr(client, method)(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_a_team_api_key_cannot_reach_the_admin_routes(anon_client, team, worker, method, url):
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory(team=team)
    response = getattr(anon_client, method)(url, HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert response.status_code == 404
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_anonymous_callers_must_authenticate(anon_client, worker, method, url):
    response = getattr(anon_client, method)(url)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"


def test_the_routes_are_in_the_openapi_schema(olga_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert "/api/v1/workers" in paths
    assert "post" in paths["/api/v1/workers/{name}/drain"]
    assert "post" in paths["/api/v1/workers/{name}/resume"]
