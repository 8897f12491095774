"""The OpenAI-compatible face (`/v1/`): API keys only, OpenAI's shapes and error body.

Files and fine-tuning jobs are a thin translation over the datasets and finetune services and
selectors: a file is a dataset version, a job a `FineTuneJob`; every check is theirs.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import team_context_for
from accounts.authentication import ApiKeyAuthentication
from accounts.models import ApiKey, Role
from common.api import list_schema
from common.errors import ApplicationError, Forbidden, InvalidInput, NotFound, Unprocessable
from common.pagination import list_response_body, paginate_after, parse_limit
from datasets_app import selectors as dataset_selectors
from datasets_app import services as dataset_services
from datasets_app.apis import UploadApiMixin, _PassThroughNegotiation
from finetune import selectors as job_selectors
from finetune import services as job_services
from serving import openai_shapes as shapes
from serving import selectors


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    """`{"error": {"message", "type", "param", "code"}}`, as OpenAI's clients expect."""

    error = OpenAIErrorDetailSerializer()


OPENAI_ERRORS = {code: OpenAIErrorSerializer for code in (401, 403, 404)}
WRITE_ERRORS = {code: OpenAIErrorSerializer for code in (400, 401, 403, 404, 409, 413, 422, 429)}
PAGE_PARAMS = [
    OpenApiParameter("after", str, description="The last id of the previous page."),
    OpenApiParameter("limit", int, description="At most this many items (1–100, default 20)."),
]


class OpenAIApiView(APIView):
    """Base of every `/v1/` view: authenticated by an API key holding one of `scopes`."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]
    scopes: tuple[str, ...] = ("read", "inference")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        api_key: ApiKey = request.auth
        if not any(api_key.has_scope(scope) for scope in self.scopes):
            wanted = " or ".join(f"'{scope}'" for scope in self.scopes)
            raise Forbidden(f"This API key lacks the {wanted} scope.", code="missing_scope")
        self.team = api_key.team


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    created = serializers.SerializerMethodField()
    owned_by = serializers.CharField()

    class Meta:
        ref_name = "OpenAIModel"

    def get_object(self, entry) -> str:
        return "model"

    def get_created(self, entry) -> int:
        return int(entry.created.timestamp())


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `list`.")
    data = ModelSerializer(many=True)

    class Meta:
        ref_name = "OpenAIModelList"


class ModelListApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_models_list",
        summary="Models this key's team can use (OpenAI shape)",
        responses={200: ModelListSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request):
        entries = selectors.model_list_for_team(team=self.team)
        return Response({"object": "list", "data": ModelSerializer(entries, many=True).data})


class ModelDetailApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_models_retrieve",
        summary="One model (OpenAI shape)",
        responses={200: ModelSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, model_id):
        return Response(ModelSerializer(selectors.model_get_for_team(team=self.team, model_id=model_id)).data)


# --- files and fine-tuning jobs -----------------------------------------------------------------


class OpenAITeamApiView(APIView):
    """A team-scoped `/v1/` view: API keys only; the `read` scope for GET, `write` for POST/DELETE."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.ctx = team_context_for(request)
        self.ctx.require(role=Role.VIEWER if request.method in SAFE_METHODS else Role.MEMBER)


def _page(request, queryset, *, order: str = "-created_at", after: str | int | None = None):
    """One page of `queryset` by OpenAI's `after`/`limit` (`after` given when it is not the raw parameter)."""
    after = request.query_params.get("after") if after is None else after
    return paginate_after(
        queryset, after=after, limit=parse_limit(request.query_params.get("limit")), order=order
    )


class FileUploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,
        help_text="JSONL: chat `{messages}` or classification `{text, label}` rows (CSV/TSV work too).",
    )
    purpose = serializers.CharField(help_text="Only `fine-tune`.")

    class Meta:
        ref_name = "OpenAIFileUpload"

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {
                    unknown[0]: "Unrecognized request argument supplied: "
                    f"{unknown[0]}; this API takes file and purpose."
                }
            )
        if attrs["purpose"] != shapes.FILE_PURPOSE:
            raise serializers.ValidationError(
                {
                    "purpose": f"purpose must be 'fine-tune', got {attrs['purpose']!r}: "
                    "Tuneforge stores files for fine-tuning only."
                }
            )
        return attrs


