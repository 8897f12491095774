"""Inference quota policies (rows of serving.models.QuotaPolicy): reading them, per request and for
the pages and the API, and changing them (platform admins set a team's, team admins a key's within
the team's).

Per request the limiter (`serving.quotas`) reads them from Redis, in the same script that checks and
counts (one round trip, no database query): each team's rows are copied into one hash,
`tf:quota:policy:{team}` (fields below), built from the database when the script finds a field it
needs missing. Every write of a row drops the team's copy and bumps its epoch, before the write (a
write whose copy cannot be dropped is refused, nothing saved) and again once it is committed (a
request that read the old rows meanwhile copied them back), so the next request in every process
reads the rows as they are now. A load read under an older epoch is refused by the script.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from django.db import connection, transaction

from accounts.models import ApiKey, Team
from common.errors import ApplicationError, Forbidden, InvalidInput
from serving import quotas
from serving.models import QuotaPolicy
from serving.quotas import MONTH, Limit, PolicySource

logger = logging.getLogger(__name__)

TEAM_FIELDS = (
    "monthly_requests",
    "monthly_tokens",
    "endpoint_requests_per_minute",
    "key_requests_per_minute",
    "key_tokens_per_minute",
)
# The training half of the team's budget lives on the team itself (checked when a job is submitted).
TEAM_TRAINING_FIELDS = ("monthly_gpu_hours", "max_concurrent_jobs")
KEY_FIELDS = ("requests_per_minute", "tokens_per_minute")
# The API names a team row's per-key defaults key_*; the row stores them in the key columns.
_TEAM_COLUMN = {
    "key_requests_per_minute": "requests_per_minute",
    "key_tokens_per_minute": "tokens_per_minute",
}


@dataclass(frozen=True)
class TeamQuota:
    monthly_requests: int | None
    monthly_tokens: int | None
    endpoint_requests_per_minute: int | None
    key_requests_per_minute: int | None
    key_tokens_per_minute: int | None
    monthly_gpu_hours: float
    max_concurrent_jobs: int

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TEAM_FIELDS + TEAM_TRAINING_FIELDS}


def _team_row(team_id: str) -> QuotaPolicy | None:
    return QuotaPolicy.objects.filter(team_id=team_id, api_key__isnull=True).first()


def team_quota_get(*, team: Team) -> TeamQuota:
    row = _team_row(team.pk)
    return TeamQuota(
        monthly_requests=row.monthly_requests if row else None,
        monthly_tokens=row.monthly_tokens if row else None,
        endpoint_requests_per_minute=row.endpoint_requests_per_minute if row else None,
        key_requests_per_minute=row.requests_per_minute if row else None,
        key_tokens_per_minute=row.tokens_per_minute if row else None,
        monthly_gpu_hours=float(team.monthly_gpu_hours),
        max_concurrent_jobs=team.max_concurrent_jobs,
    )


# Per-minute request limits are 32-bit columns, the rest 64-bit.
_MAX = {name: 2**31 - 1 for name in ("requests_per_minute", "key_requests_per_minute", "endpoint_requests_per_minute",
                                     "max_concurrent_jobs")}  # fmt: skip


def _clean_count(name: str, value: Any, *, prefix: str = "") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(
            f"{prefix}{name} must be a whole number >= 0, or null for no limit; got {value!r}.",
            field=f"{prefix}{name}",
        )
    ceiling = _MAX.get(name, 2**63 - 1)
    if value > ceiling:
        raise InvalidInput(f"{prefix}{name} is at most {ceiling}; got {value}.", field=f"{prefix}{name}")
    return value


@transaction.atomic
def team_quota_set(*, team: Team, actor, values: dict[str, Any]) -> TeamQuota:
    """Platform admins (staff) change a team's policy; fields not in `values` keep their value.
    Lowering a per-key default below a key's own limit is allowed: the key is then held to the team's
    (the ceiling applies at every request, see `policy_fields`)."""
    if actor is None or not getattr(actor, "is_staff", False):
        raise Forbidden("Only platform admins change a team's quotas.", code="staff_required")
    unknown = sorted(set(values) - set(TEAM_FIELDS) - set(TEAM_TRAINING_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown quota field {unknown[0]!r}.", field=unknown[0])
    team = Team.objects.select_for_update().get(pk=team.pk)
    row = QuotaPolicy.objects.select_for_update().filter(team=team, api_key__isnull=True).first()
    if row is None:
        row = QuotaPolicy(team=team)
    for name in TEAM_FIELDS:
        if name in values:
            setattr(row, _TEAM_COLUMN.get(name, name), _clean_count(name, values[name]))
    row.updated_by = actor
    row.save()
    if "max_concurrent_jobs" in values:
        jobs = _clean_count("max_concurrent_jobs", values["max_concurrent_jobs"])
        if jobs is None:
            raise InvalidInput(
                "max_concurrent_jobs must be a whole number >= 0.", field="max_concurrent_jobs"
            )
        team.max_concurrent_jobs = jobs
    if "monthly_gpu_hours" in values:
        hours = values["monthly_gpu_hours"]
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours < 0:
            raise InvalidInput(
                f"monthly_gpu_hours must be a number >= 0; got {hours!r}.", field="monthly_gpu_hours"
            )
        team.monthly_gpu_hours = round(float(hours), 2)
    team.save(update_fields=["max_concurrent_jobs", "monthly_gpu_hours", "updated_at"])
    return team_quota_get(team=team)


def key_limits_get(*, api_key: ApiKey) -> dict[str, int | None]:
    """The key's own per-minute limits (null: the team's)."""
    row = QuotaPolicy.objects.filter(api_key=api_key).first()
    return {name: getattr(row, name) if row else None for name in KEY_FIELDS}


def key_limits_set(*, api_key: ApiKey, limits: dict[str, Any] | None) -> dict[str, int | None]:
    """Set a key's own limits (null, or a field left out, means the team's). A limit above the team's
    per-key limit is a 400 naming the field; nothing is written then. Runs inside the key's
    create/update transaction (accounts calls it through its key-limits hook)."""
    if limits is None:
        limits = {}
    if not isinstance(limits, dict):
        raise InvalidInput(
            "limits must be an object {requests_per_minute, tokens_per_minute}.", field="limits"
        )
    unknown = sorted(set(limits) - set(KEY_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown limit {unknown[0]!r}: a key has requests_per_minute and tokens_per_minute.",
            field=f"limits.{unknown[0]}",
        )
    cleaned = {name: _clean_count(name, limits.get(name), prefix="limits.") for name in KEY_FIELDS}
    team_row = _team_row(api_key.team_id)
    for name, value in cleaned.items():
        ceiling = getattr(team_row, name) if team_row else None
        if value is not None and ceiling is not None and value > ceiling:
            raise InvalidInput(
                f"limits.{name} is {value}, above the team's per-key limit of {ceiling}; "
                "ask a platform admin to raise the team's quota.",
                code="above_team_limit",
                field=f"limits.{name}",
                details={"team_limit": ceiling},
            )
    if all(value is None for value in cleaned.values()):
        QuotaPolicy.objects.filter(api_key=api_key).delete()
    else:
        QuotaPolicy.objects.update_or_create(
            api_key=api_key, defaults={"team_id": api_key.team_id, **cleaned}
        )
    return cleaned


def _tighter(own: int | None, team: int | None) -> int | None:
    if own is None:
        return team
    if team is None:
        return own
    return min(own, team)


@dataclass(frozen=True)
class _PolicyRow:
    api_key_id: str | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    monthly_requests: int | None
    monthly_tokens: int | None
    endpoint_requests_per_minute: int | None


_POLICY_SQL = (
    "SELECT api_key_id, requests_per_minute, tokens_per_minute, monthly_requests, monthly_tokens, "
    f"endpoint_requests_per_minute FROM {QuotaPolicy._meta.db_table} "
    "WHERE team_id = %s AND (api_key_id IS NULL OR api_key_id = %s)"
)

# The team's copy in Redis (prefix "tf", like the counters): one hash per team, and its epoch.
# Fields: "team:monthly_requests", "team:monthly_tokens", "team:endpoint_rpm" and, per key that has
# called, "key:{public id}:rpm" / ":tpm" (already the tighter of the key's own and the team's).
# Values: a decimal maximum, or '' for no limit.
_TEAM_FIELDS = ("team:monthly_requests", "team:monthly_tokens", "team:endpoint_rpm")


def policy_keys(team_id: str) -> tuple[str, str]:
    """(the team's policy hash, its epoch counter) in Redis."""
    return f"tf:quota:policy:{team_id}", f"tf:quota:policy:{team_id}:epoch"


def _field(value: int | None) -> str:
    return "" if value is None else str(value)


def policy_fields(*, team_id: str, api_key: ApiKey | None) -> dict[str, str]:
    """The policy hash's fields for one (team, key), from the rows as they are now: one indexed
    query (the team's row and the key's). A key's own limit never exceeds the team's per-key limit."""
    # Raw SQL on the (team, api_key) index: the ORM's query building costs more than the query.
    with connection.cursor() as cursor:
        cursor.execute(_POLICY_SQL, [team_id, api_key.pk if api_key is not None else None])
        rows = cursor.fetchall()
    team_row = key_row = None
    for row in rows:
        policy = _PolicyRow(*row)
        if policy.api_key_id is None:
            team_row = policy
        else:
            key_row = policy
    fields = {
        "team:monthly_requests": _field(team_row and team_row.monthly_requests),
        "team:monthly_tokens": _field(team_row and team_row.monthly_tokens),
        "team:endpoint_rpm": _field(team_row and team_row.endpoint_requests_per_minute),
    }
    if api_key is not None:
        rpm = _tighter(key_row and key_row.requests_per_minute, team_row and team_row.requests_per_minute)
        tpm = _tighter(key_row and key_row.tokens_per_minute, team_row and team_row.tokens_per_minute)
        fields[f"key:{api_key.public_id}:rpm"] = _field(rpm)
        fields[f"key:{api_key.public_id}:tpm"] = _field(tpm)
    return fields


def limits_for_request(
    *, team_id: str, api_key: ApiKey | None, endpoint_id: str | None
) -> tuple[list[Limit], PolicySource]:
    """Every limit that may apply to one inference call, each naming the policy field that holds its
    maximum, and where those fields are: built without any query (the script reads the fields; a
    field that says '' is no limit). `quotas.check(limits=..., policy=...)` loads the fields with
    `policy_fields` when the copy in Redis lacks them."""
    limits: list[Limit] = []
    if api_key is not None:
        # The public id, not the primary key (which embeds the key's hash).
        key = api_key.public_id
        limits.append(Limit(f"key:{key}", 60, max_requests=f"key:{key}:rpm", max_tokens=f"key:{key}:tpm"))
    limits.append(Limit(f"team:{team_id}", MONTH, max_requests=_TEAM_FIELDS[0], max_tokens=_TEAM_FIELDS[1]))
    if endpoint_id is not None:
        limits.append(Limit(f"endpoint:{endpoint_id}", 60, max_requests=_TEAM_FIELDS[2]))
    hash_key, epoch_key = policy_keys(team_id)
    return limits, PolicySource(
        key=hash_key, epoch_key=epoch_key, load=lambda: policy_fields(team_id=team_id, api_key=api_key)
    )


class QuotaPolicyUnsaved(ApplicationError):
    """503: a policy change that could not drop the copy in Redis is not saved."""

    status_code = 503
    code = "quota_backend_unavailable"
    type = "server_error"


def forget_team_policies(*, team_id: str) -> None:
    """Drop the team's copy of its policies in Redis and bump its epoch (one MULTI/EXEC): the next
    request of every process reads the rows from the database. The epoch outlives the copy by a
    day, far longer than any load in flight."""
    hash_key, epoch_key = policy_keys(team_id)
    pipe = quotas.quota_client().pipeline(transaction=True)
    pipe.incr(epoch_key)
    pipe.expire(epoch_key, 86400)
    pipe.delete(hash_key)
    pipe.execute()


def _before_write(sender, instance: QuotaPolicy, origin: Any = None, **_kwargs) -> None:
    try:
        forget_team_policies(team_id=instance.team_id)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        origin_model = getattr(origin, "model", type(origin))
        if origin is not None and origin_model is not QuotaPolicy:
            # A cascade from a deleted key or team: nothing can call with those any more, so the
            # deletion need not wait for Redis.
            logger.warning("Quota policy copy of team %s not dropped: %s", instance.team_id, exc)
            return
        raise QuotaPolicyUnsaved(
            f"The quota change was not saved: the quota backend (Redis) is unavailable: "
            f"{type(exc).__name__}: {exc}. Try again when it is back."
        ) from exc


def _after_commit(team_id: str) -> None:
    try:
        forget_team_policies(team_id=team_id)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Dropped before the write already; a request in between may have copied the old rows back,
        # which the copy's time to live (PolicySource.ttl_seconds) then bounds.
        logger.warning("Quota policy copy of team %s not dropped after a change: %s", team_id, exc)


def _after_write(sender, instance: QuotaPolicy, **_kwargs) -> None:
    team_id = instance.team_id
    transaction.on_commit(lambda: _after_commit(team_id))


def connect_policy_signals() -> None:
    """Every write of a QuotaPolicy row, through the services, the admin, a cascade or a test's
    ORM call, drops the team's copy in Redis (called from serving's AppConfig.ready)."""
    from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

    pre_save.connect(_before_write, sender=QuotaPolicy, dispatch_uid="quota_policy_pre_save")
    pre_delete.connect(_before_write, sender=QuotaPolicy, dispatch_uid="quota_policy_pre_delete")
    post_save.connect(_after_write, sender=QuotaPolicy, dispatch_uid="quota_policy_post_save")
    post_delete.connect(_after_write, sender=QuotaPolicy, dispatch_uid="quota_policy_post_delete")
