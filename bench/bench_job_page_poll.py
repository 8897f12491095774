"""The job page's live update against the full job page, for a running job with 1,000 training
points, 100 evaluations (each carrying a 77×77 confusion matrix, as Banking77 evaluations do) and
300 events: a poll carries only what changed since the previous one (here 10 new training points,
1 evaluation, 1 event), so it should be a small fraction of the page in bytes, and cost less
server time (both pay the same fixed share: session, user, team, job).

Both are requested interleaved in one process through Django's test client against the same
database, so the machine's load is the same for both. Prints
`BENCH job_page_poll ratio=<poll bytes / page bytes> target<=0.1 page_p50_ms=.. poll_p50_ms=..
time_ratio=.. page_bytes=.. poll_bytes=..` (the page itself should stay under 300 ms).
Needs PostgreSQL and Redis (see bench/jobs_bench_env.py). Run: `.venv/bin/python bench/bench_job_page_poll.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jobs_bench_env import setup_django, team_with_model_and_data  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_JOB_PAGE_ROUNDS", "30"))
TARGET = 0.1
N_TRAIN, N_EVAL_EVERY, N_EVENTS, N_LABELS = 1000, 10, 300, 77


def main() -> int:
    scratch = setup_django()
    from django.test import Client
    from django.utils import timezone

    from finetune import services
    from finetune.models import FineTuneJob, JobEvent, MetricPoint

    team, user, _, version = team_with_model_and_data(scratch)
    job = services.job_create(
        team=team,
        user=user,
        request=services.JobRequest(
            dataset_version=version.id,
            model="bench-bert",
            method="full",
            device_class="cpu",
            max_steps=N_TRAIN,
        ),
    )
    FineTuneJob.objects.filter(pk=job.id).update(
        status="running", started_at=timezone.now(), step=N_TRAIN, total_steps=2 * N_TRAIN, percent=50.0
    )
    matrix = [[(i * j) % 3 for j in range(N_LABELS)] for i in range(N_LABELS)]
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job_id=job.id, step=s, kind="train", values={"train_loss": 4.0 / s, "learning_rate": 1e-4}
        )
        for s in range(1, N_TRAIN + 1)
    )
    MetricPoint.objects.bulk_create(
        MetricPoint(
            job_id=job.id,
            step=s,
            kind="eval",
            values={
                "valid_loss": 4.0 / (s + 1),
                "valid_accuracy": s / N_TRAIN,
                "valid_confusion_matrix": matrix,
            },
        )
        for s in range(0, N_TRAIN + 1, N_EVAL_EVERY)
    )
    JobEvent.objects.bulk_create(
        JobEvent(job_id=job.id, type="metrics" if n % 2 else "message", message=f"event {n}")
        for n in range(N_EVENTS)
    )
    last_event = JobEvent.objects.filter(job_id=job.id).order_by("-id").values_list("id", flat=True).first()
    JobEvent.objects.create(job_id=job.id, message="the one new event")
    client = Client()
    client.force_login(user)
    page_url = f"/jobs/{job.id}/"
    poll_url = (
        f"/jobs/{job.id}/live/?after_event={last_event}&after_train={N_TRAIN - 10}"
        f"&after_eval={N_TRAIN - N_EVAL_EVERY}"
    )
    pages, polls = [], []
    page_bytes = poll_bytes = 0
    for n in range(ROUNDS + 3):
        started = time.perf_counter()
        page = client.get(page_url)
        page_s = time.perf_counter() - started
        started = time.perf_counter()
        poll = client.get(poll_url, HTTP_HX_REQUEST="true")
        poll_s = time.perf_counter() - started
        if page.status_code != 200 or poll.status_code != 200:
            raise SystemExit(f"page {page.status_code}, poll {poll.status_code}")
        if n >= 3:  # warm-up: template loading, first connections
            pages.append(page_s)
            polls.append(poll_s)
        page_bytes, poll_bytes = len(page.content), len(poll.content)
    page_p50 = statistics.median(pages) * 1000
    poll_p50 = statistics.median(polls) * 1000
    print(
        f"job page: p50 {page_p50:.1f} ms, {page_bytes} bytes; poll: p50 {poll_p50:.1f} ms, {poll_bytes} bytes"
    )
    print(
        f"BENCH job_page_poll ratio={poll_bytes / page_bytes:.3f} target<={TARGET} page_p50_ms={page_p50:.1f} "
        f"poll_p50_ms={poll_p50:.1f} time_ratio={poll_p50 / page_p50:.2f} page_bytes={page_bytes} "
        f"poll_bytes={poll_bytes}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
