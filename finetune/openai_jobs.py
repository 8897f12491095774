"""The OpenAI-compatible fine-tuning jobs (`/v1/fine_tuning/jobs…`): a job is a `FineTuneJob`.

A thin translation over the finetune services and selectors: every check is theirs; only the
shape and the parameter names are OpenAI's.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from accounts.access import OpenAIApiView
from common.api import list_schema
from common.errors import ApplicationError, InvalidInput
from common.openai_compat import OPENAI_ERRORS, PAGE_PARAMS, WRITE_ERRORS, openai_page, unix_time
from common.pagination import list_response_body
from finetune import selectors as job_selectors
from finetune import services as job_services
from finetune.apis import JobErrorSerializer  # the same {code, message, param} as the native job error
from finetune.lineage import model_name_for
from finetune.models import Checkpoint, FineTuneJob, JobStatus

# OpenAI has no paused state: a paused job waits to be resumed, which a client reads as queued.
_JOB_STATUS = {JobStatus.PAUSED: JobStatus.QUEUED}
# A job's stored error names native fields; the face names the OpenAI parameter.
_OPENAI_PARAMS = {"dataset_version": "training_file", "validation_dataset_version": "validation_file"}


class JobHyperparametersSerializer(serializers.Serializer):
    n_epochs = serializers.JSONField(help_text='A number, or "auto" until resolved.')
    batch_size = serializers.JSONField(help_text='A number, or "auto" until resolved.')
    learning_rate_multiplier = serializers.JSONField(
        help_text="The learning rate as a multiple of the engine's "
        "automatic one (1.0 when it was left on auto)."
    )

    class Meta:
        ref_name = "OpenAIJobHyperparameters"


def learning_rate_multiplier(job: FineTuneJob) -> float | None:
    """The submitted learning rate over the engine's automatic one (None when that is not known)."""
    pending = (job.hyperparameters or {}).get(job_services.LEARNING_RATE_MULTIPLIER)
    if pending is not None:  # still validating_files: the check resolves it into a learning rate
        return float(pending)
    if (job.hyperparameters or {}).get("search"):
        # The search chose the rate: report the winner's, as a multiple of its method's "auto" rate.
        winner = job.search_trials.filter(winner=True).values("learning_rate", "auto_learning_rate").first()
        if winner and winner["auto_learning_rate"]:
            return round(winner["learning_rate"] / winner["auto_learning_rate"], 6)
        return None  # not chosen yet
    submitted = (job.hyperparameters or {}).get("learning_rate", "auto")
    if submitted in (None, "auto"):
        return 1.0
    auto = (job.validation or {}).get("auto_learning_rate")
    return round(float(submitted) / float(auto), 6) if auto else None


def job_hyperparameters(job: FineTuneJob) -> dict:
    resolved = job.resolved_hyperparameters or job.hyperparameters or {}
    return {
        "n_epochs": resolved.get("n_epochs", "auto"),
        "batch_size": resolved.get("batch_size", "auto"),
        "learning_rate_multiplier": learning_rate_multiplier(job),
    }


class JobSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    finished_at = serializers.SerializerMethodField()
    model = serializers.CharField(source="base_model.name")
    fine_tuned_model = serializers.CharField(allow_null=True)
    organization_id = serializers.CharField(source="team_id", help_text="The team's id.")
    status = serializers.SerializerMethodField(
        help_text="validating_files, queued (also while paused), running, succeeded, failed or cancelled."
    )
    error = serializers.SerializerMethodField()
    hyperparameters = serializers.SerializerMethodField()
    result_files = serializers.SerializerMethodField()
    trained_tokens = serializers.SerializerMethodField()
    training_file = serializers.CharField(source="dataset_version_id")
    validation_file = serializers.SerializerMethodField()
    seed = serializers.IntegerField()
    estimated_finish = serializers.SerializerMethodField()
    integrations = serializers.SerializerMethodField()
    method = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField()

    class Meta:
        ref_name = "OpenAIFineTuningJob"

    def get_object(self, job) -> str:
        return "fine_tuning.job"

    def get_created_at(self, job) -> int:
        return unix_time(job.created_at)

    def get_finished_at(self, job) -> int | None:
        return unix_time(job.finished_at)

    def get_status(self, job) -> str:
        return _JOB_STATUS.get(job.status, job.status)

    @extend_schema_field(JobErrorSerializer(allow_null=True))
    def get_error(self, job) -> dict | None:
        if not job.error_code:
            return None
        param = _OPENAI_PARAMS.get(job.error_param, job.error_param) or None
        return {"code": job.error_code, "message": job.error_message, "param": param}

    @extend_schema_field(JobHyperparametersSerializer)
    def get_hyperparameters(self, job) -> dict:
        return job_hyperparameters(job)

    def get_result_files(self, job) -> list[str]:
        return []

    def get_trained_tokens(self, job) -> int | None:
        # OpenAI's clients read null as "not finished yet".
        return job.trained_tokens if job.status == JobStatus.SUCCEEDED else None

    def get_validation_file(self, job) -> str | None:
        return job.validation_dataset_version_id

    def get_estimated_finish(self, job) -> int | None:
        if job.status != JobStatus.RUNNING or job.eta_seconds is None:
            return None
        return unix_time(timezone.now() + timedelta(seconds=job.eta_seconds))

    def get_integrations(self, job) -> list[dict]:
        return []

    def get_method(self, job) -> dict:
        return {"type": "supervised", "supervised": {"hyperparameters": job_hyperparameters(job)}}

    def get_metadata(self, job) -> dict | None:
        return job.metadata or None


class JobEventSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    level = serializers.CharField(help_text="info, warn or error.")
    message = serializers.CharField()
    type = serializers.CharField(help_text="message or metrics.")
    data = serializers.JSONField(allow_null=True)

    class Meta:
        ref_name = "OpenAIFineTuningJobEvent"

    def get_object(self, event) -> str:
        return "fine_tuning.job.event"

    def get_created_at(self, event) -> int:
        return unix_time(event.created_at)


def checkpoint_model_name(checkpoint: Checkpoint) -> str:
    return f"{model_name_for(checkpoint.job)}:ckpt-step-{checkpoint.step}"


class JobCheckpointSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    fine_tuned_model_checkpoint = serializers.SerializerMethodField(
        help_text="`ft:{base}:{team}:{suffix}:{job id}:ckpt-step-{step}`; a name only, not a servable model."
    )
    fine_tuning_job_id = serializers.CharField(source="job_id")
    step_number = serializers.IntegerField(source="step")
    metrics = serializers.SerializerMethodField()

    class Meta:
        ref_name = "OpenAIFineTuningJobCheckpoint"

    def get_object(self, checkpoint) -> str:
        return "fine_tuning.job.checkpoint"

    def get_created_at(self, checkpoint) -> int:
        return unix_time(checkpoint.created_at)

    def get_fine_tuned_model_checkpoint(self, checkpoint) -> str:
        return checkpoint_model_name(checkpoint)

    def get_metrics(self, checkpoint) -> dict:
        return {"step": checkpoint.step, **(checkpoint.metrics or {})}


class JobCreateInputSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="A base model name, as `/v1/models` lists it.")
    training_file = serializers.CharField(help_text="A file id (`dsv-...`).")
    validation_file = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="A file id (`dsv-...`) to evaluate on, all its rows; default: the training file's 10% split.",
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
    metadata = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Up to 16 string pairs (keys ≤ 64, values ≤ 512 characters).",
    )
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
        elif field == "validation_dataset_version":
            exc.field = "validation_file"
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
        validation_dataset_version=data.get("validation_file") or None,
        metadata=data.get("metadata") or {},
        **extra,
    )


