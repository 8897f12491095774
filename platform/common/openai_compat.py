"""The OpenAI-compatible face's shared parts, in one place: its error body, its exception handler,
its content negotiation and the OpenAPI pieces every `/v1/` view repeats.

Each app owns its own `/v1/` routes (files in datasets_app, fine-tuning jobs in finetune, models in
serving); they all answer errors as OpenAI's clients expect:
`{"error": {"message", "type", "param", "code"}}`.
"""

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation

from common.errors import exception_handler_for
from common.pagination import MAX_LIMIT, paginate_after, parse_limit

# The URL prefix of the face (config.urls mounts every app's /v1/ routes under it).
OPENAI_PREFIX = "/v1/"


def openai_error_type(status_code: int) -> str:
    return {
        401: "authentication_error",
        403: "permission_error",
        404: "invalid_request_error",
        409: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status_code, "invalid_request_error" if status_code < 500 else "server_error")


def openai_error_body(
    *, status_code: int, code: str, message: str, field: str | None, details=None, kind=None
):
    return {
        "error": {
            "message": message,
            "type": kind or openai_error_type(status_code),
            "param": field,
            "code": code,
        }
    }


openai_exception_handler = exception_handler_for(openai_error_body)


class PassThroughNegotiation(DefaultContentNegotiation):
    """The view picks the body's format itself (a download, `Accept: application/binary`, a
    `?format=` that names a file format rather than a DRF renderer): always its first renderer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class OpenAIFaceMixin:
    """Mixed into every `/v1/` view: errors in OpenAI's shape."""

    def get_exception_handler(self):
        return openai_exception_handler


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    """`{"error": {"message", "type", "param", "code"}}`, as OpenAI's clients expect."""

    error = OpenAIErrorDetailSerializer()


# Reads can fail on a bad `after`/`limit` (400) as well as on the key or the object.
OPENAI_ERRORS = {code: OpenAIErrorSerializer for code in (400, 401, 403, 404)}
WRITE_ERRORS = {code: OpenAIErrorSerializer for code in (400, 401, 403, 404, 409, 413, 422, 429)}
PAGE_PARAMS = [
    OpenApiParameter("after", str, description="The last id of the previous page."),
    OpenApiParameter(
        "limit", int, description=f"At most this many items (1–{MAX_LIMIT}, default 20); outside that, a 400."
    ),
]


def openai_page(request, queryset, *, order: str = "-created_at", after: str | int | None = None):
    """One page of `queryset` by OpenAI's `after`/`limit` (`after` given when it is not the raw parameter)."""
    after = request.query_params.get("after") if after is None else after
    return paginate_after(
        queryset, after=after, limit=parse_limit(request.query_params.get("limit")), order=order
    )


def unix_time(moment) -> int | None:
    """OpenAI's timestamps: whole seconds since the epoch."""
    return int(moment.timestamp()) if moment else None
