"""Quota check cost: one `serving.quotas.check()` with 4 limits (6 counters) against a bare Redis PING.

Both run interleaved in one process against the same Redis (REDIS_URL), so the network round trip,
the client library and the machine's load are the same for both; what `check()` adds on top of one
round trip is the Lua script (reads + increments of every counter) and our Python around it.

Prints `BENCH quota_check ratio=<added p50 / 1 ms> target<=1.0 check_p50_ms=.. ping_p50_ms=..
added_p50_ms=.. check_ops_s=.. ping_ops_s=.. ops_ratio=..`.
Run: `.venv/bin/python bench/bench_quota.py` (or `make bench`).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for source_root in (ROOT, ROOT / "platform"):
    sys.path.insert(0, str(source_root))

import redis  # noqa: E402

from serving.quotas import MONTH, Limit, check  # noqa: E402

TARGET_ADDED_MS = 1.0
ROUNDS = int(os.environ.get("BENCH_QUOTA_ROUNDS", "5000"))
WARMUP = 200


def main() -> int:
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    big = 10**12
    limits = [
        Limit("key:1", 60, max_requests=big, max_tokens=big),
        Limit("team:1", 60, max_requests=big, max_tokens=big),
        Limit("team:1", MONTH, max_requests=big),
        Limit("endpoint:1", 60, max_requests=big),
    ]
    checks: list[float] = []
    pings: list[float] = []
    try:
        for n in range(WARMUP + ROUNDS):
            started = time.perf_counter()
            client.ping()
            ping = time.perf_counter() - started
            started = time.perf_counter()
            decision = check(limits=limits, tokens=64, client=client, prefix=prefix)
            elapsed = time.perf_counter() - started
            if not decision.allowed:
                raise SystemExit(f"check refused a request under a limit of {big}: {decision}")
            if n >= WARMUP:
                pings.append(ping)
                checks.append(elapsed)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    check_p50 = statistics.median(checks) * 1000
    ping_p50 = statistics.median(pings) * 1000
    added = check_p50 - ping_p50
    check_ops = len(checks) / sum(checks)
    ping_ops = len(pings) / sum(pings)
    print(f"check() with 4 limits: p50 {check_p50:.3f} ms; PING: p50 {ping_p50:.3f} ms; added {added:.3f} ms")
    print(
        f"BENCH quota_check ratio={added / TARGET_ADDED_MS:.2f} target<=1.0 check_p50_ms={check_p50:.3f} "
        f"ping_p50_ms={ping_p50:.3f} added_p50_ms={added:.3f} check_ops_s={check_ops:.0f} "
        f"ping_ops_s={ping_ops:.0f} ops_ratio={check_ops / ping_ops:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
