"""The OpenAI-compatible inference face: `POST /v1/chat/completions` (OpenAI's shape, streamed as
server-sent events when `stream: true`) and `POST /v1/classifications` (our extension, in OpenAI's
style: `{object: "list", data: [{index, label, score, scores}], model, usage}`).

Both are thin over `serving.inference` (target resolution, input checks, canary routing, the
process's runtime). Each face has ONE function where the request is authorised and the model is
called: `_run_classification` and `_run_chat`. Anything that must gate every inference call (the
team's quotas) goes there.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.access import ConfirmsAccessLater, OpenAIApiView
from common.errors import Forbidden, InvalidInput
from common.openai_compat import WRITE_ERRORS, openai_error_body, openai_error_type
from serving import inference
from serving.usage_gate import reserve_for_generation, reserve_for_input, usage_gate

CHAT_ROLES = ("system", "developer", "user", "assistant")
DEFAULT_MAX_TOKENS = 256


class InferenceApiView(ConfirmsAccessLater, OpenAIApiView):
    """Inference needs the `inference` scope (any role of the team may call)."""

    def check_access(self, request) -> None:
        if not self.ctx.api_key.has_scope("inference"):
            raise Forbidden("This API key lacks the 'inference' scope.", code="missing_scope")

    def body(self, request) -> dict:
        data = request.data
        if not isinstance(data, dict):
            raise InvalidInput("The request body must be a JSON object.", code="invalid_body")
        return data


def _request_id(request) -> str:
    # The request-id middleware accepted (or made) one; it also decides the canary side.
    return getattr(request, "request_id", None) or uuid.uuid4().hex


# --- parameter checks (each refusal names OpenAI's parameter) -----------------------------------


def _number(body: dict, name: str, default: float, *, low: float, high: float, open_low=False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number.", field=name)
    if value > high or value < low or (open_low and value == low):
        span = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise InvalidInput(f"{name} must be in {span}; got {value}.", code="out_of_range", field=name)
    return float(value)


def _integer(body: dict, name: str, default: int | None, *, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer.", field=name)
    if not low <= value <= high:
        raise InvalidInput(
            f"{name} must be from {low} to {high}; got {value}.", code="out_of_range", field=name
        )
    return value


def _messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list.", code="empty_input", field="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in CHAT_ROLES:
            raise InvalidInput(
                f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}.", field=f"messages[{i}].role"
            )
        content = m.get("content")
        if isinstance(content, list):  # OpenAI's content parts: text parts only
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise InvalidInput(
                    f"messages[{i}].content: only text parts are supported.", field=f"messages[{i}].content"
                )
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content must be a string.", field=f"messages[{i}].content")
        # The engine's templates know system/user/assistant; a developer message is OpenAI's
        # newer name for a system message.
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    if not any(m["content"].strip() for m in out):
        raise InvalidInput("messages hold no text.", code="empty_input", field="messages")
    return out


def _stop(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise InvalidInput("stop must be a string or a list of up to 4 non-empty strings.", field="stop")
    return stop


def chat_params(body: dict) -> dict[str, Any]:
    """The generation parameters of a chat request, checked."""
    max_tokens = body.get("max_completion_tokens")
    name = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, name = body.get("max_tokens"), "max_tokens"
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidInput(f"{name} must be a positive integer.", field=name)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInput("stream must be true or false.", field="stream")
    options = body.get("stream_options")
    if options is not None and (not stream or not isinstance(options, dict)):
        raise InvalidInput(
            "stream_options is an object, allowed only with stream: true.", field="stream_options"
        )
    n = _integer(body, "n", 1, low=1, high=16)
    return {
        "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
        "temperature": _number(body, "temperature", 1.0, low=0, high=2),
        "top_p": _number(body, "top_p", 1.0, low=0, high=1, open_low=True),
        "stop": _stop(body),
        "n": n,
        "seed": _integer(body, "seed", None, low=-(2**63), high=2**63 - 1),
        "stream": stream,
        "include_usage": bool((options or {}).get("include_usage")),
    }


# --- the one place per face where the call is authorised and run --------------------------------


def _gate(*, ctx, target, body: dict, reserve_tokens: int):
    """The quota gate for a /v1/ call (serving/usage_gate.py): 429/503 before any work is done."""
    return usage_gate(
        team=ctx.team,
        api_key=ctx.api_key,
        endpoint=target.endpoint,
        model=None if target.endpoint is not None else body.get("model"),
        reserve_tokens=reserve_tokens,
    )


def _run_classification(*, ctx, body: dict, request_id: str) -> tuple[inference.ClassificationResult, dict]:
    """(the result, the x-ratelimit-* headers of the answer)."""
    target = inference.resolve_target(team=ctx.team, model=body.get("model"), api_key=ctx.api_key)
    with _gate(
        ctx=ctx, target=target, body=body, reserve_tokens=reserve_for_input(body.get("input"))
    ) as call:
        result = inference.classify(target=target, inputs=body.get("input"), request_id=request_id)
        call.used(input_tokens=result.usage["input_tokens"], version=result.model_version)
    return result, call.headers


def _run_chat(*, ctx, body: dict, messages: list, params: dict, request_id: str):
    """(a Generation, or an iterator of StreamChunks when streaming; the ModelVersion serving; the
    answer's headers: x-ratelimit-* and X-Tuneforge-Truncated). A stream holds its gate open until
    the stream ends, so the tokens it really produced are settled and metered then (or at the point
    where the client went away)."""
    target = inference.resolve_target(team=ctx.team, model=body.get("model"), api_key=ctx.api_key)
    reserve = reserve_for_generation(max_tokens=params["max_tokens"], n=params["n"])
    kwargs = dict(
        target=target,
        messages=messages,
        max_tokens=params["max_tokens"],
        temperature=params["temperature"],
        top_p=params["top_p"],
        stop=params["stop"],
        n=params["n"],
        seed=params["seed"],
        request_id=request_id,
    )
    if not params["stream"]:
        with _gate(ctx=ctx, target=target, body=body, reserve_tokens=reserve) as call:
            out, version = inference.generate(**kwargs)
            call.used(input_tokens=out.prompt_tokens, output_tokens=out.completion_tokens, version=version)
        return out, version, {**call.headers, **_truncated_header(out.truncated)}
    gate = _gate(ctx=ctx, target=target, body=body, reserve_tokens=reserve)
    call = gate.__enter__()
    try:
        chunks, version, truncated = inference.generate_stream(**kwargs)
    except BaseException as exc:
        gate.__exit__(type(exc), exc, exc.__traceback__)
        raise
    call.used(version=version)
    stream = _metered_stream(chunks, gate=gate, call=call)
    return stream, version, {**call.headers, **_truncated_header(truncated)}


def _truncated_header(truncated: bool) -> dict:
    # The official clients ignore unknown headers; a caller who cares reads this one.
    return {"X-Tuneforge-Truncated": "true" if truncated else "false"}


def _metered_stream(chunks: Iterator, *, gate, call) -> Iterator:
    """Pass the runtime's chunks on, counting the tokens as each choice finishes (the prompt once,
    as in the non-streamed answer; the choices' completions summed); close the gate at the end."""
    completion = 0
    try:
        for chunk in chunks:
            if chunk.finish_reason is not None:
                completion += chunk.completion_tokens or 0
                call.used(
                    input_tokens=chunk.prompt_tokens or call.input_tokens,
                    output_tokens=completion,
                    version=call.version_id,
                )
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        gate.__exit__(None, None, None)


# --- response shapes ------------------------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse_events(chunks: Iterator, *, completion_id: str, created: int, model: str, version_id: str,
               include_usage: bool, n: int = 1) -> Iterator[str]:  # fmt: skip
    """OpenAI's stream: a role delta per choice first, content deltas (the n choices interleaved,
    each chunk naming its choice's index), a chunk with each choice's finish_reason, the usage
    chunk (`choices: []`; the prompt once, the completions summed) when asked for, then
    `data: [DONE]`. A client that goes away closes
    this generator (the WSGI server calls close()), which closes the runtime's stream: generation
    stops at the next token."""

    def event(choices: list, **extra) -> str:
        obj = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": version_id,
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = None
        obj.update(extra)
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    def choice(index: int, delta: dict, finish_reason=None) -> list:
        return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    try:
        for index in range(n):
            yield event(choice(index, {"role": "assistant", "content": ""}))
        prompt, completion, finished = 0, 0, 0
        for c in chunks:
            if c.delta:
                yield event(choice(c.index, {"content": c.delta}))
            if c.finish_reason is not None:
                yield event(choice(c.index, {}, c.finish_reason))
                prompt, completion, finished = (
                    c.prompt_tokens or 0,
                    completion + (c.completion_tokens or 0),
                    finished + 1,
                )
        if include_usage and finished:
            yield event([], usage=_usage(prompt, completion))
    except Exception as e:  # noqa: BLE001 - the status line is sent: an error event is all we can say
        body = openai_error_body(
            status_code=500, code="generation_failed", message=f"Generation failed: {e}", field=None
        )
        body["error"]["type"] = openai_error_type(500)
        yield f"data: {json.dumps(body)}\n\n"
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    yield "data: [DONE]\n\n"


class ClassificationInputSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="An endpoint slug or a fine-tuned model name (`ft:...`).")
    input = serializers.JSONField(help_text="A string or a list of strings.")

    class Meta:
        ref_name = "OpenAIClassificationInput"


class ClassificationRowSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    label = serializers.CharField()
    score = serializers.FloatField()
    scores = serializers.DictField(child=serializers.FloatField())
    labels = serializers.ListField(child=serializers.CharField(), required=False)
    truncated = serializers.BooleanField(help_text="The input was cut to the model's maximum length.")

    class Meta:
        ref_name = "OpenAIClassificationRow"


class ClassificationOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ClassificationRowSerializer(many=True)
    model = serializers.CharField()
    usage = serializers.DictField(child=serializers.IntegerField())

    class Meta:
        ref_name = "OpenAIClassificationList"


class ClassificationsApi(InferenceApiView):
    @extend_schema(
        operation_id="openai_classifications_create",
        summary="Classify one text or a list (Tuneforge's extension, OpenAI style)",
        request=ClassificationInputSerializer,
        responses={200: ClassificationOutputSerializer, **WRITE_ERRORS},
        tags=["openai"],
    )
    def post(self, request):
        body = self.body(request)
        request_id = _request_id(request)
        result, quota_headers = _run_classification(ctx=self.ctx, body=body, request_id=request_id)
        for row, cut in zip(result.data, result.truncated, strict=True):
            row["truncated"] = cut
        tokens = result.usage["input_tokens"]
        return Response(
            {
                "object": "list",
                "data": result.data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers={"X-Model-Version": result.model_version, **quota_headers},
        )


class ChatCompletionInputSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="An endpoint slug or a fine-tuned model name (`ft:...`).")
    messages = serializers.ListField(child=serializers.DictField())
    max_tokens = serializers.IntegerField(required=False)
    max_completion_tokens = serializers.IntegerField(required=False)
    temperature = serializers.FloatField(required=False)
    top_p = serializers.FloatField(required=False)
    stop = serializers.JSONField(required=False)
    n = serializers.IntegerField(required=False)
    seed = serializers.IntegerField(required=False)
    stream = serializers.BooleanField(required=False)
    stream_options = serializers.DictField(required=False)

    class Meta:
        ref_name = "OpenAIChatCompletionInput"


