"""The one place the web layer calls for inference (native `/api/v1/endpoints/{slug}/predict` and
the `/v1/` face): resolving a `model` to what to serve, input checks, canary routing, and the
process's single ServingRuntime.

One runtime per web process: it holds the model cache and the micro-batcher, so concurrent requests
of that process's threads share one forward; scale by adding processes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from accounts import access_stamps
from common.errors import ApplicationError, Forbidden, InvalidInput, NotFound
from serving.runtime import (
    REFUSE,
    TRUNCATE,
    Generation,
    InputTooLong,
    RuntimeServingError,
    ServingRuntime,
    StreamChunk,
)
from serving.runtime_metrics import PrometheusObserver

CLASSIFIER_TASKS = ("classification", "multilabel_classification")

_runtime: ServingRuntime | None = None
_runtime_lock = threading.Lock()


class InputTooLongError(ApplicationError):
    status_code = 400
    code = "input_too_long"


class WrongTaskError(ApplicationError):
    status_code = 400
    code = "wrong_task"


class ModelUnavailable(ApplicationError):
    status_code = 409
    code = "model_not_ready"


def resolve_base(name: str) -> str:
    """A base model name (as written in an artifact) -> its local folder: the registry's `source`
    first (MiniLM resolves through its package), then the engine's own rules."""
    from finetune.engine.modeling import resolve_base_model
    from finetune.models import BaseModel

    row = BaseModel.objects.filter(name=name).only("source").first()
    return resolve_base_model(row.source if row and row.source else name)


def get_runtime() -> ServingRuntime:
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = ServingRuntime(
                    resolve_base=resolve_base,
                    cache_mb=getattr(settings, "TUNEFORGE_SERVING_CACHE_MB", 2048),
                    max_batch_size=getattr(settings, "TUNEFORGE_SERVING_MAX_BATCH_SIZE", 32),
                    max_wait_ms=getattr(settings, "TUNEFORGE_SERVING_MAX_WAIT_MS", 5.0),
                    micro_batching=getattr(settings, "TUNEFORGE_SERVING_MICRO_BATCHING", True),
                    observer=PrometheusObserver(),
                )
    return _runtime


def local_dir_for(version) -> Path:
    return Path(settings.TUNEFORGE_CACHE_DIR) / "serving" / version.id


def ensure_local(version) -> Path:
    """The version's artifact folder on this machine, downloaded from storage once (a marker file
    written last says the copy is complete)."""
    from finetune.artifact_storage import download_files

    dest = local_dir_for(version)
    marker = dest / ".complete"
    if not marker.is_file():
        download_files(version.storage_prefix, version.files, dest)
        marker.write_text("ok")
    return dest


@dataclass
class InferenceTarget:
    endpoint: Any | None  # serving.models.Endpoint, or None for a direct `ft:` model name
    model_version: Any  # finetune.models.ModelVersion
    task: str
    options: dict = field(default_factory=dict)
    canary_version: Any | None = None
    canary_percent: int = 0

    @property
    def is_classifier(self) -> bool:
        return self.task in CLASSIFIER_TASKS


@dataclass
class ClassificationResult:
    data: list[dict]
    model_version: str
    usage: dict
    truncated: list[bool]


@dataclass(frozen=True)
class _Route:
    """What a `model` of a team names: an endpoint (with its live and canary versions), or a
    fine-tuned version called directly. Shared by requests, read-only."""

    endpoint: Any | None
    version: Any | None


# (team id, model) -> _Route, valid while the team's access stamp is unchanged: a publish, switch,
# rollback, deploy, canary change or unpublish bumps it (serving.apps), so the next request in every
# process routes to the new version.
_routes: access_stamps.StampedCache[_Route] = access_stamps.StampedCache()


def _load_route(team_id: str, model: str) -> _Route | None:
    from finetune.models import ModelVersion
    from serving.models import Endpoint

    endpoint = (
        Endpoint.objects.select_related("model_version", "canary_version")
        .filter(team_id=team_id, slug=model)
        .first()
    )
    if endpoint is not None:
        return _Route(endpoint=endpoint, version=None)
    version = ModelVersion.objects.filter(team_id=team_id, name=model).first()
    return _Route(endpoint=None, version=version) if version is not None else None


