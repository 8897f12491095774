"""Quotas and metering across real web processes (`manage.py runserver`, each its own OS process and
model cache) on one database and one Redis: exact counts under concurrency, a limit change seen by
the other process at once, and no metered call lost when a process is killed before the flush."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from serving.models import QuotaPolicy, UsageAggregate
from serving.usage import usage_flush
from tests.factories import ApiKeyFactory
from tests.quotas.conftest import http_post, wait_for_a_fresh_minute

pytestmark = pytest.mark.slow


def native_predict(base_url: str, key: str, slug: str, text: str):
    return http_post(f"{base_url}/api/v1/endpoints/{slug}/predict", {"input": text}, key=key)


def openai_classifications(base_url: str, key: str, slug: str, text: str):
    return http_post(f"{base_url}/v1/classifications", {"model": slug, "input": text}, key=key)


# Each face is a way to ask the same endpoint for one classification: (base_url, key, slug, text) ->
# (status, headers, body).
FACES = [pytest.param(native_predict, id="native"), pytest.param(openai_classifications, id="v1")]


@pytest.mark.parametrize("call", FACES)
def test_200_concurrent_calls_over_two_processes_against_a_limit_of_100_get_exactly_100_answers(
    call, start_server, team, served
):
    QuotaPolicy.objects.create(team=team, monthly_requests=100)
    key = ApiKeyFactory(team=team)
    servers = [start_server(), start_server()]
    urls = [servers[i % 2].url for i in range(200)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda url: call(url, key.raw, "sentiment", "great service"), urls))
    statuses = [status for status, _headers, _body in results]
    assert statuses.count(200) == 100, sorted(set(statuses))
    assert statuses.count(429) == 100
    for status, headers, _body in results:
        assert headers["x-ratelimit-limit-requests"] == "100"
        assert "x-ratelimit-remaining-requests" in headers and "x-ratelimit-reset-requests" in headers
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert headers["x-ratelimit-remaining-requests"] == "0"
    # Both processes answered some of each.
    for server in servers:
        answered = [s for (s, _h, _b), url in zip(results, urls, strict=True) if url == server.url]
        assert 200 in answered or 429 in answered


def test_a_limit_lowered_between_two_calls_applies_to_the_second_in_the_other_process(
    start_server, alice_client, team, served
):
    wait_for_a_fresh_minute(40)
    QuotaPolicy.objects.create(team=team, requests_per_minute=1000)
    key = ApiKeyFactory(team=team)
    first, second = start_server(), start_server()
    status, headers, _ = native_predict(first.url, key.raw, "sentiment", "hello")
    assert status == 200 and headers["x-ratelimit-limit-requests"] == "1000"

    r = alice_client.patch(
        f"/api/v1/api-keys/{key.public_id}", {"limits": {"requests_per_minute": 1}}, format="json"
    )
    assert r.status_code == 200, r.content

    status, headers, body = native_predict(second.url, key.raw, "sentiment", "hello again")
    assert status == 429, body
    assert headers["x-ratelimit-limit-requests"] == "1"


def test_a_killed_process_loses_no_metered_call(start_server, team, served):
    key = ApiKeyFactory(team=team)
    QuotaPolicy.objects.create(team=team, monthly_requests=5)
    server = start_server()
    statuses = [native_predict(server.url, key.raw, "sentiment", f"call {i}")[0] for i in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    server.kill()  # before any flush ran

    usage_flush(now=__import__("time").time() + 120)  # every minute so far is closed by then

    for granularity in ("minute", "hour", "day"):
        rows = UsageAggregate.objects.filter(team_id=team.pk, granularity=granularity)
        assert sum(r.requests for r in rows) == 7, granularity
        assert sum(r.errors for r in rows) == 2, granularity
        assert {r.endpoint_id for r in rows} == {"sentiment"}
        assert {r.key_id for r in rows} == {key.public_id}
        assert sum(r.input_tokens for r in rows) > 0
        assert sum(sum(r.latency_buckets) for r in rows) == 7


def test_runtime_metrics_of_two_processes_add_up_in_one_scrape_in_multiprocess_mode(
    start_server, team, served, tmp_path
):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    key = ApiKeyFactory(team=team)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "TUNEFORGE_METRICS_TOKEN": ""}
    servers = [start_server(env), start_server(env)]
    for server in servers:
        for text in ("great service", "awful wait"):
            status, _headers, body = native_predict(server.url, key.raw, "sentiment", text)
            assert status == 200, body
    with urllib.request.urlopen(f"{servers[0].url}/metrics", timeout=30) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    cache = {
        s.labels["event"]: s.value
        for s in families["tuneforge_model_cache_events"].samples
        if s.name.endswith("_total")
    }
    # Each process loaded the model once and reused it once; the scrape sees both.
    assert cache["miss"] == 2 and cache["hit"] == 2
    (count,) = [
        s.value for s in families["tuneforge_inference_batch_size"].samples if s.name.endswith("_count")
    ]
    assert count == 4
