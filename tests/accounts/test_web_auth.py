"""Signing up, in and out, and changing or resetting a password, through the web pages."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "violet-harbor-1987"


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"')


@pytest.fixture
def sign_up(django_capture_on_commit_callbacks):
    """Posts the sign-up form; its e-mail leaves on commit, which the test's transaction delays."""

    def post(client: Client, email: str, *, password: str = GOOD_PASSWORD, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/accounts/signup/", {"email": email, "password1": password, "password2": password, **extra}
            )

    return post


def emailed_link(message) -> str:
    return re.search(r"http://testserver(/\S+)", message.body).group(1)


def test_a_visitor_signs_up_confirms_by_email_and_lands_on_team_creation(sign_up):
    client = Client()
    response = sign_up(client, "Dora@Example.com", full_name="Dora")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/sent/"
    assert "Check your email" in client.get(response["Location"]).content.decode()
    user = User.objects.get(email="dora@example.com")
    assert user.full_name == "Dora" and user.check_password(GOOD_PASSWORD) and not user.is_active
    # Not in yet: the account waits for its link.
    assert client.get("/accounts/teams/new/").status_code == 302

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dora@example.com"]
    link = emailed_link(mail.outbox[0])
    assert link.startswith("/accounts/signup/confirm/")
    # Opening the link (as a mail scanner would) confirms nothing; the button does.
    page = client.get(link)
    assert page.status_code == 200 and "Confirm and sign in" in page.content.decode()
    confirmed = client.post(link)

    assert confirmed["Location"] == "/accounts/teams/new/"
    assert client.get("/accounts/teams/new/").status_code == 200
    user.refresh_from_db()
    assert user.is_active
    assert client.post(link).status_code == 400  # used once
    other = Client()
    assert other.post("/accounts/login/", {"username": "dora@example.com", "password": GOOD_PASSWORD})[
        "Location"
    ].startswith("/")


def test_sign_up_answers_the_same_for_a_taken_email_and_tells_its_owner(alice, sign_up):
    taken = sign_up(Client(), "ALICE@example.com")
    free = sign_up(Client(), "dora@example.com")

    assert (taken.status_code, taken["Location"]) == (free.status_code, free["Location"])
    assert taken.content == free.content
    pages = [Client().get(r["Location"]) for r in (taken, free)]
    assert pages[0].status_code == pages[1].status_code == 200
    assert CSRF_INPUT.sub("", pages[0].content.decode()) == CSRF_INPUT.sub("", pages[1].content.decode())
    # Refusals of what was typed do not depend on the address either.
    short = [sign_up(Client(), email, password="x1") for email in ("alice@example.com", "erin@example.com")]
    assert short[0].status_code == short[1].status_code == 400
    assert short[0].context["form"].errors == short[1].context["form"].errors

    to_alice = [m for m in mail.outbox if m.to == ["alice@example.com"]]
    assert len(to_alice) == 1 and "already has one" in to_alice[0].body
    assert "http://testserver/accounts/login/" in to_alice[0].body
    assert "http://testserver/accounts/password/reset/" in to_alice[0].body
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1
    alice.refresh_from_db()
    assert alice.is_active and alice.check_password("correct horse battery staple")


def test_signing_up_again_before_confirming_sends_a_new_link_that_alone_works(sign_up):
    first, second = Client(), Client()
    sign_up(first, "dora@example.com")
    sign_up(second, "dora@example.com", password=GOOD_PASSWORD + "!")
    old, new = (emailed_link(m) for m in mail.outbox)
    assert first.post(old).status_code == 400
    assert second.post(new).status_code == 302
    assert User.objects.get(email="dora@example.com").check_password(GOOD_PASSWORD + "!")


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


def test_a_short_mismatched_password_reports_its_weakness_and_the_mismatch():
    response = Client().post(
        "/accounts/signup/", {"email": "dora@example.com", "password1": "abc", "password2": "abd"}
    )
    errors = response.context["form"].errors
    assert response.status_code == 400
    assert "too short" in " ".join(errors["password1"]) and "differ" in errors["password2"][0]


def test_every_account_form_labels_the_address_email(team, alice):
    pages = [
        Client().get(url).content.decode()
        for url in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/")
    ]
    owner = Client()
    owner.force_login(alice)
    pages.append(owner.get(f"/accounts/teams/{team.id}/").content.decode())
    for page in pages:
        assert re.search(
            r'<label for="id_email">Email:?</label>|<label for="id_username">Email:?</label>', page
        ), page
        assert "E-mail" not in page


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
        {"old_password": "correct horse battery staple", "new_password1": "abc", "new_password2": "abd"},
    )
    errors = weak.context["form"].errors
    assert weak.status_code == 200
    assert "too short" in " ".join(errors["new_password1"]) and "differ" in errors["new_password2"][0]
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
