"""Endpoints through the native API: publish -> predict on really trained models, the publish gate,
rollback, canary, a version that cannot load, access (other teams, key scopes) and bad input."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from serving.models import Endpoint, EndpointEvent
from tests.serving.conftest import deploy

pytestmark = pytest.mark.django_db

CARD_TEXT = "my card has not arrived yet, when will it come"


def predict(client, slug="support", **body):
    return client.post(f"/api/v1/endpoints/{slug}/predict", body, format="json")


def key_client(team, user, scopes, endpoints=None):
    from accounts.apikeys import apikey_create

    _, raw = apikey_create(team=team, name="k", scopes=scopes, user=user, endpoints=endpoints)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_publish_then_predict_serves_the_trained_model(alice_client, live, versions):
    r = predict(alice_client, input=[CARD_TEXT, "I lost my card"], top_k=2)
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["model_version"] == versions["a"].id
    assert [row["index"] for row in body["data"]] == [0, 1]
    assert all(len(row["scores"]) == 2 and 0 <= row["score"] <= 1 for row in body["data"])
    assert body["usage"]["input_tokens"] > 0
    endpoint = alice_client.get("/api/v1/endpoints/support").json()
    assert endpoint["status"] == "ready" and endpoint["model_version"]["id"] == versions["a"].id
    kinds = [e["kind"] for e in alice_client.get("/api/v1/endpoints/support/events").json()["data"]]
    assert kinds == ["ready", "published"]


def test_publishing_a_worse_version_is_refused_naming_both_figures_then_forced(alice_client, live, versions):
    r = alice_client.post(
        "/api/v1/endpoints/support/publish", {"model_version": versions["b"].id}, format="json"
    )
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "worse_than_live" and "0.5000" in err["message"] and "0.9000" in err["message"]
    assert Endpoint.objects.get(pk=live).pending_version is None
    r = alice_client.post(
        "/api/v1/endpoints/support/publish",
        {"model_version": versions["b"].id, "force": True},
        format="json",
    )
    assert r.status_code == 202
    deploy(live)
    assert predict(alice_client, input=CARD_TEXT).json()["model_version"] == versions["b"].id


def test_rollback_returns_to_the_previous_version_and_is_recorded(alice_client, alice, live, versions):
    alice_client.post(
        "/api/v1/endpoints/support/publish", {"model_version": versions["b"].id, "force": True}, format="json"
    )
    deploy(live)
    before = predict(alice_client, input=CARD_TEXT).json()
    r = alice_client.post("/api/v1/endpoints/support/rollback")
    assert r.status_code == 200 and r.json()["model_version"]["id"] == versions["a"].id
    after = predict(alice_client, input=CARD_TEXT).json()
    assert before["model_version"] == versions["b"].id and after["model_version"] == versions["a"].id
    event = EndpointEvent.objects.filter(endpoint_id=live, kind="rolled_back").get()
    assert event.actor == alice and event.from_version == versions["b"] and event.to_version == versions["a"]


def test_a_version_that_cannot_load_leaves_the_old_one_live(alice_client, live, versions):
    r = alice_client.post(
        "/api/v1/endpoints/support/publish", {"model_version": versions["broken"].id}, format="json"
    )
    assert r.status_code == 202
    deploy(live)
    endpoint = alice_client.get("/api/v1/endpoints/support").json()
    assert endpoint["model_version"]["id"] == versions["a"].id
    assert endpoint["status"] == "ready"
    assert (
        versions["broken"].name in endpoint["status_message"]
        and "could not be loaded" in endpoint["status_message"]
    )
    assert predict(alice_client, input=CARD_TEXT).json()["model_version"] == versions["a"].id
    assert EndpointEvent.objects.filter(endpoint_id=live, kind="deploy_failed").exists()


def test_canary_share_is_within_tolerance_and_deterministic_per_request_id(alice_client, live, versions):
    r = alice_client.put(
        "/api/v1/endpoints/support/canary", {"model_version": versions["b"].id, "percent": 30}, format="json"
    )
    assert r.status_code == 200
    served = []
    for i in range(300):
        resp = alice_client.post(
            "/api/v1/endpoints/support/predict", {"input": "hi"}, format="json", HTTP_X_REQUEST_ID=f"req-{i}"
        )
        served.append(resp.json()["model_version"])
    share = served.count(versions["b"].id) / len(served)
    assert 0.2 <= share <= 0.4, share
    again = alice_client.post(
        "/api/v1/endpoints/support/predict", {"input": "hi"}, format="json", HTTP_X_REQUEST_ID="req-7"
    )
    assert again.json()["model_version"] == served[7]
    alice_client.delete("/api/v1/endpoints/support/canary")
    assert predict(alice_client, input="hi").json()["model_version"] == versions["a"].id


def test_charlie_gets_404_on_alices_endpoints(charlie_client, live):
    for method, suffix in [
        ("get", ""),
        ("get", "/events"),
        ("post", "/predict"),
        ("post", "/rollback"),
        ("delete", ""),
    ]:
        r = getattr(charlie_client, method)(
            f"/api/v1/endpoints/support{suffix}", {"input": "x"}, format="json"
        )
        assert r.status_code == 404, (method, suffix)
    assert Endpoint.objects.filter(pk=live).exists()


def test_a_key_without_inference_scope_is_refused(team, alice, live):
    client = key_client(team, alice, ["read", "write"])
    r = predict(client, input="hi")
    assert r.status_code == 403 and r.json()["error"]["code"] == "missing_scope"


def test_a_key_restricted_to_another_endpoint_is_refused_naming_it(team, alice, live):
    client = key_client(team, alice, ["inference"], endpoints=["other"])
    r = predict(client, input="hi")
    assert r.status_code == 403 and "support" in r.json()["error"]["message"]
    ok = key_client(team, alice, ["inference"], endpoints=["support"])
    assert predict(ok, input="hi").status_code == 200


def test_a_key_that_just_answered_is_refused_on_its_next_request_once_restricted_or_revoked(
    team, alice, live
):
    from accounts.apikeys import apikey_create, apikey_revoke, apikey_update

    api_key, raw = apikey_create(team=team, name="k", scopes=["inference"], user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert predict(client, input="hi").status_code == 200

    apikey_update(team=team, api_key=api_key, endpoints=["other"])
    r = predict(client, input="hi")
    assert r.status_code == 403 and r.json()["error"]["code"] == "endpoint_not_allowed"
    apikey_update(team=team, api_key=api_key, endpoints=None)
    assert predict(client, input="hi").status_code == 200

    apikey_revoke(team=team, api_key=api_key)
    r = predict(client, input="hi")
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"


def test_an_unpublished_endpoint_that_just_answered_is_a_404_on_the_next_call(alice_client, live):
    assert predict(alice_client, input="hi").status_code == 200
    assert alice_client.delete("/api/v1/endpoints/support").status_code == 204
    r = predict(alice_client, input="hi")
    assert r.status_code == 404 and r.json()["error"]["code"] == "endpoint_not_found"


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({"input": []}, "input", "empty_input"),
        ({"input": ""}, "input[0]", "empty_input"),
        ({"input": ["hi"] * 65}, "input", "too_many_inputs"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages", "wrong_task"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(alice_client, live, body, field, code):
    events = EndpointEvent.objects.count()
    r = predict(alice_client, **body)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["field"] == field and r.json()["error"]["code"] == code
    assert EndpointEvent.objects.count() == events


def test_too_long_input_is_refused_or_truncated_per_the_endpoint(alice_client, live):
    long_text = "card " * 2000
    r = predict(alice_client, input=["ok", long_text])
    assert r.status_code == 200 and [row["truncated"] for row in r.json()["data"]] == [False, True]
    r = alice_client.patch("/api/v1/endpoints/support", {"options": {"truncation": "refuse"}}, format="json")
    assert r.status_code == 200
    r = predict(alice_client, input=["ok", long_text])
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "input_too_long" and r.json()["error"]["field"] == "input[1]"


def test_a_viewer_reads_but_cannot_publish(vera_client, live, versions):
    assert vera_client.get("/api/v1/endpoints/support").status_code == 200
    r = vera_client.post(
        "/api/v1/endpoints/support/publish", {"model_version": versions["b"].id}, format="json"
    )
    assert r.status_code == 403


def test_unpublish_deletes_the_endpoint(alice_client, live):
    assert alice_client.delete("/api/v1/endpoints/support").status_code == 204
    assert predict(alice_client, input="hi").status_code == 404
