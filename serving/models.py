"""Serving: endpoints that put a team's model versions live (its API keys live in accounts)."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.models import TeamOwnedModel


class Endpoint(TeamOwnedModel):
    """A stable name (`slug`) a team calls; which ModelVersion answers changes by publishing."""

    id_prefix = "ep"

    class Status(models.TextChoices):
        DEPLOYING = "deploying", _("Deploying")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    slug = models.SlugField(max_length=64)
    model_version = models.ForeignKey(
        "finetune.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What publish is deploying now; becomes model_version once it loaded.
    pending_version = models.ForeignKey(
        "finetune.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    previous_version = models.ForeignKey(
        "finetune.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canary_version = models.ForeignKey(
        "finetune.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canary_percent = models.PositiveSmallIntegerField(default=0)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DEPLOYING)
    status_message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=("team", "slug"), name="serving_endpoint_slug_per_team")
        ]

    def __str__(self) -> str:
        return self.slug


class EndpointEvent(models.Model):
    class Kind(models.TextChoices):
        PUBLISHED = "published", _("Published")
        SWITCHED = "switched", _("Switched")
        ROLLED_BACK = "rolled_back", _("Rolled back")
        UNPUBLISHED = "unpublished", _("Unpublished")
        CANARY_SET = "canary_set", _("Canary set")
        DEPLOY_FAILED = "deploy_failed", _("Deploy failed")
        READY = "ready", _("Ready")

    id = models.BigAutoField(primary_key=True)
    # Kept after the endpoint is unpublished (its history stays readable in the admin).
    endpoint = models.ForeignKey(Endpoint, null=True, on_delete=models.SET_NULL, related_name="events")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    slug = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_version = models.ForeignKey(
        "finetune.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_version = models.ForeignKey(
        "finetune.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"{self.slug}: {self.kind}"


class Int8Check(TeamOwnedModel):
    """How much int8 quantization changes a version's validation accuracy, measured in the background."""

    id_prefix = "i8"

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="int8_checks")
    model_version = models.ForeignKey("finetune.ModelVersion", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    fp32_accuracy = models.FloatField(null=True, blank=True)
    int8_accuracy = models.FloatField(null=True, blank=True)
    accuracy_change = models.FloatField(null=True, blank=True)
    n = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("endpoint", "model_version"), name="serving_int8_per_version")
        ]

    def __str__(self) -> str:
        return f"int8 {self.model_version_id}: {self.status}"
