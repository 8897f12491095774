"""/metrics as Prometheus reads it, its protection, and one request id from the web to a worker."""

import json
import uuid

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from prometheus_client.parser import text_string_to_metric_families

from common import metrics
from common.request_id import HEADER, RequestIdMiddleware
from tests.celery_harness import WorkerProcess, purge_broker, wait_until

FAMILIES = {
    "tuneforge_inference_requests",
    "tuneforge_inference_request_latency_seconds",
    "tuneforge_http_responses",
    "tuneforge_inference_batch_size",
    "tuneforge_model_cache_events",
    "tuneforge_quota_refusals",
    "tuneforge_gpu_memory_bytes",
}


def _families(response):
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


@pytest.fixture
def gauge_sources(monkeypatch):
    monkeypatch.setattr(metrics, "_sources", {})


def test_metrics_parse_with_every_family(client, settings, gauge_sources):
    settings.TUNEFORGE_METRICS_TOKEN = ""
    metrics.QUOTA_REFUSALS.labels(kind="requests", scope="key").inc()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = _families(response)
    assert FAMILIES <= set(families), FAMILIES - set(families)
    refusals = [s for s in families["tuneforge_quota_refusals"].samples if s.name.endswith("_total")]
    assert any(s.labels == {"kind": "requests", "scope": "key"} and s.value >= 1 for s in refusals)


def test_registered_gauge_source_appears_and_a_broken_one_does_not_blind_the_rest(
    client, settings, gauge_sources
):
    settings.TUNEFORGE_METRICS_TOKEN = ""
    metrics.register_gauge_source("tuneforge_queue_depth", lambda: [({"queue": "gpu.h200"}, 4)])
    metrics.register_gauge_source("tuneforge_jobs", lambda: 1 / 0)
    families = _families(client.get("/metrics"))
    (sample,) = families["tuneforge_queue_depth"].samples
    assert sample.labels == {"queue": "gpu.h200"} and sample.value == 4
    assert "tuneforge_jobs" not in families
    with pytest.raises(ValueError, match="Unknown scrape-time gauge"):
        metrics.register_gauge_source("tuneforge_made_up", list)


def test_token_required_when_set(client, settings):
    settings.TUNEFORGE_METRICS_TOKEN = "s3cret-scrape"
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape", REMOTE_ADDR="10.1.2.3")
    assert right.status_code == 200
    assert "tuneforge_http_responses" in _families(right)


def test_loopback_only_without_a_token(client, settings):
    settings.TUNEFORGE_METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert refused.status_code == 403
    assert b"TUNEFORGE_METRICS_TOKEN" in refused.content


def test_request_id_echoed_or_generated(client):
    given = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123.def")
    assert given[HEADER] == "abc-123.def"
    made = client.get("/healthz")
    assert len(made[HEADER]) == 32 and made[HEADER] != given[HEADER]
    # A value that would be unsafe in logs is replaced, not echoed.
    hostile = client.get("/healthz", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")
    assert hostile[HEADER] != "x\r\nSet-Cookie: a=b" and len(hostile[HEADER]) == 32


@pytest.mark.slow
def test_request_id_reaches_the_worker_log_record(transactional_db):
    purge_broker()
    worker = WorkerProcess(queues="default", name="rid", env={"LOG_FORMAT": "json"}).wait_ready()
    try:
        from workers.celery_app import app

        request_id = f"req-{uuid.uuid4().hex[:12]}"

        def view(request):
            # A web request that queues work: the task message carries the request's id.
            app.send_task("workers.ping", args=["rid-probe"], queue="default")
            return HttpResponse("queued")

        request = RequestFactory().post("/api/v1/anything", HTTP_X_REQUEST_ID=request_id)
        response = RequestIdMiddleware(view)(request)
        assert response[HEADER] == request_id

        def task_record():
            for line in list(worker.lines):
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                if record.get("request_id") == request_id and "workers.ping" in record.get("message", ""):
                    return record
            return None

        record = wait_until(
            task_record, timeout=60, message="a worker log record with the request id", detail=worker.output
        )
        assert record["logger"] == "common.request_id"
        assert record["level"] == "INFO"
    finally:
        worker.stop()


def test_workers_gauges_report_a_queue_with_jobs_and_no_worker(client, settings, db):
    from django.utils import timezone

    from workers.celery_app import app
    from workers.models import WorkerNode

    settings.TUNEFORGE_METRICS_TOKEN = ""
    lonely = f"gpu.test{uuid.uuid4().hex[:6]}"
    WorkerNode.objects.create(name="gone@host", host="host", queues=[lonely], offline_since=timezone.now())
    WorkerNode.objects.create(name="cpu@host", host="host", queues=["cpu"], last_heartbeat_at=timezone.now())
    for _ in range(2):
        app.send_task("workers.ping", args=["gauge-probe"], queue=lonely)
    try:
        families = _families(client.get("/metrics"))
        depth = {s.labels["queue"]: s.value for s in families["tuneforge_queue_depth"].samples}
        online = {s.labels["queue"]: s.value for s in families["tuneforge_workers_online"].samples}
        assert depth[lonely] == 2
        assert online[lonely] == 0
        assert online["cpu"] == 1
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(lonely)
