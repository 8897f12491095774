"""Fine-tuning: the base-model registry, jobs with their events, metric points, checkpoints and
attempts, and the model versions that succeeded jobs produce."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.models import PublicIdModel, TeamOwnedModel, TimeStampedModel


class BaseModel(TimeStampedModel):
    """A model that teams may fine-tune. Admins manage the registry; `name` is what the API takes."""

    class Kind(models.TextChoices):
        ENCODER = "encoder", "Encoder (classification)"
        CAUSAL_LM = "causal_lm", "Causal LM (chat, generation)"

    name = models.CharField(max_length=200, unique=True, help_text="The id users pass as `model`.")
    display_name = models.CharField(max_length=200)
    source = models.CharField(
        max_length=500, help_text="A Hugging Face id or a local path the workers can read (resolved offline)."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    tasks = models.JSONField(default=list, help_text="Tasks this model can be tuned for.")
    max_length = models.PositiveIntegerField(default=512)
    parameters_millions = models.FloatField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    description = models.TextField(blank=True)

    class Check(models.TextChoices):
        """Whether a worker could load the model's config and tokenizer from `source`."""

        UNCHECKED = "", _("not checked")
        PENDING = "pending", _("checking")
        OK = "ok", _("loads")
        FAILED = "failed", _("does not load")

    check_status = models.CharField(max_length=10, choices=Check.choices, default="", blank=True)
    check_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_base_model"
            )
        ]

    def __str__(self) -> str:
        return self.name


class JobStatus(models.TextChoices):
    VALIDATING_FILES = "validating_files", _("Validating files")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


# A job in one of these states will never change again.
TERMINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# These count against a team's concurrency quota (a paused job holds no GPU).
ACTIVE_STATUSES = (JobStatus.VALIDATING_FILES, JobStatus.QUEUED, JobStatus.RUNNING)


class Priority(models.IntegerChoices):
    LOW = 0, "low"
    NORMAL = 1, "normal"
    HIGH = 2, "high"


class FineTuneJob(TeamOwnedModel):
    """One fine-tuning run, from submission to model version. Status changes only through
    `finetune.services` (each one conditional and recorded as a `JobEvent`)."""

    id_prefix = "ftjob"

    class RequestedAction(models.TextChoices):
        NONE = "", _("None")
        CANCEL = "cancel", _("Cancel")
        PAUSE = "pause", _("Pause")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="jobs")
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", on_delete=models.PROTECT, related_name="jobs"
    )
    # A separately uploaded version to evaluate on (all its rows); null = the training version's split.
    validation_dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion",
        on_delete=models.PROTECT,
        related_name="validation_jobs",
        null=True,
        blank=True,
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="Up to 16 string pairs, OpenAI's limits.")
    task = models.CharField(max_length=40)
    method = models.CharField(max_length=20)
    # As submitted ("auto" kept), and as the engine resolved them once known.
    hyperparameters = models.JSONField(default=dict, blank=True)
    resolved_hyperparameters = models.JSONField(default=dict, blank=True)
    resolved_spec = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField(default=42)
    max_steps = models.PositiveIntegerField(null=True, blank=True)
    suffix = models.CharField(max_length=64, blank=True)
    device_class = models.CharField(max_length=20)
    queue = models.CharField(max_length=40, db_index=True)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)

    status = models.CharField(
        max_length=20, choices=JobStatus.choices, default=JobStatus.VALIDATING_FILES, db_index=True
    )
    requested_action = models.CharField(
        max_length=10, choices=RequestedAction.choices, default="", blank=True
    )
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    error_param = models.CharField(max_length=200, blank=True)

    estimate = models.JSONField(default=dict, blank=True)
    validation = models.JSONField(default=dict, blank=True)

    # Live progress, written in batches by the worker's reporter.
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    epoch = models.FloatField(default=0)
    percent = models.FloatField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    samples_per_second = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    latest_metrics = models.JSONField(default=dict, blank=True)
    trained_tokens = models.BigIntegerField(default=0)
    # Engine setup before the first step (tokenising, model load, baseline evaluation), measured by
    # the worker, so dispatch latency can be told apart from model size.
    setup_seconds = models.FloatField(null=True, blank=True)

    # Execution bookkeeping: who runs it, since when, how often it was claimed or lost.
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    crashes = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_dispatched_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_step_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    resume_checkpoint = models.ForeignKey(
        "Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    log_lines = models.PositiveIntegerField(default=0)
    log_lines_dropped = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="ftjob_team_created"),
            models.Index(fields=["queue", "status", "priority", "created_at"], name="ftjob_dispatch"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def priority_name(self) -> str:
        return Priority(self.priority).label

    @property
    def fine_tuned_model(self) -> str | None:
        version = getattr(self, "model_version", None)
        return version.name if version else None


class JobEvent(models.Model):
    """What happened to a job: status changes, metrics summaries and captured log lines.
    The API id is `ftevent-<pk>`, so ids order events the way they happened."""

    class Level(models.TextChoices):
        INFO = "info"
        WARN = "warn"
        ERROR = "error"

    class Type(models.TextChoices):
        MESSAGE = "message"
        METRICS = "metrics"

    class Source(models.TextChoices):
        SYSTEM = "system"  # lifecycle (kept for good)
        LOG = "log"  # training log lines (bounded per job)

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.MESSAGE)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SYSTEM)
    message = models.TextField()
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["job", "source", "id"], name="ftevent_job_source")]

    def __str__(self) -> str:
        return f"{self.public_id}: {self.message[:60]}"

    @property
    def public_id(self) -> str:
        return f"ftevent-{self.pk}"