class ChatCompletionsApi(InferenceApiView):
    @extend_schema(
        operation_id="openai_chat_completions_create",
        summary="A chat completion (OpenAI shape; `stream: true` answers server-sent events)",
        request=ChatCompletionInputSerializer,
        responses={200: None, **WRITE_ERRORS},
        tags=["openai"],
    )
    def post(self, request):
        body = self.body(request)
        if not isinstance(body.get("model"), str) or not body.get("model"):
            raise InvalidInput("model is required.", code="missing_model", field="model")
        messages = _messages(body)
        params = chat_params(body)
        request_id = _request_id(request)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        out, version, quota_headers = _run_chat(
            ctx=self.ctx, body=body, messages=messages, params=params, request_id=request_id
        )
        if params["stream"]:
            response = StreamingHttpResponse(
                sse_events(
                    out,
                    completion_id=completion_id,
                    created=created,
                    model=body["model"],
                    version_id=version.id,
                    include_usage=params["include_usage"],
                    n=params["n"],
                ),
                content_type="text/event-stream; charset=utf-8",
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # a proxy (nginx) must pass each event on at once
            response["X-Model-Version"] = version.id
            for name, value in quota_headers.items():
                response[name] = value
            return response
        return Response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "system_fingerprint": version.id,
                "choices": [
                    {
                        "index": c.index,
                        "message": {"role": "assistant", "content": c.text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": c.finish_reason,
                    }
                    for c in out.choices
                ],
                "usage": _usage(out.prompt_tokens, out.completion_tokens),
                # Tuneforge's extension (the official clients keep unknown fields aside): the
                # conversation was cut to fit the model's context (endpoint option `truncation`).
                "truncated": out.truncated,
            },
            headers={"X-Model-Version": version.id, **quota_headers},
        )


urlpatterns = [
    path("classifications", ClassificationsApi.as_view(), name="openai-classifications"),
    path("chat/completions", ChatCompletionsApi.as_view(), name="openai-chat-completions"),
]
