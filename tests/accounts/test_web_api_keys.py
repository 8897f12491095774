"""The API keys page: create (key shown once), list, revoke."""

import re

import pytest
from django.test import Client

from accounts.models import ApiKey
from tests.accounts.helpers import browser_for
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def test_creating_a_key_shows_it_once_in_a_secret_box(bob, team):
    client = browser_for(bob)
    response = client.post(
        "/accounts/api-keys/", {"name": "eval", "scopes": ["read", "inference"], "expires_in_days": "30"}
    )

    assert response.status_code == 201
    raw = re.search(
        r'<pre class="secret" id="new-key-secret">(tf_[^<]+)</pre>', response.content.decode()
    ).group(1)
    key = ApiKey.objects.get(team=team)
    assert (
        raw.startswith(f"tf_{key.prefix}.") and key.scopes == ["read", "inference"] and key.created_by == bob
    )
    assert key.expiry_date is not None
    later = client.get("/accounts/api-keys/").content.decode()
    assert raw not in later and key.public_id in later
    assert (
        Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["active_team"]["id"] == team.id
    )


def test_a_key_needs_a_name_and_a_scope_with_errors_next_to_the_fields(bob, team):
    response = browser_for(bob).post("/accounts/api-keys/", {"name": "", "expires_in_days": ""})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_name_errors"' in page and "Choose at least one scope." in page
    assert not ApiKey.objects.exists()


def test_a_viewer_sees_keys_but_cannot_create_them(vera, team):
    ApiKeyFactory(team=team, name="ci")
    client = browser_for(vera)
    page = client.get("/accounts/api-keys/").content.decode()
    assert "ci" in page and 'id="api-key-form"' not in page
    response = client.post("/accounts/api-keys/", {"name": "mine", "scopes": ["read"]})
    assert response.status_code == 403
    assert ApiKey.objects.filter(team=team).count() == 1


def test_revoking_a_key_from_the_page(alice, team):
    key = ApiKeyFactory(team=team)
    response = browser_for(alice).post(f"/accounts/api-keys/{key.public_id}/revoke/")
    assert response["Location"] == "/accounts/api-keys/"
    key.refresh_from_db()
    assert key.revoked
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {key.raw}").status_code == 401


def test_charlie_cannot_see_or_revoke_alices_keys_from_the_page(charlie, team):
    key = ApiKeyFactory(team=team, name="alice-secret-name")
    client = browser_for(charlie)
    assert "alice-secret-name" not in client.get("/accounts/api-keys/").content.decode()
    assert client.post(f"/accounts/api-keys/{key.public_id}/revoke/").status_code == 404
    key.refresh_from_db()
    assert not key.revoked


def test_a_member_cannot_revoke_someone_elses_key(bob, alice, team):
    key = ApiKeyFactory(team=team, created_by=alice)
    response = browser_for(bob).post(f"/accounts/api-keys/{key.public_id}/revoke/")
    assert response.status_code == 403
    key.refresh_from_db()
    assert not key.revoked


def test_someone_without_a_team_is_sent_to_create_one_first():
    from tests.factories import UserFactory

    response = browser_for(UserFactory(email="loner@example.com")).get("/accounts/api-keys/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/teams/new/"
    assert "create one or accept an invitation first" in response.content.decode()


def test_a_key_restricted_to_some_of_the_teams_endpoints_shows_its_restriction(bob, team, charlie):
    from serving.models import Endpoint

    for slug in ("support", "triage"):
        Endpoint.objects.create(team=team, slug=slug)
    Endpoint.objects.create(team=charlie.memberships.get().team, slug="charlies-secret")
    client = browser_for(bob)
    form = client.get("/accounts/api-keys/").content.decode()
    assert 'name="endpoints" value="support"' in form and 'name="endpoints" value="triage"' in form
    assert "charlies-secret" not in form

    response = client.post(
        "/accounts/api-keys/", {"name": "bot", "scopes": ["inference"], "endpoints": ["support"]}
    )
    assert response.status_code == 201
    assert ApiKey.objects.get(name="bot").endpoints == ["support"]
    client.post("/accounts/api-keys/", {"name": "any", "scopes": ["read"]})
    assert ApiKey.objects.get(name="any").endpoints is None
    rows = client.get("/accounts/api-keys/").content.decode()
    bot_row = re.search(r'<tr data-key="key-[^"]+">\s*<td>bot<.*?</tr>', rows, re.S).group(0)
    any_row = re.search(r'<tr data-key="key-[^"]+">\s*<td>any<.*?</tr>', rows, re.S).group(0)
    assert "<code>support</code>" in bot_row and "triage" not in bot_row
    assert ">all<" in any_row


def test_another_teams_endpoint_posted_by_hand_is_a_field_error(bob, team, charlie):
    from serving.models import Endpoint

    Endpoint.objects.create(team=team, slug="support")
    Endpoint.objects.create(team=charlie.memberships.get().team, slug="charlies-secret")
    response = browser_for(bob).post(
        "/accounts/api-keys/", {"name": "sneaky", "scopes": ["inference"], "endpoints": ["charlies-secret"]}
    )
    assert response.status_code == 400
    assert "charlies-secret" in " ".join(response.context["form"].errors["endpoints"])
    assert 'id="id_endpoints_errors"' in response.content.decode()
    assert not ApiKey.objects.filter(name="sneaky").exists()
