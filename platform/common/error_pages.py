"""Django's 404 and 500 pages for paths no API view answered: JSON in each face's own error shape
under `/api/` and `/v1/` (unknown routes, a path with a newline, an unhandled exception), HTML
elsewhere. config.urls names these as handler404 and handler500."""

from django.http import HttpResponseBadRequest, JsonResponse
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


class RejectNulMiddleware:
    """A NUL character in the path or a query parameter is a 400 naming where it is (JSON in the
    face's shape under the APIs). PostgreSQL text cannot hold one, so any lookup with it would
    fail as a 500 (psycopg refuses to send it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        where = None
        if "\x00" in request.path:
            where = "the path"
        else:
            for name, values in request.GET.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    shown = name.replace("\x00", "\\x00")
                    where = f"the query parameter '{shown}'"
                    break
        if where is None:
            return self.get_response(request)
        message = f"NUL (\\x00) characters are not allowed in {where}."
        response = api_error_response(request, status_code=400, code="nul_character", message=message)
        return response or HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
