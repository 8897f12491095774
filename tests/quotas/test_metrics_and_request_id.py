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


@pytest.fixture
def fresh_runtime(monkeypatch, settings):
    """This test's own ServingRuntime, built by get_runtime() from the settings the test sets."""
    from serving import inference

    monkeypatch.setattr(inference, "_runtime", None)
    yield settings
    if inference._runtime is not None:
        inference._runtime.close()


def _sample(families, family: str, name: str, **labels) -> float:
    for sample in families[family].samples if family in families else ():
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return 0.0


def _runtime_figures(client) -> dict[str, float]:
    families = _families(client.get("/metrics"))
    return {
        "batches": _sample(
            families, "tuneforge_inference_batch_size", "tuneforge_inference_batch_size_count"
        ),
        "rows": _sample(families, "tuneforge_inference_batch_size", "tuneforge_inference_batch_size_sum"),
        **{
            event: _sample(
                families, "tuneforge_model_cache_events", "tuneforge_model_cache_events_total", event=event
            )
            for event in ("hit", "miss", "eviction")
        },
    }


def _predict(client, key, **body):
    response = client.post(
        "/api/v1/endpoints/sentiment/predict", body, format="json", HTTP_AUTHORIZATION=f"Bearer {key.raw}"
    )
    assert response.status_code == 200, response.content
    return response


def test_predictions_show_as_batches_and_a_cache_miss_then_hits(
    anon_client, client, team, served, fresh_runtime
):
    from tests.factories import ApiKeyFactory

    fresh_runtime.TUNEFORGE_METRICS_TOKEN = ""
    key = ApiKeyFactory(team=team)
    before = _runtime_figures(client)
    _predict(anon_client, key, input=["great service", "awful wait"])
    after_first = _runtime_figures(client)
    _predict(anon_client, key, input="fine")
    _predict(anon_client, key, input="ok")
    after = _runtime_figures(client)
    assert after_first["miss"] - before["miss"] == 1
    assert after_first["hit"] == before["hit"]
    assert after["miss"] - before["miss"] == 1 and after["hit"] - after_first["hit"] == 2
    assert after["batches"] - before["batches"] == 3
    assert after["rows"] - before["rows"] == 4
    assert after["eviction"] == before["eviction"]


def test_a_cache_too_small_for_the_model_shows_an_eviction(anon_client, client, team, served, fresh_runtime):
    from tests.factories import ApiKeyFactory

    fresh_runtime.TUNEFORGE_METRICS_TOKEN = ""
    fresh_runtime.TUNEFORGE_SERVING_CACHE_MB = 0.001
    key = ApiKeyFactory(team=team)
    before = _runtime_figures(client)
    _predict(anon_client, key, input="great service")
    _predict(anon_client, key, input="great service")
    after = _runtime_figures(client)
    # Evicted as soon as its request is done, so the second call loads it again.
    assert after["miss"] - before["miss"] == 2
    assert after["eviction"] - before["eviction"] == 2
    assert after["hit"] == before["hit"]


def test_workers_gpu_memory_from_their_heartbeats(client, settings, db):
    from django.utils import timezone

    from workers.models import WorkerNode

    settings.TUNEFORGE_METRICS_TOKEN = ""
    now = timezone.now()
    WorkerNode.objects.create(
        name="gpu0@memhost", host="memhost", device_kind="cuda", device_class="h200", queues=["gpu.h200"],
        last_heartbeat_at=now, utilisation={"gpu_percent": 40, "memory_used_mb": 1200, "memory_total_mb": 143771},
    )  # fmt: skip
    WorkerNode.objects.create(
        name="gpu1@memhost", host="memhost", device_kind="cuda", device_class="h200", queues=["gpu.h200"],
        last_heartbeat_at=now, offline_since=now, utilisation={"memory_used_mb": 9, "memory_total_mb": 9},
    )  # fmt: skip
    families = _families(client.get("/metrics"))
    memory = {
        (s.labels["worker"], s.labels["kind"]): s.value
        for s in families["tuneforge_worker_gpu_memory_bytes"].samples
    }
    assert memory[("gpu0@memhost", "used")] == 1200 * 2**20
    assert memory[("gpu0@memhost", "total")] == 143771 * 2**20
    assert not any(worker == "gpu1@memhost" for worker, _kind in memory)
