"""The native API for serving: endpoints (create, publish, rollback, canary, events, int8 check)
and `predict`. Viewers read, members and above change; predict needs the `inference` scope on a key."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.access import TeamApiView
from accounts.models import Role
from common.api import ErrorSerializer, list_schema
from common.errors import InvalidInput
from common.pagination import list_response_body, paginate_after, parse_limit
from serving import inference, selectors, services

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 422, 429)}


def _v(version):
    return None if version is None else {"id": version.id, "name": version.name}


class EndpointOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    slug = serializers.CharField()
    status = serializers.CharField()
    status_message = serializers.CharField()
    model_version = serializers.SerializerMethodField()
    pending_version = serializers.SerializerMethodField()
    previous_version = serializers.SerializerMethodField()
    canary_version = serializers.SerializerMethodField()
    canary_percent = serializers.IntegerField()
    options = serializers.JSONField()
    created_at = serializers.DateTimeField()

    def get_model_version(self, e) -> dict | None:
        return _v(e.model_version)

    def get_pending_version(self, e) -> dict | None:
        return _v(e.pending_version)

    def get_previous_version(self, e) -> dict | None:
        return _v(e.previous_version)

    def get_canary_version(self, e) -> dict | None:
        return _v(e.canary_version)


class EndpointEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    actor = serializers.SerializerMethodField()
    from_version = serializers.CharField(source="from_version_id", allow_null=True)
    to_version = serializers.CharField(source="to_version_id", allow_null=True)
    message = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_actor(self, ev) -> str | None:
        return ev.actor.email if ev.actor else None


class Int8OutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    model_version = serializers.CharField(source="model_version_id")
    status = serializers.CharField()
    fp32_accuracy = serializers.FloatField(allow_null=True)
    int8_accuracy = serializers.FloatField(allow_null=True)
    accuracy_change = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    message = serializers.CharField()


def _actor(ctx):
    return ctx.user if ctx.user is not None else (ctx.api_key.created_by if ctx.api_key else None)


class EndpointListApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        slug = serializers.CharField(max_length=64)
        model_version = serializers.CharField()
        options = serializers.JSONField(required=False)

        class Meta:
            ref_name = "EndpointCreateInput"

    @extend_schema(
        operation_id="endpoints_list",
        summary="The team's endpoints, newest first",
        responses={200: list_schema(EndpointOutputSerializer, name="EndpointList"), **ERRORS},
    )
    def get(self, request):
        page = paginate_after(
            selectors.endpoint_list(team=self.ctx.team),
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
        )
        return Response(list_response_body(page, EndpointOutputSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="endpoints_create",
        summary="Create an endpoint and deploy a model version to it",
        request=InputSerializer,
        responses={201: EndpointOutputSerializer, **ERRORS},
    )
    def post(self, request):
        s = self.InputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(
            team=self.ctx.team,
            user=_actor(self.ctx),
            slug=s.validated_data["slug"],
            model_version_id=s.validated_data["model_version"],
            options=s.validated_data.get("options"),
        )
        return Response(EndpointOutputSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(TeamApiView):
    class UpdateSerializer(serializers.Serializer):
        options = serializers.JSONField()

        class Meta:
            ref_name = "EndpointUpdateInput"

    @extend_schema(operation_id="endpoints_retrieve", responses={200: EndpointOutputSerializer, **ERRORS})
    def get(self, request, slug):
        return Response(EndpointOutputSerializer(selectors.endpoint_get(team=self.ctx.team, slug=slug)).data)

    @extend_schema(
        operation_id="endpoints_partial_update",
        request=UpdateSerializer,
        responses={200: EndpointOutputSerializer, **ERRORS},
    )
    def patch(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        s = self.UpdateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(
            endpoint=endpoint, user=_actor(self.ctx), options=s.validated_data["options"]
        )
        return Response(EndpointOutputSerializer(endpoint).data)

    @extend_schema(
        operation_id="endpoints_destroy",
        summary="Unpublish: delete the endpoint",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        services.endpoint_unpublish(endpoint=endpoint, user=_actor(self.ctx))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointPublishApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        model_version = serializers.CharField()
        force = serializers.BooleanField(default=False)

        class Meta:
            ref_name = "EndpointPublishInput"

    @extend_schema(
        operation_id="endpoints_publish",
        summary="Deploy another version; 409 worse_than_live unless force",
        request=InputSerializer,
        responses={202: EndpointOutputSerializer, **ERRORS},
    )
    def post(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        s = self.InputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint = services.endpoint_publish(
            endpoint=endpoint,
            user=_actor(self.ctx),
            model_version_id=s.validated_data["model_version"],
            force=s.validated_data["force"],
        )
        return Response(EndpointOutputSerializer(endpoint).data, status=status.HTTP_202_ACCEPTED)


class EndpointRollbackApi(TeamApiView):
    @extend_schema(
        operation_id="endpoints_rollback", request=None, responses={200: EndpointOutputSerializer, **ERRORS}
    )
    def post(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        endpoint = services.endpoint_rollback(endpoint=endpoint, user=_actor(self.ctx))
        return Response(EndpointOutputSerializer(endpoint).data)


class EndpointCanaryApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        model_version = serializers.CharField()
        percent = serializers.IntegerField()

        class Meta:
            ref_name = "EndpointCanaryInput"

    @extend_schema(
        operation_id="endpoints_canary_set",
        request=InputSerializer,
        responses={200: EndpointOutputSerializer, **ERRORS},
    )
    def put(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        s = self.InputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        endpoint = services.endpoint_set_canary(
            endpoint=endpoint,
            user=_actor(self.ctx),
            model_version_id=s.validated_data["model_version"],
            percent=s.validated_data["percent"],
        )
        return Response(EndpointOutputSerializer(endpoint).data)

    @extend_schema(operation_id="endpoints_canary_clear", responses={200: EndpointOutputSerializer, **ERRORS})
    def delete(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        endpoint = services.endpoint_clear_canary(endpoint=endpoint, user=_actor(self.ctx))
        return Response(EndpointOutputSerializer(endpoint).data)


class EndpointEventListApi(TeamApiView):
    @extend_schema(
        operation_id="endpoints_events",
        responses={200: list_schema(EndpointEventOutputSerializer, name="EndpointEventList"), **ERRORS},
    )
    def get(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        page = paginate_after(
            selectors.endpoint_event_list(endpoint=endpoint),
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
            order="-id",
        )
        return Response(list_response_body(page, EndpointEventOutputSerializer(page.items, many=True).data))


class EndpointInt8Api(TeamApiView):
    class InputSerializer(serializers.Serializer):
        model_version = serializers.CharField(required=False)

        class Meta:
            ref_name = "EndpointInt8Input"

    @extend_schema(operation_id="endpoints_int8_result", responses={200: Int8OutputSerializer, **ERRORS})
    def get(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        check = selectors.int8_check_get(
            endpoint=endpoint, model_version_id=request.query_params.get("model_version")
        )
        return Response(Int8OutputSerializer(check).data)

    @extend_schema(
        operation_id="endpoints_int8_check",
        request=InputSerializer,
        responses={202: Int8OutputSerializer, **ERRORS},
    )
    def post(self, request, slug):
        endpoint = selectors.endpoint_get(team=self.ctx.team, slug=slug)
        s = self.InputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        check = services.int8_check_request(
            endpoint=endpoint, model_version_id=s.validated_data.get("model_version")
        )
        return Response(Int8OutputSerializer(check).data, status=status.HTTP_202_ACCEPTED)


class EndpointPredictApi(TeamApiView):
    """Inference: session users of the team (viewers too) and keys with the `inference` scope."""

    write_role = Role.VIEWER
    scope = "inference"

    @extend_schema(operation_id="endpoints_predict", request=None, responses={200: None, **ERRORS})
    def post(self, request, slug):
        selectors.endpoint_get(team=self.ctx.team, slug=slug)
        target = inference.resolve_target(team=self.ctx.team, model=slug, api_key=self.ctx.api_key)
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        body = request.data if isinstance(request.data, dict) else {}
        if target.is_classifier:
            if "messages" in body and "input" not in body:
                raise inference.WrongTaskError(
                    f"'{slug}' is a {target.task} model: send input, not messages.", field="messages"
                )
            result = inference.classify(target=target, inputs=body.get("input"), request_id=request_id)
            data = result.data
            top_k = body.get("top_k")
            if top_k is not None:
                if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
                    raise InvalidInput("top_k must be a positive integer.", field="top_k")
                for row in data:
                    row["scores"] = dict(sorted(row["scores"].items(), key=lambda kv: -kv[1])[:top_k])
            for row, cut in zip(data, result.truncated, strict=True):
                row["truncated"] = cut
            return Response(
                {
                    "object": "list",
                    "data": data,
                    "model_version": result.model_version,
                    "usage": result.usage,
                },
                headers={"X-Request-Id": request_id},
            )
        messages = body.get("messages")
        if messages is None and isinstance(body.get("input"), str):
            messages = [{"role": "user", "content": body["input"]}]
        gen, version = inference.generate(
            target=target,
            messages=messages,
            max_tokens=body.get("max_tokens", 64),
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            stop=body.get("stop"),
            n=body.get("n", 1),
            seed=body.get("seed"),
            request_id=request_id,
        )
        return Response(
            {
                "object": "list",
                "data": [
                    {"index": c.index, "text": c.text, "finish_reason": c.finish_reason} for c in gen.choices
                ],
                "model_version": version.id,
                "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens},
            },
            headers={"X-Request-Id": request_id},
        )
