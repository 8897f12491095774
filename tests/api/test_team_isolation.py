"""Every team-scoped route, against the outsider (404) and the viewer (403 on writes)."""

import pytest

from accounts.models import ApiKey, Invitation, Membership, Team
from tests.factories import ApiKeyFactory, InvitationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_things(team, alice, bob, vera):
    return {
        "team": team.id,
        "bob": bob.id,
        "invitation": InvitationFactory(team=team, email="dora@example.com").id,
        "key": ApiKeyFactory(team=team, created_by=alice).public_id,
    }


ROUTES = [
    ("get", "/api/v1/teams/{team}", None),
    ("patch", "/api/v1/teams/{team}", {"name": "Mine now"}),
    ("post", "/api/v1/teams/{team}/switch", None),
    ("post", "/api/v1/teams/{team}/leave", None),
    ("get", "/api/v1/teams/{team}/members", None),
    ("get", "/api/v1/teams/{team}/members/{bob}", None),
    ("patch", "/api/v1/teams/{team}/members/{bob}", {"role": "viewer"}),
    ("delete", "/api/v1/teams/{team}/members/{bob}", None),
    ("get", "/api/v1/teams/{team}/invitations", None),
    ("post", "/api/v1/teams/{team}/invitations", {"email": "eve@example.com", "role": "member"}),
    ("get", "/api/v1/teams/{team}/invitations/{invitation}", None),
    ("delete", "/api/v1/teams/{team}/invitations/{invitation}", None),
    ("get", "/api/v1/api-keys/{key}", None),
    ("delete", "/api/v1/api-keys/{key}", None),
]

VIEWER_WRITES = [
    ("patch", "/api/v1/teams/{team}", {"name": "Mine now"}),
    ("patch", "/api/v1/teams/{team}/members/{bob}", {"role": "viewer"}),
    ("delete", "/api/v1/teams/{team}/members/{bob}", None),
    ("post", "/api/v1/teams/{team}/invitations", {"email": "eve@example.com", "role": "member"}),
    ("delete", "/api/v1/teams/{team}/invitations/{invitation}", None),
    ("post", "/api/v1/api-keys", {"name": "viewer key", "scopes": ["read"]}),
    ("delete", "/api/v1/api-keys/{key}", None),
]


def snapshot(team) -> tuple:
    """What any of these routes could change about alice's team."""
    return (
        Team.objects.get(pk=team.pk).name,
        sorted(Membership.objects.filter(team=team).values_list("user__email", "role")),
        sorted(Invitation.objects.filter(team=team).values_list("email", "status")),
        sorted(ApiKey.objects.filter(team=team).values_list("name", "revoked")),
    )


def call(client, method, url, body, **extra):
    return (
        getattr(client, method)(url, body, format="json", **extra)
        if body
        else getattr(client, method)(url, **extra)
    )


@pytest.mark.parametrize(("method", "url", "body"), ROUTES, ids=[f"{m} {u}" for m, u, _ in ROUTES])
def test_charlie_gets_a_404_on_alices_team(charlie_client, charlie, alices_things, team, method, url, body):
    before = snapshot(team)
    response = call(charlie_client, method, url.format(**alices_things), body)
    assert response.status_code == 404, response.content
    assert set(response.json()["error"]) >= {"code", "message"}
    assert snapshot(team) == before


@pytest.mark.parametrize(("method", "url", "body"), ROUTES, ids=[f"{m} {u}" for m, u, _ in ROUTES])
def test_a_key_of_charlies_team_gets_a_404_on_alices_team(
    anon_client, charlie_team, alices_things, team, method, url, body
):
    key = ApiKeyFactory(team=charlie_team, scopes=["read", "write", "inference"])
    before = snapshot(team)
    response = call(
        anon_client, method, url.format(**alices_things), body, HTTP_AUTHORIZATION=f"Bearer {key.raw}"
    )
    assert response.status_code == 404, response.content
    assert snapshot(team) == before


@pytest.mark.parametrize(
    ("method", "url", "body"), VIEWER_WRITES, ids=[f"{m} {u}" for m, u, _ in VIEWER_WRITES]
)
def test_a_viewer_cannot_write(vera_client, alices_things, team, method, url, body):
    before = snapshot(team)
    response = call(vera_client, method, url.format(**alices_things), body)
    assert response.status_code == 403, response.content
    assert "viewer" in response.json()["error"]["message"]
    assert snapshot(team) == before


def test_charlie_lists_only_his_own_things(charlie_client, alices_things, charlie_team):
    teams = charlie_client.get("/api/v1/teams").json()["data"]
    keys = charlie_client.get("/api/v1/api-keys").json()["data"]
    assert [t["id"] for t in teams] == [charlie_team.id]
    assert keys == []
