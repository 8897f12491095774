"""Prometheus metrics of every Tuneforge process, and the `/metrics` view.

Under gunicorn each worker process writes its samples to files in PROMETHEUS_MULTIPROC_DIR and the
view merges them at scrape time (prometheus_client's multi-process mode); without that variable the
process's default registry is served.

Gauges of state that lives in the database (jobs by status, queue depth, workers online) are not
kept by any process: they are computed when Prometheus scrapes, by callbacks the apps register
(`register_gauge_source`, typically in their AppConfig.ready). `common` imports no app.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "tuneforge_inference_requests_total",
    "Inference requests answered, by endpoint and HTTP status.",
    ["endpoint", "status"],
)
REQUEST_LATENCY = Histogram(
    "tuneforge_inference_request_latency_seconds",
    "Time from request to answer, by endpoint.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
HTTP_RESPONSES = Counter(
    "tuneforge_http_responses_total",
    "HTTP responses of the web process, by status class (2xx, 4xx, 5xx).",
    ["status_class"],
)
BATCH_SIZE = Histogram(
    "tuneforge_inference_batch_size",
    # No endpoint label: one micro-batched forward mixes the requests of several endpoints.
    "Rows classified together in one forward pass (the micro-batcher's callers together).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
MODEL_CACHE = Counter(
    "tuneforge_model_cache_events_total",
    "Model cache of the inference runtime: event is hit, miss or eviction.",
    ["event"],
)
QUOTA_REFUSALS = Counter(
    "tuneforge_quota_refusals_total",
    "Requests refused by a quota (429), by kind (requests/tokens) and scope type (key, team, endpoint).",
    ["kind", "scope"],
)
GPU_MEMORY = Gauge(
    "tuneforge_gpu_memory_bytes",
    "GPU memory of each serving process per CUDA device: kind is allocated (live tensors), reserved "
    "(torch's caching allocator) or total (the device).",
    ["device", "kind"],
    # Each process reports its own device; a dead process's value must not linger.
    multiprocess_mode="liveall",
)

# --- Scrape-time gauges -----------------------------------------------------------------------------

GaugeSamples = Iterable[tuple[Mapping[str, str], float]]
"""What a gauge source returns: (labels, value) pairs, e.g. [({"status": "running"}, 3.0)]."""

SCRAPE_TIME_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "tuneforge_jobs": ("Fine-tuning jobs by status.", ("status",)),
    "tuneforge_queue_depth": ("Messages waiting in each Celery queue.", ("queue",)),
    "tuneforge_workers_online": ("Workers online per queue they consume.", ("queue",)),
    "tuneforge_worker_gpu_memory_bytes": (
        "GPU memory of each online GPU worker's device, from its last heartbeat (NVML): kind is used or total.",
        ("worker", "device_class", "kind"),
    ),
}

_sources: dict[str, Callable[[], GaugeSamples]] = {}
_sources_lock = threading.Lock()


def register_gauge_source(name: str, source: Callable[[], GaugeSamples]) -> None:
    """Let an app fill one of SCRAPE_TIME_GAUGES: `source()` runs at every scrape. Registering a
    name again replaces the source (AppConfig.ready may run twice under the autoreloader)."""
    if name not in SCRAPE_TIME_GAUGES:
        raise ValueError(f"Unknown scrape-time gauge {name!r}; known: {sorted(SCRAPE_TIME_GAUGES)}")
    with _sources_lock:
        _sources[name] = source


class ScrapeTimeCollector:
    """Asks every registered source at scrape time. A failing source is logged and its gauge left
    out of that scrape (the rest of /metrics still answers: one broken query must not blind us)."""

    def collect(self):
        with _sources_lock:
            sources = dict(_sources)
        for name, source in sources.items():
            help_text, label_names = SCRAPE_TIME_GAUGES[name]
            family = GaugeMetricFamily(name, help_text, labels=list(label_names))
            try:
                for labels, value in source():
                    family.add_metric([str(labels[label]) for label in label_names], float(value))
            except Exception:
                logger.exception("Metrics source %s failed at scrape time", name)
                continue
            yield family


_scrape_time_collector = ScrapeTimeCollector()
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    REGISTRY.register(_scrape_time_collector)


def metrics_registry() -> CollectorRegistry:
    """The registry one scrape reads: every process's files in multi-process mode (plus the
    scrape-time gauges, computed once by the answering process), else the default registry."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_scrape_time_collector)
        return registry
    return REGISTRY


def mark_process_dead(pid: int) -> None:
    """gunicorn's `child_exit` hook calls this so a dead worker's live gauges are dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


_LOOPBACK = {"127.0.0.1", "::1"}


def _scrape_refusal(request: HttpRequest) -> HttpResponse | None:
    token = settings.TUNEFORGE_METRICS_TOKEN
    if not token:
        # No token configured: only a scraper on this machine (REMOTE_ADDR is the peer's address;
        # behind a proxy that is the proxy, so set a token there).
        if request.META.get("REMOTE_ADDR") in _LOOPBACK:
            return None
        return HttpResponse(
            "Metrics are served to loopback only; set TUNEFORGE_METRICS_TOKEN to scrape from elsewhere.\n",
            status=403,
            content_type="text/plain",
        )
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode()):
        return HttpResponse("Wrong metrics token.\n", status=403, content_type="text/plain")
    return None


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _scrape_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
