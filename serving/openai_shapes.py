"""OpenAI's shapes for files and fine-tuning jobs on `/v1/`, read off our own models.

A "file" is a dataset version (`dsv-...`), a "fine_tuning.job" a `FineTuneJob`. Only the shape is
translated here; what the values mean is decided by the datasets and finetune apps.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from datasets_app.models import DatasetVersion
from finetune.apis import JobErrorSerializer  # the same {code, message, param} as the native job error
from finetune.models import Checkpoint, FineTuneJob, JobStatus

FILE_PURPOSE = "fine-tune"
# OpenAI has no paused state: a paused job waits to be resumed, which a client reads as queued.
_JOB_STATUS = {JobStatus.PAUSED: JobStatus.QUEUED}
_FILE_STATUS = {
    DatasetVersion.Status.READY: "processed",
    DatasetVersion.Status.PROCESSING: "uploaded",
    DatasetVersion.Status.INVALID: "error",
}


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def file_bytes(version: DatasetVersion) -> int:
    """The size of what `GET /v1/files/{id}/content` returns: the normalized splits together."""
    return sum(f.size for f in (version.normalized_file, version.validation_file) if f and f.name)


class FileSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    bytes = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    filename = serializers.CharField(source="source_filename")
    purpose = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        ref_name = "OpenAIFile"

    def get_object(self, version) -> str:
        return "file"

    def get_bytes(self, version) -> int:
        return file_bytes(version)

    def get_created_at(self, version) -> int:
        return unix(version.created_at)

    def get_purpose(self, version) -> str:
        return FILE_PURPOSE

    def get_status(self, version) -> str:
        return _FILE_STATUS.get(version.status, "error")


class FileDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="Always `file`.")
    deleted = serializers.BooleanField()

    class Meta:
        ref_name = "OpenAIFileDeleted"


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
        return unix(job.created_at)

    def get_finished_at(self, job) -> int | None:
        return unix(job.finished_at)

    def get_status(self, job) -> str:
        return _JOB_STATUS.get(job.status, job.status)

    @extend_schema_field(JobErrorSerializer(allow_null=True))
    def get_error(self, job) -> dict | None:
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message, "param": job.error_param or None}

    @extend_schema_field(JobHyperparametersSerializer)
    def get_hyperparameters(self, job) -> dict:
        return job_hyperparameters(job)

    def get_result_files(self, job) -> list[str]:
        return []

    def get_trained_tokens(self, job) -> int | None:
        # OpenAI's clients read null as "not finished yet".
        return job.trained_tokens if job.status == JobStatus.SUCCEEDED else None

    def get_validation_file(self, job) -> str | None:
        return None

    def get_estimated_finish(self, job) -> int | None:
        if job.status != JobStatus.RUNNING or job.eta_seconds is None:
            return None
        return unix(timezone.now() + timedelta(seconds=job.eta_seconds))

    def get_integrations(self, job) -> list[dict]:
        return []

    def get_method(self, job) -> dict:
        return {"type": "supervised", "supervised": {"hyperparameters": job_hyperparameters(job)}}

    def get_metadata(self, job) -> dict | None:
        return None


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
        return unix(event.created_at)


def checkpoint_model_name(checkpoint: Checkpoint) -> str:
    from finetune.lineage import model_name_for

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
        return unix(checkpoint.created_at)

    def get_fine_tuned_model_checkpoint(self, checkpoint) -> str:
        return checkpoint_model_name(checkpoint)

    def get_metrics(self, checkpoint) -> dict:
        return {"step": checkpoint.step, **(checkpoint.metrics or {})}