class FileListApi(UploadApiMixin, OpenAITeamApiView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="openai_files_list",
        summary="The team's files (dataset versions), newest first",
        parameters=[
            *PAGE_PARAMS,
            OpenApiParameter("order", str, enum=["asc", "desc"]),
            OpenApiParameter("purpose", str),
        ],
        responses={200: list_schema(shapes.FileSerializer, name="OpenAIFileList"), **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request):
        order = request.query_params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidInput(f"order must be 'asc' or 'desc', got {order!r}.", field="order")
        versions = dataset_selectors.team_version_list(team=self.ctx.team)
        if request.query_params.get("purpose") not in (None, "", shapes.FILE_PURPOSE):
            versions = versions.none()  # every file here is a fine-tuning file
        page = _page(request, versions, order="created_at" if order == "asc" else "-created_at")
        return Response(list_response_body(page, shapes.FileSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="openai_files_create",
        summary="Upload a fine-tuning file (a new dataset version)",
        request={"multipart/form-data": FileUploadInputSerializer},
        responses={200: shapes.FileSerializer, **WRITE_ERRORS},
        tags=["openai"],
    )
    def post(self, request):
        serializer = FileUploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            outcome = dataset_services.dataset_create_from_upload(
                team=self.ctx.team,
                user=None,
                file=upload,
                filename=upload.name,
                options=dataset_services.UploadOptions(),
            )
        except Unprocessable as exc:
            if exc.code != "invalid_dataset":
                raise
            # OpenAI's clients expect a bad file to be a 400; the message names the file and line.
            raise InvalidInput(exc.message, code="invalid_file", field="file") from None
        return Response(shapes.FileSerializer(outcome.version).data)


class FileDetailApi(OpenAITeamApiView):
    @extend_schema(
        operation_id="openai_files_retrieve",
        summary="One file",
        responses={200: shapes.FileSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, file_id):
        return Response(shapes.FileSerializer(_file(self.ctx.team, file_id)).data)

    @extend_schema(
        operation_id="openai_files_delete",
        summary="Delete a file (409 while a job uses it)",
        responses={200: shapes.FileDeletedSerializer, **WRITE_ERRORS},
        tags=["openai"],
    )
    def delete(self, request, file_id):
        version = _file(self.ctx.team, file_id)
        dataset_services.dataset_version_delete(version=version)
        return Response({"id": version.id, "object": "file", "deleted": True})


def _file(team, file_id: str):
    try:
        return dataset_selectors.dataset_version_get(team=team, version_id=file_id)
    except NotFound:
        raise NotFound(f"No such File object: {file_id}.", code="file_not_found", field="id") from None


def _file_content(version) -> Iterator[bytes]:
    for split in dataset_selectors.SPLITS:
        with dataset_selectors.open_split(version=version, split=split) as fh:
            if fh is not None:
                while chunk := fh.read(64 * 1024):
                    yield chunk


class FileContentApi(OpenAITeamApiView):
    content_negotiation_class = _PassThroughNegotiation  # the client asks for `Accept: application/binary`

    @extend_schema(
        operation_id="openai_files_content",
        summary="The file's normalized JSONL (training rows, then validation rows)",
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, file_id):
        version = _file(self.ctx.team, file_id)
        response = StreamingHttpResponse(_file_content(version), content_type="application/jsonl")
        response["Content-Length"] = str(shapes.file_bytes(version))
        return response


class JobCreateInputSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="A base model name, as `/v1/models` lists it.")
    training_file = serializers.CharField(help_text="A file id (`dsv-...`).")
    validation_file = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Refused: the training file's version carries its validation split.",
    )
    suffix = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    hyperparameters = serializers.DictField(
        required=False, allow_null=True, help_text="Legacy; prefer method."
    )
    method = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='{"type": "supervised", "supervised": {"hyperparameters": {...}}}',
    )
    metadata = serializers.DictField(required=False, allow_null=True, help_text="Refused unless empty.")
    integrations = serializers.ListField(required=False, allow_null=True, help_text="Refused unless empty.")

    class Meta:
        ref_name = "OpenAIFineTuningJobCreate"

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {unknown[0]: f"Unrecognized request argument supplied: {unknown[0]}."}
            )
        return attrs


