"""Usage metering, the Redis half: every inference call counted per UTC minute in one pipeline, and
closed minutes moved to a durable sink (the database) with no count lost or counted twice.

Layout (all under `{prefix}:meter:`):
- `m:{minute}`: a hash per minute (epoch seconds of its start); fields
  `{team}|{endpoint}|{key}|{version}|{counter}` with counter in requests, errors, input_tokens,
  output_tokens, latency_ms_sum, and `b{i}` for latency histogram bucket i (LATENCY_BUCKETS_MS).
- `minutes`: a sorted set of the minutes that have a hash (score = minute).
- `flushing`: the set of hashes renamed for a flush and not yet confirmed by the sink.

The flush protocol, each step safe to die after:
1. For each closed minute, one Lua script RENAMEs `m:{minute}` to `flushing:{minute}:{uuid}`, adds
   that name to `flushing` and removes the minute from `minutes`, atomically. A call recorded late
   for that minute (a slow clock) makes a fresh hash that the next flush takes separately.
2. `sink(flush_id, minute, rows)` is called with flush_id = the renamed key's `{minute}:{uuid}`.
   The sink writes the rows and the flush id in one transaction and ignores a flush id it has seen.
3. Only after the sink returns is the flushing key deleted. A flush that died before that (or a sink
   that raised) leaves the key: the next flush retries leftover keys first, with the same flush id.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import redis

LATENCY_BUCKETS_MS: tuple[float, ...] = (
    5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000, math.inf,
)  # fmt: skip
"""Upper bounds (ms, inclusive) of the latency histogram; p50/p95 are estimated within one bucket."""

_COUNTERS = ("requests", "errors", "input_tokens", "output_tokens", "latency_ms_sum")

# Step 1 of the flush, atomic: rename the minute's hash, remember it, forget the minute.
_CLAIM = """
local minutes_key, flushing_set, source, target, minute = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
redis.call('ZREM', minutes_key, minute)
if redis.call('EXISTS', source) == 0 then
  return 0
end
redis.call('RENAME', source, target)
redis.call('SADD', flushing_set, target)
return 1
"""


@dataclass
class UsageRow:
    """One minute's totals of one (team, endpoint, key, version)."""

    team_id: str
    endpoint_id: str
    key_id: str
    version_id: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms_sum: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))


Sink = Callable[[str, int, list[UsageRow]], None]
"""`sink(flush_id, minute, rows)`: store the rows durably; a flush id seen before must be ignored."""


def _minute_of(now: float) -> int:
    return int(now) - int(now) % 60


def _keys(prefix: str) -> tuple[str, str]:
    return f"{prefix}:meter:minutes", f"{prefix}:meter:flushing"


def bucket_index(latency_ms: float) -> int:
    for index, bound in enumerate(LATENCY_BUCKETS_MS):
        if latency_ms <= bound:
            return index
    return len(LATENCY_BUCKETS_MS) - 1


def record_call(
    *,
    client: redis.Redis,
    endpoint_id: int | str,
    key_id: int | str | None,
    version_id: int | str | None,
    status: int,
    latency_ms: float,
    input_tokens: int,
    output_tokens: int,
    now: float | None = None,
    prefix: str = "tf",
    team_id: str = "",
) -> None:
    """Count one answered call in its minute (one round trip, MULTI/EXEC: all counters or none)."""
    pipe = client.pipeline(transaction=True)
    queue_call(
        pipe,
        endpoint_id=endpoint_id,
        key_id=key_id,
        version_id=version_id,
        status=status,
        latency_ms=latency_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        now=now,
        prefix=prefix,
        team_id=team_id,
    )
    pipe.execute()


def queue_call(
    pipe: redis.client.Pipeline,
    *,
    endpoint_id: int | str,
    key_id: int | str | None,
    version_id: int | str | None,
    status: int,
    latency_ms: float,
    input_tokens: int,
    output_tokens: int,
    now: float | None = None,
    prefix: str = "tf",
    team_id: str = "",
) -> None:
    """Queue `record_call`'s commands on a caller's MULTI pipeline (to share its round trip)."""
    call = call_increments(
        endpoint_id=endpoint_id,
        key_id=key_id,
        version_id=version_id,
        status=status,
        latency_ms=latency_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        now=now,
        prefix=prefix,
        team_id=team_id,
    )
    for field_name, amount in call.increments:
        pipe.hincrby(call.hash_key, field_name, amount)
    pipe.zadd(call.minutes_key, {str(call.minute): call.minute})


@dataclass(frozen=True)
class CallIncrements:
    """What one call adds: `increments` to the fields of `hash_key`, and `minute` to `minutes_key`."""

    hash_key: str
    minutes_key: str
    minute: int
    increments: tuple[tuple[str, int], ...]


