"""Staff users administer users, teams, memberships, invitations and keys in the Django admin."""

import pytest
from django.test import Client

from accounts.models import ApiKey, User
from tests.factories import ApiKeyFactory, InvitationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db):
    client = Client()
    client.force_login(UserFactory(email="root@example.com", is_staff=True, is_superuser=True))
    return client


def test_every_accounts_model_has_a_searchable_admin_list(staff_client, alice, team):
    InvitationFactory(team=team, email="dora@example.com")
    ApiKeyFactory(team=team, name="nightly", created_by=alice)
    pages = {
        "/admin/accounts/user/?q=alice": "alice@example.com",
        "/admin/accounts/team/?q=alice": "Alice&#x27;s Team",
        "/admin/accounts/membership/?q=alice": "alice@example.com",
        "/admin/accounts/invitation/?q=dora": "dora@example.com",
        "/admin/accounts/apikey/?q=nightly": "nightly",
    }
    for url, expected in pages.items():
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url
    for url in (
        "/admin/accounts/user/1/change/".replace("1", str(alice.pk)),
        f"/admin/accounts/team/{team.pk}/change/",
    ):
        assert staff_client.get(url).status_code == 200


def test_a_staff_user_adds_a_user_with_a_lowercased_email(staff_client):
    response = staff_client.post(
        "/admin/accounts/user/add/",
        {
            "email": "New@Example.com",
            "usable_password": "true",
            "password1": "violet-harbor-1987",
            "password2": "violet-harbor-1987",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    assert User.objects.get(email="new@example.com").check_password("violet-harbor-1987")


def test_a_staff_user_revokes_keys_from_the_admin(staff_client, team):
    key = ApiKeyFactory(team=team)
    staff_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked and key.revoked_at is not None


def test_keys_cannot_be_minted_in_the_admin(staff_client):
    assert staff_client.get("/admin/accounts/apikey/add/").status_code == 403
    assert not ApiKey.objects.exists()


def test_a_non_staff_user_cannot_open_the_admin(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/accounts/user/")["Location"].startswith("/admin/login/")
