"""Pages for platform staff: the base-model registry (add with a load check on a worker, enable,
disable, default) and every team's jobs with filters. To anyone else they do not exist."""

from __future__ import annotations

import pytest

from finetune import registry
from finetune.models import BaseModel
from tests.celery_harness import wait_until
from tests.factories import DatasetVersionFactory
from tests.pages.conftest import make_job, web

pytestmark = pytest.mark.django_db

PAGES = ("/staff/base-models/", "/staff/jobs/")


@pytest.mark.parametrize("persona", ["alice", "bob", "charlie", "dora"])
def test_the_staff_pages_do_not_exist_for_anyone_but_staff(request, persona, base_model):
    client = web(request.getfixturevalue(persona))
    for url in PAGES:
        assert client.get(url).status_code == 404, url
    assert client.post("/staff/base-models/tiny-bert/disable/").status_code == 404
    assert BaseModel.objects.get(name="tiny-bert").enabled
    assert "/staff/jobs/" not in client.get("/jobs/").content.decode()


def _add(client, source, **overrides):
    form = {
        "name": "tiny-bert-2",
        "display_name": "Tiny BERT 2",
        "source": source,
        "kind": "encoder",
        "tasks": ["classification"],
        "max_length": "64",
        "device_class": "cpu",
        "description": "",
    }
    form.update(overrides)
    return client.post("/staff/base-models/", form)


def test_an_added_model_stays_disabled_until_it_loads(
    olga, base_model, tiny_bert, django_capture_on_commit_callbacks
):
    client = web(olga)
    with django_capture_on_commit_callbacks(execute=False):
        response = _add(client, tiny_bert)
    assert response.status_code == 302
    added = BaseModel.objects.get(name="tiny-bert-2")
    assert (added.enabled, added.check_status) == (False, "pending")
    assert "checking" in client.get("/staff/base-models/").content.decode()
    # What the worker's check task runs:
    checked = registry.base_model_check(name="tiny-bert-2")
    assert (checked.enabled, checked.check_status, checked.check_message) == (True, "ok", "")


def test_a_path_that_does_not_load_is_refused_with_its_reason(
    olga, base_model, tmp_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _add(web(olga), str(tmp_path / "missing"))
    checked = registry.base_model_check(name="tiny-bert-2")
    assert (checked.enabled, checked.check_status) == (False, "failed")
    page = web(olga).get("/staff/base-models/").content.decode()
    assert "does not load" in page and "missing" in page
    refused = web(olga).post("/staff/base-models/tiny-bert-2/enable/", follow=True).content.decode()
    assert "its load check has not passed" in refused
    assert not BaseModel.objects.get(name="tiny-bert-2").enabled


def test_the_form_names_the_bad_field(olga, base_model):
    response = _add(web(olga), "", name="tiny-bert")
    page = response.content.decode()
    assert response.status_code == 400 and 'id="id_source_errors"' in page
    duplicate = _add(web(olga), "/models/x", name="tiny-bert")
    assert duplicate.status_code == 409 and "exists already" in duplicate.content.decode()


def test_staff_enable_disable_and_choose_the_default(olga, base_model):
    other = BaseModel.objects.create(
        name="other", display_name="Other", source="/m", kind="encoder", tasks=[]
    )
    client = web(olga)
    page = client.get("/staff/base-models/").content.decode()
    assert "data-confirm=" in page  # disabling asks first
    refused = client.post("/staff/base-models/tiny-bert/disable/", follow=True).content.decode()
    assert "is the default base model" in refused
    client.post("/staff/base-models/other/default/")
    assert BaseModel.objects.get(is_default=True) == other
    client.post("/staff/base-models/tiny-bert/disable/")
    assert not BaseModel.objects.get(name="tiny-bert").enabled
    client.post("/staff/base-models/tiny-bert/enable/")
    assert BaseModel.objects.get(name="tiny-bert").enabled


def test_all_jobs_of_every_team_filter_and_paginate(olga, team, charlie_team, dataset_version, base_model):
    other = DatasetVersionFactory(team=charlie_team, name="charlie data")
    mine = make_job(
        team, dataset_version, base_model, status="running", device_class="h200", queue="gpu.h200"
    )
    theirs = make_job(charlie_team, other, base_model)
    client = web(olga)
    page = client.get("/staff/jobs/").content.decode()
    assert mine.id in page and theirs.id in page and "Charlie&#x27;s Team" in page
    for query, shown, hidden in (
        ({"team": charlie_team.id}, theirs, mine),
        ({"status": "running"}, mine, theirs),
        ({"device_class": "h200"}, mine, theirs),
    ):
        page = client.get("/staff/jobs/", query).content.decode()
        assert shown.id in page and hidden.id not in page, query
    assert (
        "No job matches these filters." in client.get("/staff/jobs/", {"base_model": "nope"}).content.decode()
    )
    bad = client.get("/staff/jobs/", {"status": "bogus"}).content.decode()
    assert "Unknown status" in bad
    for _ in range(55):
        make_job(team, dataset_version, base_model)
    first = client.get("/staff/jobs/").content.decode()
    assert "Page 1 of 2 (57 in all)" in first and "page=2" in first
    assert first.count("<tr data-job=") == 50


@pytest.mark.slow
def test_a_real_worker_checks_an_added_model(olga, base_model, tiny_bert, start_worker):
    start_worker(queues="cpu", name="checker")
    _add(web(olga), tiny_bert)
    wait_until(
        lambda: BaseModel.objects.get(name="tiny-bert-2").check_status == "ok",
        timeout=60,
        message="the worker to check the model",
    )
    assert BaseModel.objects.get(name="tiny-bert-2").enabled
