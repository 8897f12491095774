"""Usage, the PostgreSQL half of metering: the flush's database sink (aggregates per minute, hour
and day, replay-safe), the periodic flush the Celery task runs, and the reads behind the usage page,
`/api/v1/usage`, its CSV, and the team budget panel."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from common.errors import InvalidInput
from serving import metering, quotas
from serving.models import MeteringFlush, UsageAggregate

FLUSH_TASK = "serving.flush_usage"
GRANULARITIES = ("minute", "hour", "day")
# The most buckets one read may return (a minute view of a month would be 43 200 per group).
MAX_BUCKETS = {"minute": 24 * 60, "hour": 24 * 62, "day": 400}


def _bucket(moment: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _add_to_aggregate(*, granularity: str, bucket_start: datetime, row: metering.UsageRow) -> None:
    """Add one flushed row to its aggregate, inside the flush's transaction. Portable (PostgreSQL and
    the embedded SQLite): the aggregate row is locked (PostgreSQL: FOR UPDATE; SQLite serialises
    writers), so two flushes of different minutes into one hour or day bucket both count."""
    aggregate, created = UsageAggregate.objects.select_for_update().get_or_create(
        granularity=granularity,
        bucket_start=bucket_start,
        team_id=row.team_id,
        endpoint_id=row.endpoint_id,
        key_id=row.key_id,
        version_id=row.version_id,
        defaults={
            "requests": row.requests,
            "errors": row.errors,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "latency_ms_sum": row.latency_ms_sum,
            "latency_buckets": list(row.latency_buckets),
        },
    )
    if created:
        return
    aggregate.requests += row.requests
    aggregate.errors += row.errors
    aggregate.input_tokens += row.input_tokens
    aggregate.output_tokens += row.output_tokens
    aggregate.latency_ms_sum += row.latency_ms_sum
    old, new = list(aggregate.latency_buckets), list(row.latency_buckets)
    width = max(len(old), len(new))
    old += [0] * (width - len(old))
    new += [0] * (width - len(new))
    aggregate.latency_buckets = [a + b for a, b in zip(old, new, strict=True)]
    aggregate.save(
        update_fields=[
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "latency_ms_sum",
            "latency_buckets",
        ]
    )


def usage_sink(flush_id: str, minute: int, rows: list[metering.UsageRow]) -> bool:
    """Add one flushed minute to the minute, hour and day aggregates, and store its flush id, in one
    transaction. A flush id already stored (a flush replayed after its commit) changes nothing:
    returns False then. Concurrent flushes of one id wait on its primary key, then see it."""
    moment = datetime.fromtimestamp(minute, UTC)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {MeteringFlush._meta.db_table} (flush_id, minute, rows, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (flush_id) DO NOTHING",
                [flush_id, moment, len(rows), timezone.now()],
            )
            if cursor.rowcount == 0:
                return False
        for row in rows:
            for granularity in GRANULARITIES:
                _add_to_aggregate(granularity=granularity, bucket_start=_bucket(moment, granularity), row=row)
    return True


def usage_flush(*, now: float | None = None, sink=usage_sink) -> int:
    """Move every closed metering minute from Redis into the aggregates (the periodic task's body);
    idempotent: run twice, or after a crash, it counts each call once. Returns the flushes done."""
    return metering.flush(client=quotas.quota_client(), sink=sink, now=now)


# --- reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilters:
    granularity: str
    start: datetime
    end: datetime
    endpoint: str | None = None
    key: str | None = None


def _parse_moment(value: str, *, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{field} must be an ISO 8601 date or time (e.g. 2026-03-01 or 2026-03-01T12:00:00Z); got {value!r}.",
            field=field,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
_DEFAULT_GRANULARITY = {"1h": "minute", "24h": "hour", "7d": "hour", "30d": "day"}


def usage_filters_from(params: Any, *, now: datetime | None = None) -> UsageFilters:
    """Filters from query parameters: `range` (1h, 24h, 7d, 30d) or `start`/`end`, `granularity`
    (minute, hour, day), `endpoint` (a slug or a model name), `key` (`key-<prefix>`)."""
    now = now or timezone.now()
    window = params.get("range") or ""
    if window and window not in RANGES:
        raise InvalidInput(f"range must be one of {', '.join(RANGES)}; got {window!r}.", field="range")
    granularity = params.get("granularity") or _DEFAULT_GRANULARITY.get(window or "24h")
    if granularity not in GRANULARITIES:
        raise InvalidInput(
            f"granularity must be one of {', '.join(GRANULARITIES)}; got {granularity!r}.",
            field="granularity",
        )
    end = _parse_moment(params["end"], field="end") if params.get("end") else now
    if params.get("start"):
        start = _parse_moment(params["start"], field="start")
    else:
        start = end - RANGES[window or "24h"]
    if start >= end:
        raise InvalidInput("start must be before end.", field="start")
    step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[granularity]
    if (end - start) / step > MAX_BUCKETS[granularity]:
        raise InvalidInput(
            f"At most {MAX_BUCKETS[granularity]} {granularity} buckets per request: choose a coarser "
            "granularity or a shorter range.",
            field="granularity",
        )
    return UsageFilters(
        granularity=granularity,
        start=start,
        end=end,
        endpoint=params.get("endpoint") or None,
        key=params.get("key") or None,
    )


def usage_rows(*, team_ids: list[str], filters: UsageFilters) -> list[dict]:
    """Aggregates of these teams (the caller's own, or every team for staff) in the range, one row
    per (bucket, team, endpoint, key), oldest first, versions summed; p50/p95 from the histogram."""
    rows = UsageAggregate.objects.filter(
        team_id__in=team_ids,
        granularity=filters.granularity,
        bucket_start__gte=_bucket(filters.start, filters.granularity),
        bucket_start__lt=filters.end,
    )
    if filters.endpoint:
        rows = rows.filter(endpoint_id=filters.endpoint)
    if filters.key:
        rows = rows.filter(key_id=filters.key)
    grouped: dict[tuple, dict] = {}
    for row in rows.order_by("bucket_start", "team_id", "endpoint_id", "key_id"):
        group = (row.bucket_start, row.team_id, row.endpoint_id, row.key_id)
        out = grouped.get(group)
        if out is None:
            out = grouped[group] = {
                "start": row.bucket_start,
                "team": row.team_id,
                "endpoint": row.endpoint_id,
                "key": row.key_id or None,
                "requests": 0,
                "errors": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "latency_ms_sum": 0,
                "buckets": [0] * len(metering.LATENCY_BUCKETS_MS),
            }
        for name in ("requests", "errors", "input_tokens", "output_tokens", "latency_ms_sum"):
            out[name] += getattr(row, name)
        for i, count in enumerate(row.latency_buckets[: len(out["buckets"])]):
            out["buckets"][i] += count
    result = []
    for out in grouped.values():
        buckets = out.pop("buckets")
        total_ms = out.pop("latency_ms_sum")
        p50 = metering.percentile_from_histogram(buckets, 0.5)
        p95 = metering.percentile_from_histogram(buckets, 0.95)
        out["latency_p50_ms"] = None if p50 is None else round(p50, 1)
        out["latency_p95_ms"] = None if p95 is None else round(p95, 1)
        out["latency_mean_ms"] = round(total_ms / out["requests"], 1) if out["requests"] else None
        result.append(out)
    return result


CSV_COLUMNS = (
    "start",
    "team",
    "endpoint",
    "key",
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_mean_ms",
)


def usage_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [row["start"].isoformat() if name == "start" else ("" if row[name] is None else row[name])
             for name in CSV_COLUMNS]
        )  # fmt: skip
    return out.getvalue()


def usage_chart_data(rows: list[dict], *, granularity: str) -> dict:
    """What static/js/usage_charts.js draws: per endpoint and per key, series over the buckets."""
    labels = sorted({row["start"] for row in rows})
    index = {moment: i for i, moment in enumerate(labels)}

    def series(by: str) -> dict[str, dict[str, list]]:
        out: dict[str, dict[str, list]] = {}
        for row in rows:
            name = row[by] or "(session)"
            s = out.setdefault(
                name,
                {
                    m: [0] * len(labels)
                    if m != "latency_p50_ms" and m != "latency_p95_ms"
                    else [None] * len(labels)
                    for m in ("requests", "tokens", "errors", "latency_p50_ms", "latency_p95_ms")
                },
            )
            i = index[row["start"]]
            s["requests"][i] += row["requests"]
            s["tokens"][i] += row["input_tokens"] + row["output_tokens"]
            s["errors"][i] += row["errors"]
            for q in ("latency_p50_ms", "latency_p95_ms"):
                if row[q] is not None:
                    s[q][i] = max(s[q][i] or 0, row[q])
        return out

    fmt = {"minute": "%H:%M", "hour": "%m-%d %H:00", "day": "%Y-%m-%d"}[granularity]
    return {
        "labels": [moment.strftime(fmt) for moment in labels],
        "endpoint": series("endpoint"),
        "key": series("key"),
    }


def usage_totals(rows: list[dict]) -> dict[str, int]:
    return {
        name: sum(row[name] for row in rows)
        for name in ("requests", "errors", "input_tokens", "output_tokens")
    }


# --- the team's budget: training and inference on one panel ------------------------------------------


def team_budget(*, team, now: datetime | None = None) -> dict:
    """This month's GPU-hours (training) and requests/tokens (inference) against the team's quotas.
    Inference counts come from the quota counters in Redis (exact, live), falling back to the
    flushed aggregates when Redis cannot be reached."""
    from finetune.selectors import team_gpu_hours_this_month
    from serving.quota_policies import team_quota_get

    now = now or timezone.now()
    quota = team_quota_get(team=team)
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    requests_used = tokens_used = None
    if quota.monthly_requests is not None or quota.monthly_tokens is not None:
        limit = quotas.Limit(
            f"team:{team.pk}",
            quotas.MONTH,
            max_requests=quota.monthly_requests,
            max_tokens=quota.monthly_tokens,
        )
        try:
            live = quotas.current_usage(limit, now=now.timestamp())
        except quotas.QuotaBackendUnavailable:
            live = {}
        requests_used, tokens_used = live.get("requests"), live.get("tokens")
    if requests_used is None or tokens_used is None:
        flushed = UsageAggregate.objects.filter(
            team_id=team.pk, granularity="day", bucket_start__gte=month_start
        ).values_list("requests", "input_tokens", "output_tokens")
        req = sum(r for r, _i, _o in flushed)
        tok = sum(i + o for _r, i, o in flushed)
        requests_used = req if requests_used is None else requests_used
        tokens_used = tok if tokens_used is None else tokens_used

    def line(used: float, limit: float | None) -> dict:
        percent = None if not limit else min(100, round(100 * used / limit))
        return {"used": used, "limit": limit, "percent": percent}

    requests_line = line(requests_used, quota.monthly_requests)
    tokens_line = line(tokens_used, quota.monthly_tokens)
    return {
        "month": month_start,
        "gpu_hours": line(round(team_gpu_hours_this_month(team=team, now=now), 2), quota.monthly_gpu_hours),
        "requests": requests_line,
        "tokens": tokens_line,
        "inference": [("requests", requests_line), ("tokens", tokens_line)],
    }
