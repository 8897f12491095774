"""One job on this worker, top to bottom: claim the fairest queued job of the message's queue,
fetch its inputs from storage, train it with the engine, and record how it ended (model version,
failure, cancellation, pause). Every status change goes through `finetune.lifecycle`."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import traceback
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.json import json_safe
from common.models import new_public_id
from finetune.artifact_storage import (
    dataset_all_rows_file,
    dataset_local_files,
    delete_files,
    download_files,
    storage_prefix_for_model_version,
    upload_dir,
)
from finetune.engine import SpecError, train
from finetune.engine_specs import engine_spec_for_job
from finetune.job_reporter import JobReporter, StopReason
from finetune.lifecycle import (
    job_attempt_end,
    job_dispatch,
    job_event_record,
    job_fail,
    job_transition,
    ownership_guard,
)
from finetune.lineage import code_version, model_name_for
from finetune.models import FineTuneJob, JobAttempt, JobEvent, JobStatus, ModelVersion, ThroughputSample
from finetune.selectors import fair_share_order
from workers.services import set_current_job
from workers.worker_state import current_worker_name

logger = logging.getLogger(__name__)


# --- claim --------------------------------------------------------------------------------------


def local_worker_name() -> str:
    return current_worker_name() or f"{socket.gethostname()}:{os.getpid()}"


def job_claim(*, queue: str, worker: str) -> FineTuneJob | None:
    """Claim the best queued job of `queue` in fair-share order for `worker`, or None.

    The row is chosen with SELECT ... FOR UPDATE SKIP LOCKED (two workers never wait on, or pick,
    the same row) and taken with one conditional UPDATE (status queued → running, attempts + 1);
    zero rows means another worker took it.
    """
    now = timezone.now()
    with transaction.atomic():
        candidates = fair_share_order(FineTuneJob.objects.filter(queue=queue, status=JobStatus.QUEUED))
        job_id = (
            candidates.select_for_update(skip_locked=True, of=("self",)).values_list("id", flat=True).first()
        )
        if job_id is None:
            return None
        claimed = FineTuneJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            worker=worker,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            requested_action="",
            updated_at=now,
        )
        if not claimed:
            return None
        job = FineTuneJob.objects.select_related(
            "base_model", "dataset_version", "validation_dataset_version", "resume_checkpoint"
        ).get(pk=job_id)
        if job.started_at is None:
            FineTuneJob.objects.filter(pk=job_id).update(started_at=now)
            job.started_at = now
        _record_attempt_start(job, worker=worker, now=now)
    return job


def _record_attempt_start(job: FineTuneJob, *, worker: str, now) -> None:
    checkpoint = job.resume_checkpoint
    JobAttempt.objects.create(
        job=job,
        number=job.attempts,
        worker=worker,
        device_class=job.device_class,
        started_at=now,
        last_seen_at=now,
        resumed_from_step=checkpoint.step if checkpoint else None,
    )
    where = f", resuming from the checkpoint at step {checkpoint.step}" if checkpoint else ""
    job_event_record(
        job_id=job.id,
        message=f"Running on worker {worker} (attempt {job.attempts}){where}.",
        data={"status": JobStatus.RUNNING, "worker": worker, "attempt": job.attempts},
        code="running_resumed" if checkpoint else "running",
        params={"worker": worker, "attempt": job.attempts, "step": checkpoint.step if checkpoint else None},
    )


def job_execute(*, job_id: str) -> None:
    """The body of the `finetune.run_job` task: take one unit of work from the queue of `job_id`
    (the job itself or a fairer one) and run it to its end, pause or cancellation."""
    hint = FineTuneJob.objects.filter(pk=job_id).values("queue").first()
    if hint is None:
        return
    job = job_claim(queue=hint["queue"], worker=local_worker_name())
    if job is None:
        return  # duplicate delivery: nothing queued for this message
    set_current_job(job.id)
    try:
        run_claimed_job(job)
    finally:
        set_current_job(None)


# --- execute ------------------------------------------------------------------------------------


def failure_for(exc: BaseException, job: FineTuneJob) -> tuple[str, str, str]:
    """(code, user-readable message, param) for an exception raised by a training run."""
    if isinstance(exc, SpecError):
        return exc.code, f"{exc.field}: {exc.message}", exc.field
    text = str(exc)
    out_of_memory = (
        type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in text.lower()
        or ("can't allocate memory" in text.lower())
    )
    if out_of_memory:
        hp = job.resolved_hyperparameters or {}
        device = "GPU" if job.device_class != "cpu" else "host"
        return (
            "out_of_memory",
            f"The run ran out of {device} memory (batch_size={hp.get('batch_size', 'auto')}, "
            f"max_length={hp.get('max_length', 'auto')}). Lower hyperparameters.batch_size or "
            f"hyperparameters.max_length (gradient_accumulation_steps keeps the effective batch), or "
            f"enable hyperparameters.gradient_checkpointing, and submit again.",
            "hyperparameters.batch_size",
        )
    if type(exc).__name__ == "SoftTimeLimitExceeded":
        return "time_limit_exceeded", _time_limit_message(), ""
    return (
        "training_error",
        f"Training stopped with an unexpected error: {type(exc).__name__}: {text[:500]}",
        "",
    )


def _time_limit_message() -> str:
    limit = settings.TUNEFORGE_JOB_TIME_LIMIT
    shown = f"{limit / 3600:g} h" if limit >= 3600 else f"{limit:g} s"
    return f"The job ran longer than the {shown} limit (TUNEFORGE_JOB_TIME_LIMIT) and was stopped."


def run_claimed_job(job: FineTuneJob) -> None:
    work_dir = Path(settings.TUNEFORGE_WORK_DIR) / job.id
    shutil.rmtree(work_dir, ignore_errors=True)  # leftovers of an earlier attempt on this machine
    work_dir.mkdir(parents=True, exist_ok=True)
    reporter = JobReporter(job)
    reporter.start()  # heartbeats from here on, through downloads, training and the final upload
    guard = ownership_guard(job)
    try:
        try:
            train_file, validation_file = dataset_local_files(job.dataset_version)
            if job.validation_dataset_version is not None:
                validation_file = dataset_all_rows_file(job.validation_dataset_version)
            resume_from = None
            checkpoint = job.resume_checkpoint
            if checkpoint is not None:
                resume_from = str(
                    download_files(
                        checkpoint.storage_prefix,
                        checkpoint.files,
                        work_dir / "resume" / f"step-{checkpoint.step}",
                    )
                )
            spec = engine_spec_for_job(
                job, train_file=train_file, validation_file=validation_file, output_dir=work_dir / "output"
            )
            reporter.mark_train_called()
            result = train(spec, reporter, resume_from=resume_from)
            reporter.flush()  # every point and log line is stored before the job leaves `running`
        except Exception as exc:  # every failure ends the job with a readable reason
            reporter.add_log("error", "".join(traceback.format_exception(exc))[-5000:])
            reporter.flush()
            code, message, param = failure_for(exc, job)
            if job_fail(job_id=job.id, code=code, message=message, param=param, guard=guard):
                job_attempt_end(job_id=job.id, number=job.attempts, outcome=JobAttempt.Outcome.FAILED)
            return
        _finish(job, result, reporter, guard)
    finally:
        reporter.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


# --- finish -------------------------------------------------------------------------------------


def _finish(job: FineTuneJob, result, reporter: JobReporter, guard: dict) -> None:
    reason = reporter.stop_reason
    if reason == StopReason.LOST_OWNERSHIP:
        logger.warning("job %s was taken over by the reconciler; discarding this attempt's result", job.id)
        return
    common = {"trained_tokens": result.trained_tokens}
    if result.status == "succeeded":
        _succeed(job, result, guard)
        return
    if result.status == "paused":
        if reason == StopReason.WORKER_PAUSED:
            with transaction.atomic():
                if job_transition(
                    job_id=job.id,
                    to=JobStatus.QUEUED,
                    from_=(JobStatus.RUNNING,),
                    guard=guard,
                    worker="",
                    message=f"Worker {job.worker} was paused by an admin: checkpointed at step {result.steps} and "
                    f"requeued for another worker.",
                    code="requeued_worker_paused",
                    params={"worker": job.worker, "step": result.steps},
                    requested_action="",
                    **common,
                ):
                    job_dispatch(job_id=job.id, queue=job.queue)
            outcome = JobAttempt.Outcome.REQUEUED
        else:
            during_search = result.last_checkpoint is None and bool(result.search)
            job_transition(
                job_id=job.id,
                to=JobStatus.PAUSED,
                from_=(JobStatus.RUNNING,),
                guard=guard,
                message="Paused during the search; it runs again when the job is resumed."
                if during_search
                else f"Paused at step {result.steps}; the checkpoint is stored and the worker is free.",
                code="paused_during_search" if during_search else "paused",
                params={"step": result.steps},
                requested_action="",
                **common,
            )
            outcome = JobAttempt.Outcome.PAUSED
    elif reason == StopReason.TIME_LIMIT:
        job_fail(job_id=job.id, code="time_limit_exceeded", message=_time_limit_message(), guard=guard)
        outcome = JobAttempt.Outcome.FAILED
    else:
        job_transition(
            job_id=job.id,
            to=JobStatus.CANCELLED,
            from_=(JobStatus.RUNNING,),
            guard=guard,
            message=f"Cancelled at step {result.steps}.",
            code="cancelled",
            params={"step": result.steps},
            requested_action="",
            **common,
        )
        outcome = JobAttempt.Outcome.CANCELLED
    job_attempt_end(job_id=job.id, number=job.attempts, outcome=outcome)


def _succeed(job: FineTuneJob, result, guard: dict) -> None:
    """Upload the artifacts under the team's prefix and create the ModelVersion with its lineage."""
    output = Path(result.output_dir)
    version_id = new_public_id(ModelVersion.id_prefix)
    prefix = storage_prefix_for_model_version(team_id=job.team_id, version_id=version_id)
    files = upload_dir(output, prefix, exclude_top=("checkpoints",))
    label_file = output / "label_map.json"
    labels = json.loads(label_file.read_text()).get("labels", []) if label_file.exists() else []
    version = job.dataset_version
    resolved = json_safe(result.resolved_spec)
    # Worker-local paths mean nothing elsewhere: lineage names the stored inputs instead.
    separate = job.validation_dataset_version
    if separate is not None:
        stored_validation = [separate.normalized_file.name] + (
            [separate.validation_file.name] if separate.validation_file else []
        )
    else:
        stored_validation = version.validation_file.name if version.validation_file else None
    resolved.update(
        train_file=version.normalized_file.name,
        validation_file=stored_validation,
        output_dir=prefix,
        cache_dir=None,
    )
    metrics = json_safe({k: v for k, v in result.metrics.items() if k != "history"})
    lineage = {
        "job": job.id,
        "dataset": version.dataset_id,
        "dataset_version": version.id,
        "dataset_sha256": version.sha256,
        "validation_dataset_version": separate.id if separate is not None else None,
        "base_model": job.base_model.name,
        "base_model_source": job.base_model.source,
        "method": result.resolved_spec.get("method") or job.method,  # what "auto" chose
        "seed": job.seed,
        "resolved_spec": resolved,
        "code_version": code_version(),
        "worker": job.worker,
        "attempts": job.attempts,
    }
    with transaction.atomic():
        done = job_transition(
            job_id=job.id,
            to=JobStatus.SUCCEEDED,
            from_=(JobStatus.RUNNING,),
            guard=guard,
            message=f"Succeeded after {result.steps} steps: model {model_name_for(job)}.",
            code="succeeded",
            params={"step": result.steps, "model": model_name_for(job)},
            data={"model_version": version_id},
            trained_tokens=result.trained_tokens,
            resolved_hyperparameters=resolved.get("hyperparameters", {}),
            resolved_spec=resolved,
            requested_action="",
            percent=100.0,
            eta_seconds=0,
        )
        if done:
            ModelVersion.objects.create(
                id=version_id,
                team_id=job.team_id,
                name=model_name_for(job),
                job=job,
                base_model=job.base_model,
                task=job.task,
                method=result.resolved_spec.get("method") or job.method,
                labels=labels,
                metrics=metrics,
                lineage=lineage,
                storage_prefix=prefix,
                files=files,
                created_by_id=job.created_by_id,
            )
            throughput_record(job=job, result=result)
            job_event_record(
                job_id=job.id,
                message=f"Model version {version_id} stored ({len(files)} files).",
                code="model_stored",
                params={"version": version_id, "files": len(files)},
                type=JobEvent.Type.METRICS,
                # `step` at the top, as on every other metrics event; the nested copy stays for old readers.
                # The final metrics are the exported (best) evaluation's; `kept_step` says which step that was.
                data={
                    **(metrics.get("final") or {}),
                    "step": result.steps,
                    "kept_step": (metrics.get("final") or {}).get("step"),
                    "metrics": metrics.get("final") or {},
                },
            )
    if not done:
        delete_files(prefix, files)  # the job was taken over or cancelled meanwhile
        return
    job_attempt_end(job_id=job.id, number=job.attempts, outcome=JobAttempt.Outcome.SUCCEEDED)


def throughput_record(*, job: FineTuneJob, result) -> ThroughputSample | None:
    """What this run measured, for the estimates of later runs of the same kind (`finetune.estimates`).
    The loop's own time (evaluations and checkpoints included, model load excluded): that is what an
    estimate multiplies by the tokens to train."""
    train_info = result.metrics.get("train") or {}
    seconds = float(train_info.get("train_seconds") or 0.0)
    tokens = int(train_info.get("trained_tokens") or result.trained_tokens or 0)
    if seconds <= 0 or tokens <= 0:
        return None
    hp = result.resolved_spec.get("hyperparameters") or {}
    sample, _ = ThroughputSample.objects.update_or_create(
        job=job,
        defaults={
            "base_model": job.base_model,
            "method": result.resolved_spec.get("method") or job.method,
            "max_length": int(hp.get("max_length") or 0),
            "device_class": job.device_class,
            "tokens_per_second": tokens / seconds,
            "samples_per_second": int(train_info.get("trained_samples") or 0) / seconds,
            "trained_tokens": tokens,
            "train_seconds": seconds,
        },
    )
    return sample
