"""Usage: the metering flush into PostgreSQL (replay-safe, a failing sink loses and doubles nothing,
the periodic task on a real worker), `/api/v1/usage` with its CSV, the usage page and the budget."""

import csv
import io
import time

import pytest
from django.db import transaction

from serving import metering, quotas
from serving.models import MeteringFlush, QuotaPolicy, UsageAggregate
from serving.usage import usage_flush, usage_sink
from tests.celery_harness import wait_until
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db

T0 = 1_700_000_040  # a minute's start (2023-11-14 22:14 UTC)


def record(team, *, endpoint="support", key_id=7, minute=T0, status=200, latency=12.0, inp=5, out=0):
    metering.record_call(
        client=quotas.quota_client(),
        team_id=team.pk,
        endpoint_id=endpoint,
        key_id=key_id,
        version_id="mv-1",
        status=status,
        latency_ms=latency,
        input_tokens=inp,
        output_tokens=out,
        now=minute + 1,
    )


def totals(team, granularity="minute"):
    rows = UsageAggregate.objects.filter(team_id=team.pk, granularity=granularity)
    return sum(r.requests for r in rows), sum(r.errors for r in rows), sum(r.input_tokens for r in rows)


def test_flush_writes_minute_hour_and_day_aggregates_and_a_replay_counts_nothing(team):
    for i in range(3):
        record(team, minute=T0, status=200 if i else 500)
    record(team, minute=T0 + 60, inp=10)
    assert usage_flush(now=T0 + 180) == 2
    assert totals(team) == (4, 1, 25)
    assert totals(team, "hour") == (4, 1, 25) and totals(team, "day") == (4, 1, 25)
    assert UsageAggregate.objects.filter(team_id=team.pk, granularity="hour").count() == 1
    # The same flush again (a redelivered task) finds nothing new; a stored flush id is ignored.
    assert usage_flush(now=T0 + 180) == 0
    flush_id = MeteringFlush.objects.first().flush_id
    assert (
        usage_sink(flush_id, T0, [metering.UsageRow(team.pk, "support", "7", "mv-1", requests=99)]) is False
    )
    assert totals(team) == (4, 1, 25)


def test_a_sink_failing_halfway_loses_and_doubles_no_count(team):
    record(team, minute=T0)
    record(team, minute=T0 + 60)
    record(team, minute=T0 + 120)
    calls = []

    def failing_in_the_middle(flush_id, minute, rows):
        calls.append(flush_id)
        if len(calls) == 2:
            # Writes its rows, then dies before the commit: the transaction rolls back.
            with transaction.atomic():
                usage_sink(flush_id, minute, rows)
                raise ConnectionError("database went away mid-flush")
        if len(calls) == 3:
            usage_sink(flush_id, minute, rows)
            raise ConnectionError("committed, then lost the connection before answering")
        usage_sink(flush_id, minute, rows)

    with pytest.raises(ConnectionError):
        usage_flush(now=T0 + 240, sink=failing_in_the_middle)
    assert totals(team)[0] == 1
    with pytest.raises(ConnectionError):
        usage_flush(now=T0 + 240, sink=failing_in_the_middle)
    assert totals(team)[0] == 2  # the retried second minute committed although its sink raised
    usage_flush(now=T0 + 240)  # that minute again under its flush id (ignored), then the third
    assert totals(team) == (3, 0, 15)
    assert MeteringFlush.objects.count() == 3


@pytest.mark.slow
def test_the_periodic_flush_task_runs_on_a_real_worker(start_worker, team):
    from workers.celery_app import app

    record(team, minute=int(time.time()) - 120)
    start_worker(queues="default", name="flusher")
    app.send_task("serving.flush_usage", queue="default")
    wait_until(lambda: totals(team)[0] == 1, timeout=60, interval=0.5, message="the flush task's aggregates")
    import serving.tasks  # noqa: F401

    task = app.tasks["serving.flush_usage"]
    assert task.acks_late is True and task.ignore_result is True


