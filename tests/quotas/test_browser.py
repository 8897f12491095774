"""A real browser on /usage/: Chart.js draws every chart from the page's data block under the strict
Content-Security-Policy (no inline script), and the team budget panel shows."""

import os
import time
from pathlib import Path

import pytest

from serving import metering, quotas
from serving.models import QuotaPolicy
from serving.usage import usage_flush
from tests.conftest import CHROMIUM
from tests.factories import MembershipFactory, TeamFactory, UserFactory

PASSWORD = "amber-orchard-2041"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_the_usage_page_draws_its_charts_and_the_budget(live_server, browser):
    from playwright.sync_api import expect

    user = UserFactory(email="ursula@example.com", password=PASSWORD)
    team = TeamFactory(name="Usage Team")
    MembershipFactory(team=team, user=user, role="owner")
    QuotaPolicy.objects.create(team=team, monthly_requests=1000)
    now = int(time.time())
    for i, endpoint in enumerate(("support", "support", "writer")):
        metering.record_call(
            client=quotas.quota_client(), team_id=team.pk, endpoint_id=endpoint, key_id="key-abc",
            version_id="mv-1", status=200 if i else 429, latency_ms=20 + i, input_tokens=4, output_tokens=1,
            now=now - 120,
        )  # fmt: skip
    usage_flush(now=now + 60)

    page = browser.new_context(base_url=live_server.url).new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/accounts/login/")
    page.fill("input[name=username], input[name=email]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/usage/?range=1h&granularity=minute")
    expect(page.locator("#usage-totals")).to_contain_text("3")
    expect(page.locator("#team-budget")).to_be_visible()
    page.wait_for_function("document.querySelectorAll('canvas[data-usage-chart]').length === 8")
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('canvas[data-usage-chart]')).map(c => !!Chart.getChart(c))"
    )
    assert drawn == [True] * 8
    datasets = page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-by=endpoint][data-metric=requests]'))"
        ".data.datasets.map(d => d.label)"
    )
    assert sorted(datasets) == ["support", "writer"]
    # Each chart keeps to its own cell of the grid: none overlaps another, none widens the page.
    layout = page.evaluate(
        """() => {
          const boxes = Array.from(document.querySelectorAll('canvas[data-usage-chart]'))
            .map(c => c.getBoundingClientRect());
          const overlapping = [];
          boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b, k) => {
            if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
              overlapping.push([i, i + 1 + k]);
          }));
          return {overlapping, overflow: document.documentElement.scrollWidth - window.innerWidth,
                  smallest: Math.min(...boxes.map(b => Math.min(b.width, b.height)))};
        }"""
    )
    assert layout["overlapping"] == [] and layout["overflow"] <= 0, layout
    assert layout["smallest"] >= 150, layout  # drawn at a readable size, not squeezed
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    if os.environ.get("TUNEFORGE_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["TUNEFORGE_SCREENSHOTS"]) / "usage.png"), full_page=True)
