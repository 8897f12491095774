"""A real browser, as alice: upload 300 Banking77 rows, launch a job on the tiny model and watch its
loss chart gain points while it runs, read the confusion matrix and the misclassified examples
when it ends, compare it with a second job, start a third from the first one's spec. charlie gets
404 on each of these pages; the Chinese UI renders the same pages. A screenshot of each main page
is kept in the folder the test prints (TUNEFORGE_SCREENSHOTS, else a temporary folder)."""

import os
from pathlib import Path

import pytest

from finetune.models import FineTuneJob
from tests.conftest import CHROMIUM
from tests.datasets.conftest import BANKING
from tests.datasets.test_browser import drop
from tests.jobs.conftest import FAST_WORKER_ENV

PASSWORD = "copper-heron-7315"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

# The number of points of a dataset of the Chart.js chart drawn on `canvas_id`.
POINTS = "([id, n]) => { const c = Chart.getChart(document.getElementById(id)); return c ? c.data.datasets[n].data.length : -1; }"

# The step the kept-checkpoint marker of the chart on `canvas_id` stands at (job_charts.js).
KEPT_MARK = "(id) => Chart.getChart(document.getElementById(id)).options.plugins.keptStep.step"

# Elements of the page content that reach past its right edge (tag.class and their right edge).
OVERFLOWING = """() => { const main = document.querySelector('main'); const edge = main.getBoundingClientRect().right + 1;
  return Array.from(main.querySelectorAll('*')).filter(e => e.getBoundingClientRect().right > edge && !e.closest('.heatmap-scroll, .table-scroll, .chart-box'))
    .slice(0, 10).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`); }"""

# What the pages' scripts (htmx, Chart.js, ours) tried that the strict CSP refused, on every page.
REFUSED: list[str] = []