def _route(*, team, model: str, api_key) -> _Route | None:
    # API-key authentication read the stamp of the key's team already, in its one Redis round trip.
    stamp = getattr(api_key, "access_stamp", None) if getattr(api_key, "team_id", None) == team.pk else None
    if stamp is None:
        try:
            stamp = access_stamps.current(team.pk)
        except Exception:  # noqa: BLE001 - no Redis: read the database, as before the cache
            stamp = None
    return _routes.get((team.pk, model), stamp, lambda: _load_route(team.pk, model))


def resolve_target(*, team, model: str, api_key=None, endpoint_only: bool = False) -> InferenceTarget:
    """`model` is an endpoint slug or a fine-tuned model name (`ft:...`) of `team`; with
    `endpoint_only` (the native `/endpoints/{slug}/predict`), an endpoint slug, else a 404 naming it."""
    if api_key is not None and not api_key.has_scope("inference"):
        raise Forbidden("This API key lacks the 'inference' scope.", code="missing_scope")
    if not isinstance(model, str) or not model:
        raise InvalidInput("model is required.", code="missing_model", field="model")
    route = _route(team=team, model=model, api_key=api_key)
    if endpoint_only and (route is None or route.endpoint is None):
        raise NotFound(f"No endpoint {model!r} in team {team.name}.", code="endpoint_not_found", field="slug")
    if route is not None and route.endpoint is not None:
        endpoint = route.endpoint
        allowed = getattr(api_key, "endpoints", None) if api_key is not None else None
        if allowed is not None and endpoint.slug not in allowed:
            raise Forbidden(
                f"This API key may not call the endpoint '{endpoint.slug}'.",
                code="endpoint_not_allowed",
                field="model",
            )
        if endpoint.model_version is None:
            raise ModelUnavailable(
                f"The endpoint '{endpoint.slug}' has no live version yet ({endpoint.status}).",
                field="model",
            )
        return InferenceTarget(
            endpoint=endpoint,
            model_version=endpoint.model_version,
            task=endpoint.model_version.task,
            options=dict(endpoint.options or {}),
            canary_version=endpoint.canary_version,
            canary_percent=endpoint.canary_percent if endpoint.canary_version_id else 0,
        )
    if route is None:
        raise NotFound(
            f"The model '{model}' does not exist or you do not have access to it.",
            code="model_not_found",
            field="model",
        )
    if api_key is not None and getattr(api_key, "endpoints", None) is not None:
        raise Forbidden(
            f"This API key is restricted to endpoints and may not call '{model}' directly.",
            code="endpoint_not_allowed",
            field="model",
        )
    return InferenceTarget(endpoint=None, model_version=route.version, task=route.version.task, options={})


def in_canary(request_id: str, percent: int) -> bool:
    """Deterministic per request id: the same id always lands on the same side."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def version_for(target: InferenceTarget, request_id: str):
    if target.canary_version is not None and in_canary(request_id, target.canary_percent):
        return target.canary_version
    return target.model_version


def truncation_of(options: dict) -> str:
    """The endpoint's over-long-input policy (`truncation` option): cut and say so (the default), or refuse."""
    return REFUSE if (options or {}).get("truncation") == REFUSE else TRUNCATE


def serve_mode(options: dict) -> str:
    """`merged` folds the adapter into its own copy of the base; otherwise the runtime's `auto`
    (an adapter over the shared base when the version is one, the full model when it is not)."""
    return "merged" if (options or {}).get("serve") == "merged" else "auto"


def _map_runtime_error(e: RuntimeServingError, field_name: str) -> ApplicationError:
    if isinstance(e, InputTooLong):
        return InputTooLongError(
            str(e),
            field=f"{field_name}[{e.index}]" if field_name == "input" else field_name,
            details={"index": e.index, "tokens": e.tokens, "max_tokens": e.max_tokens},
        )
    return InvalidInput(str(e), code=e.code, field=field_name)


