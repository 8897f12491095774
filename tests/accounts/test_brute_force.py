"""Failed sign-ins are braked per account and per client address, failed API keys per address:
429 with Retry-After, counted in Redis so every process shares the counts."""

import pytest
from django.test import Client, override_settings

from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

SMALL = dict(
    TUNEFORGE_LOGIN_FAILURES_PER_ACCOUNT=3,
    TUNEFORGE_LOGIN_FAILURES_PER_ADDRESS=5,
    TUNEFORGE_LOGIN_LOCKOUT_SECONDS=120,
    TUNEFORGE_API_KEY_FAILURES_PER_ADDRESS=3,
    TUNEFORGE_API_KEY_LOCKOUT_SECONDS=120,
)


def sign_in(email, password, address="10.0.0.1"):
    return Client(REMOTE_ADDR=address).post("/accounts/login/", {"username": email, "password": password})


@override_settings(**SMALL)
def test_an_account_is_braked_after_repeated_failures_even_with_the_right_password(alice):
    alice.set_password("the-right-password-42")
    alice.save()
    for n in range(3):
        assert sign_in("alice@example.com", "wrong", address=f"10.0.0.{n}").status_code == 200

    braked = sign_in("alice@example.com", "the-right-password-42", address="10.0.0.9")

    assert braked.status_code == 429
    assert 0 < int(braked["Retry-After"]) <= 120
    assert "Too many failed sign-ins" in braked.content.decode()


@override_settings(**SMALL)
def test_an_address_is_braked_after_failures_across_accounts(alice, bob):
    for n in range(5):
        sign_in(f"nobody{n}@example.com", "wrong")
    assert sign_in("bob@example.com", "whatever").status_code == 429
    # Another address is not slowed by these failures.
    bob.set_password("bobs-password-1234")
    bob.save()
    assert sign_in("bob@example.com", "bobs-password-1234", address="10.9.9.9").status_code == 302


@override_settings(**SMALL)
def test_a_good_sign_in_still_works_below_the_threshold(alice):
    alice.set_password("the-right-password-42")
    alice.save()
    sign_in("alice@example.com", "wrong")
    assert sign_in("alice@example.com", "the-right-password-42").status_code == 302


@override_settings(**SMALL)
def test_failed_api_keys_brake_the_address_but_not_another_clients_valid_key(team, alice):
    key = ApiKeyFactory(team=team, created_by=alice)
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(3):
        guess = f"tf_abcdefg{n}.{'x' * 32}"
        assert attacker.get("/api/v1/api-keys", HTTP_AUTHORIZATION=f"Bearer {guess}").status_code == 401

    braked = attacker.get("/api/v1/api-keys", HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert braked.status_code == 429 and 0 < int(braked["Retry-After"]) <= 120
    assert braked.json()["error"]["message"].startswith("Too many failed API-key attempts")
    openai_face = attacker.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    assert openai_face.status_code == 429 and openai_face.json()["error"]["type"] == "rate_limit_error"

    honest = Client(REMOTE_ADDR="198.51.100.2")
    assert honest.get("/api/v1/api-keys", HTTP_AUTHORIZATION=f"Bearer {key.raw}").status_code == 200
