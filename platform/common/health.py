"""Liveness and readiness probes for load balancers and orchestrators.

The probes answer anyone, so they name only which dependency failed and a generic reason; the
driver's own message (host, port, user) goes to the log, never into the response.
"""

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # any driver error means "not ready"
        logger.exception("readyz: the database is unreachable")
        return "database unreachable"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception:
        logger.exception("readyz: Redis at REDIS_URL is unreachable")
        return "redis unreachable (REDIS_URL)"
    return None


def _check_broker() -> str | None:
    # kombu straight from settings: common knows no Celery app (workers sits above it).
    from kombu import Connection

    try:
        with Connection(
            settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
    except Exception:
        logger.exception("readyz: the broker at CELERY_BROKER_URL is unreachable")
        return "broker unreachable (CELERY_BROKER_URL)"
    return None


def readyz(request):
    checks = {"database": _check_database(), "redis": _check_redis(), "broker": _check_broker()}
    failing = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "ok" if not failing else "unavailable",
        "checks": {name: ("ok" if not problem else problem) for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if not failing else 503)