def check_inputs(inputs: Any) -> list[str]:
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput(
            "input must be a non-empty string or list of strings.", code="empty_input", field="input"
        )
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise InvalidInput(f"input[{i}] must be a string.", field=f"input[{i}]")
        if not text.strip():
            raise InvalidInput(f"input[{i}] is empty.", code="empty_input", field=f"input[{i}]")
    limit = getattr(settings, "TUNEFORGE_INFERENCE_MAX_ITEMS", 64)
    if len(inputs) > limit:
        raise InvalidInput(
            f"input has {len(inputs)} items; at most {limit} are accepted per request.",
            code="too_many_inputs",
            field="input",
        )
    return inputs


def classify(*, target: InferenceTarget, inputs: list[str], request_id: str) -> ClassificationResult:
    if not target.is_classifier:
        raise WrongTaskError(
            f"'{target.model_version.name}' is a {target.task} model: send messages, not input.",
            field="model",
        )
    texts = check_inputs(inputs)
    version = version_for(target, request_id)
    truncation = truncation_of(target.options)
    try:
        results = get_runtime().classify(
            ensure_local(version),
            texts,
            truncation=truncation,
            mode=serve_mode(target.options),
            quantize=target.options.get("quantize") == "int8",
        )
    except RuntimeServingError as e:
        raise _map_runtime_error(e, "input") from None
    data = []
    for i, r in enumerate(results):
        row = {"index": i, "label": r.label, "score": r.score, "scores": r.scores}
        if version.task == "multilabel_classification":
            row["labels"] = r.labels
        data.append(row)
    return ClassificationResult(
        data=data,
        model_version=version.id,
        usage={"input_tokens": sum(r.tokens for r in results)},
        truncated=[r.truncated for r in results],
    )


def _check_chat(target: InferenceTarget, messages: Any) -> None:
    if target.is_classifier:
        raise WrongTaskError(
            f"'{target.model_version.name}' is a {target.task} model: send input, not messages.",
            field="messages",
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list.", code="empty_input", field="messages")


def generate(
    *, target: InferenceTarget, messages, max_tokens, temperature, top_p, stop, n, seed, request_id
) -> tuple[Generation, Any]:
    """(the runtime's Generation, the ModelVersion that served it)."""
    _check_chat(target, messages)
    version = version_for(target, request_id)
    try:
        gen = get_runtime().generate(
            ensure_local(version),
            messages,
            mode=serve_mode(target.options),
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=stop or [],
            n=n,
            seed=seed,
            truncation=truncation_of(target.options),
        )
    except RuntimeServingError as e:
        raise _map_runtime_error(e, "messages") from None
    return gen, version


def generate_stream(
    *, target: InferenceTarget, messages, max_tokens, temperature, top_p, stop, n, seed, request_id
) -> tuple[Iterator[StreamChunk], Any, bool]:
    """(an iterator of the runtime's StreamChunks, n choices interleaved; the ModelVersion serving
    it; whether the conversation was truncated to fit). Input errors are raised here, before the
    first chunk, so a view can still answer with a 4xx (and set its headers)."""
    _check_chat(target, messages)
    version = version_for(target, request_id)
    path = ensure_local(version)
    it = get_runtime().stream(
        path,
        messages,
        mode=serve_mode(target.options),
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=stop or [],
        n=n,
        seed=seed,
        truncation=truncation_of(target.options),
    )
    try:
        first = next(it)
    except StopIteration:
        return iter(()), version, False
    except RuntimeServingError as e:
        raise _map_runtime_error(e, "messages") from None

    def chain() -> Iterator[StreamChunk]:
        # Closed before its first chunk was taken, `yield from` would never close `it`: do it here,
        # so the runtime's stream releases its model and stops generating.
        try:
            yield first
            yield from it
        finally:
            it.close()

    return chain(), version, first.truncated
