"""The jobs list: paginated, its live updates touch only the rows' changing cells (so ticked Compare
boxes survive), and a failed job's result is a human, translated reason."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from finetune.models import FineTuneJob
from tests.pages.conftest import make_job, web

pytestmark = pytest.mark.django_db


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)">', html)


def test_the_jobs_list_pages_through_every_job_newest_first(alice, team, dataset_version, base_model):
    jobs = [make_job(team, dataset_version, base_model, status="succeeded") for _ in range(60)]
    client = web(alice)

    first = client.get("/jobs/").content.decode()
    second = client.get("/jobs/?page=2").content.decode()

    assert len(_rows(first)) == 50 and len(_rows(second)) == 10
    assert set(_rows(first)) | set(_rows(second)) == {job.id for job in jobs}
    assert "Page 1 of 2 (60 in all)" in first and 'href="?page=2"' in first
    assert _rows(first)[0] == max(jobs, key=lambda j: (j.created_at, j.id)).id


def test_live_updates_replace_only_the_status_cells_and_stop_when_nothing_is_active(
    alice, team, dataset_version, base_model
):
    running = make_job(team, dataset_version, base_model, status="running", total_steps=10, percent=40.0)
    make_job(team, dataset_version, base_model, status="succeeded")
    client = web(alice)

    page = client.get("/jobs/").content.decode()
    # No page reload (it would clear ticked boxes): a poll of the cells instead.
    assert re.search(r'(?<!<noscript>)<meta http-equiv="refresh"', page) is None
    assert 'hx-get="/jobs/rows/?page=1"' in page and 'hx-trigger="every 5s"' in page

    FineTuneJob.objects.filter(pk=running.pk).update(percent=80.0)
    poll = client.get("/jobs/rows/?page=1", HTTP_HX_REQUEST="true").content.decode()
    assert f'id="job-status-{running.id}" class="job-cell" hx-swap-oob="true"' in poll
    assert f'id="job-progress-{running.id}" class="job-cell" hx-swap-oob="true"' in poll and "80%" in poll
    assert 'type="checkbox"' not in poll and "<tr" not in poll  # the boxes are never sent again
    assert 'hx-trigger="every 5s"' in poll

    FineTuneJob.objects.filter(pk=running.pk).update(status="succeeded")
    final = client.get("/jobs/rows/?page=1", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in final  # nothing active on the page: polling stops
    assert "hx-trigger" not in client.get("/jobs/").content.decode()


def test_a_failed_jobs_result_is_a_translated_reason_not_its_code(alice, team, dataset_version, base_model):
    make_job(team, dataset_version, base_model, status="failed", error_code="out_of_memory")
    make_job(team, dataset_version, base_model, status="failed", error_code="some_new_code")
    client = web(alice)

    english = client.get("/jobs/").content.decode()
    assert '<span class="muted job-error-code" title="out_of_memory">Out of memory</span>' in english
    assert ">some new code</span>" in english

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese = client.get("/jobs/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert ">内存不足</span>" in chinese and ">Out of memory<" not in chinese
