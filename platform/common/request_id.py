"""One request id from the web request to every log line it causes, Celery tasks included.

The middleware takes the caller's `X-Request-ID` (when it is a sane token) or makes one, keeps it
in a context variable for the request, and returns it on the response. A logging filter puts it on
every record (`%(request_id)s`, a field in JSON logs). Celery signals carry it in the task message's
headers (`before_task_publish`) and restore it around the task in the worker (`task_prerun`).

Settings import `logging_config` from here, so this module imports nothing from Django at import
time that needs configured settings.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from typing import Any

HEADER = "X-Request-ID"
TASK_HEADER = "tuneforge_request_id"
NO_REQUEST = "-"

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tuneforge_request_id", default=None)
# A caller's id is echoed into our logs and headers: only a short token of safe characters.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

logger = logging.getLogger(__name__)


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The caller's id if it is acceptable, else a fresh one."""
    return value if value and _ACCEPTED.match(value) else new_request_id()


class RequestIdMiddleware:
    """Outermost middleware: every later middleware, view and log line sees the id."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request_id = accepted_request_id(request.headers.get(HEADER))
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[HEADER] = request_id
        from common.metrics import HTTP_RESPONSES

        HTTP_RESPONSES.labels(status_class=f"{response.status_code // 100}xx").inc()
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or NO_REQUEST
        return True


def logging_config(*, log_format: str = "plain", level: str = "INFO") -> dict[str, Any]:
    """Django's LOGGING: one console handler, plain text or JSON (LOG_FORMAT=json), every record
    with its request id."""
    if log_format not in ("plain", "json"):
        raise ValueError(f"LOG_FORMAT must be 'plain' or 'json', got {log_format!r}")
    formatters = {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "common.request_id.RequestIdFilter"}},
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }


# --- Celery ----------------------------------------------------------------------------------------


def _on_publish(sender=None, headers=None, **kwargs) -> None:
    request_id = _request_id.get()
    if request_id and headers is not None and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id


_task_tokens: dict[str, contextvars.Token] = {}


def _on_prerun(sender=None, task_id=None, task=None, **kwargs) -> None:
    request_id = getattr(task.request, TASK_HEADER, None) if task is not None else None
    if not request_id:
        return
    _task_tokens[task_id] = _request_id.set(accepted_request_id(request_id))
    logger.info("Task %s[%s] started for request %s", task.name, task_id, request_id)


def _on_postrun(sender=None, task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _request_id.reset(token)


def connect_celery_signals() -> None:
    """Called once by the Celery app module (`workers/celery_app.py`). Idempotent (dispatch_uid)."""
    from celery.signals import before_task_publish, task_postrun, task_prerun

    before_task_publish.connect(_on_publish, dispatch_uid="tuneforge-request-id-publish", weak=False)
    task_prerun.connect(_on_prerun, dispatch_uid="tuneforge-request-id-prerun", weak=False)
    task_postrun.connect(_on_postrun, dispatch_uid="tuneforge-request-id-postrun", weak=False)
