"""The quota gate on real endpoints (a tiny classifier, the tiny GPT-2), in this process: headers on
every limited answer, reserve-and-settle of generation tokens, a monthly team quota, Redis down,
and quotas set through the API and the pages."""

import pytest
import redis
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from serving.models import QuotaPolicy
from tests.factories import ApiKeyFactory
from tests.quotas.conftest import wait_for_a_fresh_minute

pytestmark = pytest.mark.django_db


def predict(client, key, slug="sentiment", **body):
    return client.post(
        f"/api/v1/endpoints/{slug}/predict", body, format="json", HTTP_AUTHORIZATION=f"Bearer {key.raw}"
    )


def team_policy(team, **values):
    QuotaPolicy.objects.update_or_create(team=team, api_key=None, defaults=values)


def test_an_allowed_call_carries_the_rate_limit_headers(anon_client, team, served):
    team_policy(team, requests_per_minute=50)
    key = ApiKeyFactory(team=team)
    r = predict(anon_client, key, input="good")
    assert r.status_code == 200, r.content
    assert r["x-ratelimit-limit-requests"] == "50"
    assert r["x-ratelimit-remaining-requests"] in ("49", "50")  # 50 when a new minute began
    assert r["x-ratelimit-reset-requests"].endswith("s")
    assert "Retry-After" not in r


