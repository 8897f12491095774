"""Signing up, in and out, and changing or resetting a password, through the web pages."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "violet-harbor-1987"


def test_a_visitor_signs_up_and_lands_on_team_creation():
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {
            "email": "Dora@Example.com",
            "full_name": "Dora",
            "password1": GOOD_PASSWORD,
            "password2": GOOD_PASSWORD,
        },
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/teams/new/"
    user = User.objects.get(email="dora@example.com")
    assert user.full_name == "Dora" and user.check_password(GOOD_PASSWORD)
    assert client.get("/accounts/teams/new/").status_code == 200


def test_sign_up_with_a_taken_email_says_so_next_to_the_field(alice):
    response = Client().post(
        "/accounts/signup/",
        {"email": "ALICE@example.com", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD},
    )
    assert response.status_code == 409
    assert "already exists" in response.context["form"].errors["email"][0]
    assert 'id="id_email_errors"' in response.content.decode()
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short1", "too short"), ("password123", "too common"), ("4815162342123", "entirely numeric")],
)
def test_sign_up_with_a_weak_password_is_refused_with_the_reason(password, reason):
    response = Client().post(
        "/accounts/signup/", {"email": "dora@example.com", "password1": password, "password2": password}
    )
    assert response.status_code == 400
    assert reason in " ".join(response.context["form"].errors["password1"])
    assert not User.objects.filter(email="dora@example.com").exists()


def test_sign_up_with_mismatched_passwords_is_refused():
    response = Client().post(
        "/accounts/signup/",
        {"email": "dora@example.com", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert "differ" in response.context["form"].errors["password2"][0]
    assert not User.objects.exists()


def test_sign_in_is_by_email_whatever_its_case_and_sign_out_works(alice):
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "Alice@Example.COM", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_a_wrong_password_is_refused_on_the_sign_in_page(alice):
    response = Client().post("/accounts/login/", {"username": "alice@example.com", "password": "nope"})
    assert response.status_code == 200
    assert "correct email and password" in response.content.decode()


def test_changing_the_password(alice):
    client = Client()
    client.force_login(alice)
    weak = client.post(
        "/accounts/password/change/",
        {"old_password": "correct horse battery staple", "new_password1": "abc", "new_password2": "abc"},
    )
    assert weak.status_code == 200 and weak.context["form"].errors["new_password2"]
    response = client.post(
        "/accounts/password/change/",
        {
            "old_password": "correct horse battery staple",
            "new_password1": GOOD_PASSWORD,
            "new_password2": GOOD_PASSWORD,
        },
    )
    assert response["Location"] == "/accounts/password/change/done/"
    alice.refresh_from_db()
    assert alice.check_password(GOOD_PASSWORD)


def test_resetting_a_forgotten_password_by_email_link(dora):
    user = dora
    client = Client()
    assert (
        client.post("/accounts/password/reset/", {"email": "DORA@example.com"})["Location"]
        == "/accounts/password/reset/sent/"
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dora@example.com"]
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)

    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD})

    assert done["Location"] == "/accounts/password/reset/done/"
    user.refresh_from_db()
    assert user.check_password(GOOD_PASSWORD)
    assert "no longer works" in client.get(link, follow=True).content.decode()


def test_a_reset_for_an_unknown_email_sends_nothing_and_says_the_same():
    response = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []
