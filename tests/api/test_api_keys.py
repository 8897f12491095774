"""API keys: created once-shown, listed without secrets, revoked, and refused when bad."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from tests.accounts.helpers import error_of
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def bearer(key) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key.raw if hasattr(key, 'raw') else key}"}


def test_a_member_creates_a_key_that_is_shown_once_and_works(bob_client, anon_client, bob, team):
    response = bob_client.post(
        "/api/v1/api-keys", {"name": "eval job", "scopes": ["inference", "read"]}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("tf_") and body["key"][3:].startswith(body["prefix"] + ".")
    assert body["id"] == f"key-{body['prefix']}"
    assert body["scopes"] == ["read", "inference"] and body["created_by"] == "bob@example.com"
    stored = ApiKey.objects.get(prefix=body["prefix"])
    assert body["key"].split(".")[1] not in stored.hashed_key and body["key"] not in stored.id
    listed = bob_client.get("/api/v1/api-keys").json()
    assert "key" not in listed["data"][0]
    assert body["key"].split(".")[1] not in str(listed)
    me = anon_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {body['key']}").json()
    assert me["active_team"]["id"] == team.id


def test_the_key_list_shows_what_the_ui_needs(alice_client, alice, team):
    expires = timezone.now() + timedelta(days=30)
    key = ApiKeyFactory(team=team, name="ci", scopes=["read"], expiry_date=expires, created_by=alice)

    item = alice_client.get("/api/v1/api-keys").json()["data"][0]

    assert item["id"] == key.public_id and item["name"] == "ci" and item["prefix"] == key.prefix
    assert item["scopes"] == ["read"] and item["revoked"] is False and item["last_used_at"] is None
    assert item["expires_at"] is not None and item["created_at"] is not None


def test_the_key_list_pages_by_public_id(alice_client, team):
    keys = [ApiKeyFactory(team=team) for _ in range(3)]
    first = alice_client.get("/api/v1/api-keys?limit=2").json()
    assert first["has_more"] and first["last_id"].startswith("key-")
    rest = alice_client.get(f"/api/v1/api-keys?limit=2&after={first['last_id']}").json()
    seen = [k["id"] for k in first["data"] + rest["data"]]
    assert sorted(seen) == sorted(k.public_id for k in keys) and not rest["has_more"]


def test_using_a_key_records_its_last_use(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["read"])
    anon_client.get("/api/v1/me", **bearer(key))
    key.refresh_from_db()
    assert key.last_used_at is not None and timezone.now() - key.last_used_at < timedelta(seconds=10)


def test_a_revoked_key_is_refused_with_a_401(alice_client, anon_client, team):
    key = ApiKeyFactory(team=team)

    response = alice_client.delete(f"/api/v1/api-keys/{key.public_id}")

    assert response.status_code == 200 and response.json()["revoked"] is True
    refused = anon_client.get("/api/v1/me", **bearer(key))
    assert refused.status_code == 401
    assert error_of(refused) == {
        "code": "revoked_api_key",
        "message": "This API key was revoked.",
        "field": None,
    }
    assert alice_client.delete(f"/api/v1/api-keys/{key.public_id}").status_code == 409


def test_an_expired_key_is_refused_with_a_401(anon_client, team):
    key = ApiKeyFactory(team=team)
    ApiKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))

    response = anon_client.get("/api/v1/me", **bearer(key))

    assert response.status_code == 401
    assert error_of(response)["code"] == "expired_api_key"
    assert "expired" in error_of(response)["message"]


@pytest.mark.parametrize(
    "presented",
    [
        "tf_short",
        "sk-abcdefgh.0123456789abcdef0123456789abcdef",
        "tf_abc.def",
        "tf_abcdefgh.0123456789abcdef0123456789abcde!",
    ],
)
def test_a_malformed_key_is_refused_before_any_query(anon_client, team, presented, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = anon_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {presented}")
    assert response.status_code == 401
    assert error_of(response)["code"] == "malformed_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_or_tampered_key_is_refused(anon_client, team):
    key = ApiKeyFactory(team=team)
    tampered = key.raw[:-1] + ("a" if key.raw[-1] != "a" else "b")
    unknown = "tf_ZZZZZZZZ." + "0" * 32
    for raw in (tampered, unknown):
        response = anon_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_api_key"


def test_a_viewer_cannot_create_keys(vera_client, team):
    response = vera_client.post("/api/v1/api-keys", {"name": "mine", "scopes": ["read"]}, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.filter(team=team).exists()


def test_a_key_needs_a_name_and_valid_scopes_and_a_future_expiry(alice_client, team):
    bad = [
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes.0"),
        (
            {"name": "x", "scopes": ["read"], "expires_at": (timezone.now() - timedelta(days=1)).isoformat()},
            "expires_at",
        ),
    ]
    for body, field in bad:
        response = alice_client.post("/api/v1/api-keys", body, format="json")
        assert response.status_code == 400, body
        assert error_of(response)["field"] == field
    assert not ApiKey.objects.filter(team=team).exists()


def test_a_member_may_revoke_only_their_own_keys_an_admin_any(bob_client, alice_client, alice, bob, team):
    alices = ApiKeyFactory(team=team, created_by=alice)
    bobs = ApiKeyFactory(team=team, created_by=bob)

    refused = bob_client.delete(f"/api/v1/api-keys/{alices.public_id}")

    assert refused.status_code == 403
    alices.refresh_from_db()
    assert not alices.revoked
    assert bob_client.delete(f"/api/v1/api-keys/{bobs.public_id}").status_code == 200
    assert alice_client.delete(f"/api/v1/api-keys/{alices.public_id}").status_code == 200


def test_a_key_with_write_scope_manages_its_own_teams_keys(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["read", "write"])
    other = ApiKeyFactory(team=team, scopes=["read"])

    created = anon_client.post(
        "/api/v1/api-keys", {"name": "child", "scopes": ["read"]}, format="json", **bearer(key)
    )
    revoked = anon_client.delete(f"/api/v1/api-keys/{other.public_id}", **bearer(key))

    # A key-made key answers to the same person as the key that made it.
    assert created.status_code == 201 and created.json()["created_by"] == key.created_by.email
    assert revoked.status_code == 200
    assert ApiKey.objects.get(prefix=created.json()["prefix"]).team_id == team.id


def test_a_read_only_key_cannot_create_or_revoke_keys(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["read"])
    other = ApiKeyFactory(team=team)

    created = anon_client.post(
        "/api/v1/api-keys", {"name": "child", "scopes": ["read"]}, format="json", **bearer(key)
    )
    revoked = anon_client.delete(f"/api/v1/api-keys/{other.public_id}", **bearer(key))

    assert (created.status_code, revoked.status_code) == (403, 403)
    assert "write" in error_of(created)["message"]
    assert ApiKey.objects.filter(team=team).count() == 2
    other.refresh_from_db()
    assert not other.revoked


def test_a_key_cannot_mint_a_key_with_more_scopes_than_its_own(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["read", "write"])
    response = anon_client.post(
        "/api/v1/api-keys", {"name": "stronger", "scopes": ["inference"]}, format="json", **bearer(key)
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "scope_escalation"
    assert ApiKey.objects.filter(team=team).count() == 1


def test_a_key_of_charlies_team_cannot_see_alices_keys(anon_client, team, charlie_team):
    alices = ApiKeyFactory(team=team)
    charlies = ApiKeyFactory(team=charlie_team)

    listed = anon_client.get("/api/v1/api-keys", **bearer(charlies)).json()
    detail = anon_client.get(f"/api/v1/api-keys/{alices.public_id}", **bearer(charlies))
    revoke = anon_client.delete(f"/api/v1/api-keys/{alices.public_id}", **bearer(charlies))

    assert [k["id"] for k in listed["data"]] == [charlies.public_id]
    assert (detail.status_code, revoke.status_code) == (404, 404)
    alices.refresh_from_db()
    assert not alices.revoked