def test_a_key_over_its_limit_gets_429_with_retry_after_and_the_team_sees_nothing_else(
    anon_client, team, served
):
    wait_for_a_fresh_minute(20)
    team_policy(team, requests_per_minute=100)
    key = ApiKeyFactory(team=team)
    QuotaPolicy.objects.create(team=team, api_key=key, requests_per_minute=2)
    other = ApiKeyFactory(team=team)
    assert predict(anon_client, key, input="a").status_code == 200
    assert predict(anon_client, key, input="b").status_code == 200
    refused = predict(anon_client, key, input="c")
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "rate_limit_exceeded"
    assert "API key limit of 2 requests" in body["message"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["x-ratelimit-remaining-requests"] == "0"
    assert refused["x-ratelimit-limit-requests"] == "2"
    # The other key has its own minute (the team's per-key limit), untouched by the refusal.
    ok = predict(anon_client, other, input="d")
    assert ok.status_code == 200 and ok["x-ratelimit-limit-requests"] == "100"


def test_a_monthly_team_quota_refuses_every_key_once_used_up(anon_client, team, served):
    team_policy(team, monthly_requests=3)
    first, second = ApiKeyFactory(team=team), ApiKeyFactory(team=team)
    assert [predict(anon_client, k, input="x").status_code for k in (first, second, first)] == [200] * 3
    refused = predict(anon_client, second, input="x")
    assert refused.status_code == 429
    assert "team limit of 3 requests per month" in refused.json()["error"]["message"]
    assert int(refused["Retry-After"]) > 60  # the month's end, not the next minute
    assert (
        refused["x-ratelimit-reset-requests"].endswith("s") and "h" in refused["x-ratelimit-reset-requests"]
    )


def test_an_endpoint_limit_counts_every_caller_of_that_endpoint(anon_client, alice_client, team, served):
    wait_for_a_fresh_minute(20)
    team_policy(team, endpoint_requests_per_minute=2)
    key = ApiKeyFactory(team=team)
    assert predict(anon_client, key, input="x").status_code == 200
    assert (
        alice_client.post("/api/v1/endpoints/sentiment/predict", {"input": "y"}, format="json").status_code
        == 200
    )
    refused = predict(anon_client, key, input="z")
    assert refused.status_code == 429
    assert "endpoint limit of 2 requests" in refused.json()["error"]["message"]


def test_generation_reserves_max_tokens_and_settles_what_the_answer_used(anon_client, team, chat_endpoint):
    wait_for_a_fresh_minute(30)
    team_policy(team, tokens_per_minute=100)
    key = ApiKeyFactory(team=team)
    # A call the runtime refuses after the reservation gives every reserved token back.
    bad = predict(anon_client, key, slug="writer", input="hello", max_tokens=30, temperature=5)
    assert bad.status_code == 400
    assert bad["x-ratelimit-limit-tokens"] == "100"
    assert bad["x-ratelimit-remaining-tokens"] == "70"  # the reservation, as the check saw it

    first = predict(anon_client, key, slug="writer", input="hello", max_tokens=30, seed=1)
    assert first.status_code == 200, first.content
    assert first["x-ratelimit-remaining-tokens"] == "70"  # the failed call's 30 came back
    usage = first.json()["usage"]
    used = usage["prompt_tokens"] + usage["completion_tokens"]

    second = predict(anon_client, key, slug="writer", input="hello", max_tokens=30, seed=2)
    # Counted: what the first answer used (not its reservation) plus this call's reservation.
    if used + 30 <= 100:
        assert second.status_code == 200
        assert second["x-ratelimit-remaining-tokens"] == str(100 - used - 30)
    else:
        assert second.status_code == 429

    too_big = predict(anon_client, key, slug="writer", input="hello", max_tokens=200)
    assert too_big.status_code == 429
    assert "tokens per 60 s" in too_big.json()["error"]["message"]
    assert too_big["x-ratelimit-limit-tokens"] == "100" and int(too_big["Retry-After"]) >= 1


def test_redis_unreachable_answers_503_naming_the_cause(anon_client, team, served, settings):
    team_policy(team, requests_per_minute=10)
    key = ApiKeyFactory(team=team)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    r = predict(anon_client, key, input="x")
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "quota_backend_unavailable"
    assert "quota backend (Redis) unavailable" in error["message"] and "ConnectionError" in error["message"]


def test_redis_unreachable_with_fail_open_lets_calls_through(anon_client, team, served, settings):
    team_policy(team, requests_per_minute=10)
    key = ApiKeyFactory(team=team)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.TUNEFORGE_QUOTA_FAIL_OPEN = True
    assert predict(anon_client, key, input="x").status_code == 200


def test_metrics_show_the_refusals_and_the_jobs_gauge(anon_client, client, team, served, settings):
    settings.TUNEFORGE_METRICS_TOKEN = ""
    team_policy(team, monthly_requests=0)
    key = ApiKeyFactory(team=team)
    assert predict(anon_client, key, input="x").status_code == 429
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").content.decode())}
    refusals = {
        (s.labels["kind"], s.labels["scope"]): s.value
        for s in families["tuneforge_quota_refusals"].samples
        if s.name.endswith("_total")
    }
    assert refusals[("requests", "team")] >= 1
    answered = {
        (s.labels["endpoint"], s.labels["status"]): s.value
        for s in families["tuneforge_inference_requests"].samples
        if s.name.endswith("_total")
    }
    assert answered[("sentiment", "429")] >= 1
    jobs = {s.labels["status"]: s.value for s in families["tuneforge_jobs"].samples}
    # The `served` fixture's job is succeeded; every status is reported, zeros included.
    assert jobs["succeeded"] >= 1 and "running" in jobs and "queued" in jobs


def test_redis_unreachable_with_no_policy_at_all_still_answers(anon_client, team, served, settings):
    key = ApiKeyFactory(team=team)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    r = predict(anon_client, key, input="x")
    assert r.status_code == 200, r.content  # nothing to count: the database says no limit applies
    assert "x-ratelimit-limit-requests" not in r


# --- the policies' copy in Redis (one round trip: the check script reads the limits) -----------


def _delete(rclient, pattern: str) -> None:
    keys = list(rclient.scan_iter(match=pattern))
    if keys:
        rclient.delete(*keys)


def test_policies_are_rebuilt_from_the_database_after_redis_lost_them(anon_client, team, served):
    # The Redis the gate uses (settings), not the standalone store tests' REDIS_URL default.
    rclient = redis.Redis.from_url(settings.REDIS_URL)
    wait_for_a_fresh_minute(30)
    team_policy(team, requests_per_minute=2)
    key = ApiKeyFactory(team=team)
    assert predict(anon_client, key, input="a")["x-ratelimit-remaining-requests"] == "1"

    _delete(rclient, "tf:quota:policy:*")  # the copy evicted, the counters kept
    second = predict(anon_client, key, input="b")
    assert second.status_code == 200 and second["x-ratelimit-limit-requests"] == "2"
    assert predict(anon_client, key, input="c").status_code == 429

    _delete(rclient, "tf:quota:*")  # a flushed Redis: counters gone too, the limit is not
    assert [predict(anon_client, key, input=t).status_code for t in "def"] == [200, 200, 429]


def test_a_limit_changed_between_two_calls_applies_to_the_second(anon_client, team, served):
    wait_for_a_fresh_minute(30)
    team_policy(team, requests_per_minute=100)
    key = ApiKeyFactory(team=team)
    assert predict(anon_client, key, input="a")["x-ratelimit-limit-requests"] == "100"
    team_policy(team, requests_per_minute=1)
    refused = predict(anon_client, key, input="b")
    assert refused.status_code == 429 and refused["x-ratelimit-limit-requests"] == "1"
    QuotaPolicy.objects.filter(team=team).delete()
    freed = predict(anon_client, key, input="c")
    assert freed.status_code == 200 and "x-ratelimit-limit-requests" not in freed


def test_a_quota_change_is_not_saved_when_redis_is_down(olga_client, team, settings):
    team_policy(team, monthly_requests=10)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    r = olga_client.patch(f"/api/v1/teams/{team.id}/quota", {"monthly_requests": 99}, format="json")
    assert r.status_code == 503
    assert "not saved" in r.json()["error"]["message"] and "Redis" in r.json()["error"]["message"]
    assert QuotaPolicy.objects.get(team=team, api_key=None).monthly_requests == 10


def test_a_quota_connection_redis_closed_is_replaced_and_no_call_goes_unmetered(
    anon_client, team, served, rclient
):
    from serving.models import UsageAggregate
    from serving.usage import usage_flush

    team_policy(team, monthly_requests=100)
    key = ApiKeyFactory(team=team)
    assert predict(anon_client, key, input="a").status_code == 200
    db = str(rclient.connection_pool.connection_kwargs.get("db", 0))
    for client in rclient.client_list():  # the gate's connections: the only ones running scripts
        if client["db"] == db and client["cmd"] in ("eval", "evalsha"):
            rclient.client_kill_filter(_id=client["id"])
    assert predict(anon_client, key, input="b").status_code == 200
    assert predict(anon_client, key, input="c")["x-ratelimit-remaining-requests"] == "97"

    usage_flush(now=__import__("time").time() + 120)
    rows = UsageAggregate.objects.filter(team_id=team.pk, granularity="minute")
    assert sum(r.requests for r in rows) == 3
    assert sum(sum(r.latency_buckets) for r in rows) == 3


# --- the team quota API ------------------------------------------------------------------------


def test_staff_set_a_teams_quota_and_its_members_read_it(olga_client, bob_client, charlie_client, team):
    url = f"/api/v1/teams/{team.id}/quota"
    body = {
        "monthly_requests": 1000,
        "monthly_tokens": 50000,
        "monthly_gpu_hours": 12.5,
        "max_concurrent_jobs": 3,
        "endpoint_requests_per_minute": 60,
        "key_requests_per_minute": 30,
        "key_tokens_per_minute": 9000,
    }
    r = olga_client.put(url, body, format="json")
    assert r.status_code == 200, r.content
    assert r.json() == body
    r = olga_client.patch(url, {"monthly_tokens": None}, format="json")
    assert (
        r.status_code == 200 and r.json()["monthly_tokens"] is None and r.json()["monthly_requests"] == 1000
    )
    team.refresh_from_db()
    assert float(team.monthly_gpu_hours) == 12.5 and team.max_concurrent_jobs == 3

    assert bob_client.get(url).json()["key_requests_per_minute"] == 30
    refused = bob_client.patch(url, {"monthly_requests": 10**9}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "staff_required"
    assert charlie_client.get(url).status_code == 404
    assert olga_client.get("/api/v1/teams/team-nope/quota").status_code == 404
    replaced = olga_client.put(
        url, {"monthly_gpu_hours": 5, "max_concurrent_jobs": 1, "monthly_requests": 9}, format="json"
    )
    assert replaced.status_code == 200  # a PUT replaces: what it leaves out is unlimited
    assert replaced.json()["monthly_requests"] == 9 and replaced.json()["key_requests_per_minute"] is None
    huge = olga_client.patch(url, {"endpoint_requests_per_minute": 2**40}, format="json")
    assert huge.status_code == 400 and huge.json()["error"]["field"] == "endpoint_requests_per_minute"
    bad = olga_client.patch(url, {"monthly_requests": -1}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "monthly_requests"


def test_a_key_limit_above_the_teams_is_a_400_naming_the_field(alice_client, bob_client, team):
    team_policy(team, requests_per_minute=30, tokens_per_minute=1000)
    created = alice_client.post(
        "/api/v1/api-keys",
        {"name": "ci", "scopes": ["inference"], "limits": {"requests_per_minute": 10}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["limits"] == {"requests_per_minute": 10, "tokens_per_minute": None}
    key_id = created.json()["id"]

    too_high = alice_client.patch(
        f"/api/v1/api-keys/{key_id}", {"limits": {"tokens_per_minute": 5000}}, format="json"
    )
    assert too_high.status_code == 400
    error = too_high.json()["error"]
    assert error["field"] == "limits.tokens_per_minute" and "1000" in error["message"]
    assert alice_client.get(f"/api/v1/api-keys/{key_id}").json()["limits"]["requests_per_minute"] == 10

    refused = alice_client.post(
        "/api/v1/api-keys",
        {"name": "big", "scopes": ["read"], "limits": {"requests_per_minute": 31}},
        format="json",
    )
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "limits.requests_per_minute"
    assert not QuotaPolicy.objects.filter(api_key__name="big").exists()
    assert alice_client.get("/api/v1/api-keys").json()["data"][0]["name"] == "ci"  # nothing half-written

    # Members may restrict endpoints, but limits are for owners and admins.
    member = bob_client.patch(
        f"/api/v1/api-keys/{key_id}", {"limits": {"requests_per_minute": 5}}, format="json"
    )
    assert member.status_code == 403

    cleared = alice_client.patch(f"/api/v1/api-keys/{key_id}", {"limits": None}, format="json")
    assert cleared.json()["limits"] == {"requests_per_minute": None, "tokens_per_minute": None}


# --- pages -------------------------------------------------------------------------------------


def test_the_staff_quota_page_sets_a_teams_quota_and_is_a_404_to_others(olga_client, alice_client, team):
    assert alice_client.get("/staff/quotas/").status_code == 404
    page = olga_client.get("/staff/quotas/")
    assert page.status_code == 200 and f'data-team="{team.pk}"' in page.content.decode()
    r = olga_client.post(
        f"/staff/quotas/{team.id}/",
        {
            "monthly_gpu_hours": "8",
            "max_concurrent_jobs": "2",
            "monthly_requests": "500",
            "monthly_tokens": "",
            "endpoint_requests_per_minute": "",
            "key_requests_per_minute": "20",
            "key_tokens_per_minute": "",
        },
    )
    assert r.status_code == 302
    row = QuotaPolicy.objects.get(team=team, api_key=None)
    assert row.monthly_requests == 500 and row.requests_per_minute == 20 and row.monthly_tokens is None
    bad = olga_client.post(
        f"/staff/quotas/{team.id}/", {"monthly_gpu_hours": "8", "max_concurrent_jobs": "x"}
    )
    assert bad.status_code == 400


def test_an_admin_sets_a_keys_limits_on_the_api_keys_page(alice_client, bob_client, team):
    team_policy(team, requests_per_minute=40)
    key = ApiKeyFactory(team=team)
    url = f"/accounts/api-keys/{key.public_id}/limits/"
    assert bob_client.post(url, {"requests_per_minute": "5"}).status_code == 403
    assert alice_client.post(url, {"requests_per_minute": "50"}).status_code == 400  # above the team's 40
    assert alice_client.post(url, {"requests_per_minute": "25", "tokens_per_minute": ""}).status_code == 302
    assert QuotaPolicy.objects.get(api_key=key).requests_per_minute == 25
    page = alice_client.get("/accounts/api-keys/").content.decode()
    assert 'name="requests_per_minute"' in page and 'value="25"' in page


def test_the_try_it_form_counts_against_the_teams_quota(alice_client, team, served):
    team_policy(team, monthly_requests=1)
    assert alice_client.post("/endpoints/sentiment/", {"text": "fine"}).status_code == 200
    refused = alice_client.post("/endpoints/sentiment/", {"text": "again"}).content.decode()
    assert "team limit of 1 requests per month" in refused