class MetricPoint(models.Model):
    """One point of a job's training (`kind="train"`) or evaluation (`kind="eval"`) series.
    Unique per (job, step, kind): a resumed run overwrites the steps it repeats, never duplicates them."""

    class Kind(models.TextChoices):
        TRAIN = "train"
        EVAL = "eval"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="metric_points")
    step = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    epoch = models.FloatField(default=0)
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["step", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["job", "step", "kind"], name="metric_point_unique_step")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind} step {self.step}"


class SearchTrial(models.Model):
    """One trial of a job's budgeted search (`hyperparameters.search`) at one rung of successive
    halving, with its curve. Unique per (job, trial, rung): the engine reports a trial when it starts
    and again when it ends, and a search run again after a pause overwrites its rows."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        COMPLETED = "completed", _("completed")
        PRUNED = "pruned", _("dropped")
        BUDGET_EXHAUSTED = "budget_exhausted", _("cut by the budget")
        SKIPPED = "skipped", _("skipped: budget spent")
        CANCELLED = "cancelled", _("cancelled")

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="search_trials")
    trial = models.PositiveIntegerField()
    rung = models.PositiveIntegerField()
    method = models.CharField(max_length=20)
    learning_rate = models.FloatField()
    # What "auto" gives the trial's method: the OpenAI face reports the rate as a multiple of it.
    auto_learning_rate = models.FloatField(null=True, blank=True)
    steps = models.PositiveIntegerField(default=0)
    planned_steps = models.PositiveIntegerField(default=0)
    train_rows = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    metric = models.CharField(max_length=50, blank=True)
    value = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # [{"step", "train_loss"}] and [{"step", "valid_...": ...}]: the trial's training and evaluation curves.
    curve = models.JSONField(default=list, blank=True)
    eval_curve = models.JSONField(default=list, blank=True)
    seconds = models.FloatField(default=0)
    winner = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trial", "rung"]
        constraints = [
            models.UniqueConstraint(fields=["job", "trial", "rung"], name="search_trial_unique_rung")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} trial {self.trial} rung {self.rung}"


class Checkpoint(PublicIdModel):
    """A training checkpoint uploaded to storage (`storage_prefix` holds the checkpoint's files),
    so any worker can resume from it."""

    id_prefix = "ftckpt"

    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    storage_prefix = models.CharField(max_length=500)
    files = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="checkpoint_unique_step")]


class JobAttempt(models.Model):
    """One claim of a job by a worker, from claim to its end (or its worker's last sign of life).
    GPU-hours are summed from these."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        PAUSED = "paused"
        REQUEUED = "requeued"
        LOST = "lost"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="job_attempts")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=200)
    device_class = models.CharField(max_length=20)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.RUNNING)
    resumed_from_step = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="job_attempt_unique_number")]
        indexes = [models.Index(fields=["device_class", "last_seen_at"], name="ftattempt_usage")]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number} on {self.worker}"


class ModelVersion(TeamOwnedModel):
    """A fine-tuned model: the artifacts of a succeeded job, stored under `storage_prefix`."""

    id_prefix = "mv"

    name = models.CharField(max_length=300, unique=True)
    job = models.OneToOneField(FineTuneJob, on_delete=models.PROTECT, related_name="model_version")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="model_versions")
    task = models.CharField(max_length=40)
    method = models.CharField(max_length=20)
    labels = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    lineage = models.JSONField(default=dict, blank=True)
    storage_prefix = models.CharField(max_length=500)
    files = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"], name="modelversion_team_created")]

    def __str__(self) -> str:
        return self.name


class ThroughputSample(models.Model):
    """The training throughput one finished run measured (tokens trained over the engine's loop time,
    evaluations and checkpoints included), per base model, method, max length and device class.
    Estimates are computed from these (`finetune.estimates`); the built-in table is used only
    before any run of the kind. A speed of the hardware, not team data: every team's runs count."""

    id = models.BigAutoField(primary_key=True)
    job = models.OneToOneField(
        FineTuneJob, on_delete=models.SET_NULL, null=True, blank=True, related_name="throughput"
    )
    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="throughput_samples")
    method = models.CharField(max_length=20)
    max_length = models.PositiveIntegerField()
    device_class = models.CharField(max_length=20)
    tokens_per_second = models.FloatField()
    samples_per_second = models.FloatField()
    trained_tokens = models.BigIntegerField()
    train_seconds = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["base_model", "method", "device_class"], name="throughput_kind_idx")]

    def __str__(self) -> str:
        return f"{self.base_model_id} {self.method} {self.device_class}: {self.tokens_per_second:.0f} tok/s"