def test_beat_schedules_the_flush():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["serving-flush-usage"]
    assert entry["task"] == "serving.flush_usage" and entry["schedule"] <= 60


def _usage_rows(team):
    now = int(time.time())
    minute = now - now % 60 - 120
    key = ApiKeyFactory(team=team)
    for latency in (10, 20, 30, 400):
        record(team, key_id=key.public_id, minute=minute, latency=latency, inp=3, out=2)
    record(team, endpoint="other", key_id=None, minute=minute, status=429, latency=1, inp=0)
    usage_flush(now=now + 60)
    return key


def test_the_usage_api_filters_and_exports_csv(alice_client, charlie_client, team):
    key = _usage_rows(team)
    r = alice_client.get("/api/v1/usage", {"range": "1h", "granularity": "minute"})
    assert r.status_code == 200, r.content
    rows = {(row["endpoint"], row["key"]): row for row in r.json()["data"]}
    support = rows[("support", key.public_id)]
    assert support["requests"] == 4 and support["input_tokens"] == 12 and support["output_tokens"] == 8
    assert 10 <= support["latency_p50_ms"] <= 35 and support["latency_p95_ms"] >= 300
    assert rows[("other", None)]["errors"] == 1

    only = alice_client.get("/api/v1/usage", {"range": "1h", "endpoint": "other"}).json()["data"]
    assert [row["endpoint"] for row in only] == ["other"]
    by_key = alice_client.get("/api/v1/usage", {"range": "1h", "key": key.public_id}).json()["data"]
    assert {row["key"] for row in by_key} == {key.public_id}

    exported = alice_client.get("/api/v1/usage", {"range": "24h", "format": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert sum(int(line["requests"]) for line in lines) == 5

    assert charlie_client.get("/api/v1/usage", {"range": "24h"}).json()["data"] == []
    assert charlie_client.get("/api/v1/usage", {"team": team.pk}).status_code == 404
    bad = alice_client.get("/api/v1/usage", {"granularity": "week"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "granularity"


def test_staff_see_every_teams_usage(olga_client, team, charlie_team):
    _usage_rows(team)
    everything = olga_client.get("/api/v1/usage", {"range": "1h", "team": "all"}).json()["data"]
    assert {row["team"] for row in everything} == {team.pk}
    assert olga_client.get("/api/v1/usage", {"team": charlie_team.pk}).json()["data"] == []
    page = olga_client.get("/usage/", {"range": "1h", "team": "all"}).content.decode()
    assert charlie_team.pk in page  # in the team filter


def test_the_usage_page_draws_charts_from_a_data_block_and_exports_csv(alice_client, team):
    _usage_rows(team)
    QuotaPolicy.objects.create(team=team, monthly_requests=1000)
    page = alice_client.get("/usage/", {"range": "1h", "granularity": "minute"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="usage-data"' in html and "vendor/chartjs-4.6.1/chart.umd.min.js" in html
    assert "js/usage_charts.js" in html and html.count("data-usage-chart") == 8
    assert 'id="team-budget"' in html and 'data-budget="gpu_hours"' in html
    exported = alice_client.get("/usage/export.csv", {"range": "1h"})
    assert exported.status_code == 200 and exported.content.decode().startswith("start,team,endpoint")


def test_the_dashboard_shows_the_team_budget(alice_client, team, anon_client):
    QuotaPolicy.objects.create(team=team, monthly_requests=10, monthly_tokens=500)
    key = ApiKeyFactory(team=team)
    limit = quotas.Limit(f"team:{team.pk}", quotas.MONTH, max_requests=10, max_tokens=500)
    quotas.check(limits=[limit], tokens=40)
    html = alice_client.get("/").content.decode()
    assert 'id="team-budget"' in html
    assert "1 / 10" in html and "40 / 500" in html
    assert key  # the budget counts the team, whichever key called
