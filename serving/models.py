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
    """How much int8 quantization changes a version's validation accuracy, measured in the background.

    One per (team, version): the figure belongs to the version, not to an endpoint, so it can be
    measured before the endpoint that will serve it exists (publishing with int8 requires it)."""

    id_prefix = "i8"

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    # The endpoint it was asked from, if any (kept for the endpoint page; the check outlives it).
    endpoint = models.ForeignKey(
        Endpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="int8_checks"
    )
    model_version = models.ForeignKey("finetune.ModelVersion", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    fp32_accuracy = models.FloatField(null=True, blank=True)
    int8_accuracy = models.FloatField(null=True, blank=True)
    accuracy_change = models.FloatField(null=True, blank=True)
    n = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("team", "model_version"), name="serving_int8_per_team_version")
        ]

    def __str__(self) -> str:
        return f"int8 {self.model_version_id}: {self.status}"


class QuotaPolicy(models.Model):
    """Inference quotas as data. The limiter reads a copy in Redis that every write of a row drops
    (serving.quota_policies), so a change applies to the next request in every process.

    The row with `api_key` null is the team's policy: its `requests_per_minute` /
    `tokens_per_minute` are the per-key limits of every key without its own, and also the ceiling a
    key's own limits may not exceed; `monthly_*` bound the whole team per calendar month (UTC);
    `endpoint_requests_per_minute` bounds each endpoint of the team. A row with `api_key` set holds
    that key's own per-minute limits (null: the team's). Null everywhere means unlimited.
    """

    id = models.BigAutoField(primary_key=True)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveBigIntegerField(null=True, blank=True)
    monthly_requests = models.PositiveBigIntegerField(null=True, blank=True)
    monthly_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    endpoint_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("team",), condition=models.Q(api_key__isnull=True), name="serving_quota_one_per_team"
            ),
            models.UniqueConstraint(
                fields=("api_key",),
                condition=models.Q(api_key__isnull=False),
                name="serving_quota_one_per_key",
            ),
        ]
        indexes = [models.Index(fields=("team", "api_key"), name="serving_quota_lookup")]

    def __str__(self) -> str:
        return f"quota of {self.api_key_id or self.team_id}"


class UsageAggregate(models.Model):
    """Inference calls summed per (minute | hour | day) bucket, team, endpoint, key and version,
    written by the metering flush. Plain ids, not foreign keys: usage outlives a deleted endpoint
    or a revoked key (the invoice still counts those calls)."""

    class Granularity(models.TextChoices):
        MINUTE = "minute"
        HOUR = "hour"
        DAY = "day"

    id = models.BigAutoField(primary_key=True)
    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    team_id = models.CharField(max_length=40)
    endpoint_id = models.CharField(max_length=200)
    key_id = models.CharField(max_length=40, blank=True)
    version_id = models.CharField(max_length=40, blank=True)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    latency_ms_sum = models.BigIntegerField(default=0)
    # Counts per serving.metering.LATENCY_BUCKETS_MS bucket (p50/p95 are estimated from them).
    # Counts per metering.LATENCY_BUCKETS_MS bucket; JSON, so the embedded SQLite stores it too.
    latency_buckets = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("granularity", "bucket_start", "team_id", "endpoint_id", "key_id", "version_id"),
                name="serving_usage_one_row_per_group",
            )
        ]
        indexes = [
            models.Index(fields=("team_id", "granularity", "bucket_start"), name="serving_usage_range")
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start:%Y-%m-%d %H:%M} {self.endpoint_id}: {self.requests}"


class MeteringFlush(models.Model):
    """A metering flush id stored in the same transaction as its aggregates: a flush replayed after a
    crash finds its id here and is ignored (so no call is counted twice)."""

    flush_id = models.CharField(max_length=80, primary_key=True)
    minute = models.DateTimeField()
    rows = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.flush_id
