"""The int8 accuracy check: an endpoint published with int8 quantization has its accuracy change
measured on the version's validation set by a real Celery worker, and the endpoint page shows both
figures before anyone switches the live endpoint over."""

from __future__ import annotations

import pytest

from serving.models import Endpoint
from tests.celery_harness import wait_until


@pytest.mark.slow
def test_a_worker_measures_the_int8_accuracy_change_and_the_page_shows_it(
    start_worker, alice_client, versions
):
    worker = start_worker(queues="default", name="int8", env={"OMP_NUM_THREADS": "1"})
    r = alice_client.post(
        "/api/v1/endpoints",
        {"slug": "quant", "model_version": versions["a"].id, "options": {"quantize": "int8"}},
        format="json",
    )
    assert r.status_code == 201 and r.json()["options"]["quantize"] == "int8"
    r = alice_client.post("/api/v1/endpoints/quant/int8-check", {}, format="json")
    assert r.status_code == 202 and r.json()["status"] == "pending"
    assert r.json()["model_version"] == versions["a"].id

    def measured():
        body = alice_client.get("/api/v1/endpoints/quant/int8-check").json()
        return body if body["status"] != "pending" else None

    body = wait_until(measured, timeout=180, message="the worker to measure int8", detail=worker.output)
    assert body["status"] == "done", (body, worker.output())
    assert body["n"] == 16  # the dataset version's validation rows
    assert 0 <= body["fp32_accuracy"] <= 1 and 0 <= body["int8_accuracy"] <= 1
    assert body["accuracy_change"] == pytest.approx(body["int8_accuracy"] - body["fp32_accuracy"], abs=1e-9)
    page = alice_client.get("/endpoints/quant/").content.decode()
    assert (
        f"fp32 accuracy {body['fp32_accuracy']:.4f}" in page
        and f"int8 accuracy {body['int8_accuracy']:.4f}" in page
    )
    wait_until(
        lambda: Endpoint.objects.get(slug="quant").status != "deploying", timeout=120, message="the deploy"
    )
    assert Endpoint.objects.get(slug="quant").status == "ready"
    r = alice_client.post(
        "/api/v1/endpoints/quant/predict", {"input": "my card has not arrived"}, format="json"
    )
    assert r.status_code == 200 and r.json()["model_version"] == versions["a"].id
