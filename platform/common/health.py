"""Liveness and readiness probes for load balancers and orchestrators."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        return f"database unreachable: {exc.__class__.__name__}: {exc}"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except Exception as exc:
        return f"redis unreachable at REDIS_URL: {exc}"
    return None


def _check_broker() -> str | None:
    # kombu straight from settings: common knows no Celery app (workers sits above it).
    from kombu import Connection

    try:
        with Connection(
            settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
    except Exception as exc:
        return f"broker unreachable at CELERY_BROKER_URL: {exc}"
    return None


def readyz(request):
    checks = {"database": _check_database(), "redis": _check_redis(), "broker": _check_broker()}
    failing = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "ok" if not failing else "unavailable",
        "checks": {name: ("ok" if not problem else problem) for name, problem in checks.items()},
    }
    return JsonResponse(body, status=200 if not failing else 503)
