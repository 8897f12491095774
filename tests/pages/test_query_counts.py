"""List pages issue the same number of queries whatever the data: 10 jobs or 1,000 jobs with 1,000
metric points each (a query per row would show as hundreds more)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from serving.models import Endpoint
from tests.pages.conftest import many_jobs, web

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

TEAM_PAGES = ("/", "/jobs/", "/jobs/?page=3", "/jobs/rows/", "/jobs/models/", "/datasets/", "/endpoints/")
STAFF_PAGES = ("/staff/jobs/", "/staff/base-models/")


def _counts(client, urls) -> dict[str, int]:
    counts = {}
    for url in urls:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, url
        counts[url] = len(queries)
    return counts


def test_list_pages_issue_a_constant_number_of_queries(alice, olga, team, dataset_version, base_model):
    from finetune.models import ModelVersion

    alice_web, olga_web = web(alice), web(olga)
    many_jobs(team, dataset_version, base_model, count=10, points=1000)
    for i, version in enumerate(ModelVersion.objects.filter(team=team)):
        Endpoint.objects.create(team=team, slug=f"e{i}", model_version=version, status="live")
    _counts(alice_web, TEAM_PAGES)  # warm caches (sessions, the tokenizer registry) once
    small = {**_counts(alice_web, TEAM_PAGES), **_counts(olga_web, STAFF_PAGES)}

    many_jobs(team, dataset_version, base_model, count=990, points=1000)
    served = set(Endpoint.objects.values_list("model_version_id", flat=True))
    for i, version in enumerate(ModelVersion.objects.filter(team=team).exclude(pk__in=served)[:40]):
        Endpoint.objects.create(team=team, slug=f"more{i}", model_version=version, status="live")
    large = {**_counts(alice_web, TEAM_PAGES), **_counts(olga_web, STAFF_PAGES)}

    assert large == small
