"""Reporting overhead: training throughput with the job reporter (metric points and events batched
into PostgreSQL, progress rows, heartbeats, control polling, log capture) against the engine alone
(NullReporter), same model, data, seed and steps, in the same process.

Model: a random BERT (hidden 256, 4 layers) with the sample vocabulary; data: 2,400 rows (the
banking sample repeated), batch 8, max_length 48, 250 steps. An epoch is 300 steps, so no epoch-end
checkpoint and no evaluation happen in either run: what differs is only the reporting. Production
defaults for flush (2 s), control polling (1 s) and heartbeats (5 s). Each round runs both, the
order alternating between rounds. Measured from the first to the last step: the process's CPU time
(training thread + the reporter's pump thread; the headline ratio, median over rounds) and wall
time (`wall_ratio`; on a shared machine it mostly measures the neighbours, so it is printed but
not the target). CPU time is the cost the reporting adds; on a machine with a spare core for the
pump thread the wall-time overhead is at most that.

Prints `BENCH reporting_overhead ratio=<ours/alone> target<=1.02 alone_s=... ours_s=... steps_per_s=...`.
Needs PostgreSQL (see bench/jobs_bench_env.py). Run: `.venv/bin/python bench/bench_reporting_overhead.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jobs_bench_env import setup_django, team_with_model_and_data  # noqa: E402

STEPS = int(os.environ.get("BENCH_REPORTING_STEPS", "250"))
REPEATS = int(os.environ.get("BENCH_REPORTING_ROUNDS", "6"))
TARGET = 1.02


def main() -> int:
    scratch = setup_django()
    import torch

    torch.set_num_threads(1)  # steadier timings on a shared machine; the same for both runs
    from finetune.artifact_storage import dataset_local_files
    from finetune.engine import JobSpec, NullReporter, train
    from finetune.job_reporter import JobReporter
    from finetune.models import FineTuneJob, MetricPoint
    from finetune.runner import job_claim

    team, user, base_model, version = team_with_model_and_data(
        scratch, hidden_size=256, layers=4, n_train=240, n_valid=0, repeat=10
    )
    train_file, _ = dataset_local_files(version)
    hyperparameters = {"batch_size": 8, "max_length": 48, "n_epochs": 1, "learning_rate": 5e-5}

    def spec(output: str) -> JobSpec:
        return JobSpec.from_dict(
            {
                "base_model": base_model.source,
                "task": "classification",
                "method": "full",
                "train_file": str(train_file),
                "output_dir": str(scratch / output),
                "hyperparameters": hyperparameters,
                "seed": 7,
                "device": "cpu",
                "max_steps": STEPS,
                "cache_dir": str(scratch / "engine-cache"),
            }
        )

    class Clock:
        """Process CPU time and wall time from the first to the last step (both threads count)."""

        def tick(self, metrics: dict) -> None:
            if metrics["step"] == 1:
                self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
            elif metrics["step"] == STEPS:
                self.cpu, self.wall = time.process_time() - self.cpu0, time.perf_counter() - self.wall0

    class TimedNull(NullReporter):
        def __init__(self) -> None:
            self.clock = Clock()

        def on_step(self, metrics: dict) -> None:
            self.clock.tick(metrics)

    class TimedJobReporter(JobReporter):
        def __init__(self, job) -> None:
            super().__init__(job)
            self.clock = Clock()

        def on_step(self, metrics: dict) -> None:
            self.clock.tick(metrics)
            super().on_step(metrics)

    def alone(n: int):
        reporter = TimedNull()
        train(spec(f"alone-{n}"), reporter)
        return reporter.clock

    def ours(n: int) -> float:
        job = FineTuneJob.objects.create(
            team=team,
            created_by=user,
            base_model=base_model,
            dataset_version=version,
            task="classification",
            method="full",
            hyperparameters=hyperparameters,
            device_class="cpu",
            queue="bench",
            status="queued",
        )
        claimed = job_claim(queue="bench", worker="bench-process")
        assert claimed is not None and claimed.id == job.id
        reporter = TimedJobReporter(claimed)
        reporter.start()
        try:
            train(spec(f"ours-{n}"), reporter)
        finally:
            reporter.stop()
        points = MetricPoint.objects.filter(job=job, kind="train").count()
        assert points == STEPS, f"the reporter stored {points} of {STEPS} points"
        return reporter.clock

    alone(-1)  # warm-up: tokenisation cache, allocator, imports
    cpu_ratios, wall_ratios, alone_cpu = [], [], []
    for n in range(REPEATS):
        # Alternate which run goes first, so a machine getting busier or calmer favours neither.
        if n % 2 == 0:
            a, o = alone(n), ours(n)
        else:
            o, a = ours(n), alone(n)
        cpu_ratios.append(o.cpu / a.cpu)
        wall_ratios.append(o.wall / a.wall)
        alone_cpu.append(a.cpu)
        print(
            f"round {n + 1}: cpu alone {a.cpu:.3f} s ours {o.cpu:.3f} s (x{o.cpu / a.cpu:.4f}); "
            f"wall alone {a.wall:.3f} s ours {o.wall:.3f} s (x{o.wall / a.wall:.4f})",
            flush=True,
        )
    print(
        f"BENCH reporting_overhead ratio={statistics.median(cpu_ratios):.4f} target<={TARGET} "
        f"wall_ratio={statistics.median(wall_ratios):.4f} steps_per_cpu_s={(STEPS - 1) / statistics.median(alone_cpu):.1f} "
        f"steps={STEPS} rounds={REPEATS}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
