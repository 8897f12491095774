"""One error vocabulary for services, and the two wire shapes of the API.

Services raise `ApplicationError` subclasses; views never build error bodies by hand.
Native API (`/api/...`): {"error": {"code", "message", "field", "details"}} (here)
OpenAI face (`/v1/...`): {"error": {"message", "type", "param", "code"}} (`common.openai_compat`)
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler


class ApplicationError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid_request"
    type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field = field
        self.details = details or {}
        self.headers = headers or {}


class InvalidInput(ApplicationError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"


class Unprocessable(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "unprocessable"


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    type = "invalid_request_error"


class Forbidden(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"
    type = "permission_error"


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class QuotaExceeded(ApplicationError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "quota_exceeded"
    type = "rate_limit_error"


def _first_message(detail: Any) -> tuple[str, str | None]:
    """The first human message in a DRF error structure, and the field it belongs to."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            message, inner = _first_message(value)
            field = str(key) if key != "non_field_errors" else None  # list items have int keys, 0 too
            return message, f"{field}.{inner}" if field and inner else (field or inner)
        return "Invalid input.", None
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail), None


def error_body(*, status_code: int, code: str, message: str, field: str | None, details=None, kind=None):
    """The native API's body (`/api/`); `common.openai_compat.openai_error_body` is the `/v1/` one."""
    body = {"code": code, "message": message, "field": field}
    if details:
        body["details"] = details
    return {"error": body}


def exception_handler_for(shape):
    """A DRF exception handler answering in `shape` (a function like `error_body`)."""

    def handler(exc, context):
        return _handle(exc, context, shape)

    return handler


def api_exception_handler(exc, context):
    return _handle(exc, context, error_body)


def _handle(exc, context, shape):
    if isinstance(exc, ApplicationError):
        body = shape(
            status_code=exc.status_code,
            code=exc.code,
            message=exc.message,
            field=exc.field,
            details=exc.details,
            kind=exc.type,
        )
        return Response(body, status=exc.status_code, headers=exc.headers)
    if isinstance(exc, DataError) and ("NUL" in str(exc) or "\\u0000" in str(exc)):
        # A NUL inside a body value that no serializer field checked (a JSON object, say): psycopg
        # refuses to send text with one, PostgreSQL's jsonb refuses \u0000; the service's
        # transaction rolls back, so the request is only refused.
        exc = drf_exceptions.ValidationError("NUL (\\x00) characters are not allowed in text values.")
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_default_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        message, field = _first_message(exc.detail)
        code, details = "invalid", {"fields": exc.detail} if isinstance(exc.detail, dict) else {}
    else:
        message, field = _first_message(exc.detail)
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        details = {}
    response.data = shape(
        status_code=response.status_code,
        code=code,
        message=message,
        field=field,
        details=details,
    )
    return response
