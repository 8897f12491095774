"""A real browser drops samples/banking77/train_300.csv on the upload page and reads the result."""

import base64
import os
from pathlib import Path

import pytest

from datasets_app.models import DatasetVersion
from tests.conftest import CHROMIUM
from tests.datasets.conftest import BANKING
from tests.factories import MembershipFactory, TeamFactory, UserFactory

PASSWORD = "amber-lantern-4471"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

DROP = """([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type: "text/csv"}));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
  }
}"""


def signed_in_page(browser, live_server):
    user = UserFactory(email="dana@example.com", password=PASSWORD)
    MembershipFactory(team=TeamFactory(name="Dana's Team"), user=user, role="owner")
    page = browser.new_context(base_url=live_server.url).new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username], input[name=email]", "dana@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def drop(page, name: str, content: bytes) -> None:
    page.evaluate(DROP, [base64.b64encode(content).decode(), name])


def test_dropping_banking77_shows_the_report_and_the_label_chart(live_server, browser):
    from playwright.sync_api import expect

    page = signed_in_page(browser, live_server)
    page.goto("/datasets/new/")
    drop(page, "train_300.csv", BANKING.read_bytes())
    expect(page.locator("#file-name")).to_contain_text("train_300.csv")
    page.fill("#id_name", "Banking77 from the browser")
    page.click("#upload-button")

    page.wait_for_url("**/datasets/versions/*/", timeout=60_000)
    expect(page.locator("h1")).to_contain_text("Banking77 from the browser · v1")
    expect(page.locator("#report")).to_contain_text("No blocking errors")
    expect(page.locator("#report")).to_contain_text("label(s) have fewer than 5 training examples")
    # Chart.js drew both charts: one bar per label (75 of Banking77's intents are in these rows).
    expect(page.locator("canvas#label-chart")).to_be_visible()
    expect(page.locator("canvas#token-chart")).to_be_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart('label-chart')")
    assert page.evaluate("Chart.getChart('label-chart').data.labels.length") == 75
    assert page.evaluate("Chart.getChart('token-chart').data.labels.length") > 3
    version = DatasetVersion.objects.get()
    assert (version.row_count, version.validation_row_count) == (270, 30)
    if os.environ.get("TUNEFORGE_SCREENSHOTS"):
        page.screenshot(
            path=os.path.join(os.environ["TUNEFORGE_SCREENSHOTS"], "dataset-version.png"), full_page=True
        )

    # The same content again is recognised, not duplicated.
    page.goto("/datasets/new/")
    drop(page, "train_300.csv", BANKING.read_bytes())
    page.fill("#id_name", "Banking77 from the browser")
    page.click("#upload-button")
    page.wait_for_url("**/datasets/versions/*/?existing=1", timeout=60_000)
    expect(page.locator(".msg")).to_contain_text("no new version was created")
    assert DatasetVersion.objects.count() == 1


def test_a_bad_file_shows_the_reports_errors_with_their_lines(live_server, browser):
    from playwright.sync_api import expect

    page = signed_in_page(browser, live_server)
    page.goto("/datasets/new/")
    drop(page, "ragged.csv", b"text,label\ngood,a\nbad,b,extra\nfine,b\n")
    # Every state the progress bar goes through, recorded as it happens.
    page.evaluate("""() => { window.progressSeen = [];
      new MutationObserver(() => window.progressSeen.push(document.getElementById("progress-bar")
        .getAttribute("aria-valuenow"))).observe(document.getElementById("progress-bar"), {attributes: true}); }""")
    page.click("#upload-button")
    expect(page.locator("#upload-result .msg-error")).to_contain_text("ragged.csv: line 3")
    seen = page.evaluate("window.progressSeen")
    assert seen[0] == "0" and seen[-1] == "100", seen
    expect(page.locator(".progress")).to_be_hidden()
    expect(page.locator("table.report-errors tbody tr")).to_have_count(1)
    expect(page.locator("table.report-errors")).to_contain_text("expected 2 fields (text, label), found 3")
    assert page.url.endswith("/datasets/new/")
    assert not DatasetVersion.objects.exists()


def test_the_twitter_pair_and_the_oasst_json_import_through_the_page(live_server, browser):
    from playwright.sync_api import expect

    from tests.datasets.conftest import OASST, TWITTER_TRAIN, TWITTER_VALID

    page = signed_in_page(browser, live_server)
    page.goto("/datasets/new/")
    drop(page, TWITTER_TRAIN.name, TWITTER_TRAIN.read_bytes())
    page.click("details.options summary")
    page.set_input_files("#id_validation_file", str(TWITTER_VALID))
    page.fill("#id_label_names", '{"0": "bearish", "1": "bullish", "2": "neutral"}')
    page.click("#upload-button")
    page.wait_for_url("**/datasets/versions/*/", timeout=60_000)
    expect(page.locator("body")).to_contain_text("300 training rows, 100 validation rows")
    page.wait_for_function("() => window.Chart && Chart.getChart('label-chart')")
    assert page.evaluate("Chart.getChart('label-chart').data.labels.length") == 3
    expect(page.locator("#report")).to_contain_text("occur only in the validation data: neutral")

    page.goto("/datasets/new/")
    drop(page, OASST.name, OASST.read_bytes())
    page.click("#upload-button")
    page.wait_for_url("**/datasets/versions/*/", timeout=60_000)
    expect(page.locator("h1")).to_contain_text("oaast_sft_zh_120 · v1")
    expect(page.locator("#preview ol.chat").first).to_contain_text("assistant")
    assert sorted(DatasetVersion.objects.values_list("task", flat=True)) == ["chat_sft", "classification"]
