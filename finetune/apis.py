"""The native API for fine-tuning: jobs (submit, estimate, control, progress, events, metrics,
checkpoints, logs), the base-model registry and the team's model versions.

Every route acts on the caller's team; another team's job or model is a 404. Quota refusals are
429 (`QuotaExceeded`) with `details.limit` naming the limit and the numbers in the message.
"""

from __future__ import annotations

import mimetypes

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.access import TeamApiView
from common.api import ErrorSerializer, list_schema
from common.errors import InvalidInput
from common.pagination import list_response_body, paginate_after, parse_int, parse_limit
from finetune import job_insights, selectors, services
from finetune.engine.spec import AUTO, METHODS, TASKS
from finetune.models import FineTuneJob, JobStatus, ModelVersion, Priority, SearchTrial

ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409, 422, 429)}
PAGE_PARAMS = [
    OpenApiParameter("after", str, description="The last id of the previous page."),
    OpenApiParameter("limit", int, description="At most this many items (1–100, default 20)."),
]
MAX_METRIC_POINTS = 5000


# --- output shapes ------------------------------------------------------------------------------


class ProgressSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    epoch = serializers.FloatField()
    percent = serializers.FloatField()
    eta_seconds = serializers.FloatField(allow_null=True)
    samples_per_second = serializers.FloatField(allow_null=True)
    tokens_per_second = serializers.FloatField(allow_null=True)


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)


class KeptCheckpointSerializer(serializers.Serializer):
    step = serializers.IntegerField(help_text="The step whose weights were exported.")
    metric = serializers.CharField(help_text="The metric that chose it (`early_stopping_metric`).")
    value = serializers.FloatField(allow_null=True, help_text="That metric, scored on the exported weights.")
    reason = serializers.ChoiceField(
        choices=["best", "last"],
        help_text="`best`: the evaluation with the best metric; `last`: the last step's weights.",
    )
    last_step = serializers.IntegerField(help_text="The last step trained.")
    planned_steps = serializers.IntegerField(allow_null=True)
    stop_reason = serializers.ChoiceField(
        choices=["early_stopping", "planned_steps"],
        help_text="`early_stopping`: `patience` evaluations without improvement; `planned_steps`: all steps ran.",
    )
    patience = serializers.IntegerField(allow_null=True)
    patience_from_step = serializers.IntegerField(
        allow_null=True,
        help_text="Evaluations before this step did not count toward `patience` (`early_stopping_start_step`).",
    )


class SearchTrialSerializer(serializers.Serializer):
    trial = serializers.IntegerField()
    rung = serializers.IntegerField(
        help_text="Successive-halving rung: 0 first, each rung trains twice the steps."
    )
    method = serializers.CharField()
    learning_rate = serializers.FloatField()
    auto_learning_rate = serializers.FloatField(allow_null=True, help_text="The method's automatic rate.")
    steps = serializers.IntegerField()
    planned_steps = serializers.IntegerField()
    train_rows = serializers.IntegerField(help_text="Training rows the trial saw (a seeded subset).")
    status = serializers.ChoiceField(choices=SearchTrial.Status.values)
    metric = serializers.CharField(help_text="The validation metric the trials are ranked by.")
    value = serializers.FloatField(allow_null=True)
    metrics = serializers.JSONField(help_text="The trial's final validation scalars.")
    curve = serializers.JSONField(help_text='[{"step", "train_loss"}]')
    eval_curve = serializers.JSONField(help_text='[{"step", "valid_...": value}]')
    seconds = serializers.FloatField()
    winner = serializers.BooleanField()


class JobSearchSerializer(serializers.Serializer):
    trials = serializers.IntegerField(help_text="Candidates searched (hyperparameters.search.trials).")
    budget_minutes = serializers.FloatField()
    winner = SearchTrialSerializer(allow_null=True)
    trial_runs = SearchTrialSerializer(many=True, help_text="Every trial at every rung it reached.")


class JobOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    status = serializers.CharField(
        help_text="validating_files, queued, running, paused, succeeded, failed or cancelled."
    )
    requested_action = serializers.CharField(
        help_text="`cancel` or `pause` while a running job is asked to stop."
    )
    model = serializers.CharField(source="base_model.name", help_text="The base model.")
    fine_tuned_model = serializers.CharField(allow_null=True)
    result_model_version = serializers.SerializerMethodField()
    dataset_version = serializers.CharField(source="dataset_version_id")
    validation_dataset_version = serializers.CharField(
        source="validation_dataset_version_id", allow_null=True
    )
    metadata = serializers.JSONField()
    task = serializers.CharField()
    method = serializers.CharField()
    hyperparameters = serializers.SerializerMethodField(
        help_text="Resolved values once known, else as submitted."
    )
    seed = serializers.IntegerField()
    max_steps = serializers.IntegerField(allow_null=True)
    suffix = serializers.CharField()
    device_class = serializers.CharField()
    priority = serializers.CharField(source="priority_name")
    queue_position = serializers.SerializerMethodField(help_text="1 = next to run; null unless queued.")
    warning = serializers.SerializerMethodField(
        help_text="While waiting: why the job may not start soon (no online worker serves its device class)."
    )
    progress = serializers.SerializerMethodField()
    latest_metrics = serializers.JSONField()
    error = serializers.SerializerMethodField()
    kept_checkpoint = serializers.SerializerMethodField(
        help_text="Once succeeded with a validation set: which step was exported and why training stopped."
    )
    search = serializers.SerializerMethodField(
        help_text="With hyperparameters.search: the trials (with curves) and the winner the run trained."
    )
    estimate = serializers.JSONField()
    trained_tokens = serializers.IntegerField()
    attempts = serializers.IntegerField()
    crashes = serializers.IntegerField(help_text="Times the job's worker was lost while running it.")
    worker = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    first_step_at = serializers.DateTimeField(allow_null=True)
    setup_seconds = serializers.FloatField(allow_null=True, help_text="Engine setup before the first step.")
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_object(self, job) -> str:
        return "fine_tuning.job"

    def get_result_model_version(self, job) -> str | None:
        version = getattr(job, "model_version", None)
        return version.id if version else None

    def get_hyperparameters(self, job) -> dict:
        return job.resolved_hyperparameters or job.hyperparameters

    def get_queue_position(self, job) -> int | None:
        return self.context.get("positions", {}).get(job.id)

    def get_warning(self, job) -> str | None:
        if job.status not in (JobStatus.VALIDATING_FILES, JobStatus.QUEUED):
            return None
        return selectors.unserved_device_warning(
            device_class=job.device_class, queue=job.queue, served=self.context.get("served")
        )

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, job) -> dict:
        return {
            "step": job.step,
            "total_steps": job.total_steps,
            "epoch": job.epoch,
            "percent": job.percent,
            "eta_seconds": job.eta_seconds,
            "samples_per_second": job.samples_per_second,
            "tokens_per_second": job.tokens_per_second,
        }

    @extend_schema_field(KeptCheckpointSerializer(allow_null=True))
    def get_kept_checkpoint(self, job) -> dict | None:
        return job_insights.job_kept_checkpoint(job=job)

    @extend_schema_field(JobSearchSerializer(allow_null=True))
    def get_search(self, job) -> dict | None:
        config = (job.hyperparameters or {}).get("search")
        if not config:
            return None
        rows = list(selectors.job_search_trial_list(job=job))
        winner = next((t for t in rows if t.winner), None)
        return {
            "trials": config.get("trials"),
            "budget_minutes": config.get("budget_minutes"),
            "winner": SearchTrialSerializer(winner).data if winner else None,
            "trial_runs": SearchTrialSerializer(rows, many=True).data,
        }

    @extend_schema_field(JobErrorSerializer(allow_null=True))
    def get_error(self, job) -> dict | None:
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message, "param": job.error_param or None}


