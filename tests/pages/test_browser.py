"""A real browser at phone width (390 px) and in Chinese on the site's pages: nothing wider than
the screen, "Sign out" reachable, long label lists and hashes inside their cards, the charts drawn,
the staff pages there for staff only. Screenshots go to $TUNEFORGE_SCREENSHOTS (else the test's
temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM
from tests.pages.conftest import make_job, make_model_version

PASSWORD = "correct horse battery staple"  # the factories' default
PHONE = {"width": 390, "height": 844}
# The elements sticking out of the screen (outside a scroll box), to name them in a failure.
WIDEST = """() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > 391 && !e.closest('.table-scroll, .chart-box'))
  .slice(0, 6).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def _page(browser, live_server, email: str, *, locale: str = "en-US"):
    context = browser.new_context(base_url=live_server.url, viewport=PHONE, locale=locale)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page


def _fits_the_phone(page, url: str, shots: Path, name: str) -> None:
    response = page.goto(url)
    assert response.status == 200, url
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > PHONE["width"]:
        wide = page.evaluate(WIDEST)
        raise AssertionError(f"{url} is {width}px wide: {wide}")
    sign_out = page.locator("form[action='/accounts/logout/'] button")
    box = sign_out.bounding_box()
    assert sign_out.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], url
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _inside(page, inner: str, outer: str) -> bool:
    a, b = page.locator(inner).first.bounding_box(), page.locator(outer).first.bounding_box()
    return a["x"] >= b["x"] - 0.5 and a["x"] + a["width"] <= b["x"] + b["width"] + 0.5


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("TUNEFORGE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_pages_fit_a_phone_in_english_and_chinese(
    live_server, browser, alice, team, dataset_version, base_model, artifacts, shots
):
    version = make_model_version(make_job(team, dataset_version, base_model, method="lora"), artifacts)
    for i in range(12):
        make_job(
            team,
            dataset_version,
            base_model,
            suffix=f"run-{i}",
            status="running",
            latest_metrics={"train_loss": 1.5},
        )
    pages = {
        "dashboard": "/",
        "jobs": "/jobs/",
        "models": "/jobs/models/",
        "model": f"/jobs/models/{version.id}/",
        "dataset-version": f"/datasets/versions/{dataset_version.id}/",
    }
    page = _page(browser, live_server, alice.email)
    for name, url in pages.items():
        _fits_the_phone(page, url, shots, f"phone-{name}")

    page.goto(pages["model"])
    assert _inside(page, "#metrics .chip-list", "#metrics")  # 77 long labels stay in their card
    assert _inside(page, "#provenance code", "#provenance")  # so does the dataset hash
    assert page.locator("#model-card table").count() == 1  # the card's Markdown rendered

    page.goto(pages["jobs"])
    assert "Banking intents v1" in page.locator("table.jobs").inner_text()  # the dataset's name

    page.goto(pages["dataset-version"])
    page.wait_for_function("() => window.Chart && Chart.getChart('label-chart')")
    assert page.evaluate("Chart.getChart('label-chart').data.labels.length") == 4
    assert page.locator("a.button", has_text="Fine-tune this").get_attribute("href") == (
        f"/jobs/new/?dataset_version={dataset_version.id}"
    )
    page.locator("a.button", has_text="Fine-tune this").click()
    assert page.locator("#id_dataset_version").input_value() == dataset_version.id

    chinese = _page(browser, live_server, alice.email, locale="zh-CN")
    for name, url in pages.items():
        _fits_the_phone(chinese, url, shots, f"phone-zh-{name}")
    chinese.goto("/")
    body = chinese.locator("main").inner_text()
    assert "最近的任务" in body and "训练损失" in body and "Recent jobs" not in body
    chinese.goto("/jobs/")
    assert "LoRA" in chinese.locator("table.jobs").inner_text()
    assert "任意 GPU" in chinese.goto("/jobs/new/").text()  # the device class's option


def test_staff_pages_fit_a_phone_and_do_not_exist_for_others(
    live_server, browser, olga, charlie, team, dataset_version, base_model, artifacts, shots
):
    version = make_model_version(make_job(team, dataset_version, base_model), artifacts)
    page = _page(browser, live_server, olga.email)
    for name, url in {"staff-jobs": "/staff/jobs/", "staff-base-models": "/staff/base-models/"}.items():
        _fits_the_phone(page, url, shots, f"phone-{name}")
    page.goto("/staff/jobs/")
    with page.expect_navigation():
        page.select_option("#f-status", "succeeded")  # the filters send themselves
    assert page.locator("tr[data-job]").count() == 1

    outsider = _page(browser, live_server, charlie.email)
    for url in ("/staff/jobs/", "/staff/base-models/", f"/jobs/models/{version.id}/"):
        assert outsider.goto(url).status == 404, url


def test_ticked_compare_boxes_survive_the_jobs_lists_live_updates(
    live_server, browser, alice, team, dataset_version, base_model, shots
):
    from playwright.sync_api import expect

    from finetune.models import FineTuneJob

    running = make_job(team, dataset_version, base_model, status="running", total_steps=10, percent=10.0)
    done = make_job(team, dataset_version, base_model, status="succeeded")
    page = _page(browser, live_server, alice.email)
    page.goto("/jobs/")
    page.check(f"#compare-{done.id}")
    page.check(f"#compare-{running.id}")

    FineTuneJob.objects.filter(pk=running.pk).update(percent=70.0, step=7)
    # The poll (every 5 s) swaps in the row's progress cell; the page is not reloaded.
    expect(page.locator(f"#job-progress-{running.id}")).to_contain_text("70%", timeout=15_000)
    assert page.is_checked(f"#compare-{done.id}") and page.is_checked(f"#compare-{running.id}")
    page.screenshot(path=str(shots / "jobs-list-live.png"), full_page=True)
    _fits_the_phone(page, "/jobs/", shots, "phone-jobs-list")