def call_increments(
    *,
    endpoint_id: int | str,
    key_id: int | str | None,
    version_id: int | str | None,
    status: int,
    latency_ms: float,
    input_tokens: int,
    output_tokens: int,
    now: float | None = None,
    prefix: str = "tf",
    team_id: str = "",
) -> CallIncrements:
    """One call's counters, for a MULTI pipeline (`queue_call`) or a script that meters in its own
    atomic step (the usage gate's settle, `serving/lua/quota_settle.lua`)."""
    if input_tokens < 0 or output_tokens < 0 or latency_ms < 0:
        raise ValueError(
            f"record_call: tokens and latency must be >= 0, got input_tokens={input_tokens}, "
            f"output_tokens={output_tokens}, latency_ms={latency_ms}"
        )
    minute = _minute_of(time.time() if now is None else now)
    minutes_key, _ = _keys(prefix)
    group = f"{team_id}|{endpoint_id}|{'' if key_id is None else key_id}|{'' if version_id is None else version_id}"
    increments = [(f"{group}|requests", 1)]
    if status >= 400:
        increments.append((f"{group}|errors", 1))
    if input_tokens:
        increments.append((f"{group}|input_tokens", input_tokens))
    if output_tokens:
        increments.append((f"{group}|output_tokens", output_tokens))
    increments.append((f"{group}|latency_ms_sum", round(latency_ms)))
    increments.append((f"{group}|b{bucket_index(latency_ms)}", 1))
    return CallIncrements(f"{prefix}:meter:m:{minute}", minutes_key, minute, tuple(increments))


def _rows(raw: Mapping[bytes, bytes]) -> list[UsageRow]:
    rows: dict[str, UsageRow] = {}
    for field_name, value in raw.items():
        team_id, endpoint_id, key_id, version_id, counter = field_name.decode().split("|")
        group = f"{team_id}|{endpoint_id}|{key_id}|{version_id}"
        row = rows.get(group)
        if row is None:
            row = rows[group] = UsageRow(team_id, endpoint_id, key_id, version_id)
        if counter.startswith("b"):
            row.latency_buckets[int(counter[1:])] += int(value)
        elif counter in _COUNTERS:
            setattr(row, counter, int(value))
        else:
            raise ValueError(f"Unknown metering counter {counter!r} in field {field_name!r}")
    return sorted(rows.values(), key=lambda r: (r.team_id, r.endpoint_id, r.key_id, r.version_id))


def flush(*, client: redis.Redis, sink: Sink, now: float | None = None, prefix: str = "tf") -> int:
    """Move every closed minute to `sink`; returns how many flushes the sink confirmed.

    Leftovers of an earlier flush that died or whose sink raised go first, under their old flush id.
    A sink that raises stops this flush (the exception propagates); what it did not confirm stays
    in Redis for the next one."""
    minutes_key, flushing_set = _keys(prefix)
    current = _minute_of(time.time() if now is None else now)
    claim = client.register_script(_CLAIM)
    for raw_minute in client.zrangebyscore(minutes_key, "-inf", current - 1):
        minute = raw_minute.decode()
        target = f"{prefix}:meter:flushing:{minute}:{uuid.uuid4().hex}"
        claim(
            keys=[minutes_key, flushing_set, f"{prefix}:meter:m:{minute}", target],
            args=[minute],
            client=client,
        )
    confirmed = 0
    pending = sorted(key.decode() for key in client.smembers(flushing_set))
    for flushing_key in pending:
        flush_id = flushing_key.split(":flushing:", 1)[1]
        minute = int(flush_id.split(":", 1)[0])
        rows = _rows(client.hgetall(flushing_key))
        if rows:
            sink(flush_id, minute, rows)
        pipe = client.pipeline(transaction=True)
        pipe.delete(flushing_key)
        pipe.srem(flushing_set, flushing_key)
        pipe.execute()
        confirmed += 1
    return confirmed


def percentile_from_histogram(buckets: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of latencies counted in LATENCY_BUCKETS_MS buckets, interpolated
    linearly inside its bucket; None for no samples. The last (unbounded) bucket answers its lower
    bound, the most that is known."""
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q}")
    if len(buckets) != len(LATENCY_BUCKETS_MS):
        raise ValueError(f"expected {len(LATENCY_BUCKETS_MS)} bucket counts, got {len(buckets)}")
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            lower = 0.0 if index == 0 else LATENCY_BUCKETS_MS[index - 1]
            upper = LATENCY_BUCKETS_MS[index]
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return LATENCY_BUCKETS_MS[-2]
