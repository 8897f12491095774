"""The /workers/ page: staff see the table and steer workers with buttons; to others it does not exist."""

import pytest
from django.test import Client

from tests.factories import WorkerNodeFactory
from workers.models import WorkerNode

pytestmark = pytest.mark.django_db

NAME = "gpu0@node-a.example"


@pytest.fixture
def olga_browser(olga) -> Client:
    client = Client()
    client.force_login(olga)
    return client


def _browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_staff_see_each_worker_with_status_device_job_heartbeat_and_utilisation(olga_browser):
    WorkerNodeFactory(name=NAME, current_job_id="ftjob-abc123")
    WorkerNodeFactory(
        name="cpu@node-b.example",
        device_kind="cpu",
        device_name="AMD EPYC (16 cores)",
        device_class="cpu",
        queues=["cpu"],
        admin_state="paused",
        utilisation={"cpu_percent": 12.5, "rss_mb": 512, "memory_total_mb": 65536},
    )
    page = olga_browser.get("/workers/").content.decode()
    assert NAME in page and "cpu@node-b.example" in page
    assert '<span class="badge online">online</span>' in page
    assert '<span class="badge paused">paused</span>' in page
    assert "NVIDIA H200" in page and "140.4 GiB" in page
    assert 'href="/jobs/ftjob-abc123/"' in page
    assert "s ago" in page
    assert "73 % GPU · 40.0 / 140.4 GiB" in page
    assert "12.5 % CPU · 0.5 GiB RSS" in page
    assert "gpu, gpu.h200" in page


def test_the_buttons_offered_follow_the_admin_state(olga_browser):
    WorkerNodeFactory(name="a@h")
    WorkerNodeFactory(name="b@h", admin_state="draining")
    WorkerNodeFactory(name="c@h", admin_state="paused")
    page = olga_browser.get("/workers/").content.decode()
    assert 'action="/workers/a@h/drain/"' in page and 'action="/workers/a@h/pause/"' in page
    assert 'action="/workers/a@h/resume/"' not in page
    assert 'action="/workers/b@h/pause/"' in page and 'action="/workers/b@h/resume/"' in page
    assert 'action="/workers/c@h/resume/"' in page and 'action="/workers/c@h/drain/"' not in page


def test_an_empty_registry_says_how_to_start_a_worker(olga_browser):
    page = olga_browser.get("/workers/").content.decode()
    assert "No worker has registered yet." in page
    assert "python -m workers.gpu_launcher" in page


@pytest.mark.parametrize(
    ("action", "state", "message"),
    [
        ("drain", "draining", "is draining"),
        ("pause", "paused", "is paused"),
    ],
)
def test_staff_drain_or_pause_with_a_button_then_resume(olga_browser, action, state, message):
    WorkerNodeFactory(name=NAME)
    response = olga_browser.post(f"/workers/{NAME}/{action}/", follow=True)
    assert response.redirect_chain[-1][0] == "/workers/"
    page = response.content.decode()
    assert f"Worker {NAME} {message}" in page
    assert f'<span class="badge {state}">{state}</span>' in page
    assert WorkerNode.objects.get(name=NAME).admin_state == state

    page = olga_browser.post(f"/workers/{NAME}/resume/", follow=True).content.decode()
    assert f"Worker {NAME} accepts jobs again." in page
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"


def test_acting_on_a_worker_that_is_gone_shows_an_error(olga_browser):
    page = olga_browser.post("/workers/gpu9@gone/pause/", follow=True).content.decode()
    assert "No worker named &#x27;gpu9@gone&#x27;." in page


def test_actions_need_a_post(olga_browser):
    WorkerNodeFactory(name=NAME)
    assert olga_browser.get(f"/workers/{NAME}/drain/").status_code == 405
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"


def test_an_unknown_action_is_a_404(olga_browser):
    WorkerNodeFactory(name=NAME)
    assert olga_browser.post(f"/workers/{NAME}/reboot/").status_code == 404


def test_the_table_alone_is_served_for_the_auto_refresh(olga_browser):
    WorkerNodeFactory(name=NAME)
    fragment = olga_browser.get("/workers/table/").content.decode()
    assert NAME in fragment and "<table" in fragment and "<html" not in fragment
    page = olga_browser.get("/workers/").content.decode()
    assert 'hx-get="/workers/table/"' in page and 'hx-trigger="every 5s"' in page
    assert "/static/vendor/htmx-2.0.11/htmx.min.js" in page


@pytest.mark.parametrize("persona", ["alice", "bob", "vera", "charlie"])
def test_the_pages_do_not_exist_for_anyone_but_staff(request, persona):
    WorkerNodeFactory(name=NAME)
    client = _browser_for(request.getfixturevalue(persona))
    assert client.get("/workers/").status_code == 404
    assert client.get("/workers/table/").status_code == 404
    assert client.post(f"/workers/{NAME}/pause/").status_code == 404
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"


def test_anonymous_visitors_are_sent_to_sign_in():
    response = Client().get("/workers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_nav_shows_workers_to_staff_only(olga_browser, alice):
    assert 'href="/workers/"' in olga_browser.get("/workers/").content.decode()
    assert 'href="/workers/"' not in _browser_for(alice).get("/").content.decode()


def test_workers_are_in_the_django_admin_with_the_actions(olga):
    olga.is_superuser = True
    olga.save()
    WorkerNodeFactory(name=NAME)
    client = _browser_for(olga)
    page = client.get("/admin/workers/workernode/").content.decode()
    assert NAME in page and "worker_pause_selected" in page
    node = WorkerNode.objects.get(name=NAME)
    client.post(
        "/admin/workers/workernode/", {"action": "worker_pause_selected", "_selected_action": [node.pk]}
    )
    assert WorkerNode.objects.get(name=NAME).admin_state == "paused"