OPENAI_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def _submitted_hyperparameters(data: dict) -> tuple[dict, str]:
    """OpenAI's hyperparameters (from `method` or the legacy field) and the parameter path they came from."""
    method, legacy = data.get("method"), data.get("hyperparameters")
    if method:
        kind = method.get("type")
        if kind != "supervised":
            raise InvalidInput(
                f"method.type {kind!r} is not supported: Tuneforge fine-tunes with 'supervised' only "
                "(no dpo or reinforcement).",
                code="unsupported_method",
                field="method.type",
            )
        if legacy:
            raise InvalidInput(
                "Give hyperparameters in method.supervised.hyperparameters or in the legacy "
                "hyperparameters field, not both.",
                field="hyperparameters",
            )
        where = "method.supervised.hyperparameters"
        hyperparameters = (method.get("supervised") or {}).get("hyperparameters") or {}
    else:
        where, hyperparameters = "hyperparameters", legacy or {}
    if not isinstance(hyperparameters, dict):
        raise InvalidInput(f"{where} must be an object.", field=where)
    unknown = sorted(set(hyperparameters) - set(OPENAI_HYPERPARAMETERS))
    if unknown:
        raise InvalidInput(
            f"{where}.{unknown[0]} is not supported here; these are: "
            f"{', '.join(OPENAI_HYPERPARAMETERS)} (the native API at /api/v1/jobs takes the rest).",
            field=f"{where}.{unknown[0]}",
        )
    return hyperparameters, where


def _refuse_unsupported(data: dict) -> None:
    if data.get("validation_file"):
        raise InvalidInput(
            "validation_file is not supported here: a Tuneforge job trains on one dataset version, which carries its "
            "own validation split (a file uploaded to /v1/files holds out 10% of its rows). To choose the validation "
            "rows, upload training and validation together through the native API (POST /api/v1/datasets with file "
            "and validation_file) and pass that version's id as training_file.",
            code="unsupported_parameter",
            field="validation_file",
        )
    if data.get("metadata"):
        raise InvalidInput(
            "metadata is not supported: Tuneforge jobs have no place to store it; omit it.",
            code="unsupported_parameter",
            field="metadata",
        )
    if data.get("integrations"):
        raise InvalidInput(
            "integrations are not supported: Tuneforge reports metrics itself (events, checkpoints "
            "and the native /api/v1/jobs/{id}/metrics); omit integrations.",
            code="unsupported_parameter",
            field="integrations",
        )


@contextmanager
def _as_openai_params(hyperparameters_path: str):
    """Service errors name native fields; name the OpenAI parameter the client sent instead."""
    try:
        yield
    except ApplicationError as exc:
        field = exc.field or ""
        if field == "dataset_version":
            exc.field = "training_file"
        elif field == "hyperparameters.learning_rate":
            exc.field = f"{hyperparameters_path}.learning_rate_multiplier"
        elif field.startswith("hyperparameters"):
            exc.field = hyperparameters_path + field[len("hyperparameters") :]
        raise


def _job_request(data: dict, hyperparameters: dict) -> job_services.JobRequest:
    extra = {"seed": data["seed"]} if data.get("seed") is not None else {}
    return job_services.JobRequest(
        dataset_version=data["training_file"],
        model=data["model"],
        hyperparameters=hyperparameters,
        suffix=data.get("suffix") or "",
        **extra,
    )


