"""The team pages: create, switch, manage members and invitations, leave; and answering invitations."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Membership, Team
from tests.accounts.helpers import browser_for, role_of
from tests.factories import InvitationFactory, MembershipFactory, TeamFactory

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_creating_a_team_from_the_page_makes_me_owner_and_active(bob):
    client = browser_for(bob)
    response = client.post("/accounts/teams/new/", {"name": "Bob's Lab"})
    new_team = Team.objects.get(name="Bob's Lab")
    assert response["Location"] == f"/accounts/teams/{new_team.id}/"
    assert role_of(bob, new_team) == "owner"
    page = client.get(response["Location"])
    assert page.context["request"].membership.team == new_team


def test_a_team_name_is_required_and_the_error_shows_next_to_it(bob):
    response = browser_for(bob).post("/accounts/teams/new/", {"name": ""})
    assert response.status_code == 400
    assert 'id="id_name_errors"' in response.content.decode()


def test_the_switcher_changes_the_active_team(alice, team):
    other = TeamFactory(name="Side")
    MembershipFactory(team=other, user=alice, role="viewer")
    client = browser_for(alice)

    response = client.post("/accounts/teams/switch/", {"team": other.id, "next": "/"})

    assert response["Location"] == "/"
    alice.refresh_from_db()
    assert alice.active_team == other
    assert "Side (Viewer)" in client.get("/").content.decode()


def test_the_switcher_refuses_a_team_i_am_not_in(alice, charlie_team):
    response = browser_for(alice).post("/accounts/teams/switch/", {"team": charlie_team.id})
    assert response.status_code == 404
    alice.refresh_from_db()
    assert alice.active_team_id != charlie_team.id


def test_the_team_page_lists_members_and_offers_management_to_the_owner(alice, bob, vera, team):
    page = browser_for(alice).get(f"/accounts/teams/{team.id}/").content.decode()
    for email in ("alice@example.com", "bob@example.com", "vera@example.com"):
        assert email in page
    assert f"/accounts/teams/{team.id}/members/{bob.id}/role/" in page
    assert 'id="invite-form"' in page


def test_a_member_sees_the_team_without_management_controls(bob, alice, team):
    page = browser_for(bob).get(f"/accounts/teams/{team.id}/").content.decode()
    assert "alice@example.com" in page
    assert "/role/" not in page and 'id="invite-form"' not in page


def test_charlie_gets_a_404_on_alices_team_pages(charlie, alice, bob, team):
    client = browser_for(charlie)
    invitation = InvitationFactory(team=team, email="dora@example.com")
    urls = [
        ("get", f"/accounts/teams/{team.id}/", {}),
        ("post", f"/accounts/teams/{team.id}/rename/", {"name": "Mine"}),
        ("post", f"/accounts/teams/{team.id}/members/{bob.id}/role/", {"role": "viewer"}),
        ("post", f"/accounts/teams/{team.id}/members/{bob.id}/remove/", {}),
        ("post", f"/accounts/teams/{team.id}/leave/", {}),
        ("post", f"/accounts/teams/{team.id}/invitations/", {"email": "eve@example.com", "role": "member"}),
        ("post", f"/accounts/teams/{team.id}/invitations/{invitation.id}/revoke/", {}),
    ]
    for method, url, data in urls:
        assert getattr(client, method)(url, data).status_code == 404, url
    team.refresh_from_db()
    assert team.name == "Alice's Team" and role_of(bob, team) == "member"
    assert Invitation.objects.get(pk=invitation.pk).status == "pending"


def test_a_member_changing_a_role_is_refused_with_a_message(bob, vera, team):
    response = browser_for(bob).post(f"/accounts/teams/{team.id}/members/{vera.id}/role/", {"role": "admin"})
    assert response.status_code == 403
    assert any("Only owners and admins can change roles" in m for m in messages_of(response))
    assert role_of(vera, team) == "viewer"


def test_the_owner_changes_a_role_and_removes_a_member(alice, bob, vera, team):
    client = browser_for(alice)
    assert (
        client.post(f"/accounts/teams/{team.id}/members/{bob.id}/role/", {"role": "admin"}).status_code == 302
    )
    assert client.post(f"/accounts/teams/{team.id}/members/{vera.id}/remove/").status_code == 302
    assert (role_of(bob, team), role_of(vera, team)) == ("admin", None)


def test_the_last_owner_cannot_leave_or_be_demoted_from_the_page(alice, team):
    client = browser_for(alice)
    leave = client.post(f"/accounts/teams/{team.id}/leave/")
    demote = client.post(f"/accounts/teams/{team.id}/members/{alice.id}/role/", {"role": "member"})
    assert (leave.status_code, demote.status_code) == (409, 409)
    assert any("last owner" in m for m in messages_of(leave))
    assert role_of(alice, team) == "owner"


def test_a_member_leaves(bob, alice, team):
    response = browser_for(bob).post(f"/accounts/teams/{team.id}/leave/")
    assert response["Location"] == "/accounts/teams/"
    assert role_of(bob, team) is None


def test_the_owner_creates_an_invitation_and_sees_its_link_once(alice, team):
    client = browser_for(alice)
    response = client.post(
        f"/accounts/teams/{team.id}/invitations/", {"email": "dora@example.com", "role": "viewer"}
    )

    assert response.status_code == 201
    page = response.content.decode()
    link = re.search(r'id="invitation-link">(http://testserver/accounts/invitations/[^<]+/)<', page).group(1)
    assert Invitation.objects.get(team=team).role == "viewer"
    again = client.get(f"/accounts/teams/{team.id}/").content.decode()
    assert link not in again and "dora@example.com" in again


def test_an_invitation_form_error_shows_next_to_the_field(alice, bob, team):
    response = browser_for(alice).post(
        f"/accounts/teams/{team.id}/invitations/", {"email": "bob@example.com", "role": "member"}
    )
    assert response.status_code == 409
    assert "already a member" in response.context["invite_form"].errors["email"][0]
    assert not Invitation.objects.exists()


def test_the_owner_revokes_an_invitation(alice, team):
    invitation = InvitationFactory(team=team, email="dora@example.com")
    browser_for(alice).post(f"/accounts/teams/{team.id}/invitations/{invitation.id}/revoke/")
    invitation.refresh_from_db()
    assert invitation.status == "revoked"


# --- answering an invitation --------------------------------------------------------------------


def test_a_visitor_opening_an_invitation_is_offered_to_sign_up_with_that_email(team):
    invitation = InvitationFactory(team=team, email="dora@example.com")
    page = Client().get(f"/accounts/invitations/{invitation.token}/").content.decode()
    assert "Join Alice&#x27;s Team" in page
    assert (
        f"/accounts/signup/?next=/accounts/invitations/{invitation.token}/&amp;email=dora@example.com" in page
    )


def test_signing_up_from_an_invitation_link_comes_back_to_it_and_accepts(
    team, django_capture_on_commit_callbacks
):
    invitation = InvitationFactory(team=team, email="dora@example.com", role="member")
    client = Client()
    here = f"/accounts/invitations/{invitation.token}/"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/accounts/signup/?next={here}",
            {
                "email": "dora@example.com",
                "password1": "violet-harbor-1987",
                "password2": "violet-harbor-1987",
                "next": here,
            },
        )
    assert response["Location"] == "/accounts/signup/sent/"
    # The confirmation link carries the invitation along, and signs in on the way back to it.
    link = re.search(r"http://testserver(/accounts/signup/confirm/\S+)", mail.outbox[-1].body).group(1)
    assert client.post(link)["Location"] == here
    assert "Accept" in client.get(here).content.decode()

    accepted = client.post(f"{here}accept/")

    assert accepted["Location"] == f"/accounts/teams/{team.id}/"
    dora = Membership.objects.get(team=team, user__email="dora@example.com")
    assert dora.role == "member"


def test_the_wrong_account_sees_why_it_cannot_accept(charlie, team):
    invitation = InvitationFactory(team=team, email="dora@example.com")
    client = browser_for(charlie)
    page = client.get(f"/accounts/invitations/{invitation.token}/")
    accept = client.post(f"/accounts/invitations/{invitation.token}/accept/")
    assert (page.status_code, accept.status_code) == (403, 403)
    assert "for dora@example.com" in accept.content.decode()
    assert not Membership.objects.filter(team=team, user=charlie).exists()


def test_an_expired_or_used_invitation_page_says_so(team, dora):
    expired = InvitationFactory(team=team, email=dora.email, expires_at=timezone.now() - timedelta(hours=1))
    used = InvitationFactory(team=team, email=dora.email, status="accepted")
    client = browser_for(dora)
    for invitation, words in ((expired, "expired"), (used, "already accepted")):
        response = client.post(f"/accounts/invitations/{invitation.token}/accept/")
        assert response.status_code == 409
        assert words in response.content.decode()
    assert not Membership.objects.filter(team=team, user=dora).exists()


def test_an_unknown_invitation_link_is_a_404_page():
    response = Client().get("/accounts/invitations/not-a-token/")
    assert response.status_code == 404
    assert "not valid" in response.content.decode()


def test_declining_from_the_page(team, dora):
    invitation = InvitationFactory(team=team, email=dora.email)
    response = browser_for(dora).post(f"/accounts/invitations/{invitation.token}/decline/")
    assert response["Location"] == "/"
    invitation.refresh_from_db()
    assert invitation.status == "declined"


@pytest.mark.parametrize("path", ["/", "/datasets/", "/jobs/"])
def test_a_user_without_a_team_is_sent_to_create_or_join_one(dora, path):
    response = browser_for(dora).get(path, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/accounts/teams/new/"
    assert "accept an invitation" in response.content.decode()
