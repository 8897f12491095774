"""Celery tasks of the jobs app: ids only, thin (each body calls one function)."""

from django.conf import settings

from finetune.lifecycle import CHECK_FILES_QUEUE, CHECK_FILES_TASK, RUN_JOB_TASK
from finetune.reconciler import jobs_reconcile
from finetune.registry import CHECK_TASK, base_model_check
from finetune.runner import job_execute
from finetune.services import job_files_check
from workers.selectors import worker_accepts_jobs
from workers.services import hand_back
from workers.taskbase import tuneforge_task
from workers.worker_state import current_worker_name


@tuneforge_task(
    RUN_JOB_TASK,
    queue="cpu",  # the real queue is chosen per message from the job's device class
    bind=True,
    time_limit=settings.TUNEFORGE_JOB_TIME_LIMIT + 600,
    soft_time_limit=settings.TUNEFORGE_JOB_TIME_LIMIT,
)
def run_job(self, job_id: str) -> None:
    """One unit of work on the job's queue: claim the fairest queued job there and run it.
    A draining or paused worker hands the message back unclaimed."""
    if not worker_accepts_jobs(name=current_worker_name()):
        hand_back(self, job_id=job_id)
        return
    job_execute(job_id=job_id)


@tuneforge_task(CHECK_FILES_TASK, queue=CHECK_FILES_QUEUE, time_limit=300, soft_time_limit=240)
def check_job_files(job_id: str) -> None:
    """Check a `validating_files` job's training and validation files, then queue or fail it."""
    job_files_check(job_id=job_id)


@tuneforge_task("finetune.reconcile_jobs", queue="default", time_limit=120, soft_time_limit=100)
def reconcile_jobs() -> None:
    """Requeue jobs whose worker died; re-send messages the broker lost."""
    jobs_reconcile()


@tuneforge_task(CHECK_TASK, queue="cpu", time_limit=300, soft_time_limit=240)
def check_base_model(name: str) -> None:
    """Load a newly added base model's config and tokenizer here, on a worker of its device class
    (the queue is chosen when the check is published)."""
    base_model_check(name=name)
