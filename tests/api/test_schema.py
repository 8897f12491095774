"""The OpenAPI schema documents these routes and generates without warnings."""

import pytest

pytestmark = pytest.mark.django_db

OUR_PATHS = [
    "/api/v1/me",
    "/api/v1/teams",
    "/api/v1/teams/{team_id}",
    "/api/v1/teams/{team_id}/switch",
    "/api/v1/teams/{team_id}/leave",
    "/api/v1/teams/{team_id}/members",
    "/api/v1/teams/{team_id}/members/{user_id}",
    "/api/v1/teams/{team_id}/invitations",
    "/api/v1/teams/{team_id}/invitations/{invitation_id}",
    "/api/v1/invitations/accept",
    "/api/v1/invitations/decline",
    "/api/v1/api-keys",
    "/api/v1/api-keys/{key_id}",
    "/v1/models",
    "/v1/classifications",
    "/v1/chat/completions",
    "/v1/models/{model_id}",
    "/v1/files",
    "/v1/files/{file_id}",
    "/v1/files/{file_id}/content",
    "/v1/fine_tuning/jobs",
    "/v1/fine_tuning/jobs/{job_id}",
    "/v1/fine_tuning/jobs/{job_id}/cancel",
    "/v1/fine_tuning/jobs/{job_id}/pause",
    "/v1/fine_tuning/jobs/{job_id}/resume",
    "/v1/fine_tuning/jobs/{job_id}/events",
    "/v1/fine_tuning/jobs/{job_id}/checkpoints",
]


def test_these_routes_generate_a_valid_schema_without_warnings():
    # Only this area's URL modules: another area's warnings are that area's test to catch.
    from django.urls import include, path
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    from config.urls import openai_v1

    patterns = [path("api/v1/", include("accounts.api_urls")), path("v1/", include(openai_v1))]
    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache, dict(
        GENERATOR_STATS._warn_cache
    )
    validate_schema(schema)
    assert set(schema["paths"]) == set(OUR_PATHS)


def test_the_schema_endpoint_lists_these_routes_and_api_key_auth(alice_client):
    response = alice_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert set(OUR_PATHS) <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["apiKeyAuth"]["scheme"] == "bearer"
    assert schema["paths"]["/v1/models"]["get"]["security"] == [{"apiKeyAuth": []}]


def test_the_swagger_ui_page_loads_the_schema(alice_client):
    response = alice_client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    # Its start-up script is a file of its own (no inline script under the CSP); it loads the schema.
    script = alice_client.get("/api/docs/?script=")
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()
    # Its scripts come from this server (drf-spectacular-sidecar), not a CDN a user may not reach.
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn.jsdelivr.net" not in page


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_anonymous_callers_get_a_json_401_for_the_docs_when_they_are_not_public(anon_client, settings, path):
    settings.TUNEFORGE_PUBLIC_API_DOCS = False
    response = anon_client.get(path)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "openapi" not in response.content.decode()


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_signed_in_users_and_api_keys_still_see_the_docs_when_they_are_not_public(
    alice_client, anon_client, team, alice, settings, path
):
    from accounts.apikeys import apikey_create

    settings.TUNEFORGE_PUBLIC_API_DOCS = False
    _, raw = apikey_create(team=team, name="docs", scopes=["read"], user=alice)
    assert alice_client.get(path).status_code == 200
    assert anon_client.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_the_docs_answer_anonymous_callers_where_they_are_public(anon_client, settings):
    settings.TUNEFORGE_PUBLIC_API_DOCS = True
    assert anon_client.get("/api/schema/").status_code == 200


def test_production_keeps_the_docs_private_by_default():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "example.com",
        "DATABASE_URL": "postgres://u@db/x",
        "CELERY_BROKER_URL": "redis://r:6379/0",
        "PYTHONPATH": f"{root}:{root / 'platform'}",
    }
    env.pop("TUNEFORGE_PUBLIC_API_DOCS", None)
    code = "import django; django.setup(); from django.conf import settings; print(settings.TUNEFORGE_PUBLIC_API_DOCS)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_an_operation_that_takes_a_body_documents_its_415(alice_client, alice):
    schema = alice_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    with_body = [op for ops in schema["paths"].values() for op in ops.values() if "requestBody" in op]
    assert with_body and all("415" in op["responses"] for op in with_body)
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory(team=alice.memberships.get().team, created_by=alice)
    # A body without a Content-Type: no parser reads it, and the answer is the documented 415.
    response = alice_client.generic(
        "PATCH", f"/api/v1/api-keys/{key.public_id}", b"endpoints=x", content_type=""
    )
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
