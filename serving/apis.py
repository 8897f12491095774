"""The native API for serving: endpoints (create, publish, rollback, canary, events, int8 check)
and `predict`. Viewers read, members and above change; predict needs the `inference` scope on a key."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import ConfirmsAccessLater, TeamApiView, team_context_for
from accounts.models import Role, Team
from common.api import ErrorSerializer, list_schema, refuse_empty_patch
from common.errors import Forbidden, InvalidInput, NotFound
from common.pagination import list_response_body, paginate_after, parse_limit
from serving import inference, quota_policies, selectors, services, usage
from serving.usage_gate import reserve_for_generation, reserve_for_input, usage_gate

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 422, 429, 503)}


def _v(version):
    return None if version is None else {"id": version.id, "name": version.name}


class Int8OutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    model_version = serializers.CharField(source="model_version_id")
    status = serializers.CharField()
    fp32_accuracy = serializers.FloatField(allow_null=True)
    int8_accuracy = serializers.FloatField(allow_null=True)
    accuracy_change = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    message = serializers.CharField()


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
    int8_check = serializers.SerializerMethodField(
        help_text="With options.quantize int8: the int8 check of the deploying (else live) version, "
        "with its fp32 and int8 accuracy."
    )
    created_at = serializers.DateTimeField()

    @extend_schema_field(Int8OutputSerializer(allow_null=True))
    def get_int8_check(self, e) -> dict | None:
        version = e.pending_version or e.model_version
        if (e.options or {}).get("quantize") != "int8" or version is None:
            return None
        check = services.int8_check_of(team=e.team, version=version)
        return None if check is None else Int8OutputSerializer(check).data

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


def _actor(ctx):
    return ctx.user if ctx.user is not None else (ctx.api_key.created_by if ctx.api_key else None)


class EndpointListApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        slug = serializers.CharField(max_length=64)
        model_version = serializers.CharField()
        options = serializers.JSONField(required=False)
        force = serializers.BooleanField(
            default=False, help_text="Serve with int8 without a finished int8 check."
        )

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
        summary="Create an endpoint and deploy a model version to it; with options.quantize int8, "
        "409 int8_check_required unless the version has a finished int8 check (or force)",
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
            force=s.validated_data["force"],
        )
        return Response(EndpointOutputSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(TeamApiView):
    class UpdateSerializer(serializers.Serializer):
        options = serializers.JSONField()
        force = serializers.BooleanField(
            default=False, help_text="Switch to int8 without a finished int8 check."
        )

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
            endpoint=endpoint,
            user=_actor(self.ctx),
            options=s.validated_data["options"],
            force=s.validated_data["force"],
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
        options = serializers.JSONField(required=False, help_text="Options to change with the publish.")

        class Meta:
            ref_name = "EndpointPublishInput"

    @extend_schema(
        operation_id="endpoints_publish",
        summary="Deploy another version; 409 worse_than_live, or int8_check_required for an int8 "
        "endpoint whose new version has no finished int8 check, unless force",
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
            options=s.validated_data.get("options"),
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
            team=self.ctx.team, endpoint=endpoint, model_version_id=s.validated_data.get("model_version")
        )
        return Response(Int8OutputSerializer(check).data, status=status.HTTP_202_ACCEPTED)


class Int8CheckListApi(TeamApiView):
    class InputSerializer(serializers.Serializer):
        model_version = serializers.CharField()

        class Meta:
            ref_name = "Int8CheckInput"

    @extend_schema(
        operation_id="int8_checks_create",
        summary="Measure a version's int8 accuracy change on its validation set (before publishing "
        "it with int8)",
        request=InputSerializer,
        responses={202: Int8OutputSerializer, **ERRORS},
    )
    def post(self, request):
        s = self.InputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        check = services.int8_check_request(
            team=self.ctx.team, model_version_id=s.validated_data["model_version"]
        )
        return Response(Int8OutputSerializer(check).data, status=status.HTTP_202_ACCEPTED)


class Int8CheckDetailApi(TeamApiView):
    @extend_schema(operation_id="int8_checks_retrieve", responses={200: Int8OutputSerializer, **ERRORS})
    def get(self, request, check_id):
        return Response(
            Int8OutputSerializer(selectors.int8_check_by_id(team=self.ctx.team, check_id=check_id)).data
        )


class EndpointPredictApi(ConfirmsAccessLater, TeamApiView):
    """Inference: session users of the team (viewers too) and keys with the `inference` scope."""

    write_role = Role.VIEWER
    scope = "inference"

    @extend_schema(operation_id="endpoints_predict", request=None, responses={200: None, **ERRORS})
    def post(self, request, slug):
        target = inference.resolve_target(
            team=self.ctx.team, model=slug, api_key=self.ctx.api_key, endpoint_only=True
        )
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        body = request.data if isinstance(request.data, dict) else {}
        if target.is_classifier:
            if "messages" in body and "input" not in body:
                raise inference.WrongTaskError(
                    f"'{slug}' is a {target.task} model: send input, not messages.", field="messages"
                )
            inputs = body.get("input")
            with usage_gate(
                team=self.ctx.team, api_key=self.ctx.api_key, endpoint=target.endpoint,
                reserve_tokens=reserve_for_input(inputs),
            ) as call:  # fmt: skip
                result = inference.classify(target=target, inputs=inputs, request_id=request_id)
                call.used(input_tokens=result.usage["input_tokens"], version=result.model_version)
            data = result.data
            top_k = body.get("top_k")
            if top_k is not None:
                if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
                    raise InvalidInput(
                        "top_k must be a positive integer.", field="top_k", headers=call.headers
                    )
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
                headers={"X-Request-Id": request_id, **call.headers},
            )
        messages = body.get("messages")
        if messages is None and isinstance(body.get("input"), str):
            messages = [{"role": "user", "content": body["input"]}]
        max_tokens, n = body.get("max_tokens", 64), body.get("n", 1)
        with usage_gate(
            team=self.ctx.team, api_key=self.ctx.api_key, endpoint=target.endpoint,
            reserve_tokens=reserve_for_generation(max_tokens=max_tokens, n=n),
        ) as call:  # fmt: skip
            gen, version = inference.generate(
                target=target,
                messages=messages,
                max_tokens=max_tokens,
                temperature=body.get("temperature", 1.0),
                top_p=body.get("top_p", 1.0),
                stop=body.get("stop"),
                n=n,
                seed=body.get("seed"),
                request_id=request_id,
            )
            call.used(input_tokens=gen.prompt_tokens, output_tokens=gen.completion_tokens, version=version)
        return Response(
            {
                "object": "list",
                "data": [
                    {"index": c.index, "text": c.text, "finish_reason": c.finish_reason} for c in gen.choices
                ],
                "model_version": version.id,
                "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens},
            },
            headers={"X-Request-Id": request_id, **call.headers},
        )


# --- quotas and usage ----------------------------------------------------------------------------


class TeamQuotaSerializer(serializers.Serializer):
    monthly_requests = serializers.IntegerField(
        min_value=0, allow_null=True, required=False, default=None, help_text="null: unlimited."
    )
    monthly_tokens = serializers.IntegerField(
        min_value=0, allow_null=True, required=False, default=None, help_text="null: unlimited."
    )
    monthly_gpu_hours = serializers.FloatField(min_value=0, help_text="Training, checked at job submission.")
    max_concurrent_jobs = serializers.IntegerField(min_value=0)
    endpoint_requests_per_minute = serializers.IntegerField(
        min_value=0,
        allow_null=True,
        required=False,
        default=None,
        help_text="Each endpoint of the team; null: unlimited.",
    )
    key_requests_per_minute = serializers.IntegerField(
        min_value=0,
        allow_null=True,
        required=False,
        default=None,
        help_text="Each key without its own limit, and the most a key may set.",
    )
    key_tokens_per_minute = serializers.IntegerField(
        min_value=0,
        allow_null=True,
        required=False,
        default=None,
        help_text="Each key without its own limit, and the most a key may set.",
    )

    class Meta:
        ref_name = "TeamQuota"


def staff_person(request) -> bool:
    """A signed-in platform admin (an API key never is one, whoever created it)."""
    return request.auth is None and getattr(request.user, "is_staff", False)


def _quota_team(request, team_id: str):
    """Staff reach every team; a member reads their own; anyone else gets a 404."""
    if staff_person(request):
        team = Team.objects.filter(pk=team_id).first()
        if team is None:
            raise NotFound(f"No team {team_id!r}.", code="team_not_found")
        return team
    ctx = team_context_for(request, team_id=team_id)
    ctx.require(role=Role.VIEWER, scope="read")
    return ctx.team


class TeamQuotaApi(APIView):
    """A team's quota policy: platform admins (staff) write it, the team's members read it."""

    def _write(self, request, team_id, *, partial: bool):
        team = _quota_team(request, team_id)
        if not staff_person(request):
            raise Forbidden("Only platform admins change a team's quotas.", code="staff_required")
        s = TeamQuotaSerializer(data=request.data, partial=partial)
        s.is_valid(raise_exception=True)
        if partial:
            refuse_empty_patch(s.validated_data, fields=list(TeamQuotaSerializer().fields))
        quota = quota_policies.team_quota_set(team=team, actor=request.user, values=dict(s.validated_data))
        return Response(quota.as_dict())

    @extend_schema(operation_id="teams_quota_retrieve", responses={200: TeamQuotaSerializer, **ERRORS})
    def get(self, request, team_id):
        return Response(quota_policies.team_quota_get(team=_quota_team(request, team_id)).as_dict())

    @extend_schema(
        operation_id="teams_quota_update",
        summary="Replace a team's quotas (platform admins)",
        request=TeamQuotaSerializer,
        responses={200: TeamQuotaSerializer, **ERRORS},
    )
    def put(self, request, team_id):
        return self._write(request, team_id, partial=False)

    @extend_schema(
        operation_id="teams_quota_partial_update",
        summary="Change some of a team's quotas (platform admins)",
        request=TeamQuotaSerializer,
        responses={200: TeamQuotaSerializer, **ERRORS},
    )
    def patch(self, request, team_id):
        return self._write(request, team_id, partial=True)


class UsageRowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    team = serializers.CharField()
    endpoint = serializers.CharField(help_text="The endpoint's slug (or the model called directly).")
    key = serializers.CharField(allow_null=True, help_text="`key-<prefix>`; null for signed-in calls.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Answers with status >= 400 (refusals included).")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    latency_mean_ms = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "UsageRow"


class UsageOutputSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `list`.")
    granularity = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    data = UsageRowSerializer(many=True)

    class Meta:
        ref_name = "UsageList"


class UsageCsvRenderer(BaseRenderer):
    """`Accept: text/csv` or `?format=csv`: the usage rows as a CSV file (the view renders them)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        # An error body (e.g. a 400 for a bad filter) keeps its JSON shape.
        return JSONRenderer().render(data)


