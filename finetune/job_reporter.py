"""The engine's `Reporter` for a job running in a worker: progress, metrics, logs and checkpoints
go to PostgreSQL and storage; cancel/pause flags come back.

The training thread never waits on the database for progress: it appends to in-memory buffers, and
a background "pump" thread writes them in batches (every TUNEFORGE_JOB_FLUSH_SECONDS or
TUNEFORGE_JOB_FLUSH_POINTS points, with bulk_create), heartbeats the job, and reads the job's
control flags (and the worker's admin state) at most once per TUNEFORGE_JOB_CONTROL_POLL_SECONDS.
`control()`, called by the engine every step, only reads what the pump last saw.

Checkpoints are the exception: `on_checkpoint` uploads synchronously, because the engine rotates
old checkpoint folders away right after the call and a resume on another machine needs the files.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Subquery
from django.utils import timezone

from common.json import json_safe
from finetune.artifact_storage import delete_files, storage_prefix_for_job, upload_dir
from finetune.lifecycle import event_data, job_event_record
from finetune.models import (
    Checkpoint,
    FineTuneJob,
    JobAttempt,
    JobEvent,
    JobStatus,
    MetricPoint,
    SearchTrial,
)

logger = logging.getLogger(__name__)

CONTINUE, CANCEL, PAUSE = "continue", "cancel", "pause"
_LEVELS = {
    "info": JobEvent.Level.INFO,
    "warn": JobEvent.Level.WARN,
    "warning": JobEvent.Level.WARN,
    "error": JobEvent.Level.ERROR,
}
# Worker plumbing, not the training's own story.
_IGNORED_LOGGERS = (
    "celery",
    "kombu",
    "amqp",
    "django.db",
    "finetune.job_reporter",
    "urllib3",
    "botocore",
    "boto3",
    "s3transfer",
    "filelock",
    "fsspec",
)


_LIBRARY_LOGGERS = ("transformers", "peft", "accelerate", "torch", "tokenizers", "bitsandbytes")


class StopReason:
    USER = "user"  # the job's cancel/pause flag
    WORKER_PAUSED = "worker_paused"  # an admin paused the worker: requeue the job
    LOST_OWNERSHIP = "lost_ownership"  # the reconciler gave the job to someone else
    TIME_LIMIT = "time_limit"


class _CaptureHandler(logging.Handler):
    """Python logging of the training process (transformers, peft, torch, our engine) as job log lines."""

    def __init__(self, reporter: JobReporter) -> None:
        super().__init__(level=logging.INFO)
        self.reporter = reporter
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_IGNORED_LOGGERS):
            return False
        # The pump's own database work must never feed back into the buffer it is flushing.
        return threading.get_ident() != self.reporter.pump_thread_id

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = (
                "error"
                if record.levelno >= logging.ERROR
                else "warn"
                if record.levelno >= logging.WARNING
                else "info"
            )
            self.reporter.add_log(level, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break training
            self.handleError(record)


class JobReporter:
    def __init__(self, job: FineTuneJob) -> None:
        self.job_id = job.id
        self.team_id = job.team_id
        self.worker = job.worker
        self.attempt = job.attempts
        # A resumed run repeats the steps after its checkpoint: the progress a user already saw
        # stays up until the run passes it again.
        self.progress_floor = job.step or 0
        self.keep_checkpoints = int((job.hyperparameters or {}).get("keep_last_checkpoints") or 2)
        self.flush_seconds = settings.TUNEFORGE_JOB_FLUSH_SECONDS
        self.flush_points = settings.TUNEFORGE_JOB_FLUSH_POINTS
        self.poll_seconds = settings.TUNEFORGE_JOB_CONTROL_POLL_SECONDS
        self.heartbeat_seconds = settings.TUNEFORGE_JOB_HEARTBEAT_SECONDS
        self.max_log_lines = settings.TUNEFORGE_JOB_LOG_MAX_LINES
        self.deadline = time.monotonic() + settings.TUNEFORGE_JOB_TIME_LIMIT

        self._lock = threading.Lock()
        # (step, kind) -> (metrics, wall time): model instances are built by the pump, not the trainer.
        self._points: dict[tuple[int, str], tuple[dict, float]] = {}
        # (trial, rung) -> the latest report of that search trial (engine/search.py rows).
        self._trials: dict[tuple[int, int], tuple[dict, float]] = {}
        # A search starting again (a job paused during its search, or taken over) replaces the rows
        # of the earlier attempt's search, so no stale rung is left behind.
        self._restart_search = False
        self._events: list[JobEvent] = []
        self._logs: deque[JobEvent] = deque(maxlen=self.max_log_lines)
        self._dropped_in_buffer = 0
        self._progress: dict | None = None
        self._latest_train: dict | None = None
        self._trained_tokens: int | None = None
        self._control = CONTINUE
        self._worker_polled_at = self._attempt_seen_at = float("-inf")
        self.stop_reason: str | None = None
        self.first_step_at = None
        self.train_called_at: float | None = None
        self.setup_seconds: float | None = None

        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._pump, name=f"job-reporter-{job.id}", daemon=True)
        self.pump_thread_id: int | None = None
        self._handler = _CaptureHandler(self)

    # --- lifecycle (called by the runner) -----------------------------------------------------------

    def _capturing_loggers(self) -> list[logging.Logger]:
        # Libraries such as transformers log through their own non-propagating root logger.
        library = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
        return [logging.getLogger()] + [lg for lg in library if not lg.propagate]

    def start(self) -> None:
        for target in self._capturing_loggers():
            target.addHandler(self._handler)
        self._thread.start()

    def stop(self) -> None:
        """Stop the pump and write everything still buffered."""
        for target in self._capturing_loggers():
            target.removeHandler(self._handler)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)
        self.flush()

    def mark_train_called(self) -> None:
        self.train_called_at = time.monotonic()

    # --- the engine's Reporter protocol ---------------------------------------------------------------

    def on_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None:
        # The engine's codes get their own namespace so they never meet the lifecycle's ("paused"...).
        self.add_log(level, message, code=f"engine.{code}" if code else "", params=params)

    def on_step(self, metrics: dict) -> None:
        if self.first_step_at is None:
            self.first_step_at = timezone.now()
            if self.train_called_at is not None:
                self.setup_seconds = time.monotonic() - self.train_called_at
        self._add_point(MetricPoint.Kind.TRAIN, metrics)
        with self._lock:
            self._latest_train = metrics

    def on_eval(self, metrics: dict) -> None:
        self._add_point(MetricPoint.Kind.EVAL, metrics)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        with self._lock:
            self._events.append(
                JobEvent(
                    job_id=self.job_id,
                    type=JobEvent.Type.METRICS,
                    created_at=timezone.now(),
                    message=f"Step {metrics.get('step')}: {shown}",
                    data=json_safe(metrics),
                )
            )

    def on_progress(self, progress) -> None:
        with self._lock:
            self._progress = progress.to_dict()

    def on_checkpoint(self, *, step: int, path: str, metrics: dict) -> None:
        """Upload the checkpoint folder so any worker can resume from it; keep the last few.

        Every buffered point up to this step is written first: a run resumed from this checkpoint
        repeats only later steps, so a crash can never leave a gap in the metric series."""
        self.flush()
        prefix = f"{storage_prefix_for_job(team_id=self.team_id, job_id=self.job_id)}/checkpoints/step-{step}"
        files = upload_dir(Path(path), prefix)
        with transaction.atomic():
            checkpoint, _ = Checkpoint.objects.update_or_create(
                job_id=self.job_id,
                step=step,
                defaults={"storage_prefix": prefix, "files": files, "metrics": json_safe(metrics)},
            )
            owned = FineTuneJob.objects.filter(pk=self.job_id, **self._ownership()).update(
                resume_checkpoint=checkpoint
            )
            if owned:
                job_event_record(
                    job_id=self.job_id,
                    message=f"Checkpoint saved at step {step}.",
                    data={"checkpoint": checkpoint.id, "step": step},
                    code="checkpoint_saved",
                    params={"step": step},
                )
        for old in Checkpoint.objects.filter(job_id=self.job_id).order_by("-step")[self.keep_checkpoints :]:
            delete_files(old.storage_prefix, old.files)
            old.delete()

    def on_trial(self, trial: dict) -> None:
        """A search trial started or changed; written with the next flush (the last report wins)."""
        with self._lock:
            # The first trial starting (not its progress reports) is a search (re)starting.
            starting = (trial["trial"], trial["rung"], trial["status"]) == (0, 0, "running")
            if starting and not trial.get("steps"):
                self._restart_search, self._trials = True, {}
            self._trials[(int(trial["trial"]), int(trial["rung"]))] = (dict(trial), time.time())
        self._wake.set()

    def control(self) -> str:
        if self._control == CONTINUE and time.monotonic() > self.deadline:
            self.stop_reason, self._control = StopReason.TIME_LIMIT, CANCEL
        return self._control

    # --- buffering ----------------------------------------------------------------------------------

    def add_log(self, level: str, message: str, *, code: str = "", params: dict | None = None) -> None:
        event = JobEvent(
            job_id=self.job_id,
            source=JobEvent.Source.LOG,
            level=_LEVELS.get(level, JobEvent.Level.INFO),
            message=str(message)[:10_000],
            data=json_safe(event_data(None, code=code, params=params)),
            created_at=timezone.now(),
        )
        with self._lock:
            if len(self._logs) == self._logs.maxlen:  # a flood between two flushes: keep the newest lines
                self._dropped_in_buffer += 1
            self._logs.append(event)

    def _add_point(self, kind: str, metrics: dict) -> None:
        """Called every step on the training thread: only a dict copy under a lock."""
        entry = (dict(metrics), time.time())
        with self._lock:
            self._points[(int(metrics.get("step") or 0), kind)] = entry
            full = len(self._points) >= self.flush_points
        if full:
            self._wake.set()

    def _metric_point(self, step: int, kind: str, metrics: dict, at: float) -> MetricPoint:
        values = json_safe({k: v for k, v in metrics.items() if k not in ("step", "epoch")})
        return MetricPoint(
            job_id=self.job_id,
            step=step,
            kind=kind,
            epoch=float(metrics.get("epoch") or 0),
            values=values,
            created_at=datetime.fromtimestamp(at, tz=UTC),
        )

    # --- the pump -----------------------------------------------------------------------------------

    def _pump(self) -> None:
        self.pump_thread_id = threading.get_ident()
        last_flush = last_poll = time.monotonic()
        tick = min(self.poll_seconds, self.flush_seconds, self.heartbeat_seconds) / 2
        try:
            while not self._stop.is_set():
                self._wake.wait(tick)
                self._wake.clear()
                now = time.monotonic()
                try:
                    if now - last_poll >= self.poll_seconds:
                        self._poll_control()
                        last_poll = now
                    with self._lock:
                        buffered = len(self._points)
                    if (
                        now - last_flush >= min(self.flush_seconds, self.heartbeat_seconds)
                        or buffered >= self.flush_points
                    ):
                        self.flush()
                        last_flush = now
                except Exception:  # noqa: BLE001 - a database hiccup must not kill the run; retry next tick
                    logger.exception("job %s: reporting failed; retrying", self.job_id)
                    close_old_connections()
        finally:
            connection.close()

    def _ownership(self) -> dict:
        return {"status": JobStatus.RUNNING, "worker": self.worker, "attempts": self.attempt}

    def _poll_control(self) -> None:
        from workers.selectors import worker_admin_state
        from workers.worker_state import current_worker_name

        row = (
            FineTuneJob.objects.filter(pk=self.job_id)
            .values("status", "worker", "attempts", "requested_action")
            .first()
        )
        if (
            row is None
            or row["status"] != JobStatus.RUNNING
            or row["worker"] != self.worker
            or row["attempts"] != self.attempt
        ):
            self.stop_reason, self._control = StopReason.LOST_OWNERSHIP, CANCEL
            return
        if row["requested_action"] == FineTuneJob.RequestedAction.CANCEL:
            self.stop_reason, self._control = StopReason.USER, CANCEL
        elif row["requested_action"] == FineTuneJob.RequestedAction.PAUSE:
            self.stop_reason, self._control = StopReason.USER, PAUSE
        elif (
            self._control == CONTINUE and time.monotonic() - self._worker_polled_at >= self.heartbeat_seconds
        ):
            # An admin pausing the worker is not urgent to the second: read it at heartbeat pace.
            self._worker_polled_at = time.monotonic()
            if worker_admin_state(name=current_worker_name()) == "paused":
                self.stop_reason, self._control = StopReason.WORKER_PAUSED, PAUSE

    def flush(self) -> None:
        """Write buffered points, events and progress in one transaction, and heartbeat the job."""
        with self._lock:
            points, self._points = self._points, {}
            trials, self._trials = self._trials, {}
            restart, self._restart_search = self._restart_search, False
            logs, self._logs = list(self._logs), deque(maxlen=self.max_log_lines)
            events = sorted(self._events + logs, key=lambda e: e.created_at)
            self._events = []
            dropped, self._dropped_in_buffer = self._dropped_in_buffer, 0
            progress, latest = self._progress, self._latest_train
            self._latest_train = None
        try:
            self._write(points, events, logs, dropped, progress, latest, trials, restart)
        except Exception:
            # Keep what could not be written for the next flush (newer entries win).
            with self._lock:
                for key, entry in points.items():
                    self._points.setdefault(key, entry)
                for key, entry in trials.items():
                    self._trials.setdefault(key, entry)
                self._restart_search = self._restart_search or restart
                self._logs = deque([*logs, *self._logs], maxlen=self.max_log_lines)
                self._events[:0] = [e for e in events if e.source != JobEvent.Source.LOG]
                self._dropped_in_buffer += dropped
                if self._latest_train is None:
                    self._latest_train = latest
            raise

    def _write(self, points, events, logs, dropped, progress, latest, trials, restart_search) -> None:
        now = timezone.now()
        updates: dict = {"heartbeat_at": now, "updated_at": now}
        if latest is not None:
            events = [
                *events,
                JobEvent(
                    job_id=self.job_id,
                    type=JobEvent.Type.METRICS,
                    created_at=now,
                    message=f"Step {latest.get('step')}: train_loss={latest.get('train_loss')}",
                    data=json_safe(latest),
                ),
            ]
        if progress and progress["step"] >= self.progress_floor:
            updates.update(
                step=progress["step"],
                total_steps=progress["total_steps"],
                epoch=progress["epoch"],
                percent=progress["percent"],
                eta_seconds=progress["eta_seconds"],
                samples_per_second=progress["samples_per_second"],
                tokens_per_second=progress["tokens_per_second"],
            )
        if latest is not None:
            updates["latest_metrics"] = json_safe(latest)
        if self.first_step_at is not None:
            updates["first_step_at"] = self.first_step_at
            updates["setup_seconds"] = self.setup_seconds
        if logs:
            updates["log_lines"] = F("log_lines") + len(logs)
        if dropped:
            updates["log_lines_dropped"] = F("log_lines_dropped") + dropped
        with transaction.atomic():
            owned = FineTuneJob.objects.filter(pk=self.job_id, **self._ownership()).update(**updates)
            if not owned:
                # The reconciler handed the job to another worker: write nothing more for it.
                self.stop_reason, self._control = StopReason.LOST_OWNERSHIP, CANCEL
                return
            if time.monotonic() - self._attempt_seen_at >= self.heartbeat_seconds:
                self._attempt_seen_at = time.monotonic()
                JobAttempt.objects.filter(job_id=self.job_id, number=self.attempt).update(last_seen_at=now)
            if points:
                MetricPoint.objects.bulk_create(
                    [self._metric_point(step, kind, *entry) for (step, kind), entry in points.items()],
                    update_conflicts=True,
                    unique_fields=["job", "step", "kind"],
                    update_fields=["values", "epoch", "created_at"],
                )
            if events:
                JobEvent.objects.bulk_create(events)
            if restart_search:
                SearchTrial.objects.filter(job_id=self.job_id).delete()
            if trials:
                self._write_trials(trials)
            if logs:
                self._trim_logs()

    def _write_trials(self, trials: dict) -> None:
        rows = []
        for (index, rung), (t, at) in trials.items():
            value = t.get("value")
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                value = None
            rows.append(
                SearchTrial(
                    job_id=self.job_id,
                    trial=index,
                    rung=rung,
                    method=str(t.get("method") or ""),
                    learning_rate=float(t.get("learning_rate") or 0.0),
                    auto_learning_rate=t.get("auto_learning_rate"),
                    steps=int(t.get("steps") or 0),
                    planned_steps=int(t.get("planned_steps") or 0),
                    train_rows=int(t.get("train_rows") or 0),
                    status=str(t.get("status") or SearchTrial.Status.RUNNING),
                    metric=str(t.get("metric") or ""),
                    value=value,
                    metrics=json_safe(t.get("metrics") or {}),
                    curve=json_safe(t.get("curve") or []),
                    eval_curve=json_safe(t.get("eval_curve") or []),
                    seconds=float(t.get("seconds") or 0.0),
                    winner=bool(t.get("winner")),
                    updated_at=datetime.fromtimestamp(at, tz=UTC),
                )
            )
        SearchTrial.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["job", "trial", "rung"],
            update_fields=[
                "method",
                "learning_rate",
                "auto_learning_rate",
                "steps",
                "planned_steps",
                "train_rows",
                "status",
                "metric",
                "value",
                "metrics",
                "curve",
                "eval_curve",
                "seconds",
                "winner",
                "updated_at",
            ],
        )

    def _trim_logs(self) -> None:
        """Keep the newest TUNEFORGE_JOB_LOG_MAX_LINES log lines; count the ones dropped."""
        job = FineTuneJob.objects.filter(pk=self.job_id).values("log_lines").first()
        if job is None or job["log_lines"] <= self.max_log_lines:
            return
        logs = JobEvent.objects.filter(job_id=self.job_id, source=JobEvent.Source.LOG)
        cutoff = logs.order_by("-id").values("id")[self.max_log_lines : self.max_log_lines + 1]
        deleted, _ = logs.filter(id__lte=Subquery(cutoff)).delete()
        if deleted:
            FineTuneJob.objects.filter(pk=self.job_id).update(
                log_lines=F("log_lines") - deleted, log_lines_dropped=F("log_lines_dropped") + deleted
            )
