"""Reads about fine-tuning, always scoped to the acting team (another team's rows are a 404; only
platform admins may read any team's job, see `job_get_for_reader`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from common.errors import InvalidInput, NotFound
from finetune.models import (
    ACTIVE_STATUSES,
    BaseModel,
    Checkpoint,
    FineTuneJob,
    JobAttempt,
    JobEvent,
    JobStatus,
    MetricPoint,
    ModelVersion,
    SearchTrial,
    ThroughputSample,
)
from workers.selectors import queues_served_now

CPU_DEVICE_CLASS = "cpu"


# --- base models --------------------------------------------------------------------------------


def base_model_list() -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(enabled=True)


def base_model_get(*, name: str | None) -> BaseModel:
    """The enabled base model called `name` (the default one when `name` is empty)."""
    models = base_model_list()
    model = (
        models.filter(name=name).first() if name else models.filter(is_default=True).first() or models.first()
    )
    if model is None:
        available = ", ".join(models.values_list("name", flat=True)[:20]) or "none registered"
        if not name:
            raise InvalidInput(f"No base model is registered; available: {available}.", field="model")
        raise InvalidInput(
            f"Unknown base model {name!r}; available: {available}.", code="unknown_base_model", field="model"
        )
    return model


# --- jobs ---------------------------------------------------------------------------------------


def job_list(*, team, status: str | None = None) -> QuerySet[FineTuneJob]:
    jobs = FineTuneJob.objects.filter(team=team).select_related(
        "base_model", "model_version", "dataset_version__dataset"
    )
    if status:
        if status not in JobStatus.values:
            raise InvalidInput(
                f"Unknown status {status!r}; choose one of {', '.join(JobStatus.values)}.", field="status"
            )
        jobs = jobs.filter(status=status)
    return jobs


def job_get(*, team, job_id: str) -> FineTuneJob:
    job = job_list(team=team).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No fine-tuning job {job_id!r} in this team.", code="job_not_found", field="id")
    return job


def job_get_for_reader(*, team, user, job_id: str) -> FineTuneJob:
    """`job_get` for reading: a platform admin (staff) may also read any other team's job, e.g. one
    followed from the workers page. Everyone else gets the team-scoped 404."""
    if team is not None:
        try:
            return job_get(team=team, job_id=job_id)
        except NotFound:
            if not getattr(user, "is_staff", False):
                raise
    if getattr(user, "is_staff", False) and getattr(user, "is_active", False):
        job = (
            FineTuneJob.objects.select_related("base_model", "model_version", "dataset_version__dataset")
            .filter(pk=job_id)
            .first()
        )
        if job is not None:
            return job
    raise NotFound(f"No fine-tuning job {job_id!r} in this team.", code="job_not_found", field="id")


def unserved_device_warning(*, device_class: str, queue: str, served: set[str] | None = None) -> str | None:
    """A warning when no online worker consumes `queue`: such a job would wait with no end in sight.
    `served` (from `queues_served_now`) saves the lookup when checking many jobs."""
    if queue in (served if served is not None else queues_served_now()):
        return None
    return (
        f"No online worker serves device class {device_class!r} right now: the job waits in the queue "
        f"until a worker for {device_class!r} comes online."
    )


def fair_share_order(queryset: QuerySet[FineTuneJob]) -> QuerySet[FineTuneJob]:
    """Queued jobs in the order the next free worker takes them: the team with the fewest running
    jobs first, then higher priority, then the team served least recently (round-robin between
    teams that are otherwise equal), then the oldest job."""
    running = (
        FineTuneJob.objects.filter(team_id=OuterRef("team_id"), status=JobStatus.RUNNING)
        .order_by()
        .values("team_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    last_served = (
        JobAttempt.objects.filter(job__team_id=OuterRef("team_id"))
        .order_by("-started_at")
        .values("started_at")[:1]
    )
    return queryset.annotate(
        team_running=Coalesce(Subquery(running), Value(0)),
        team_last_served=Subquery(last_served),
    ).order_by("team_running", "-priority", F("team_last_served").asc(nulls_first=True), "created_at", "id")


def queue_positions(*, queues: set[str]) -> dict[str, int]:
    """1-based positions of every queued job in its queue (across all teams: the real line).

    The line is simulated claim by claim with the rules of `fair_share_order`: each pick counts as
    one more running job of its team and makes that team the most recently served, so a team with
    many queued jobs does not hold every front position.
    """
    positions: dict[str, int] = {}
    for queue in queues:
        waiting = list(
            FineTuneJob.objects.filter(queue=queue, status=JobStatus.QUEUED).values_list(
                "id", "team_id", "priority", "created_at"
            )
        )
        teams = {team_id for _, team_id, _, _ in waiting}
        running = dict(
            FineTuneJob.objects.filter(team_id__in=teams, status=JobStatus.RUNNING)
            .order_by()
            .values_list("team_id")
            .annotate(n=Count("pk"))
        )
        # When each team was last served: (0,) never, (1, t) a real claim, (2, n) the n-th simulated pick.
        served: dict[str, tuple] = {
            team_id: (1, last.timestamp())
            for team_id, last in JobAttempt.objects.filter(job__team_id__in=teams)
            .order_by()
            .values_list("job__team_id")
            .annotate(last=Max("started_at"))
        }

        for index, job_id in enumerate(_simulated_line(waiting, running=running, served=served), start=1):
            positions[job_id] = index
    return positions


def _simulated_line(waiting: list[tuple], *, running: dict, served: dict) -> list[str]:
    """Job ids of `waiting` (id, team_id, priority, created_at) in the order workers would claim them."""
    waiting, running, served = list(waiting), dict(running), dict(served)

    def rank(row):
        job_id, team_id, priority, created_at = row
        return (running.get(team_id, 0), -priority, served.get(team_id, (0,)), created_at, job_id)

    line = []
    while waiting:
        best = min(waiting, key=rank)
        waiting.remove(best)
        line.append(best[0])
        running[best[1]] = running.get(best[1], 0) + 1
        served[best[1]] = (2, len(line))
    return line


def queue_positions_for(jobs) -> dict[str, int]:
    queues = {job.queue for job in jobs if job.status == JobStatus.QUEUED}
    return queue_positions(queues=queues) if queues else {}


def job_event_list(*, job: FineTuneJob) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job)


def parse_event_id(raw: str | None) -> int | None:
    if not raw:
        return None
    digits = raw.removeprefix("ftevent-")
    if not digits.isdigit():
        raise InvalidInput(f"after must be an event id such as 'ftevent-42', got {raw!r}.", field="after")
    return int(digits)


def job_metric_list(
    *, job: FineTuneJob, after_step: int | None = None, kind: str | None = None
) -> QuerySet[MetricPoint]:
    points = MetricPoint.objects.filter(job=job)
    if after_step is not None:
        points = points.filter(step__gt=after_step)
    if kind:
        if kind not in MetricPoint.Kind.values:
            raise InvalidInput(f"kind must be one of {', '.join(MetricPoint.Kind.values)}.", field="kind")
        points = points.filter(kind=kind)
    return points.order_by("step", "kind")


def job_search_trial_list(*, job: FineTuneJob) -> QuerySet[SearchTrial]:
    """The job's budgeted-search trials, one row per (trial, rung), in trial then rung order."""
    return SearchTrial.objects.filter(job=job).order_by("trial", "rung")