def job_body(job: FineTuneJob) -> dict:
    return JobOutputSerializer(job, context={"positions": selectors.queue_positions_for([job])}).data


def job_list_body(jobs: list[FineTuneJob]) -> list[dict]:
    context = {"positions": selectors.queue_positions_for(jobs), "served": selectors.queues_served_now()}
    return JobOutputSerializer(jobs, many=True, context=context).data


class EventOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    object = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    level = serializers.CharField()
    message = serializers.CharField()
    type = serializers.CharField()
    data = serializers.JSONField(allow_null=True)

    def get_object(self, event) -> str:
        return "fine_tuning.job.event"


class MetricPointOutputSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    kind = serializers.CharField(help_text="`train` (every step) or `eval` (every evaluation).")
    epoch = serializers.FloatField()
    values = serializers.JSONField()
    created_at = serializers.DateTimeField()


class CheckpointOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    fine_tuning_job_id = serializers.CharField(source="job_id")
    step_number = serializers.IntegerField(source="step")
    metrics = serializers.JSONField()
    files = serializers.JSONField()

    def get_object(self, checkpoint) -> str:
        return "fine_tuning.job.checkpoint"


class BaseModelOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="name")
    object = serializers.SerializerMethodField()
    display_name = serializers.CharField()
    kind = serializers.CharField()
    tasks = serializers.ListField(child=serializers.CharField())
    max_length = serializers.IntegerField()
    parameters_millions = serializers.FloatField(allow_null=True)
    is_default = serializers.BooleanField()
    description = serializers.CharField()

    def get_object(self, model) -> str:
        return "base_model"


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    name = serializers.CharField(help_text="`ft:{base}:{team}:{suffix}:{job id}`")
    base_model = serializers.CharField(source="base_model.name")
    job = serializers.CharField(source="job_id")
    task = serializers.CharField()
    method = serializers.CharField()
    labels = serializers.JSONField()
    metrics = serializers.JSONField()
    lineage = serializers.JSONField()
    files = serializers.JSONField(help_text="[{path, size}]; download each at files/{path}.")
    created_at = serializers.DateTimeField()

    def get_object(self, version) -> str:
        return "model"


# --- jobs ---------------------------------------------------------------------------------------


class JobInputSerializer(serializers.Serializer):
    dataset_version = serializers.CharField(help_text="A ready dataset version of your team (`dsv-...`).")
    model = serializers.CharField(
        required=False, allow_blank=True, help_text="A base model name; default if empty."
    )
    task = serializers.ChoiceField(
        choices=TASKS, required=False, help_text="Defaults to the dataset version's task."
    )
    # "auto": full fine-tuning for small models, LoRA on all linear layers for larger ones (docs/engine.md).
    method = serializers.ChoiceField(choices=(AUTO, *METHODS), default=AUTO)
    hyperparameters = serializers.DictField(
        required=False,
        default=dict,
        help_text='n_epochs, batch_size, learning_rate, max_length ("auto" or a value), ...',
    )
    device_class = serializers.CharField(
        required=False, help_text="cpu, gpu (any GPU), h100, h200, a100, l4, ..."
    )
    priority = serializers.ChoiceField(choices=Priority.labels, default="normal")
    suffix = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    seed = serializers.IntegerField(required=False, default=42, min_value=0)
    max_steps = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)
    validation_dataset_version = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="A ready dataset version (same task, labels within the training data's) to evaluate on, "
        "all its rows; default: the training version's own validation split.",
    )
    metadata = serializers.JSONField(
        required=False, default=dict, help_text="Up to 16 string pairs (keys ≤ 64, values ≤ 512 characters)."
    )

    class Meta:
        ref_name = "JobCreateInput"

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {unknown[0]: f"Unknown field; known fields are {', '.join(sorted(self.fields))}."}
            )
        return attrs

    def job_request(self) -> services.JobRequest:
        return services.JobRequest(**self.validated_data)


class EstimateOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    model = serializers.CharField()
    dataset_version = serializers.CharField()
    task = serializers.CharField()
    method = serializers.CharField()
    device_class = serializers.CharField()
    warning = serializers.CharField(
        allow_null=True, help_text="Set when no online worker serves the device class right now."
    )
    hyperparameters = serializers.JSONField()
    labels = serializers.JSONField()
    trained_tokens = serializers.IntegerField(help_text="Tokens per epoch × epochs.")
    n_epochs = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    tokens_per_second = serializers.FloatField(help_text="Throughput assumed for the device class.")
    estimated_seconds = serializers.FloatField(help_text="The middle of the range.")
    estimated_seconds_low = serializers.FloatField()
    estimated_seconds_high = serializers.FloatField()
    estimate_basis = serializers.ChoiceField(
        choices=("measured", "table"),
        help_text="measured: from the throughput of earlier runs of this kind; table: the built-in guess.",
    )
    measured_runs = serializers.IntegerField()
    gpu_hours = serializers.FloatField()
    quota = serializers.JSONField()
    quota_refusal = serializers.CharField(
        allow_null=True, help_text="Why a launch now would be refused, if it would."
    )


def _input(request) -> services.JobRequest:
    serializer = JobInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.job_request()


class JobListApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_list",
        summary="The team's fine-tuning jobs, newest first",
        parameters=[*PAGE_PARAMS, OpenApiParameter("status", str)],
        responses={200: list_schema(JobOutputSerializer, name="JobList"), **ERRORS},
    )
    def get(self, request):
        jobs = selectors.job_list(team=self.ctx.team, status=request.query_params.get("status") or None)
        page = paginate_after(
            jobs,
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
        )
        return Response(list_response_body(page, job_list_body(page.items)))

    @extend_schema(
        operation_id="jobs_create",
        summary="Submit a fine-tuning job (`?dry_run=true` returns the estimate and creates nothing)",
        parameters=[OpenApiParameter("dry_run", bool)],
        request=JobInputSerializer,
        responses={201: JobOutputSerializer, 200: EstimateOutputSerializer, **ERRORS},
    )
    def post(self, request):
        job_request = _input(request)
        if request.query_params.get("dry_run", "").lower() in ("1", "true", "yes"):
            return Response(services.job_estimate(team=self.ctx.team, request=job_request))
        job = services.job_create(team=self.ctx.team, user=self.ctx.user, request=job_request)
        return Response(job_body(job), status=status.HTTP_201_CREATED)


class JobEstimateApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_estimate",
        summary="What a job would do and cost, before launch",
        request=JobInputSerializer,
        responses={200: EstimateOutputSerializer, **ERRORS},
    )
    def post(self, request):
        return Response(services.job_estimate(team=self.ctx.team, request=_input(request)))


class JobDetailApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_retrieve",
        summary="One job, with live progress",
        responses={200: JobOutputSerializer, **ERRORS},
    )
    def get(self, request, job_id):
        job = selectors.job_get_for_reader(team=self.ctx.team, user=self.ctx.user, job_id=job_id)
        return Response(job_body(job))


class CompareSeriesSerializer(serializers.Serializer):
    job = serializers.CharField()
    main_metric = serializers.CharField(help_text="The metric in the third column of `eval`.")
    train = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="[step, train_loss, learning_rate] per training step (long runs thinned evenly).",
    )
    eval = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="[step, valid_loss, main metric] per evaluation; step 0 is the untuned base model.",
    )


class JobComparisonSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="Always `job_comparison`.")
    jobs = JobOutputSerializer(many=True)
    series = CompareSeriesSerializer(many=True)
    metrics = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Final validation metric name → one value per job, in the order of `jobs` (null: none).",
    )
    differing_hyperparameters = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(allow_null=True)),
        help_text="Only the spec values and hyperparameters that differ: name → one value per job.",
    )


class JobCompareApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_compare",
        summary="Compare 2–5 of the team's jobs: curves, final metrics, the settings that differ",
        parameters=[
            OpenApiParameter(
                "ids",
                str,
                required=True,
                description="2 to 5 job ids, comma-separated (or the parameter repeated).",
            )
        ],
        responses={200: JobComparisonSerializer, **ERRORS},
    )
    def get(self, request):
        comparison = job_insights.job_compare(
            team=self.ctx.team, job_ids=job_insights.parse_job_ids(request.query_params.getlist("ids"))
        )
        series = [
            {key: item[key] for key in ("job", "main_metric", "train", "eval")}
            for item in comparison["series"]
        ]
        return Response(
            {
                "object": "job_comparison",
                "jobs": job_list_body(comparison["jobs"]),
                "series": series,
                "metrics": comparison["metrics"],
                "differing_hyperparameters": comparison["differing"],
            }
        )


def _job_action_api(action: str, service, summary: str) -> type[TeamApiView]:
    """`POST /jobs/{id}/<action>`: one view class per action (each with its own OpenAPI operation)."""

    class JobActionApi(TeamApiView):
        @extend_schema(
            operation_id=f"jobs_{action}",
            request=None,
            summary=summary,
            responses={200: JobOutputSerializer, **ERRORS},
        )
        def post(self, request, job_id):
            job = service(job=selectors.job_get(team=self.ctx.team, job_id=job_id), actor=self.ctx.user)
            return Response(job_body(selectors.job_get(team=self.ctx.team, job_id=job.id)))

    JobActionApi.__name__ = JobActionApi.__qualname__ = f"Job{action.title()}Api"
    return JobActionApi


JobCancelApi = _job_action_api(
    "cancel", services.job_cancel, "Cancel: a queued or paused job at once; a running one within seconds"
)
JobPauseApi = _job_action_api(
    "pause", services.job_pause, "Pause: a running job checkpoints and frees its worker"
)
JobResumeApi = _job_action_api("resume", services.job_resume, "Resume a paused job from its last checkpoint")


class JobEventListApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_events",
        summary="The job's events and log lines, newest first",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(EventOutputSerializer, name="JobEventList"), **ERRORS},
    )
    def get(self, request, job_id):
        job = selectors.job_get(team=self.ctx.team, job_id=job_id)
        after = selectors.parse_event_id(request.query_params.get("after"))
        page = paginate_after(
            selectors.job_event_list(job=job),
            after=after,
            limit=parse_limit(request.query_params.get("limit")),
            order="-id",
        )
        data = EventOutputSerializer(page.items, many=True).data
        return Response(list_response_body(page, data, id_of=lambda event: event.public_id))


class JobMetricListApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_metrics",
        summary="The job's metric points in step order",
        parameters=[
            OpenApiParameter(
                "after_step", int, description="Only points after this step (poll with the last one)."
            ),
            OpenApiParameter("kind", str, enum=["train", "eval"]),
            OpenApiParameter(
                "limit", int, description=f"At most this many points (1–{MAX_METRIC_POINTS}, default 1000)."
            ),
        ],
        responses={200: list_schema(MetricPointOutputSerializer, name="MetricPointList"), **ERRORS},
    )
    def get(self, request, job_id):
        job = selectors.job_get(team=self.ctx.team, job_id=job_id)
        after_step = parse_int(request.query_params.get("after_step"), name="after_step")
        limit = parse_int(request.query_params.get("limit"), name="limit", default=1000)
        if not 1 <= limit <= MAX_METRIC_POINTS:
            raise InvalidInput(f"limit must be between 1 and {MAX_METRIC_POINTS}.", field="limit")
        rows = list(
            selectors.job_metric_list(
                job=job, after_step=after_step, kind=request.query_params.get("kind") or None
            )[: limit + 1]
        )
        data = MetricPointOutputSerializer(rows[:limit], many=True).data
        return Response({"object": "list", "data": data, "has_more": len(rows) > limit})


class JobCheckpointListApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_checkpoints",
        summary="The job's stored checkpoints, newest first",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(CheckpointOutputSerializer, name="CheckpointList"), **ERRORS},
    )
    def get(self, request, job_id):
        job = selectors.job_get(team=self.ctx.team, job_id=job_id)
        page = paginate_after(
            selectors.job_checkpoint_list(job=job),
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
        )
        return Response(list_response_body(page, CheckpointOutputSerializer(page.items, many=True).data))


class JobLogsApi(TeamApiView):
    @extend_schema(
        operation_id="jobs_logs",
        summary="The job's events and log lines as plain text",
        responses={(200, "text/plain"): OpenApiTypes.STR, **ERRORS},
    )
    def get(self, request, job_id):
        job = selectors.job_get(team=self.ctx.team, job_id=job_id)
        response = HttpResponse(logs_text(job), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{job.id}.log"'
        return response


def logs_text(job: FineTuneJob) -> str:
    lines = []
    if job.log_lines_dropped:
        lines.append(
            f"# {job.log_lines_dropped} earlier log lines were dropped (the newest "
            f"{settings.TUNEFORGE_JOB_LOG_MAX_LINES} are kept per job)."
        )
    for event in selectors.job_log_lines(job=job).iterator():
        stamp = event.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        lines.append(f"{stamp} {event.level.upper():5} {event.message}")
    return "\n".join(lines) + "\n"


# --- base models and model versions ------------------------------------------------------------


class BaseModelListApi(TeamApiView):
    @extend_schema(
        operation_id="base_models_list",
        summary="Base models that can be fine-tuned",
        responses={200: list_schema(BaseModelOutputSerializer, name="BaseModelList"), **ERRORS},
    )
    def get(self, request):
        models = list(selectors.base_model_list())
        return Response(
            {"object": "list", "data": BaseModelOutputSerializer(models, many=True).data, "has_more": False}
        )


class ModelVersionListApi(TeamApiView):
    @extend_schema(
        operation_id="models_list",
        summary="The team's fine-tuned model versions, newest first",
        parameters=PAGE_PARAMS,
        responses={200: list_schema(ModelVersionOutputSerializer, name="ModelVersionList"), **ERRORS},
    )
    def get(self, request):
        page = paginate_after(
            selectors.model_version_list(team=self.ctx.team),
            after=request.query_params.get("after"),
            limit=parse_limit(request.query_params.get("limit")),
        )
        return Response(list_response_body(page, ModelVersionOutputSerializer(page.items, many=True).data))


class ModelVersionDetailApi(TeamApiView):
    @extend_schema(
        operation_id="models_retrieve",
        summary="One model version with metrics and lineage",
        responses={200: ModelVersionOutputSerializer, **ERRORS},
    )
    def get(self, request, version_id):
        version = selectors.model_version_get(team=self.ctx.team, version_id=version_id)
        return Response(ModelVersionOutputSerializer(version).data)


class ModelVersionFileApi(TeamApiView):
    @extend_schema(
        operation_id="models_file",
        summary="Download one file of a model version",
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY), **ERRORS},
    )
    def get(self, request, version_id, path):
        version: ModelVersion = selectors.model_version_get(team=self.ctx.team, version_id=version_id)
        entry = selectors.model_version_file(version=version, path=path)
        handle = default_storage.open(f"{version.storage_prefix}/{entry['path']}", "rb")
        content_type = mimetypes.guess_type(entry["path"])[0] or "application/octet-stream"
        return FileResponse(
            handle, as_attachment=True, filename=entry["path"].rsplit("/", 1)[-1], content_type=content_type
        )
