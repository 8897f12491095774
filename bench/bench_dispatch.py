"""Dispatch latency: from the API's 201 to the job's first training step, model load excluded.

A real Celery worker process (solo pool, the production command) listens on the `cpu` queue. Jobs are
submitted one at a time through the native API (`POST /api/v1/jobs`, in-process DRF client); for each,
latency = first_step_at − (time the 201 arrived) − setup_seconds, where `setup_seconds` is what the
worker measured from calling the engine's `train()` to its first `on_step` (tokenising, model load,
baseline evaluation, the first step). What is left is ours: the on-commit publish, Redis, the worker
picking the message up, the fair-share claim (SELECT … FOR UPDATE SKIP LOCKED + conditional UPDATE),
the attempt/event rows, the dataset from storage (cached after the first job) and the reporter start.

Two warm-up jobs, then 20 measured. Prints
`BENCH dispatch_latency ratio=<p50/0.5> target<=1.0 p50_s=<x> p95_s=<y>`.
Needs PostgreSQL and Redis (see bench/jobs_bench_env.py for the databases it uses).
Run: `.venv/bin/python bench/bench_dispatch.py` (or `make bench`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jobs_bench_env import percentile, setup_django, team_with_model_and_data  # noqa: E402

TARGET_S = 0.5
JOBS = int(os.environ.get("BENCH_DISPATCH_JOBS", "20"))
WARMUP = 2


def main() -> int:
    scratch = setup_django()
    from rest_framework.test import APIClient

    from finetune.models import FineTuneJob
    from tests.celery_harness import WorkerProcess, purge_broker

    team, user, base_model, version = team_with_model_and_data(scratch)
    purge_broker()
    worker = WorkerProcess(queues="cpu", name="bench", env={"OMP_NUM_THREADS": "1"}).wait_ready(timeout=120)
    client = APIClient()
    client.force_login(user)
    payload = {
        "dataset_version": version.id,
        "model": base_model.name,
        "method": "full",
        "device_class": "cpu",
        "max_steps": 3,
        "hyperparameters": {"batch_size": 8, "max_length": 32},
    }
    latencies: list[float] = []
    totals: list[float] = []  # 201 → first step, engine setup included (tiny model: small)
    try:
        for n in range(WARMUP + JOBS):
            response = client.post("/api/v1/jobs", payload, format="json")
            arrived = time.time()
            if response.status_code != 201:
                raise SystemExit(f"submission failed: {response.status_code} {response.content[:500]!r}")
            job_id = response.json()["id"]
            deadline = time.monotonic() + 120
            while True:
                job = FineTuneJob.objects.get(pk=job_id)
                if job.status in ("succeeded", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job_id} did not finish:\n{worker.output()[-3000:]}")
                time.sleep(0.05)
            if job.status != "succeeded" or job.first_step_at is None:
                raise SystemExit(f"job {job_id} {job.status}: {job.error_message}\n{worker.output()[-3000:]}")
            latency = job.first_step_at.timestamp() - arrived - job.setup_seconds
            if n >= WARMUP:
                latencies.append(latency)
                totals.append(latency + job.setup_seconds)
            label = f"warm-up {n + 1}" if n < WARMUP else f"job {n + 1 - WARMUP}"
            print(
                f"{label:>10}: dispatch {latency * 1000:.0f} ms, engine setup {job.setup_seconds:.2f} s",
                flush=True,
            )
    finally:
        worker.stop()
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    print(
        f"BENCH dispatch_latency ratio={p50 / TARGET_S:.3f} target<=1.0 p50_s={p50:.3f} p95_s={p95:.3f} "
        f"p50_with_setup_s={percentile(totals, 0.5):.3f} jobs={len(latencies)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