def job_checkpoint_list(*, job: FineTuneJob) -> QuerySet[Checkpoint]:
    return Checkpoint.objects.filter(job=job)


def job_log_lines(*, job: FineTuneJob) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job).order_by("id")


def job_latest_metrics(*, job: FineTuneJob) -> dict:
    """The latest value of every metric the job reported (train and eval), with its step."""
    latest: dict[str, dict] = {}
    for kind in MetricPoint.Kind.values:
        point = MetricPoint.objects.filter(job=job, kind=kind).order_by("-step").first()
        if point is not None:
            latest[kind] = {"step": point.step, "epoch": point.epoch, **point.values}
    return latest


# --- quotas -------------------------------------------------------------------------------------


def month_start(now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime | None = None) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def team_gpu_hours_this_month(*, team, now: datetime | None = None) -> float:
    """GPU-hours the team's jobs consumed this calendar month: each attempt on a GPU device class,
    from its start (or the month's start) to its end or its worker's last sign of life."""
    start = month_start(now)
    end = Coalesce(F("ended_at"), F("last_seen_at"))
    used = (
        JobAttempt.objects.filter(job__team=team)
        .exclude(device_class=CPU_DEVICE_CLASS)
        .annotate(end=end)
        .filter(end__gt=start)
        .aggregate(
            total=Sum(
                ExpressionWrapper(
                    F("end") - Greatest(F("started_at"), Value(start)), output_field=DurationField()
                )
            )
        )["total"]
    )
    return (used or timedelta()).total_seconds() / 3600.0


def team_job_counts(*, team) -> dict[str, int]:
    rows = FineTuneJob.objects.filter(team=team).values("status").annotate(n=Count("pk"))
    counts = {status: 0 for status in JobStatus.values}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def job_status_samples() -> list[tuple[dict[str, str], float]]:
    """The `tuneforge_jobs` gauge at scrape time: jobs of every team by status (every status listed,
    zeros included, so a series does not vanish when its last job moves on)."""
    rows = FineTuneJob.objects.values("status").annotate(n=Count("pk"))
    counts = dict.fromkeys(JobStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return [({"status": status}, float(n)) for status, n in sorted(counts.items())]


def team_quota_usage(*, team, exclude_job_id: str | None = None) -> dict:
    active = FineTuneJob.objects.filter(team=team, status__in=ACTIVE_STATUSES)
    if exclude_job_id:
        active = active.exclude(pk=exclude_job_id)
    counts = active.aggregate(
        running=Count("pk", filter=Q(status=JobStatus.RUNNING)),
        waiting=Count("pk", filter=~Q(status=JobStatus.RUNNING)),
    )
    return {
        "concurrent_jobs": counts["running"] + counts["waiting"],
        "running_jobs": counts["running"],
        "queued_jobs": counts["waiting"],
        "max_concurrent_jobs": team.max_concurrent_jobs,
        "gpu_hours_used": round(team_gpu_hours_this_month(team=team), 4),
        "monthly_gpu_hours": float(team.monthly_gpu_hours),
    }


# --- model versions -----------------------------------------------------------------------------


def model_version_list(*, team) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(team=team).select_related("base_model", "job")


def model_version_get(*, team, version_id: str) -> ModelVersion:
    version = model_version_list(team=team).filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"No model {version_id!r} in this team.", code="model_not_found", field="id")
    return version


