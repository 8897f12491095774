"""The int8 accuracy check: serving a version with int8 quantization needs its accuracy change
measured on the version's validation set by a real Celery worker first; the API refuses (409,
naming the check and how to start it) until then, the web shows "measuring…", then fp32 vs int8,
and a Confirm button that publishes."""

from __future__ import annotations

import re

import pytest

from serving.models import Endpoint
from tests.celery_harness import wait_until


def _wait_check(client, check_id, worker):
    def measured():
        body = client.get(f"/api/v1/int8-checks/{check_id}").json()
        return body if body["status"] != "pending" else None

    return wait_until(measured, timeout=180, message="the worker to measure int8", detail=worker.output)


@pytest.mark.slow
def test_int8_publish_is_refused_until_a_worker_measured_the_change_then_carries_both_figures(
    start_worker, alice_client, charlie_client, versions
):
    create = {"slug": "quant", "model_version": versions["a"].id, "options": {"quantize": "int8"}}
    r = alice_client.post("/api/v1/endpoints", create, format="json")
    assert r.status_code == 409, r.content
    error = r.json()["error"]
    assert error["code"] == "int8_check_required" and error["details"]["check"] is None
    assert error["details"]["start"] == {
        "method": "POST",
        "path": "/api/v1/int8-checks",
        "body": {"model_version": versions["a"].id},
    }
    assert not Endpoint.objects.filter(slug="quant").exists()

    r = alice_client.post("/api/v1/int8-checks", {"model_version": versions["a"].id}, format="json")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    check_id = r.json()["id"]
    r = alice_client.post("/api/v1/endpoints", create, format="json")
    assert r.status_code == 409
    assert r.json()["error"]["details"]["check"] == {"id": check_id, "status": "pending", "message": ""}
    assert check_id in r.json()["error"]["message"]
    # Another team neither reads nor can use it.
    assert charlie_client.get(f"/api/v1/int8-checks/{check_id}").status_code == 404

    worker = start_worker(queues="default", name="int8", env={"OMP_NUM_THREADS": "1"})
    body = _wait_check(alice_client, check_id, worker)
    assert body["status"] == "done", (body, worker.output())
    assert body["n"] == 16  # the dataset version's validation rows
    assert 0 <= body["fp32_accuracy"] <= 1 and 0 <= body["int8_accuracy"] <= 1
    assert body["accuracy_change"] == pytest.approx(body["int8_accuracy"] - body["fp32_accuracy"], abs=1e-9)

    r = alice_client.post("/api/v1/endpoints", create, format="json")
    assert r.status_code == 201, r.content
    shown = r.json()["int8_check"]
    assert shown["id"] == check_id
    assert (shown["fp32_accuracy"], shown["int8_accuracy"]) == (body["fp32_accuracy"], body["int8_accuracy"])

    # A version that cannot load: its check fails and says why; publishing it with int8 is refused
    # naming that failure, and force skips the gate as it skips "not worse than live".
    r = alice_client.post("/api/v1/int8-checks", {"model_version": versions["broken"].id}, format="json")
    failed = _wait_check(alice_client, r.json()["id"], worker)
    assert failed["status"] == "failed" and failed["message"]
    r = alice_client.post(
        "/api/v1/endpoints/quant/publish", {"model_version": versions["broken"].id}, format="json"
    )
    assert r.status_code == 409 and r.json()["error"]["details"]["check"]["status"] == "failed"
    assert "failed" in r.json()["error"]["message"]
    r = alice_client.post(
        "/api/v1/endpoints",
        {**create, "slug": "forced", "model_version": versions["b"].id, "force": True},
        format="json",
    )
    assert r.status_code == 201 and r.json()["int8_check"] is None

    wait_until(
        lambda: Endpoint.objects.get(slug="quant").status != "deploying", timeout=120, message="the deploy"
    )
    assert Endpoint.objects.get(slug="quant").status == "ready"
    r = alice_client.post(
        "/api/v1/endpoints/quant/predict", {"input": "my card has not arrived"}, format="json"
    )
    assert r.status_code == 200 and r.json()["model_version"] == versions["a"].id


@pytest.mark.slow
def test_choosing_int8_on_the_web_shows_the_measured_change_and_confirm_publishes(
    start_worker, alice_client, charlie_client, versions
):
    r = alice_client.post(
        "/endpoints/new/",
        {
            "slug": "web8",
            "model_version": versions["a"].id,
            "serve": "adapter",
            "quantize": "int8",
            "truncation": "truncate",
        },
    )
    assert r.status_code == 302 and "/endpoints/checks/int8/" in r["Location"], r.content
    assert not Endpoint.objects.filter(slug="web8").exists()  # nothing published before the confirm
    confirm_url = r["Location"]
    page = alice_client.get(confirm_url).content.decode()
    assert "Measuring…" in page and 'hx-trigger="every 2s"' in page and "Confirm" not in page
    status_url = re.search(r'hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")
    check_id = confirm_url.split("/")[4]
    assert charlie_client.get(confirm_url).status_code == 404

    worker = start_worker(queues="default", name="int8web", env={"OMP_NUM_THREADS": "1"})
    body = _wait_check(alice_client, check_id, worker)
    assert body["status"] == "done", (body, worker.output())
    partial = alice_client.get(status_url).content.decode()
    assert "hx-trigger" not in partial  # it stops polling
    assert f"{body['fp32_accuracy']:.4f}" in partial and f"{body['int8_accuracy']:.4f}" in partial
    assert "Confirm and publish with int8" in partial
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', partial, re.S)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    fields.pop("csrfmiddlewaretoken", None)
    assert fields["int8_check"] == check_id and fields["slug"] == "web8"
    r = alice_client.post(form.group(1), fields)
    assert r.status_code == 302 and r["Location"] == "/endpoints/web8/"
    endpoint = Endpoint.objects.get(slug="web8")
    assert endpoint.options["quantize"] == "int8" and endpoint.pending_version_id == versions["a"].id

    # Switching to another version with int8 from the endpoint page goes through the same page.
    r = alice_client.post("/endpoints/web8/publish/", {"model_version": versions["b"].id, "quantize": "int8"})
    assert r.status_code == 302 and "/endpoints/checks/int8/" in r["Location"]
    assert Endpoint.objects.get(slug="web8").pending_version_id == versions["a"].id
    page = alice_client.get(r["Location"]).content.decode()
    assert versions["b"].name in page


def test_switching_a_live_endpoint_to_int8_needs_the_check_too_unless_forced(alice_client, live, versions):
    r = alice_client.patch("/api/v1/endpoints/support", {"options": {"quantize": "int8"}}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "int8_check_required"
    assert r.json()["error"]["details"]["model_version"] == versions["a"].id
    assert Endpoint.objects.get(slug="support").options["quantize"] == "none"
    r = alice_client.patch(
        "/api/v1/endpoints/support", {"options": {"quantize": "int8"}, "force": True}, format="json"
    )
    assert r.status_code == 200 and r.json()["options"]["quantize"] == "int8"
    assert r.json()["int8_check"] is None