def _sign_in(browser, live_server, email: str, *, locale: str = "en-US"):
    page = browser.new_context(base_url=live_server.url, locale=locale).new_page()
    page.on(
        "console",
        lambda message: REFUSED.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    return page


def _launch(page, version_id: str, *, suffix: str, max_steps: int, batch_size: int = 8):
    from playwright.sync_api import expect

    page.goto("/jobs/new/")
    page.select_option("select[name=dataset_version]", version_id)
    page.select_option("select[name=method]", "full")
    page.fill("input[name=batch_size]", str(batch_size))
    page.fill("input[name=max_length]", "32")
    page.fill("input[name=max_steps]", str(max_steps))
    page.fill("input[name=eval_every_steps]", str(max_steps // 4))
    page.fill("input[name=suffix]", suffix)
    page.click("button[value=estimate]")
    expect(page.locator("#estimate")).to_contain_text("tokens to train")
    page.click("button[value=launch]")
    expect(page.locator(".msg")).to_contain_text("submitted")
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def test_alice_watches_a_job_reads_its_mistakes_compares_runs_and_copies_a_spec(
    live_server, browser, alice, charlie, base_model, start_worker, tmp_path_factory
):
    from playwright.sync_api import expect

    shots = Path(os.environ.get("TUNEFORGE_SCREENSHOTS") or tmp_path_factory.mktemp("job-page-screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {shots}")

    def shot(page, name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    for user in (alice, charlie):
        user.set_password(PASSWORD)
        user.save()
    start_worker(queues="cpu", name="browser-job-page", env=FAST_WORKER_ENV)
    page = _sign_in(browser, live_server, "alice@example.com")

    page.goto("/datasets/new/")
    drop(page, "train_300.csv", BANKING.read_bytes())
    page.fill("#id_name", "Banking77 300")
    page.click("#upload-button")
    page.wait_for_url("**/datasets/versions/*/", timeout=60_000)
    version_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    # 1. A job long enough to watch: the loss chart gains points between two polls, no reload.
    first = _launch(page, version_id, suffix="watched", max_steps=400)
    expect(page.locator("#job-status")).to_have_text("Running", timeout=60_000)
    page.wait_for_function(f"() => ({POINTS})(['chart-loss', 0]) > 0", timeout=60_000)
    seen = page.evaluate(POINTS, ["chart-loss", 0])
    page.wait_for_function(f"() => ({POINTS})(['chart-loss', 0]) > {seen}", timeout=60_000)
    expect(page.locator(".eta")).to_contain_text("left")
    shot(page, "job-running")

    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=120_000)
    first_steps = FineTuneJob.objects.get(pk=first).step  # 400, unless early stopping ended it sooner
    assert page.evaluate(POINTS, ["chart-loss", 0]) == first_steps  # every step, each drawn once
    assert page.evaluate(POINTS, ["chart-metric", 0]) == 5  # the baseline and four evaluations
    expect(page.locator(".elapsed")).to_contain_text("from start to finish")
    # The step whose weights were exported: said in words and marked on the curves, from the last poll.
    kept = FineTuneJob.objects.get(pk=first).model_version.metrics["kept"]["step"]
    expect(page.locator("#kept-checkpoint .kept-step")).to_contain_text(f"step {kept}")
    page.wait_for_function(f"() => ({KEPT_MARK})('chart-metric') === {kept}", timeout=10_000)
    assert page.evaluate(KEPT_MARK, "chart-loss") == kept
    # The results come into the page with the last poll.
    expect(page.locator("#heatmap")).to_be_visible()
    assert page.locator("#heatmap tbody tr").count() >= 70
    expect(page.locator("ol.confused-pairs li").first).to_contain_text("taken for")
    expect(page.locator("table.misclassified tbody tr").first).to_be_visible()
    assert page.locator("table.misclassified tbody tr").count() <= 20
    expect(page.locator("#event-list")).not_to_contain_text("train_loss=")
    # Events filter by level; the per-class table sorts from the keyboard.
    page.uncheck("input[data-level-filter=info]")
    expect(page.locator("#event-list li.level-info").first).to_be_hidden()
    page.check("input[data-level-filter=info]")
    support = page.locator("table.per-class th button", has_text="Support")
    support.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    expect(page.locator("table.per-class th[aria-sort=descending]")).to_contain_text("Support")
    cells = page.locator("table.per-class tbody tr td:nth-child(5)").all_inner_texts()
    assert [int(c) for c in cells] == sorted((int(c) for c in cells), reverse=True)
    page.click("[data-zoom='-1']")
    expect(page.locator("#heatmap")).to_have_class("heatmap zoom-1")
    if page.locator("nav.pager a[rel=next]").count():
        page.click("nav.pager a[rel=next]")
        expect(page.locator("nav.pager .page-of")).to_contain_text("Page 2")
    shot(page, "job-finished")
    page.locator("#confusion").screenshot(path=str(shots / "confusion-matrix.png"))

    # 2. A second job, then both side by side from the list's checkboxes.
    second = _launch(page, version_id, suffix="second", max_steps=40, batch_size=4)
    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=120_000)
    page.goto("/jobs/")
    page.check(f"#compare-{first}")
    page.check(f"#compare-{second}")
    page.click("#compare-button")
    page.wait_for_url("**/jobs/compare/**")
    expect(page.locator("table.compare-differing")).to_contain_text("batch_size")
    expect(page.locator("table.compare-differing")).not_to_contain_text("max_length")
    expect(page.locator("table.compare-metrics")).to_contain_text("valid_accuracy")
    # One curve per run, every step of each (the list is newest first, so is the selection).
    steps = {job.step for job in FineTuneJob.objects.filter(pk__in=[first, second])}
    assert {page.evaluate(POINTS, ["compare-train-loss", n]) for n in (0, 1)} == steps
    compare_url = page.url
    shot(page, "compare")

    # 3. A third job from the first one's spec.
    page.goto(f"/jobs/{first}/")
    page.click("a.new-from-job")
    expect(page.locator("input[name=max_steps]")).to_have_value("400")
    expect(page.locator("input[name=suffix]")).to_have_value("watched")
    expect(page.locator("select[name=dataset_version]")).to_have_value(version_id)
    shot(page, "new-job-from-spec")
    page.fill("input[name=suffix]", "third")
    page.fill("input[name=max_steps]", "8")
    page.click("button[value=estimate]")
    page.click("button[value=launch]")
    expect(page.locator(".msg")).to_contain_text("submitted")
    third = FineTuneJob.objects.get(suffix="third")
    original = FineTuneJob.objects.get(pk=first)
    assert (third.dataset_version_id, third.base_model_id, third.method, third.seed) == (
        original.dataset_version_id,
        original.base_model_id,
        original.method,
        original.seed,
    )
    assert third.hyperparameters["batch_size"] == original.hyperparameters["batch_size"]

    # 4. charlie, of another team, reaches none of these pages.
    outsider = _sign_in(browser, live_server, "charlie@example.com")
    for url in (f"/jobs/{first}/", f"/jobs/{first}/live/", compare_url, f"/jobs/new/?from={first}"):
        assert outsider.goto(url).status == 404, url

    # 5. The Chinese UI renders the same pages.
    chinese = _sign_in(browser, live_server, "alice@example.com")
    chinese.goto(f"/jobs/{first}/")
    with chinese.expect_navigation():
        chinese.select_option("select[name=language]", "zh-hans")
    expect(chinese.locator("#confusion h2")).to_have_text("混淆矩阵")
    expect(chinese.locator("#misclassified h2")).to_have_text("被错分的验证样本")
    assert chinese.evaluate(POINTS, ["chart-loss", 0]) == first_steps
    shot(chinese, "job-finished-zh")
    chinese.goto(compare_url)
    expect(chinese.locator("h1")).to_have_text("比较运行")
    shot(chinese, "compare-zh")
    # At a phone's width the wide parts (heat map, tables) scroll inside their boxes; the page
    # content itself does not overflow (the top bar is the navigation's business).
    page.set_viewport_size({"width": 390, "height": 844})
    for url in (f"/jobs/{first}/", compare_url):
        page.goto(url)
        assert page.evaluate(OVERFLOWING) == [], url
    shot(page, "compare-phone")
    assert REFUSED == []
