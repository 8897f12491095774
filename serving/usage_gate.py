"""The gate every inference view passes through: quota check (one Redis round trip, the only one a
call waits for), the answer's rate-limit headers, settling reserved tokens, metering and the
Prometheus counters.

In a view (native or `/v1/`), around the work that answers the call:

    with usage_gate(team=self.ctx.team, api_key=self.ctx.api_key, endpoint=target.endpoint,
                    reserve_tokens=max_tokens * n) as call:
        result = inference.generate(...)
        call.used(input_tokens=gen.prompt_tokens, output_tokens=gen.completion_tokens, version=version)
    return Response(body, headers=call.headers)

A refusal raises `QuotaRefused` (429, `Retry-After` and the x-ratelimit-* headers); Redis down
raises `QuotaUnavailable` (503 naming the cause) unless TUNEFORGE_QUOTA_FAIL_OPEN is set. An
ApplicationError raised inside the block leaves it with the same headers added, and is metered with
its status. Both faces' exception handlers turn these into their own error shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from accounts.authentication import AccessChanged, pending_access
from common import metrics
from common.errors import ApplicationError, QuotaExceeded
from serving import metering, quotas
from serving.quota_policies import limits_for_request

logger = logging.getLogger(__name__)


class QuotaRefused(QuotaExceeded):
    """429: a quota has no room for this call; `headers` carry Retry-After and x-ratelimit-*."""

    code = "rate_limit_exceeded"


class QuotaUnavailable(ApplicationError):
    """503: the quota counters (Redis) cannot be reached, and quotas fail closed."""

    status_code = 503
    code = "quota_backend_unavailable"
    type = "server_error"


_KIND_WORDS = {"key": "API key", "team": "team", "endpoint": "endpoint"}


def _refusal_message(decision: quotas.QuotaDecision) -> str:
    parts = []
    for state in decision.refused_by:
        scope = _KIND_WORDS.get(state.limit.scope.split(":", 1)[0], state.limit.scope)
        window = "month" if state.limit.window == quotas.MONTH else f"{state.limit.window} s"
        parts.append(f"{scope} limit of {state.maximum} {state.kind} per {window} ({state.used} used)")
    return "Rate limit reached: " + "; ".join(parts) + f". Retry after {decision.retry_after_seconds} s."


@dataclass
class GateCall:
    """What a view reports back from inside the gate, and the headers it answers with."""

    decision: quotas.QuotaDecision
    headers: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    version_id: str | None = None
    reported: bool = False

    def used(self, *, input_tokens: int = 0, output_tokens: int = 0, version: Any = None) -> None:
        """The tokens the answer used (prompt + completion, or the classified input's) and the
        ModelVersion (or its id) that answered."""
        self.input_tokens = int(input_tokens or 0)
        self.output_tokens = int(output_tokens or 0)
        if version is not None:
            self.version_id = version if isinstance(version, str) else version.pk
        self.reported = True


def _endpoint_ref(endpoint: Any, model: str | None) -> tuple[str | None, str]:
    """(the endpoint's id for its quota, or None; what metering and /metrics call it)."""
    if endpoint is not None:
        return endpoint.pk, endpoint.slug
    return None, model or "-"


def _record(
    *,
    team_id: str,
    endpoint_label: str,
    key_id: Any,
    started: float,
    version_id: str | None,
    status: int,
    input_tokens: int,
    output_tokens: int,
    reservation: quotas.Reservation | None = None,
) -> None:
    """After the answer, in one atomic script sent without waiting for its reply (no second round
    trip; see `quotas.settle_and_meter_later` for why nothing is lost): give back the unused
    reserved tokens and meter the call; then the Prometheus counters."""
    latency = time.perf_counter() - started
    metrics.REQUESTS.labels(endpoint=endpoint_label, status=str(status)).inc()
    metrics.REQUEST_LATENCY.labels(endpoint=endpoint_label).observe(latency)
    call = metering.call_increments(
        team_id=team_id,
        endpoint_id=endpoint_label,
        key_id=key_id,
        version_id=version_id,
        status=status,
        latency_ms=latency * 1000,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    try:
        quotas.settle_and_meter_later(reservation, used_tokens=input_tokens + output_tokens, call=call)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The answer is given: this only loses the give-back (the window stays over-counted) and
        # the call's metering; reached when Redis died mid-call, or quotas fail open.
        logger.warning("Settle and metering skipped for a call to %s: %s", endpoint_label, exc)


@contextmanager
def usage_gate(
    *,
    team: Any,
    api_key: Any = None,
    endpoint: Any = None,
    model: str | None = None,
    version: Any = None,
    reserve_tokens: int = 0,
) -> Iterator[GateCall]:
    """Check every quota of (team, key, endpoint) and count the call, or raise QuotaRefused /
    QuotaUnavailable before any work is done. `reserve_tokens` is what the call may use (generation:
    max_tokens × n; classification: its input's count); what it did not use is given back after.
    `model` names a call that has no endpoint (a direct `ft:` model on /v1/)."""
    started = time.perf_counter()
    endpoint_id, endpoint_label = _endpoint_ref(endpoint, model)
    key_id = api_key.public_id if api_key is not None else None
    version_id = None if version is None else (version if isinstance(version, str) else version.pk)
    limits, policy = limits_for_request(team_id=team.pk, api_key=api_key, endpoint_id=endpoint_id)
    # An API key authenticated from the process's cached entry is confirmed in the check's round trip.
    access = pending_access(api_key)
    try:
        decision = quotas.check(
            limits=limits, tokens=max(0, int(reserve_tokens)), policy=policy, access=access
        )
    except quotas.AccessNotConfirmed as exc:
        access.resolve(exc.values)  # braked: 429; changed: AccessChanged, the view answers again
        raise AccessChanged(team.pk) from exc  # the same stamp in other bytes: answer again, unfolded
    except quotas.QuotaBackendUnavailable as exc:
        if access is not None:
            access.confirm()
        metrics.REQUESTS.labels(endpoint=endpoint_label, status="503").inc()
        raise QuotaUnavailable(
            f"Inference is unavailable: the {exc} (quotas fail closed).", details={"cause": str(exc.cause)}
        ) from exc
    if access is not None:
        if decision.access_confirmed:
            access.checked = True
        else:
            access.confirm()
    headers = quotas.ratelimit_headers(decision)
    record: dict[str, Any] = dict(
        team_id=team.pk, endpoint_label=endpoint_label, key_id=key_id, started=started
    )
    if not decision.allowed:
        _record(**record, version_id=version_id, status=429, input_tokens=0, output_tokens=0)
        raise QuotaRefused(_refusal_message(decision), headers=headers)
    call = GateCall(decision=decision, headers=headers, version_id=version_id)
    record["reservation"] = decision.reservation
    try:
        yield call
    except ApplicationError as exc:
        exc.headers = {**headers, **exc.headers}
        _record(
            **record,
            version_id=call.version_id,
            status=exc.status_code,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
        )
        raise
    except Exception:
        _record(**record, version_id=call.version_id, status=500, input_tokens=0, output_tokens=0)
        raise
    _record(
        **record,
        version_id=call.version_id,
        status=200,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
    )


def reserve_for_generation(*, max_tokens: Any, n: Any = 1) -> int:
    """Tokens a generation may use: max_tokens for each of its n answers (a malformed value reserves
    nothing; the runtime then refuses the call with a 400 inside the gate)."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        return 0
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        n = 1
    return max_tokens * n


def reserve_for_input(inputs: Any) -> int:
    """Tokens a classification reserves before tokenizing: one per input text (every text has at
    least one); the true count is settled after the answer."""
    if isinstance(inputs, list):
        return len(inputs)
    return 1
