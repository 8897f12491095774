"""The worker registry: one row per Celery worker process (per GPU on GPU machines)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.models import TimeStampedModel


class WorkerNode(TimeStampedModel):
    """A worker as it last reported itself. `name` is the Celery hostname (e.g. "gpu0@host"), stable
    across restarts of the same slot, so a restarted worker keeps its row and its admin state."""

    class DeviceKind(models.TextChoices):
        CPU = "cpu", "CPU"
        CUDA = "cuda", "CUDA GPU"

    class AdminState(models.TextChoices):
        ACTIVE = "active", "Active"
        DRAINING = "draining", "Draining"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=255, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField(null=True, blank=True)
    queues = models.JSONField(default=list, help_text="The queues this worker consumes when accepting jobs.")
    device_kind = models.CharField(max_length=10, choices=DeviceKind.choices, default=DeviceKind.CPU)
    device_name = models.CharField(max_length=255, blank=True)
    device_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    device_class = models.CharField(max_length=40, blank=True)
    cuda_version = models.CharField(max_length=40, blank=True)
    torch_version = models.CharField(max_length=40, blank=True)
    os_platform = models.CharField(
        max_length=255, blank=True, help_text="Operating system, as platform.platform() says."
    )
    admin_state = models.CharField(max_length=10, choices=AdminState.choices, default=AdminState.ACTIVE)
    admin_state_changed_at = models.DateTimeField(null=True, blank=True)
    admin_state_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set when the worker said goodbye (clean shutdown) or the beat found it silent; cleared by the
    # next registration or heartbeat.
    offline_since = models.DateTimeField(null=True, blank=True)
    # None, not "", means idle: the contract with the jobs app (set_current_job(None)).
    current_job_id = models.CharField(max_length=40, null=True, blank=True, help_text="A FineTuneJob id.")  # noqa: DJ001
    utilisation = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_ping = models.CharField(
        max_length=64, blank=True, help_text="The token of the last `workers.ping` it ran."
    )
    last_ping_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def seconds_since_heartbeat(self) -> float | None:
        if self.last_heartbeat_at is None:
            return None
        return max(0.0, (timezone.now() - self.last_heartbeat_at).total_seconds())

    @property
    def heartbeat_is_fresh(self) -> bool:
        age = self.seconds_since_heartbeat
        return age is not None and age <= settings.TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS

    @property
    def status(self) -> str:
        """offline | draining | paused | online."""
        if self.offline_since is not None or not self.heartbeat_is_fresh:
            return "offline"
        if self.admin_state != self.AdminState.ACTIVE:
            return self.admin_state
        return "online"

    @classmethod
    def stale_before(cls):
        return timezone.now() - timedelta(seconds=settings.TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS)
