"""An API key's access (its address's brake, its team's access stamp) is confirmed inside the quota
check's round trip once the process has the key cached: a predict waits for Redis once. Whatever
changed meanwhile in any process (a revocation, a restriction, failed attempts from the address)
still applies to the very next call, also to calls that never reach the check."""

import pytest
import redis
from django.conf import settings

from accounts.apikeys import apikey_revoke, apikey_update
from accounts.throttling import API_KEY_BY_ADDRESS
from serving.models import QuotaPolicy
from tests.factories import ApiKeyFactory
from tests.quotas.test_gate import predict

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(team, served):
    QuotaPolicy.objects.update_or_create(team=team, api_key=None, defaults={"requests_per_minute": 1000})
    key = ApiKeyFactory(team=team)
    return key


def _warm(anon_client, key) -> None:
    """Two calls: the first reads and caches the key, the second is served from the cache."""
    for text in ("good", "fine"):
        r = predict(anon_client, key, input=text)
        assert r.status_code == 200, r.content


def _calls_by_command() -> dict[str, int]:
    stats = redis.Redis.from_url(settings.REDIS_URL).info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


def test_a_predict_with_a_cached_key_sends_the_check_and_the_settle_and_reads_nothing_else(anon_client, key):
    _warm(anon_client, key)
    before = _calls_by_command()
    r = predict(anon_client, key, input="great")
    after = _calls_by_command()
    assert r.status_code == 200, r.content
    sent = {name: after[name] - before.get(name, 0) for name in after}
    # The check (EVALSHA, the one reply waited for) and the settle-and-meter script (EVAL, not
    # waited for); no MGET of the brake and the stamp before them. (Redis counts the commands the
    # scripts run inside too, so only the top-level ones are compared.)
    assert (sent.get("evalsha"), sent.get("eval"), sent.get("mget", 0)) == (1, 1, 0), sent


def test_a_key_revoked_in_another_process_is_refused_on_its_next_call(anon_client, key, team):
    _warm(anon_client, key)
    apikey_revoke(team=team, api_key=key)  # bumps the team's stamp in Redis, as any process would
    r = predict(anon_client, key, input="good")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "revoked_api_key"
    assert "x-ratelimit-limit-requests" not in r  # refused before the check counted anything


def test_a_key_restricted_to_another_endpoint_is_refused_on_its_next_call(anon_client, key, team):
    _warm(anon_client, key)
    apikey_update(team=team, api_key=key, endpoints=["another"])
    r = predict(anon_client, key, input="good")
    assert r.status_code == 403, r.content


def test_a_stamp_change_that_leaves_the_key_valid_answers_the_same_request_fully(anon_client, key, team):
    _warm(anon_client, key)
    ApiKeyFactory(team=team)  # a new key of the team: the stamp changes, this key stays valid
    r = predict(anon_client, key, input=["good", "bad"])
    assert r.status_code == 200, r.content
    # The body was parsed once and answered again from what was parsed: both inputs are there.
    assert len(r.json()["data"]) == 2
    assert r.json()["usage"]["input_tokens"] > 0


def test_failed_attempts_from_the_address_brake_a_cached_valid_key_too(anon_client, key, settings):
    _warm(anon_client, key)
    for _ in range(settings.TUNEFORGE_API_KEY_FAILURES_PER_ADDRESS):
        API_KEY_BY_ADDRESS.record_failure("127.0.0.1")
    try:
        r = predict(anon_client, key, input="good")
        assert r.status_code == 429
        assert "Too many failed API-key attempts" in r.json()["error"]["message"]
        assert int(r["Retry-After"]) >= 1
    finally:
        API_KEY_BY_ADDRESS.reset("127.0.0.1")


@pytest.mark.parametrize(
    ("slug", "body"),
    [("no-such-endpoint", {"input": "good"}), ("sentiment", {"input": []})],
    ids=["unknown endpoint", "empty input"],
)
def test_an_answer_that_never_reaches_the_check_confirms_the_access_first(anon_client, key, team, slug, body):
    _warm(anon_client, key)
    apikey_revoke(team=team, api_key=key)
    r = predict(anon_client, key, slug=slug, **body)
    # Not the 404 or 400 the cached entry would have led to: a revoked key learns nothing.
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "revoked_api_key"


def test_the_openai_face_confirms_in_the_check_too(anon_client, key, team):
    def classify():
        return anon_client.post(
            "/v1/classifications",
            {"model": "sentiment", "input": "good"},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {key.raw}",
        )

    assert classify().status_code == 200
    assert classify().status_code == 200
    apikey_revoke(team=team, api_key=key)
    r = classify()
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "revoked_api_key"


def test_a_streamed_chat_with_a_key_revoked_after_it_was_cached_gets_401_not_a_stream(
    anon_client, team, chat_endpoint
):
    key = ApiKeyFactory(team=team)

    def chat():
        return anon_client.post(
            "/v1/chat/completions",
            {
                "model": "writer",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
                "stream": True,
            },
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {key.raw}",
        )

    for _ in range(2):
        streamed = chat()
        assert streamed.status_code == 200
        assert b"[DONE]" in b"".join(streamed.streaming_content)
    apikey_revoke(team=team, api_key=key)
    r = chat()
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "revoked_api_key"


@pytest.mark.parametrize("cached", [False, True], ids=["key not cached yet", "key cached"])
def test_the_one_redis_down_for_keys_and_quotas_alike_is_a_503_naming_it(anon_client, key, settings, cached):
    # A deployment's one Redis holds the brakes, the access stamps and the quota counters.
    if cached:
        _warm(anon_client, key)
    dead = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.REDIS_URL = dead
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
    r = predict(anon_client, key, input="good")
    assert r.status_code == 503, r.content
    message = r.json()["error"]["message"]
    assert "(Redis) is unavailable" in message and "ConnectionError" in message
