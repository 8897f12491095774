"""A real browser: the top bar's language selector turns the UI Chinese (and back), and the upload
page's script takes its words from the JavaScript catalog."""

from pathlib import Path

import pytest

from tests.conftest import CHROMIUM
from tests.datasets.test_browser import drop
from tests.factories import MembershipFactory, TeamFactory, UserFactory

PASSWORD = "paper-crane-5820"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_the_language_selector_switches_the_ui_to_chinese_and_back(live_server, browser):
    from playwright.sync_api import expect

    user = UserFactory(email="mei@example.com", password=PASSWORD)
    MembershipFactory(team=TeamFactory(name="Mei's Lab"), user=user, role="owner")
    # An English browser, as Chromium's headless default.
    page = browser.new_context(base_url=live_server.url, locale="en-US").new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "mei@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto("/datasets/new/")
    nav = page.locator("nav.mainnav")
    expect(nav).to_contain_text("Datasets")

    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")

    expect(page).to_have_url(f"{live_server.url}/datasets/new/")  # back on the same page
    for word in ["仪表盘", "数据集", "微调任务", "团队", "API 密钥"]:
        expect(nav).to_contain_text(word)
    for word in ["Dashboard", "Datasets", "Jobs", "API keys"]:
        expect(nav).not_to_contain_text(word)
    expect(page.locator("h1")).to_have_text("上传数据集")
    assert page.locator("html").get_attribute("lang") == "zh-hans"

    # The upload script's own words come from /jsi18n/; the API's message itself stays English.
    drop(page, "ragged.csv", b"text,label\ngood,a\nbad,b,extra\nfine,b\n")
    expect(page.locator("#file-name")).to_contain_text("字节")
    page.click("#upload-button")
    header = page.locator("table.report-errors thead")
    expect(header).to_have_text("文件行字段问题")
    expect(page.locator("#upload-result .msg-error")).to_contain_text("ragged.csv: line 3")

    with page.expect_navigation():
        page.select_option("select[name=language]", "en")
    expect(nav).to_contain_text("Datasets")
    expect(page.locator("h1")).to_have_text("Upload a dataset")
