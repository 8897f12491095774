"""Metering against a real Redis: per-minute counts reach the sink exactly once, whatever dies."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.metering import LATENCY_BUCKETS_MS, bucket_index, flush, percentile_from_histogram, record_call

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 1_790_000_040  # a minute start (divisible by 60)


class RecordingSink:
    """What the Django layer does: rows and flush id in one step; a seen flush id is ignored."""

    def __init__(self, *, fail_on_call: int | None = None, crash_after_write_on_call: int | None = None):
        self.seen: set[str] = set()
        self.totals: dict[tuple[str, int], dict[str, int]] = {}
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.crash_after_write_on_call = crash_after_write_on_call

    def __call__(self, flush_id, minute, rows):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise ConnectionError("database went away before writing")
        if flush_id not in self.seen:
            self.seen.add(flush_id)
            for row in rows:
                total = self.totals.setdefault((row.endpoint_id, minute), {})
                for name in ("requests", "errors", "input_tokens", "output_tokens"):
                    total[name] = total.get(name, 0) + getattr(row, name)
        if self.calls == self.crash_after_write_on_call:
            raise ConnectionError("committed, then the connection dropped before the answer")

    def requests(self):
        return sum(t["requests"] for t in self.totals.values())


def _record(client, prefix, *, minute, endpoint=1, status=200, latency=40.0, tokens=(10, 5)):
    record_call(
        client=client,
        endpoint_id=endpoint,
        key_id=7,
        version_id=3,
        status=status,
        latency_ms=latency,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        now=minute + 5,
        prefix=prefix,
    )


def test_counts_reach_the_sink_per_minute_and_open_minute_waits(rclient, prefix):
    for _ in range(3):
        _record(rclient, prefix, minute=MINUTE)
    _record(rclient, prefix, minute=MINUTE, status=500, tokens=(4, 0))
    _record(rclient, prefix, minute=MINUTE + 60)
    sink = RecordingSink()
    assert flush(client=rclient, sink=sink, now=MINUTE + 70, prefix=prefix) == 1
    assert sink.totals == {
        ("1", MINUTE): {"requests": 4, "errors": 1, "input_tokens": 34, "output_tokens": 15}
    }
    assert flush(client=rclient, sink=sink, now=MINUTE + 120, prefix=prefix) == 1
    assert sink.totals[("1", MINUTE + 60)]["requests"] == 1
    assert flush(client=rclient, sink=sink, now=MINUTE + 500, prefix=prefix) == 0


def test_sink_failing_midway_loses_and_doubles_nothing_after_retry(rclient, prefix):
    for offset in range(5):
        for _ in range(offset + 1):
            _record(rclient, prefix, minute=MINUTE + 60 * offset)
    sink = RecordingSink(fail_on_call=3)
    with pytest.raises(ConnectionError):
        flush(client=rclient, sink=sink, now=MINUTE + 600, prefix=prefix)
    assert sink.requests() == 1 + 2  # the first two minutes got through
    # Calls keep coming for an old minute (a slow clock) and a new one meanwhile.
    _record(rclient, prefix, minute=MINUTE)
    _record(rclient, prefix, minute=MINUTE + 600)
    flush(client=rclient, sink=sink, now=MINUTE + 700, prefix=prefix)
    assert sink.requests() == 1 + 2 + 3 + 4 + 5 + 2
    assert sink.totals[("1", MINUTE)]["requests"] == 2
    assert not list(rclient.scan_iter(match=f"{prefix}:meter:m:*"))
    assert not list(rclient.scan_iter(match=f"{prefix}:meter:flushing:*"))


def test_replayed_flush_id_is_not_counted_twice(rclient, prefix):
    for _ in range(4):
        _record(rclient, prefix, minute=MINUTE)
    # The sink commits, then raises: the flushing key stays and the next flush replays its id.
    sink = RecordingSink(crash_after_write_on_call=1)
    with pytest.raises(ConnectionError):
        flush(client=rclient, sink=sink, now=MINUTE + 60, prefix=prefix)
    assert flush(client=rclient, sink=sink, now=MINUTE + 60, prefix=prefix) == 1
    assert sink.calls == 2
    assert len(sink.seen) == 1
    assert sink.requests() == 4


_RECORDER = """
import sys, redis
from serving.metering import record_call
client = redis.Redis.from_url(sys.argv[1])
for i in range(int(sys.argv[3])):
    record_call(client=client, endpoint_id=9, key_id=1, version_id=1, status=200, latency_ms=12,
                input_tokens=3, output_tokens=2, now=float(sys.argv[4]), prefix=sys.argv[2])
print("recorded", flush=True)
import time
time.sleep(600)
"""


def test_calls_of_a_process_killed_before_flushing_are_flushed(rclient, redis_url, prefix):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECORDER, redis_url, prefix, "250", str(MINUTE + 1)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "recorded"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    sink = RecordingSink()
    flush(client=rclient, sink=sink, now=time.time(), prefix=prefix)
    assert sink.totals == {
        ("9", MINUTE): {"requests": 250, "errors": 0, "input_tokens": 750, "output_tokens": 500}
    }


def test_p50_p95_from_the_histogram_fall_in_the_true_values_bucket(rclient, prefix):
    rng = random.Random(42)
    latencies = sorted(rng.lognormvariate(4.5, 0.8) for _ in range(2000))
    for latency in latencies:
        _record(rclient, prefix, minute=MINUTE, latency=latency)
    rows = []
    flush(client=rclient, sink=lambda _id, _minute, got: rows.extend(got), now=MINUTE + 60, prefix=prefix)
    (row,) = rows
    assert sum(row.latency_buckets) == 2000
    for q in (0.5, 0.95):
        true = latencies[int(q * len(latencies)) - 1]
        index = bucket_index(true)
        lower = 0 if index == 0 else LATENCY_BUCKETS_MS[index - 1]
        estimate = percentile_from_histogram(row.latency_buckets, q)
        assert lower <= estimate <= LATENCY_BUCKETS_MS[index], (q, true, estimate)


def test_percentile_edges():
    empty = [0] * len(LATENCY_BUCKETS_MS)
    assert percentile_from_histogram(empty, 0.5) is None
    slow = list(empty)
    slow[-1] = 3
    assert percentile_from_histogram(slow, 0.95) == LATENCY_BUCKETS_MS[-2]
    with pytest.raises(ValueError, match="q must be"):
        percentile_from_histogram(slow, 0)


def test_negative_tokens_are_refused(rclient, prefix):
    with pytest.raises(ValueError, match="input_tokens=-1"):
        record_call(
            client=rclient, endpoint_id=1, key_id=1, version_id=1, status=200, latency_ms=1,
            input_tokens=-1, output_tokens=0, prefix=prefix,
        )  # fmt: skip
