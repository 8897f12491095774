"""Django's 404 and 500 pages for paths no API view answered: JSON in each face's own error shape
under `/api/` and `/v1/` (unknown routes, a path with a newline, an unhandled exception), HTML
elsewhere. config.urls names these as handler404 and handler500."""

from django.http import JsonResponse
from django.views import defaults

from common.errors import error_body
from common.middleware import API_PREFIXES
from common.openai_compat import OPENAI_PREFIX, openai_error_body


def error_shape_for_path(path: str):
    """The error body builder of the face that owns `path`, or None outside the APIs."""
    if path.startswith(OPENAI_PREFIX):
        return openai_error_body
    if path.startswith(API_PREFIXES):
        return error_body
    return None


def api_error_response(request, *, status_code: int, code: str, message: str) -> JsonResponse | None:
    shape = error_shape_for_path(request.path)
    if shape is None:
        return None
    return JsonResponse(
        shape(status_code=status_code, code=code, message=message, field=None), status=status_code
    )


def page_not_found(request, exception=None):
    path = request.path.replace("\n", "\\n").replace("\r", "\\r")
    response = api_error_response(
        request, status_code=404, code="unknown_url", message=f"Unknown route: {request.method} {path}."
    )
    return response or defaults.page_not_found(request, exception)


def server_error(request):
    response = api_error_response(
        request,
        status_code=500,
        code="server_error",
        message="The server failed to answer this request; it was logged. Try again later.",
    )
    return response or defaults.server_error(request)
