"""Small helpers shared by the accounts and API tests."""

from django.test import Client

from accounts.models import Membership


def error_of(response) -> dict:
    """The native API's error object, after checking the body is exactly `{"error": {...}}`."""
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def openai_error_of(response) -> dict:
    """The `/v1/` error object, after checking OpenAI's exact shape."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def role_of(user, team) -> str | None:
    membership = Membership.objects.filter(user=user, team=team).first()
    return membership.role if membership else None


def browser_for(user) -> Client:
    """A Django test client signed in as `user` (for the server-rendered pages)."""
    client = Client()
    client.force_login(user)
    return client