def model_version_file(*, version: ModelVersion, path: str) -> dict:
    """The recorded file `path` of a model version (only recorded files can be downloaded, so a
    crafted path can never reach outside the version's prefix)."""
    for entry in version.files:
        if entry["path"] == path:
            return entry
    raise NotFound(f"Model {version.id} has no file {path!r}.", code="file_not_found", field="path")


# --- dashboard ----------------------------------------------------------------------------------

# The metric a job is summed up by, in order of preference (held-out scores before losses).
MAIN_METRICS = (
    "valid_accuracy",
    "valid_f1_macro",
    "valid_f1_micro",
    "valid_exact_match",
    "valid_perplexity",
    "valid_loss",
)


def job_main_metric(job: FineTuneJob) -> tuple[str, float] | None:
    """(name, value) summing a job up: its model's best-known held-out metric once it succeeded,
    the latest training loss while it trains, None before the first step."""
    version = getattr(job, "model_version", None) if job.status == JobStatus.SUCCEEDED else None
    final = ((version.metrics or {}).get("final") or {}) if version is not None else {}
    for name in MAIN_METRICS:
        value = final.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return name, value
    loss = (job.latest_metrics or {}).get("train_loss")
    if isinstance(loss, (int, float)) and not isinstance(loss, bool):
        return "train_loss", loss
    return None


def team_dashboard(*, team, recent: int = 8) -> dict:
    """The fine-tuning part of the dashboard: recent jobs with their main metric, where the team's
    queued jobs stand in line, and this month's GPU-hours against the quota."""
    jobs = list(job_list(team=team)[:recent])
    queued = list(job_list(team=team, status=JobStatus.QUEUED).order_by("created_at")[:20])
    positions = queue_positions_for(queued)
    for job in jobs:
        job.main_metric = job_main_metric(job)
        job.queue_position = positions.get(job.id)
    usage = team_quota_usage(team=team)
    limit = usage["monthly_gpu_hours"]
    return {
        "jobs": jobs,
        "queued": [(job, positions.get(job.id)) for job in queued],
        "usage": usage,
        "gpu_percent": min(100.0, 100.0 * usage["gpu_hours_used"] / limit) if limit else None,
        "counts": team_job_counts(team=team),
    }


# --- platform staff -----------------------------------------------------------------------------


def job_list_all(
    *,
    team_id: str | None = None,
    status: str | None = None,
    device_class: str | None = None,
    base_model: str | None = None,
) -> QuerySet[FineTuneJob]:
    """Every team's jobs, newest first, for platform staff only (the staff pages' gate is the only
    caller; team members always go through the team-scoped `job_list`)."""
    jobs = FineTuneJob.objects.select_related(
        "team", "base_model", "model_version", "dataset_version__dataset"
    ).order_by("-created_at", "-id")
    if status:
        if status not in JobStatus.values:
            raise InvalidInput(
                f"Unknown status {status!r}; choose one of {', '.join(JobStatus.values)}.", field="status"
            )
        jobs = jobs.filter(status=status)
    if team_id:
        jobs = jobs.filter(team_id=team_id)
    if device_class:
        jobs = jobs.filter(device_class=device_class)
    if base_model:
        jobs = jobs.filter(base_model__name=base_model)
    return jobs


def base_model_list_all() -> QuerySet[BaseModel]:
    """The whole registry, enabled or not, with how many jobs used each model."""
    return BaseModel.objects.annotate(job_count=Count("jobs")).order_by("-is_default", "name")


# The latest runs of a kind that estimates are computed from.
THROUGHPUT_RUNS = 20


def measured_throughput(
    *, base_model_id: str, method: str, device_class: str, max_length: int
) -> list[float]:
    """Tokens per second that workers measured on the latest runs of this base model, method and
    device class at a max length within a factor of two (attention cost grows with length)."""
    qs = ThroughputSample.objects.filter(
        base_model_id=base_model_id, method=method, device_class=device_class
    )
    if max_length:
        qs = qs.filter(max_length__gte=max_length // 2, max_length__lte=max_length * 2)
    return list(qs.order_by("-created_at").values_list("tokens_per_second", flat=True)[:THROUGHPUT_RUNS])
