"""The quota limiter against a real Redis: exact under concurrency (threads and processes),
all-or-nothing across limits, token reserve/settle, monthly windows, live limit changes, Redis down."""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving import quotas
from serving.quotas import MONTH, Limit, QuotaBackendUnavailable, check, ratelimit_headers, settle

ROOT = Path(__file__).resolve().parents[2]
# A fixed moment in the middle of an hour: no window boundary falls inside a test.
NOW = datetime(2026, 2, 10, 12, 30, 0, tzinfo=UTC).timestamp()

# One OS process hammering the limiter with threads, started at an agreed moment; prints its count.
_WORKER = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from serving.quotas import Limit, check
url, prefix, n, maximum, start, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
limit = Limit("key:1", 3600, max_requests=maximum)
check(limits=[], url=url)
while time.time() < start:
    time.sleep(0.001)
with ThreadPoolExecutor(8) as pool:
    results = list(pool.map(lambda _: check(limits=[limit], url=url, prefix=prefix, fail_open=False, now=now).allowed, range(n)))
print(json.dumps({"allowed": sum(results), "refused": len(results) - sum(results)}))
"""


def _spawn(redis_url, prefix, *, n, maximum, start):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}"}
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, redis_url, prefix, str(n), str(maximum), str(start), str(NOW)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _collect(proc):
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_200_concurrent_threads_against_100_allow_exactly_100(rclient, prefix):
    limit = Limit("key:1", 60, max_requests=100)
    with ThreadPoolExecutor(16) as pool:
        results = list(
            pool.map(
                lambda _: check(limits=[limit], client=rclient, prefix=prefix, now=NOW).allowed, range(200)
            )
        )
    assert results.count(True) == 100
    assert results.count(False) == 100


def test_200_requests_from_two_processes_against_100_allow_exactly_100(redis_url, prefix):
    start = time.time() + 3  # both processes imported and waiting: they race
    procs = [_spawn(redis_url, prefix, n=100, maximum=100, start=start) for _ in range(2)]
    counts = [_collect(p) for p in procs]
    assert sum(c["allowed"] for c in counts) == 100
    assert sum(c["refused"] for c in counts) == 100


def test_request_refused_by_one_limit_is_counted_by_none(rclient, prefix):
    a = Limit("team:7", 60, max_requests=10)
    b = Limit("key:3", 60, max_requests=2)
    decisions = [check(limits=[a, b], client=rclient, prefix=prefix, now=NOW) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, False, False, False]
    refused = decisions[-1]
    assert [s.limit.scope for s in refused.refused_by] == ["key:3"]
    # Only the two allowed requests count in A: another key of the same team still has 8 left.
    other = check(limits=[a], client=rclient, prefix=prefix, now=NOW)
    assert other.allowed
    assert other.states[0].used == 3
    assert other.states[0].remaining == 7


def test_token_reservation_settles_exactly_and_never_below_zero(rclient, prefix):
    limit = Limit("key:9", 60, max_tokens=100)
    first = check(limits=[limit], tokens=50, client=rclient, prefix=prefix, now=NOW)
    assert first.allowed and first.states[0].remaining == 50
    settle(first.reservation, used_tokens=20, client=rclient)
    after = check(limits=[limit], tokens=0, client=rclient, prefix=prefix, now=NOW)
    # 30 of the 50 reserved came back: 20 used, 80 left.
    assert after.states[0].used == 20
    assert after.states[0].remaining == 80
    # 81 tokens do not fit in the 80 left: refused, nothing reserved.
    too_many = check(limits=[limit], tokens=81, client=rclient, prefix=prefix, now=NOW)
    assert not too_many.allowed and too_many.reservation is None
    fits = check(limits=[limit], tokens=80, client=rclient, prefix=prefix, now=NOW)
    assert fits.allowed and fits.states[0].remaining == 0
    # The counter was reset behind our back (e.g. an operator): giving back never goes below zero.
    key = fits.reservation.keys[0]
    rclient.set(key, 5)
    settle(fits.reservation, used_tokens=0, client=rclient)
    assert int(rclient.get(key)) == 0
    # An answer that used more than reserved is counted in full.
    over = check(limits=[limit], tokens=10, client=rclient, prefix=prefix, now=NOW)
    settle(over.reservation, used_tokens=25, client=rclient)
    assert int(rclient.get(key)) == 25


def test_monthly_quota_is_the_utc_calendar_month(rclient, prefix):
    limit = Limit("team:1", MONTH, max_requests=3)
    for _ in range(3):
        assert check(limits=[limit], client=rclient, prefix=prefix, now=NOW).allowed
    refused = check(limits=[limit], client=rclient, prefix=prefix, now=NOW)
    assert not refused.allowed
    month_end = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    assert refused.states[0].reset_seconds == pytest.approx(month_end - NOW)
    assert refused.retry_after_seconds == int(month_end - NOW)
    assert ratelimit_headers(refused)["x-ratelimit-reset-requests"] == "443h30m0s"  # 18 days 11.5 hours
    # The first second of March is a new month with the full quota.
    assert check(limits=[limit], client=rclient, prefix=prefix, now=month_end).allowed
    # The last second of February still counts in February.
    assert not check(limits=[limit], client=rclient, prefix=prefix, now=month_end - 1).allowed


def test_lowered_limit_applies_to_next_call_here_and_in_another_process(rclient, redis_url, prefix):
    for _ in range(5):
        assert check(
            limits=[Limit("key:1", 3600, max_requests=10)], client=rclient, prefix=prefix, now=NOW
        ).allowed
    assert not check(
        limits=[Limit("key:1", 3600, max_requests=5)], client=rclient, prefix=prefix, now=NOW
    ).allowed
    other = _collect(_spawn(redis_url, prefix, n=1, maximum=5, start=0))
    assert other == {"allowed": 0, "refused": 1}
    raised = _collect(_spawn(redis_url, prefix, n=1, maximum=6, start=0))
    assert raised == {"allowed": 1, "refused": 0}


def test_redis_unreachable_fails_closed_naming_the_cause():
    with pytest.raises(QuotaBackendUnavailable) as caught:
        check(limits=[Limit("key:1", 60, max_requests=1)], url="redis://127.0.0.1:1/0", fail_open=False)
    assert "Redis" in str(caught.value)
    assert "ConnectionError" in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value) or "refused" in str(caught.value).lower()


def test_fail_open_setting_lets_the_request_through(settings):
    settings.TUNEFORGE_QUOTA_FAIL_OPEN = True
    decision = check(limits=[Limit("key:1", 60, max_requests=1)], url="redis://127.0.0.1:1/0")
    assert decision.allowed and decision.degraded
    assert ratelimit_headers(decision) == {}


def test_headers_show_the_tightest_limit_and_retry_after(rclient, prefix):
    minute = Limit("key:1", 60, max_requests=2, max_tokens=1000)
    day = Limit("team:1", 86400, max_requests=100)
    at = NOW + 12.5  # 47.5 s left in the minute
    ok = check(limits=[minute, day], tokens=400, client=rclient, prefix=prefix, now=at)
    headers = ratelimit_headers(ok)
    assert headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "48s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "600",
        "x-ratelimit-reset-tokens": "48s",
    }
    check(limits=[minute, day], client=rclient, prefix=prefix, now=at)
    refused = check(limits=[minute, day], client=rclient, prefix=prefix, now=at)
    headers = ratelimit_headers(refused)
    assert headers["Retry-After"] == "48"
    assert headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.017, "17ms"), (0, "0ms"), (1, "1s"), (59.2, "1m0s"), (360, "6m0s"), (3723, "1h2m3s")],
)
def test_reset_formatting_is_openai_style(seconds, text):
    assert quotas.format_reset(seconds) == text


def test_bad_limits_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="key:1.*max_requests, max_tokens"):
        Limit("key:1", 60)
    with pytest.raises(ValueError, match="window"):
        Limit("key:1", 0, max_requests=1)


def test_limits_read_from_a_policy_hash_and_a_load_read_before_a_change_cannot_overwrite_it(rclient, prefix):
    policy_key, epoch_key = f"{prefix}:policy", f"{prefix}:policy:epoch"
    rows = {"rpm": "5", "tpm": ""}
    loads = []

    def load():
        loads.append(dict(rows))
        if len(loads) == 1:
            # A change commits (and drops the copy) while this load is on its way back to Redis.
            read_before = dict(rows)
            rows["rpm"] = "1"
            rclient.incr(epoch_key)
            rclient.delete(policy_key)
            return read_before
        return dict(rows)

    policy = quotas.PolicySource(key=policy_key, epoch_key=epoch_key, load=load)
    limit = Limit("key:1", 60, max_requests="rpm", max_tokens="tpm")
    first = check(limits=[limit], tokens=7, client=rclient, prefix=prefix, now=NOW, policy=policy)
    assert len(loads) == 2  # the stale load was refused, and the rows read again
    assert first.allowed and [(s.kind, s.maximum) for s in first.states] == [("requests", 1)]
    assert first.reservation is None  # '' is no limit: no token counter was touched
    assert rclient.hgetall(policy_key) == {b"rpm": b"1", b"tpm": b""}
    second = check(limits=[limit], client=rclient, prefix=prefix, now=NOW, policy=policy)
    assert not second.allowed and len(loads) == 2  # read from the copy: no load
