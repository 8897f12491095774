"""Invitations by link: create, list, revoke, accept, decline."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Invitation, Membership
from tests.accounts.helpers import error_of
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db


def token_of(accept_url: str) -> str:
    return accept_url.rstrip("/").rsplit("/", 1)[1]


def test_an_owner_invites_by_link_and_the_link_is_shown_once(alice_client, team, settings):
    settings.TUNEFORGE_INVITATION_TTL_DAYS = 3
    response = alice_client.post(
        f"/api/v1/teams/{team.id}/invitations", {"email": "Dora@Example.com", "role": "viewer"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "dora@example.com" and body["role"] == "viewer" and body["status"] == "pending"
    assert body["accept_url"].startswith("http://testserver/accounts/invitations/")
    invitation = Invitation.objects.get(pk=body["id"])
    assert token_of(body["accept_url"]) not in invitation.token_hash
    assert timedelta(days=2, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=3)
    listed = alice_client.get(f"/api/v1/teams/{team.id}/invitations").json()["data"]
    assert [i["id"] for i in listed] == [body["id"]]
    assert "accept_url" not in listed[0]


def test_the_invitee_accepts_joins_with_the_role_and_switches(alice_client, dora_client, dora, team):
    created = alice_client.post(
        f"/api/v1/teams/{team.id}/invitations", {"email": "dora@example.com", "role": "viewer"}, format="json"
    )

    response = dora_client.post(
        "/api/v1/invitations/accept", {"token": token_of(created.json()["accept_url"])}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["id"] == team.id
    assert Membership.objects.get(team=team, user=dora).role == "viewer"
    assert dora_client.get("/api/v1/me").json()["active_team"]["id"] == team.id
    assert Invitation.objects.get(pk=created.json()["id"]).status == "accepted"


def test_an_invitation_cannot_be_used_twice(dora_client, dora, team):
    invitation = InvitationFactory(team=team, email=dora.email)
    assert (
        dora_client.post("/api/v1/invitations/accept", {"token": invitation.token}, format="json").status_code
        == 200
    )
    Membership.objects.filter(team=team, user=dora).delete()

    response = dora_client.post("/api/v1/invitations/accept", {"token": invitation.token}, format="json")

    assert response.status_code == 409
    assert "already accepted" in error_of(response)["message"]
    assert not Membership.objects.filter(team=team, user=dora).exists()


def test_an_expired_invitation_is_refused(dora_client, dora, team):
    invitation = InvitationFactory(
        team=team, email=dora.email, expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = dora_client.post("/api/v1/invitations/accept", {"token": invitation.token}, format="json")

    assert response.status_code == 409
    assert error_of(response)["code"] == "invitation_expired"
    assert "expired" in error_of(response)["message"]
    assert not Membership.objects.filter(team=team, user=dora).exists()
    invitation.refresh_from_db()
    assert invitation.status == "pending"


def test_only_the_invited_email_may_accept(charlie_client, charlie, team):
    invitation = InvitationFactory(team=team, email="dora@example.com")

    response = charlie_client.post("/api/v1/invitations/accept", {"token": invitation.token}, format="json")

    assert response.status_code == 403
    assert "for dora@example.com" in error_of(response)["message"]
    assert not Membership.objects.filter(team=team, user=charlie).exists()
    invitation.refresh_from_db()
    assert invitation.status == "pending"


def test_a_wrong_token_is_a_404(dora_client):
    response = dora_client.post("/api/v1/invitations/accept", {"token": "not-a-real-token"}, format="json")
    assert response.status_code == 404
    assert "not valid" in error_of(response)["message"]


def test_the_invitee_declines(dora_client, dora, team):
    invitation = InvitationFactory(team=team, email=dora.email)

    response = dora_client.post("/api/v1/invitations/decline", {"token": invitation.token}, format="json")

    assert response.status_code == 200 and response.json()["status"] == "declined"
    assert not Membership.objects.filter(team=team, user=dora).exists()
    again = dora_client.post("/api/v1/invitations/accept", {"token": invitation.token}, format="json")
    assert again.status_code == 409


def test_a_revoked_invitation_no_longer_works(alice_client, dora_client, dora, team):
    invitation = InvitationFactory(team=team, email=dora.email)

    response = alice_client.delete(f"/api/v1/teams/{team.id}/invitations/{invitation.id}")

    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert (
        dora_client.post("/api/v1/invitations/accept", {"token": invitation.token}, format="json").status_code
        == 409
    )
    assert alice_client.delete(f"/api/v1/teams/{team.id}/invitations/{invitation.id}").status_code == 409


@pytest.mark.parametrize("persona", ["bob", "vera"])
def test_members_and_viewers_cannot_invite_or_revoke(request, team, persona):
    client = request.getfixturevalue(f"{persona}_client")
    invitation = InvitationFactory(team=team, email="dora@example.com")

    create = client.post(f"/api/v1/teams/{team.id}/invitations", {"email": "eve@example.com"}, format="json")
    revoke = client.delete(f"/api/v1/teams/{team.id}/invitations/{invitation.id}")

    assert (create.status_code, revoke.status_code) == (403, 403)
    assert "Only owners and admins can invite people" in error_of(create)["message"]
    assert Invitation.objects.filter(team=team).count() == 1
    invitation.refresh_from_db()
    assert invitation.status == "pending"


def test_an_admin_cannot_invite_an_owner(adam_client, team):
    response = adam_client.post(
        f"/api/v1/teams/{team.id}/invitations", {"email": "eve@example.com", "role": "owner"}, format="json"
    )

    assert response.status_code == 403
    assert not Invitation.objects.filter(team=team).exists()


def test_inviting_a_member_or_someone_already_invited_is_a_409(alice_client, team, bob):
    InvitationFactory(team=team, email="dora@example.com")
    member = alice_client.post(
        f"/api/v1/teams/{team.id}/invitations", {"email": "BOB@example.com"}, format="json"
    )
    twice = alice_client.post(
        f"/api/v1/teams/{team.id}/invitations", {"email": "dora@example.com"}, format="json"
    )
    assert (member.status_code, twice.status_code) == (409, 409)
    assert "already a member" in error_of(member)["message"]
    assert "pending invitation" in error_of(twice)["message"]
    assert Invitation.objects.filter(team=team).count() == 1


def test_an_invitation_with_a_bad_email_is_a_400(alice_client, team):
    response = alice_client.post(
        f"/api/v1/teams/{team.id}/invitations", {"email": "not-an-email"}, format="json"
    )
    assert response.status_code == 400
    assert error_of(response)["field"] == "email"


def test_the_invitation_list_marks_expired_ones_and_filters_by_status(alice_client, team):
    InvitationFactory(team=team, email="old@example.com", expires_at=timezone.now() - timedelta(days=1))
    InvitationFactory(team=team, email="new@example.com", status="declined")
    body = alice_client.get(f"/api/v1/teams/{team.id}/invitations").json()
    assert {(i["email"], i["status"]) for i in body["data"]} == {
        ("old@example.com", "expired"),
        ("new@example.com", "declined"),
    }
    declined = alice_client.get(f"/api/v1/teams/{team.id}/invitations?status=declined").json()["data"]
    assert [i["email"] for i in declined] == ["new@example.com"]


def test_the_invitation_link_is_also_emailed_to_the_invitee(
    alice_client, team, django_capture_on_commit_callbacks
):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        body = alice_client.post(
            f"/api/v1/teams/{team.id}/invitations", {"email": "dora@example.com"}, format="json"
        ).json()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["dora@example.com"] and "Alice's Team" in message.subject
    assert body["accept_url"] in message.body and "alice@example.com invited you" in message.body
