"""Members: role changes, removal, leaving, and the last-owner rule."""

import pytest

from tests.accounts.helpers import error_of, role_of

pytestmark = pytest.mark.django_db


def test_the_member_list_shows_every_member_with_their_role(alice_client, team, bob, vera):
    body = alice_client.get(f"/api/v1/teams/{team.id}/members").json()
    assert [(m["email"], m["role"]) for m in body["data"]] == [
        ("alice@example.com", "owner"),
        ("bob@example.com", "member"),
        ("vera@example.com", "viewer"),
    ]


def test_the_member_list_pages_by_user_id_cursor(alice_client, team, bob, vera):
    first = alice_client.get(f"/api/v1/teams/{team.id}/members?limit=2").json()
    rest = alice_client.get(f"/api/v1/teams/{team.id}/members?limit=2&after={first['last_id']}").json()
    assert [m["email"] for m in rest["data"]] == ["vera@example.com"]
    assert alice_client.get(f"/api/v1/teams/{team.id}/members?after=nope").status_code == 400


def test_an_owner_changes_a_members_role(alice_client, team, bob):
    response = alice_client.patch(
        f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "admin"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["role"] == "admin"
    assert role_of(bob, team) == "admin"


def test_an_admin_changes_roles_below_owner(adam_client, team, bob):
    response = adam_client.patch(
        f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 200
    assert role_of(bob, team) == "viewer"


@pytest.mark.parametrize("persona", ["bob", "vera"])
def test_a_member_or_viewer_cannot_change_roles(request, team, alice, persona):
    client = request.getfixturevalue(f"{persona}_client")
    target = request.getfixturevalue("vera" if persona == "bob" else "bob")
    before = role_of(target, team)

    response = client.patch(f"/api/v1/teams/{team.id}/members/{target.id}", {"role": "admin"}, format="json")

    assert response.status_code == 403
    assert "Only owners and admins can change roles" in error_of(response)["message"]
    assert role_of(target, team) == before


def test_a_member_cannot_promote_themselves(bob_client, team, bob):
    response = bob_client.patch(f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "owner"}, format="json")
    assert response.status_code == 403
    assert role_of(bob, team) == "member"


def test_an_admin_cannot_make_an_owner(adam_client, team, bob):
    response = adam_client.patch(
        f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert "Only an owner" in error_of(response)["message"]
    assert role_of(bob, team) == "member"


def test_an_admin_cannot_demote_or_remove_an_owner(adam_client, team, alice):
    demote = adam_client.patch(
        f"/api/v1/teams/{team.id}/members/{alice.id}", {"role": "member"}, format="json"
    )
    remove = adam_client.delete(f"/api/v1/teams/{team.id}/members/{alice.id}")
    assert (demote.status_code, remove.status_code) == (403, 403)
    assert role_of(alice, team) == "owner"


def test_an_owner_makes_another_owner_and_then_may_step_down(alice_client, team, alice, bob):
    assert (
        alice_client.patch(
            f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "owner"}, format="json"
        ).status_code
        == 200
    )
    response = alice_client.patch(
        f"/api/v1/teams/{team.id}/members/{alice.id}", {"role": "admin"}, format="json"
    )
    assert response.status_code == 200
    assert (role_of(alice, team), role_of(bob, team)) == ("admin", "owner")


def test_the_last_owner_cannot_be_demoted(alice_client, team, alice, bob):
    response = alice_client.patch(
        f"/api/v1/teams/{team.id}/members/{alice.id}", {"role": "admin"}, format="json"
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "last_owner"
    assert "last owner" in error["message"]
    assert role_of(alice, team) == "owner"


def test_the_last_owner_cannot_leave_nor_remove_themselves(alice_client, team, alice):
    leave = alice_client.post(f"/api/v1/teams/{team.id}/leave")
    remove = alice_client.delete(f"/api/v1/teams/{team.id}/members/{alice.id}")
    assert (leave.status_code, remove.status_code) == (409, 409)
    assert "You are the last owner" in error_of(leave)["message"]
    assert role_of(alice, team) == "owner"


def test_an_unknown_role_is_a_400(alice_client, team, bob):
    response = alice_client.patch(
        f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "king"}, format="json"
    )
    assert response.status_code == 400
    assert error_of(response)["field"] == "role"
    assert role_of(bob, team) == "member"


def test_an_owner_removes_a_member_who_loses_access(alice_client, bob_client, team, bob):
    bob.active_team = team
    bob.save()

    assert alice_client.delete(f"/api/v1/teams/{team.id}/members/{bob.id}").status_code == 204

    assert role_of(bob, team) is None
    bob.refresh_from_db()
    assert bob.active_team_id is None
    assert bob_client.get(f"/api/v1/teams/{team.id}").status_code == 404


def test_a_member_cannot_remove_another_member(bob_client, team, vera):
    response = bob_client.delete(f"/api/v1/teams/{team.id}/members/{vera.id}")
    assert response.status_code == 403
    assert role_of(vera, team) == "viewer"


@pytest.mark.parametrize("persona", ["bob", "vera"])
def test_anyone_but_the_last_owner_may_leave(request, team, persona):
    client = request.getfixturevalue(f"{persona}_client")
    user = request.getfixturevalue(persona)
    assert client.post(f"/api/v1/teams/{team.id}/leave").status_code == 204
    assert role_of(user, team) is None


def test_removing_an_unknown_member_is_a_404(alice_client, team, charlie):
    for user_id in (charlie.id, 999999, "abc"):
        response = alice_client.delete(f"/api/v1/teams/{team.id}/members/{user_id}")
        assert response.status_code == 404
    assert role_of(charlie, charlie.memberships.get().team) == "owner"


def test_api_keys_may_read_members_but_not_manage_them(anon_client, team, bob):
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory(team=team, scopes=["read", "write"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key.raw}"}
    assert anon_client.get(f"/api/v1/teams/{team.id}/members", **auth).status_code == 200
    response = anon_client.patch(
        f"/api/v1/teams/{team.id}/members/{bob.id}", {"role": "admin"}, format="json", **auth
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "person_required"
    assert role_of(bob, team) == "member"
