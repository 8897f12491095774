"""The dashboard: recent jobs with their main metric, datasets, workers per device class, the
team's place in the queue and this month's GPU-hours against the quota; empty states say what next."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from finetune.models import JobAttempt
from tests.factories import WorkerNodeFactory
from tests.pages.conftest import make_job, make_model_version, web

pytestmark = pytest.mark.django_db


def test_a_new_team_is_told_what_to_do_first(alice):
    page = web(alice).get("/").content.decode()
    assert "No dataset yet." in page and 'href="/datasets/new/"' in page
    assert "No job yet." in page and 'href="/jobs/new/"' in page
    assert "No worker is online" in page


def test_recent_jobs_show_status_dataset_and_main_metric(alice, team, dataset_version, base_model, artifacts):
    running = make_job(
        team, dataset_version, base_model, status="running", latest_metrics={"train_loss": 1.2345}
    )
    done = make_model_version(make_job(team, dataset_version, base_model), artifacts).job
    page = web(alice).get("/").content.decode()
    row = page[page.index(f'<tr data-job="{running.id}">') :]
    assert "badge running" in row[:400] and "training loss <strong>1.2345</strong>" in row[:900]
    row = page[page.index(f'<tr data-job="{done.id}">') :]
    assert "badge succeeded" in row[:400] and "validation accuracy <strong>0.7500</strong>" in row[:900]
    assert "Banking intents v1" in row[:900]
    assert "Banking intents" in page[page.index('class="recent-datasets"') :]


def test_queue_positions_workers_per_class_and_gpu_hours(
    alice, team, charlie_team, dataset_version, base_model
):
    from tests.factories import DatasetVersionFactory

    other = DatasetVersionFactory(team=charlie_team, name="other")
    make_job(charlie_team, other, base_model, queue="gpu", device_class="gpu")
    mine = make_job(team, dataset_version, base_model, queue="gpu", device_class="gpu")
    WorkerNodeFactory(name="gpu0@a", device_class="h200", current_job_id="ftjob-x")
    WorkerNodeFactory(name="gpu1@a", device_class="h200")
    WorkerNodeFactory(name="cpu0@b", device_class="cpu", device_kind="cpu", queues=["cpu"])
    started = timezone.now() - timedelta(hours=3)
    finished = make_job(team, dataset_version, base_model, status="succeeded", device_class="h200")
    JobAttempt.objects.create(
        job=finished,
        number=1,
        worker="gpu0@a",
        device_class="h200",
        started_at=started,
        ended_at=started + timedelta(hours=2),
    )
    team.monthly_gpu_hours = 8
    team.save()

    page = web(alice).get("/").content.decode()
    queue = page[page.index('<ul class="queue">') :]
    assert mine.id in queue[:400] and "#2 in queue" in queue[:400]  # charlie's job came first
    classes = page[page.index('class="table compact worker-classes"') :]
    assert '<tr data-device-class="h200"><td>NVIDIA H200</td><td>2</td><td>1</td></tr>' in classes
    assert '<tr data-device-class="cpu"><td>CPU</td><td>1</td><td>1</td></tr>' in classes
    assert "2.00 of 8.00 GPU-hours used" in page and 'value="25.0"' in page


def test_the_dashboard_speaks_chinese(alice, team, dataset_version, base_model):
    from datetime import timedelta

    from finetune.models import FineTuneJob

    job = make_job(team, dataset_version, base_model, status="running", latest_metrics={"train_loss": 1.0})
    FineTuneJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "最近的任务" in page and "训练损失" in page and "本月 GPU 小时" in page
    assert "5分钟之前" in page  # Django's own "5 minutes ago", not "5 minutes"
    assert "Recent jobs" not in page and "training loss" not in page
