"""The OpenAI-compatible face: /v1/models and its error shape."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from finetune.models import BaseModel
from serving.selectors import model_list_for_team
from tests.accounts.helpers import openai_error_of
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def base_models(db):
    return [
        BaseModel.objects.create(
            name="sentence-transformers/all-MiniLM-L6-v2",
            display_name="MiniLM",
            source="x",
            kind="encoder",
            is_default=True,
        ),
        BaseModel.objects.create(
            name="sshleifer/tiny-gpt2", display_name="tiny", source="y", kind="causal_lm"
        ),
        BaseModel.objects.create(
            name="retired/model", display_name="old", source="z", kind="encoder", enabled=False
        ),
    ]


def test_models_lists_the_enabled_base_models_in_openais_shape(anon_client, team, base_models):
    key = ApiKeyFactory(team=team, scopes=["inference"])

    response = anon_client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key.raw}")

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [
        "sentence-transformers/all-MiniLM-L6-v2",
        "sshleifer/tiny-gpt2",
    ]
    first = body["data"][0]
    assert first["object"] == "model" and first["owned_by"] == "tuneforge"
    assert first["created"] == int(base_models[0].created_at.timestamp())


def test_one_model_by_an_id_with_a_slash(anon_client, team, base_models):
    key = ApiKeyFactory(team=team, scopes=["read"])
    response = anon_client.get("/v1/models/sshleifer/tiny-gpt2", HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert response.status_code == 200
    assert response.json()["id"] == "sshleifer/tiny-gpt2"


@pytest.mark.parametrize("model_id", ["nope", "retired/model"])
def test_an_unknown_or_disabled_model_is_a_404_in_openais_shape(anon_client, team, base_models, model_id):
    key = ApiKeyFactory(team=team, scopes=["read"])
    response = anon_client.get(f"/v1/models/{model_id}", HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert response.status_code == 404
    error = openai_error_of(response)
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert model_id in error["message"] and error["param"] == "model"


def test_the_model_selector_is_scoped_to_a_team(team, base_models):
    assert [m.id for m in model_list_for_team(team=team)][0] == "sentence-transformers/all-MiniLM-L6-v2"


def test_without_a_key_v1_is_a_401_in_openais_shape(alice_client):
    # A browser session is not enough on the OpenAI face: it takes API keys only.
    response = alice_client.get("/v1/models")
    assert response.status_code == 401
    assert openai_error_of(response)["type"] == "authentication_error"


@pytest.mark.parametrize("case", ["malformed", "revoked", "expired"])
def test_bad_keys_are_401s_in_openais_shape(anon_client, team, case):
    key = ApiKeyFactory(team=team)
    raw = key.raw
    if case == "malformed":
        raw = "tf_" + "x" * 10
    elif case == "revoked":
        ApiKey.objects.filter(pk=key.pk).update(revoked=True, revoked_at=timezone.now())
    else:
        ApiKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(minutes=1))

    response = anon_client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 401
    error = openai_error_of(response)
    assert error["type"] == "authentication_error" and error["code"] == f"{case}_api_key"


def test_a_write_only_key_cannot_list_models(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["write"])
    response = anon_client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert response.status_code == 403
    assert openai_error_of(response)["type"] == "permission_error"


def test_an_unknown_v1_route_answers_in_openais_shape(anon_client):
    response = anon_client.post("/v1/engines/davinci/completions", {}, format="json")
    assert response.status_code == 404
    assert openai_error_of(response)["code"] == "unknown_url"