class JobListApi(OpenAITeamApiView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="openai_fine_tuning_jobs_list",
        summary="The team's fine-tuning jobs, newest first",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(shapes.JobSerializer, name="OpenAIFineTuningJobList"), **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request):
        page = _page(request, job_selectors.job_list(team=self.ctx.team))
        return Response(list_response_body(page, shapes.JobSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="openai_fine_tuning_jobs_create",
        summary="Create a fine-tuning job",
        request=JobCreateInputSerializer,
        responses={200: shapes.JobSerializer, **WRITE_ERRORS},
        tags=["openai"],
    )
    def post(self, request):
        serializer = JobCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _refuse_unsupported(data)
        submitted, where = _submitted_hyperparameters(data)
        native = {key: submitted[key] for key in ("n_epochs", "batch_size") if submitted.get(key) is not None}
        multiplier = submitted.get("learning_rate_multiplier")
        with _as_openai_params(where):
            if multiplier not in (None, "auto"):
                if (
                    isinstance(multiplier, bool)
                    or not isinstance(multiplier, (int, float))
                    or multiplier <= 0
                ):
                    raise InvalidInput(
                        f'{where}.learning_rate_multiplier must be a positive number or "auto", '
                        f"got {multiplier!r}.",
                        field=f"{where}.learning_rate_multiplier",
                    )
                # The multiplier scales the engine's automatic rate, which the estimate resolves.
                estimate = job_services.job_estimate(team=self.ctx.team, request=_job_request(data, native))
                native["learning_rate"] = estimate["hyperparameters"]["learning_rate"] * multiplier
            job = job_services.job_create(team=self.ctx.team, user=None, request=_job_request(data, native))
        return Response(shapes.JobSerializer(_job(self.ctx.team, job.id)).data)


def _job(team, job_id: str):
    return job_selectors.job_get(team=team, job_id=job_id)


class JobDetailApi(OpenAITeamApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_retrieve",
        summary="One fine-tuning job",
        responses={200: shapes.JobSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, job_id):
        return Response(shapes.JobSerializer(_job(self.ctx.team, job_id)).data)


def _job_action_api(action: str, service, summary: str) -> type[OpenAITeamApiView]:
    class JobActionApi(OpenAITeamApiView):
        @extend_schema(
            operation_id=f"openai_fine_tuning_jobs_{action}",
            summary=summary,
            request=None,
            responses={200: shapes.JobSerializer, **WRITE_ERRORS},
            tags=["openai"],
        )
        def post(self, request, job_id):
            service(job=_job(self.ctx.team, job_id), actor=None)
            return Response(shapes.JobSerializer(_job(self.ctx.team, job_id)).data)

    JobActionApi.__name__ = JobActionApi.__qualname__ = f"OpenAIJob{action.title()}Api"
    return JobActionApi


JobCancelApi = _job_action_api("cancel", job_services.job_cancel, "Cancel a job")
JobPauseApi = _job_action_api(
    "pause", job_services.job_pause, "Pause a job (reported as queued while paused)"
)
JobResumeApi = _job_action_api("resume", job_services.job_resume, "Resume a paused job")


class JobEventListApi(OpenAITeamApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_events",
        summary="A job's events, newest first",
        parameters=PAGE_PARAMS,
        responses={
            200: list_schema(shapes.JobEventSerializer, name="OpenAIFineTuningJobEventList"),
            **OPENAI_ERRORS,
        },
        tags=["openai"],
    )
    def get(self, request, job_id):
        job = _job(self.ctx.team, job_id)
        after = job_selectors.parse_event_id(request.query_params.get("after"))
        page = _page(
            request, job_selectors.job_event_list(job=job), order="-id", after=after or ""
        )  # "" = first page
        return Response(
            list_response_body(
                page,
                shapes.JobEventSerializer(page.items, many=True).data,
                id_of=lambda event: event.public_id,
            )
        )


class JobCheckpointListApi(OpenAITeamApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_checkpoints",
        summary="A job's checkpoints, newest first",
        parameters=PAGE_PARAMS,
        responses={
            200: list_schema(shapes.JobCheckpointSerializer, name="OpenAIFineTuningJobCheckpointList"),
            **OPENAI_ERRORS,
        },
        tags=["openai"],
    )
    def get(self, request, job_id):
        job = _job(self.ctx.team, job_id)
        page = _page(
            request, job_selectors.job_checkpoint_list(job=job).select_related("job__base_model", "job__team")
        )
        return Response(list_response_body(page, shapes.JobCheckpointSerializer(page.items, many=True).data))


class UnknownRouteApi(APIView):
    """Any other `/v1/` path: OpenAI's 404 body instead of an HTML page, so clients can read it."""

    authentication_classes: list = []
    permission_classes: list = []
    schema = None

    def _not_found(self, request, *args, **kwargs):
        raise NotFound(f"Unknown route: {request.method} {request.path}.", code="unknown_url")

    get = post = put = patch = delete = _not_found