class UsageApi(APIView):
    """Metered inference calls of the team (staff: of any team with `team`, or all), aggregated."""

    renderer_classes = [JSONRenderer, UsageCsvRenderer]

    @extend_schema(
        operation_id="usage_list",
        summary="Inference usage per bucket, endpoint and key; Accept: text/csv (or format=csv) for CSV",
        parameters=[
            OpenApiParameter("range", str, enum=list(usage.RANGES), description="Up to now (default 24h)."),
            OpenApiParameter("start", str, description="ISO 8601 start (instead of range)."),
            OpenApiParameter("end", str, description="ISO 8601 end (default now)."),
            OpenApiParameter("granularity", str, enum=list(usage.GRANULARITIES)),
            OpenApiParameter("endpoint", str, description="An endpoint slug."),
            OpenApiParameter("key", str, description="An API key id, `key-<prefix>`."),
            OpenApiParameter("team", str, description="Staff only: another team's id, or `all`."),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: UsageOutputSerializer, **ERRORS},
    )
    def get(self, request):
        filters = usage.usage_filters_from(request.query_params)
        team_ids = usage_team_ids(request, wanted=request.query_params.get("team"))
        rows = usage.usage_rows(team_ids=team_ids, filters=filters)
        if request.accepted_renderer.format == "csv":
            return Response(
                usage.usage_csv(rows), headers={"Content-Disposition": 'attachment; filename="usage.csv"'}
            )
        return Response(
            {
                "object": "list",
                "granularity": filters.granularity,
                "start": filters.start,
                "end": filters.end,
                "data": UsageRowSerializer(rows, many=True).data,
            }
        )


def usage_team_ids(request, *, wanted: str | None) -> list[str]:
    """The teams a usage read covers: the caller's own team; a signed-in platform admin may name any
    team or `all` (and sees all by default when in no team)."""
    if staff_person(request):
        if wanted == "all" or (not wanted and not request.membership):
            return list(Team.objects.values_list("pk", flat=True))
        if wanted:
            if not Team.objects.filter(pk=wanted).exists():
                raise NotFound(f"No team {wanted!r}.", code="team_not_found", field="team")
            return [wanted]
    ctx = team_context_for(request)
    ctx.require(role=Role.VIEWER, scope="read")
    if wanted and wanted != ctx.team.pk:
        raise NotFound(f"No team {wanted!r}.", code="team_not_found", field="team")
    return [ctx.team.pk]
