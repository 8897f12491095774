"""A real browser: estimate and launch a job from the form, then watch the job page follow it to
success without a reload, and open the model version it produced."""

import re
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM
from tests.factories import MembershipFactory, UserFactory
from tests.jobs.conftest import FAST_WORKER_ENV

PASSWORD = "amber-falcon-2291"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_a_member_estimates_launches_and_follows_a_job_to_its_model(
    live_server, browser, team, dataset_version, start_worker
):
    from playwright.sync_api import expect

    user = UserFactory(email="mia@example.com", password=PASSWORD)
    MembershipFactory(team=team, user=user, role="member")
    start_worker(queues="cpu", name="browser", env=FAST_WORKER_ENV)
    page = browser.new_context(base_url=live_server.url).new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username], input[name=email]", "mia@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.goto("/jobs/new/")
    page.select_option("select[name=dataset_version]", dataset_version.id)
    page.select_option("select[name=method]", "full")
    page.fill("input[name=batch_size]", "8")
    page.fill("input[name=max_length]", "32")
    page.fill("input[name=max_steps]", "40")
    page.fill("input[name=suffix]", "from-browser")
    page.click("button[value=estimate]")
    expect(page.locator("#estimate")).to_contain_text("tokens to train")
    page.click("button[value=launch]")

    expect(page.locator(".msg")).to_contain_text("submitted")
    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=90_000)  # no reload: the page polls
    expect(page.locator("#job-progress")).to_have_attribute("value", "100.0")
    # At most the 40 steps asked for: early stopping (on by default) may end it sooner.
    expect(page.locator(".log-tail")).to_contain_text(re.compile(r"Succeeded after ([1-3]?[0-9]|40) steps"))
    page.click("a.result-link")
    expect(page.locator("h1")).to_contain_text(":from-browser:")
    expect(page.locator("table.files")).to_contain_text("model.safetensors")
