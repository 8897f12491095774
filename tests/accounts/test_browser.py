"""A real browser: sign up, create a team, invite by link, accept in a second browser, create an API
key and call the API with it."""

import json
import os
import re
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM

PASSWORD = "violet-harbor-1987"

# The `browser` fixture (headless Debian Chromium) comes from tests/conftest.py.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def shot(page, name: str) -> None:
    """Screenshots for a person to look at, when TUNEFORGE_SCREENSHOTS names a folder."""
    folder = os.environ.get("TUNEFORGE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_up(page, base: str, email: str) -> None:
    """Signs up and follows the confirmation link e-mailed to `email` (the live server runs in this
    process, so its locmem outbox is ours), ending signed in where the sign-up was headed."""
    from django.core import mail

    page.fill("#id_email", email)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]:has-text('Sign up')")
    page.wait_for_url(f"{base}/accounts/signup/sent/")
    message = next(m for m in reversed(mail.outbox) if m.to == [email])
    page.goto(re.search(r"http://\S+/accounts/signup/confirm/\S+", message.body).group(0))
    page.click("button:has-text('Confirm and sign in')")


def test_sign_up_team_invite_accept_and_use_an_api_key(live_server, browser):
    from accounts.models import Membership

    base = live_server.url
    owner = browser.new_context(base_url=base)
    page = owner.new_page()

    # Sign up: a weak password first, refused next to its field.
    page.goto("/accounts/signup/")
    page.fill("#id_email", "olga@example.com")
    page.fill("#id_password1", "12345")
    page.fill("#id_password2", "12345")
    page.click("button[type=submit]:has-text('Sign up')")
    assert "too short" in page.inner_text("#id_password1_errors")
    shot(page, "01-signup-error")
    sign_up(page, base, "olga@example.com")
    page.wait_for_url(f"{base}/accounts/teams/new/")

    page.fill("#id_name", "Browser Team")
    page.click("button:has-text('Create team')")
    page.wait_for_url(re.compile(r".*/accounts/teams/team-[a-z0-9]+/$"))
    assert "Browser Team" in page.inner_text("h1")

    # Invite by link.
    page.fill("#invite-form #id_email", "ivan@example.com")
    page.select_option("#invite-form #id_role", "member")
    page.click("button:has-text('Create invitation link')")
    link = page.inner_text("#invitation-link").strip()
    assert link.startswith(f"{base}/accounts/invitations/")
    shot(page, "02-team-with-invitation-link")

    # The invitee, in a browser of their own, signs up from the link and accepts.
    invitee = browser.new_context(base_url=base)
    their_page = invitee.new_page()
    their_page.goto(link)
    assert "Join Browser Team" in their_page.inner_text("h1")
    shot(their_page, "03-invitation-anonymous")
    their_page.click("a:has-text('Sign up to accept')")
    assert their_page.input_value("#id_email") == "ivan@example.com"
    sign_up(their_page, base, "ivan@example.com")
    their_page.wait_for_url(link)
    their_page.click("button:has-text('Accept')")
    their_page.wait_for_url(re.compile(r".*/accounts/teams/team-[a-z0-9]+/$"))
    assert "You joined Browser Team as Member." in their_page.inner_text(".messages")
    assert Membership.objects.get(user__email="ivan@example.com").role == "member"

    page.reload()
    assert "ivan@example.com" in page.inner_text("#members")

    # An API key, shown once, used from outside the browser.
    owner.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto("/accounts/api-keys/")
    page.fill("#id_name", "script")
    page.check("input[name=scopes][value=read]")
    page.click("button:has-text('Create key')")
    raw = page.inner_text("#new-key-secret").strip()
    assert re.fullmatch(r"tf_[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}", raw)
    page.click("#new-key button:has-text('Copy')")
    # writeText is asynchronous: read the clipboard only once the button confirms the copy.
    page.wait_for_selector("#new-key button:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    shot(page, "04-api-key-created")

    request = urllib.request.Request(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        me = json.load(response)
    assert me["auth"] == "api_key" and me["active_team"]["name"] == "Browser Team"
    assert me["api_key"]["scopes"] == ["read", "inference"]

    page.reload()
    assert "never" not in page.inner_text(f"tr[data-key='{me['api_key']['id']}'] td.key-last-used")
    invitee.close()
    owner.close()
