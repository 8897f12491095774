"""Datasets and their immutable versions.

A `Dataset` is a named collection of training data owned by a team; each upload of content becomes a
`DatasetVersion`, identified by the sha256 of its normalized content (training + validation split).
The normalized JSONL files are what the fine-tuning engine reads:
classification `{"text", "label"[, "text_pair"]}`, multi-label `{"text", "labels"}`,
chat `{"messages": [{"role", "content"}, ...]}`.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.models import TeamOwnedModel
from finetune.engine.vocabulary import Task as EngineTask


class Task(models.TextChoices):
    """The engine's task vocabulary with labels for forms and the admin."""

    CLASSIFICATION = EngineTask.CLASSIFICATION.value, _("Classification")
    MULTILABEL_CLASSIFICATION = EngineTask.MULTILABEL_CLASSIFICATION.value, _("Multi-label classification")
    CHAT_SFT = EngineTask.CHAT_SFT.value, _("Chat (supervised fine-tuning)")


def _version_upload_to(instance, filename):
    # The upload services name the stored files themselves (services.version_prefix); this keeps the
    # FileField API consistent with that layout for any other caller.
    return f"teams/{instance.team_id}/datasets/{instance.dataset_id}/{filename}"


class Dataset(TeamOwnedModel):
    id_prefix = "ds"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    task = models.CharField(max_length=40, choices=Task.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Chosen at creation: every version of the dataset is masked at import, and no original kept.
    pii_masking = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"], name="dataset_team_created")]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(TeamOwnedModel):
    """Immutable once created: services never update a version's content fields."""

    id_prefix = "dsv"

    class Status(models.TextChoices):
        PROCESSING = "processing", _("Processing")
        READY = "ready", _("Ready")
        INVALID = "invalid", _("Invalid")

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # The identity of the version: the sha256 of its normalized rows (see ingest.output).
    sha256 = models.CharField(max_length=64)
    # The sha256 of the file as uploaded (empty for versions uploaded before it was recorded).
    source_sha256 = models.CharField(max_length=64, blank=True, default="")
    task = models.CharField(max_length=40, choices=Task.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING)
    normalized_file = models.FileField(max_length=500, upload_to=_version_upload_to)
    validation_file = models.FileField(max_length=500, upload_to=_version_upload_to, null=True, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    validation_row_count = models.PositiveIntegerField(default=0)
    labels = models.JSONField(default=list, blank=True)
    label_counts = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    column_mapping = models.JSONField(default=dict, blank=True)
    source_filename = models.CharField(max_length=255, blank=True)
    source_format = models.CharField(max_length=20, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number_unique"),
            models.UniqueConstraint(fields=["dataset", "sha256"], name="dataset_version_sha256_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"
