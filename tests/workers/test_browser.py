"""A real browser on /workers/: the table refreshes itself, and the buttons drain and resume."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import CHROMIUM
from tests.factories import UserFactory, WorkerNodeFactory
from workers.models import WorkerNode

PASSWORD = "violet-harbor-1987"
NAME = "gpu0@node-a.example"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_the_workers_page_refreshes_itself_and_its_buttons_drain_and_resume(live_server, browser):
    from playwright.sync_api import expect

    UserFactory(email="olga@ops.example.com", password=PASSWORD, is_staff=True)
    WorkerNodeFactory(name=NAME)
    page = browser.new_context(base_url=live_server.url).new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username], input[name=email]", "olga@ops.example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/workers/")
    row = page.locator(f"tr[data-worker='{NAME}']")
    expect(row.locator(".badge")).to_have_text("online")

    # The worker falls silent; the open page shows it offline without a reload.
    WorkerNode.objects.filter(name=NAME).update(last_heartbeat_at=timezone.now() - timedelta(minutes=5))
    expect(row.locator(".badge").first).to_have_text("offline", timeout=8000)
    WorkerNode.objects.filter(name=NAME).update(last_heartbeat_at=timezone.now())
    expect(row.locator(".badge").first).to_have_text("online", timeout=8000)

    row.locator("button:has-text('Drain')").click()
    expect(page.locator(".msg")).to_contain_text(f"Worker {NAME} is draining")
    expect(row.locator(".badge")).to_have_text("draining")
    if os.environ.get("TUNEFORGE_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["TUNEFORGE_SCREENSHOTS"]) / "workers.png"), full_page=True)
    row.locator("button:has-text('Resume')").click()
    expect(page.locator(".msg")).to_contain_text(f"Worker {NAME} accepts jobs again.")
    expect(row.locator(".badge")).to_have_text("online")
    assert WorkerNode.objects.get(name=NAME).admin_state == "active"