class JobListApi(OpenAIApiView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="openai_fine_tuning_jobs_list",
        summary="The team's fine-tuning jobs, newest first",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(JobSerializer, name="OpenAIFineTuningJobList"), **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request):
        page = openai_page(request, job_selectors.job_list(team=self.ctx.team))
        return Response(list_response_body(page, JobSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="openai_fine_tuning_jobs_create",
        summary="Create a fine-tuning job",
        request=JobCreateInputSerializer,
        responses={200: JobSerializer, **WRITE_ERRORS},
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
                # The multiplier scales the engine's automatic rate, which the files check resolves.
                native[job_services.LEARNING_RATE_MULTIPLIER] = multiplier
            job = job_services.job_create(
                team=self.ctx.team, user=None, request=_job_request(data, native), check_files_later=True
            )
        return Response(JobSerializer(_job(self.ctx.team, job.id)).data)


def _job(team, job_id: str):
    return job_selectors.job_get(team=team, job_id=job_id)


class JobDetailApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_retrieve",
        summary="One fine-tuning job",
        responses={200: JobSerializer, **OPENAI_ERRORS},
        tags=["openai"],
    )
    def get(self, request, job_id):
        return Response(JobSerializer(_job(self.ctx.team, job_id)).data)


def _job_action_api(action: str, service, summary: str) -> type[OpenAIApiView]:
    class JobActionApi(OpenAIApiView):
        @extend_schema(
            operation_id=f"openai_fine_tuning_jobs_{action}",
            summary=summary,
            request=None,
            responses={200: JobSerializer, **WRITE_ERRORS},
            tags=["openai"],
        )
        def post(self, request, job_id):
            service(job=_job(self.ctx.team, job_id), actor=None)
            return Response(JobSerializer(_job(self.ctx.team, job_id)).data)

    JobActionApi.__name__ = JobActionApi.__qualname__ = f"OpenAIJob{action.title()}Api"
    return JobActionApi


JobCancelApi = _job_action_api("cancel", job_services.job_cancel, "Cancel a job")
JobPauseApi = _job_action_api(
    "pause", job_services.job_pause, "Pause a job (reported as queued while paused)"
)
JobResumeApi = _job_action_api("resume", job_services.job_resume, "Resume a paused job")


class JobEventListApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_events",
        summary="A job's events, newest first",
        parameters=PAGE_PARAMS,
        responses={
            200: list_schema(JobEventSerializer, name="OpenAIFineTuningJobEventList"),
            **OPENAI_ERRORS,
        },
        tags=["openai"],
    )
    def get(self, request, job_id):
        job = _job(self.ctx.team, job_id)
        after = job_selectors.parse_event_id(request.query_params.get("after"))
        page = openai_page(
            request, job_selectors.job_event_list(job=job), order="-id", after=after or ""
        )  # "" = first page
        return Response(
            list_response_body(
                page,
                JobEventSerializer(page.items, many=True).data,
                id_of=lambda event: event.public_id,
            )
        )


class JobCheckpointListApi(OpenAIApiView):
    @extend_schema(
        operation_id="openai_fine_tuning_jobs_checkpoints",
        summary="A job's checkpoints, newest first",
        parameters=PAGE_PARAMS,
        responses={
            200: list_schema(JobCheckpointSerializer, name="OpenAIFineTuningJobCheckpointList"),
            **OPENAI_ERRORS,
        },
        tags=["openai"],
    )
    def get(self, request, job_id):
        job = _job(self.ctx.team, job_id)
        page = openai_page(
            request, job_selectors.job_checkpoint_list(job=job).select_related("job__base_model", "job__team")
        )
        return Response(list_response_body(page, JobCheckpointSerializer(page.items, many=True).data))


urlpatterns = [
    path("fine_tuning/jobs", JobListApi.as_view(), name="openai-jobs"),
    path("fine_tuning/jobs/<str:job_id>", JobDetailApi.as_view(), name="openai-job"),
    path("fine_tuning/jobs/<str:job_id>/cancel", JobCancelApi.as_view(), name="openai-job-cancel"),
    path("fine_tuning/jobs/<str:job_id>/pause", JobPauseApi.as_view(), name="openai-job-pause"),
    path("fine_tuning/jobs/<str:job_id>/resume", JobResumeApi.as_view(), name="openai-job-resume"),
    path("fine_tuning/jobs/<str:job_id>/events", JobEventListApi.as_view(), name="openai-job-events"),
    path(
        "fine_tuning/jobs/<str:job_id>/checkpoints",
        JobCheckpointListApi.as_view(),
        name="openai-job-checkpoints",
    ),
]
