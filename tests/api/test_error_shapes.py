"""Every answer under /api/ and /v1/ is JSON in that face's error shape, never an HTML page:
unknown routes, wrong methods, a path with a newline, an unhandled exception."""

import re

import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

NATIVE_KEYS = {"code", "message", "field"}
OPENAI_KEYS = {"message", "type", "param", "code"}


def assert_error_shape(response, path: str) -> None:
    assert response["Content-Type"].startswith("application/json"), (path, response["Content-Type"])
    error = response.json()["error"]
    wanted = OPENAI_KEYS if path.startswith("/v1/") else NATIVE_KEYS
    assert wanted <= set(error), (path, error)
    assert error["message"], path


def _concrete(route: str) -> str:
    """A URL pattern with every converter or regex group replaced by a plausible value."""
    route = re.sub(r"<(?:\w+:)?\w+>", "x", route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "x", route)
    return route.lstrip("^").rstrip("$").replace("\\", "")


def api_routes() -> list[str]:
    found = []

    def walk(patterns, prefix):
        for pattern in patterns:
            here = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, here)
            elif isinstance(pattern, URLPattern):
                path = "/" + _concrete(here)
                if path.startswith(("/api/", "/v1/")):
                    found.append(path)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


ROUTES = api_routes()


def test_the_walk_finds_both_faces():
    assert "/api/v1/teams" in ROUTES and "/v1/models" in ROUTES and "/v1/files" in ROUTES


@pytest.fixture
def clients(alice, team):
    session = Client()
    session.force_login(alice)
    key = ApiKeyFactory(team=team, created_by=alice)
    return {"/api/": session, "/v1/": Client(HTTP_AUTHORIZATION=f"Bearer {key.raw}")}


def _client(clients, path):
    return clients["/v1/" if path.startswith("/v1/") else "/api/"]


@pytest.mark.parametrize("path", ROUTES)
def test_an_unknown_sub_route_is_a_json_404(clients, path):
    unknown = path.rstrip("/") + "/no-such-route"
    response = _client(clients, path).get(unknown)
    assert response.status_code == 404, unknown
    assert_error_shape(response, unknown)


@pytest.mark.parametrize("path", ROUTES)
def test_a_wrong_method_is_json(clients, path):
    response = _client(clients, path).generic("TRACE", path)
    assert response.status_code in (403, 404, 405), (path, response.status_code)
    assert_error_shape(response, path)


# %0A: a real newline in the path (urllib drops a raw one before the request is even made).
@pytest.mark.parametrize("path", ["/api/v1/teams%0A", "/v1/models%0A", "/api/v1/no%0Awhere", "/v1/nowhere"])
def test_odd_paths_are_json_404s(clients, path):
    response = _client(clients, path).get(path)
    assert response.status_code == 404
    assert_error_shape(response, path)


@pytest.mark.parametrize("path", ["/api/v1/boom", "/v1/boom"])
def test_an_unhandled_exception_is_a_json_500(path):
    with override_settings(ROOT_URLCONF="tests.api.boom_urls"):
        response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 500
    assert_error_shape(response, path)
    assert "forced failure" not in response.content.decode()  # no internals leak


def test_web_pages_keep_html_404s(alice_client):
    response = alice_client.get("/datasets/no-such-page/")
    assert response.status_code == 404 and "json" not in response["Content-Type"]


def test_a_patch_that_changes_nothing_says_so(alice_client, alice, team):
    response = alice_client.patch(f"/api/v1/teams/{team.pk}", {}, format="json")
    assert response.status_code == 400
    assert (
        response.json()["error"]["code"] == "nothing_to_change"
        and "name" in response.json()["error"]["message"]
    )


def test_the_schema_states_the_bounds_of_limit_and_the_400s(alice_client):
    schema = alice_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    limits = [
        parameter["schema"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "limit"
    ]
    assert limits and all((s["minimum"], s["maximum"]) == (1, 100) for s in limits)
    assert (
        "400" in schema["paths"]["/api/v1/teams"]["get"]["responses"]
        or "400" in schema["paths"]["/api/v1/api-keys"]["get"]["responses"]
    )
    assert "400" in schema["paths"]["/v1/files"]["get"]["responses"]


# Found by tests/api/test_schemathesis.py: a NUL reached PostgreSQL (psycopg refuses it) as a 500.
@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("/api/v1/datasets?after=ds-%00x", "query parameter 'after'"),
        ("/v1/files?after=x%00", "query parameter 'after'"),
        ("/api/v1/teams?li%00mit=3", "query parameter 'li\\x00mit'"),
        ("/api/v1/datasets/ds-%00x", "the path"),
        ("/v1/fine_tuning/jobs/ftjob-%00", "the path"),
    ],
)
def test_a_nul_in_the_path_or_query_is_a_400_naming_where(alice_client, path, where):
    response = alice_client.get(path)
    assert response.status_code == 400
    assert_error_shape(response, path)
    assert where in response.json()["error"]["message"]


def test_a_nul_on_a_web_page_is_a_plain_400(alice_client):
    response = alice_client.get("/datasets/?q=%00")
    assert response.status_code == 400 and "NUL" in response.content.decode()


def test_a_nul_that_still_reaches_the_database_is_refused_as_a_400(alice):
    from django.db import DataError, transaction

    from accounts.models import User
    from common.errors import api_exception_handler

    # What a body value that no serializer field checked would meet: psycopg's refusal.
    with pytest.raises(DataError) as refused, transaction.atomic():
        User.objects.filter(full_name="a\x00b").exists()
    response = api_exception_handler(refused.value, {})
    assert response.status_code == 400 and "NUL" in response.data["error"]["message"]
