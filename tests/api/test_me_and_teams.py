"""GET /api/v1/me and the team routes."""

import pytest

from accounts.models import Membership, Team
from tests.accounts.helpers import error_of
from tests.factories import ApiKeyFactory, MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_me_describes_the_signed_in_user_active_team_role_and_memberships(alice_client, alice, team):
    other = TeamFactory(name="Alice Labs")
    MembershipFactory(team=other, user=alice, role="viewer")

    body = alice_client.get("/api/v1/me").json()

    assert body["auth"] == "session"
    assert body["user"]["email"] == "alice@example.com"
    assert body["active_team"]["id"] == team.id
    assert body["role"] == "owner"
    assert {(m["team"]["name"], m["role"]) for m in body["memberships"]} == {
        ("Alice's Team", "owner"),
        ("Alice Labs", "viewer"),
    }
    assert body["api_key"] is None


def test_me_with_an_api_key_describes_the_keys_team_and_scopes(anon_client, alice, team):
    key = ApiKeyFactory(team=team, scopes=["read", "inference"], created_by=alice)

    response = anon_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.raw}")

    body = response.json()
    assert response.status_code == 200
    assert body["auth"] == "api_key"
    assert body["user"] is None
    assert body["active_team"]["id"] == team.id
    assert body["api_key"]["id"] == f"key-{key.prefix}"
    assert body["api_key"]["scopes"] == ["read", "inference"]


def test_me_accepts_the_x_api_key_header_too(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["read"])
    assert anon_client.get("/api/v1/me", HTTP_X_API_KEY=key.raw).json()["active_team"]["id"] == team.id


def test_me_without_credentials_is_a_401_in_the_error_shape(anon_client):
    response = anon_client.get("/api/v1/me")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


def test_team_list_shows_only_my_teams_with_my_role(alice_client, charlie_team, team):
    body = alice_client.get("/api/v1/teams").json()
    assert [(t["id"], t["role"]) for t in body["data"]] == [(team.id, "owner")]
    assert body["object"] == "list" and body["has_more"] is False


def test_team_list_is_paginated_by_name(alice_client, alice, team):
    for name in ("B team", "C team"):
        MembershipFactory(team=TeamFactory(name=name), user=alice)

    first = alice_client.get("/api/v1/teams?limit=2").json()
    rest = alice_client.get(f"/api/v1/teams?limit=2&after={first['last_id']}").json()

    assert [t["name"] for t in first["data"]] == ["Alice's Team", "B team"] and first["has_more"]
    assert [t["name"] for t in rest["data"]] == ["C team"] and not rest["has_more"]


def test_an_api_key_lists_only_its_own_team(anon_client, team, charlie_team):
    key = ApiKeyFactory(team=charlie_team, scopes=["read"])
    body = anon_client.get("/api/v1/teams", HTTP_AUTHORIZATION=f"Bearer {key.raw}").json()
    assert [t["id"] for t in body["data"]] == [charlie_team.id]


def test_creating_a_team_makes_me_its_owner_and_switches_to_it(bob_client, bob):
    response = bob_client.post("/api/v1/teams", {"name": "  Bob's Lab "}, format="json")

    assert response.status_code == 201
    new_team = Team.objects.get(pk=response.json()["id"])
    assert new_team.name == "Bob's Lab" and response.json()["role"] == "owner"
    assert Membership.objects.get(team=new_team, user=bob).role == "owner"
    bob.refresh_from_db()
    assert bob.active_team_id == new_team.id
    assert bob_client.get("/api/v1/me").json()["active_team"]["id"] == new_team.id


def test_two_teams_with_the_same_name_get_distinct_slugs(alice_client):
    first = alice_client.post("/api/v1/teams", {"name": "Research"}, format="json").json()
    second = alice_client.post("/api/v1/teams", {"name": "Research"}, format="json").json()
    assert first["slug"] == "research" and second["slug"].startswith("research-")


def test_a_team_needs_a_name(alice_client):
    count = Team.objects.count()
    response = alice_client.post("/api/v1/teams", {"name": "   "}, format="json")
    assert response.status_code == 400
    assert error_of(response)["field"] == "name"
    assert Team.objects.count() == count


def test_an_api_key_cannot_create_teams(anon_client, team):
    key = ApiKeyFactory(team=team, scopes=["read", "write"])
    count = Team.objects.count()

    response = anon_client.post(
        "/api/v1/teams", {"name": "Key team"}, format="json", HTTP_AUTHORIZATION=f"Bearer {key.raw}"
    )

    assert response.status_code == 403
    assert "API keys cannot create teams" in error_of(response)["message"]
    assert Team.objects.count() == count


def test_an_owner_renames_the_team(alice_client, team):
    response = alice_client.patch(f"/api/v1/teams/{team.id}", {"name": "Alice & Co"}, format="json")
    assert response.status_code == 200
    team.refresh_from_db()
    assert team.name == "Alice & Co"


@pytest.mark.parametrize("persona", ["bob", "vera"])
def test_members_and_viewers_cannot_rename_the_team(request, team, persona):
    client = request.getfixturevalue(f"{persona}_client")
    response = client.patch(f"/api/v1/teams/{team.id}", {"name": "Taken over"}, format="json")
    assert response.status_code == 403
    assert "admin" in error_of(response)["message"]
    team.refresh_from_db()
    assert team.name == "Alice's Team"


def test_switching_sets_my_active_team(alice_client, alice, team):
    other = TeamFactory(name="Side project")
    MembershipFactory(team=other, user=alice, role="member")

    response = alice_client.post(f"/api/v1/teams/{other.id}/switch")

    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.active_team_id == other.id
    assert alice_client.get("/api/v1/me").json()["role"] == "member"


def test_a_user_who_belongs_to_no_team_sees_it_in_me(anon_client):
    loner = UserFactory(email="loner@example.com")
    anon_client.force_login(loner)
    body = anon_client.get("/api/v1/me").json()
    assert body["active_team"] is None and body["memberships"] == []
    response = anon_client.get("/api/v1/api-keys")
    assert response.status_code == 404
    assert error_of(response)["code"] == "no_team"
