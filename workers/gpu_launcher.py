"""Start one Celery worker per GPU on this machine and keep them running.

    python -m workers.gpu_launcher            # one worker per visible GPU
    python -m workers.gpu_launcher --cpu      # no GPU: one CPU worker (queue `cpu`)
    python -m workers.gpu_launcher --dry-run  # print what would be started

Each GPU gets its own `celery worker --pool solo --concurrency 1` process pinned to it with
CUDA_VISIBLE_DEVICES, consuming `gpu` and `gpu.<device class>`, named `gpu<N>@<host>`: one job per
GPU, and a stuck or crashed job takes down only its own GPU's worker. The launcher restarts a
worker that exits (with a growing delay if it keeps crashing) and, on SIGTERM or SIGINT, stops them
all (warm shutdown first, SIGKILL after --stop-timeout).

The device class is derived from the GPU's name (H200 → h200) unless TUNEFORGE_DEVICE_CLASS says
otherwise. No Django here: the workers it starts load the settings themselves (DATABASE_URL,
CELERY_BROKER_URL, storage settings from the environment).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workers.devices import DEVICE_CLASS_ENV, GpuDevice, detect_gpus, device_class_for
from workers.routing import queues_for_worker

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("workers.gpu_launcher")

NO_GPU_MESSAGE = (
    "No GPU found: torch.cuda.device_count() is 0 (no NVIDIA driver, no CUDA build of torch, or "
    "CUDA_VISIBLE_DEVICES hides them all). Run with --cpu to start a CPU worker instead."
)


@dataclass(frozen=True)
class WorkerSpec:
    """One worker the launcher keeps running: its name (before the @), command line and the
    environment variables it adds to the launcher's own."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    description: str = ""


def _celery_worker_argv(*, queues: list[str], hostname: str, loglevel: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "-Q",
        ",".join(queues),
        "--hostname",
        hostname,
        "--loglevel",
        loglevel,
    ]


def build_worker_specs(
    gpus: list[GpuDevice],
    *,
    device_class_override: str | None = None,
    extra_queues: list[str] | None = None,
    loglevel: str = "INFO",
) -> list[WorkerSpec]:
    """One solo, concurrency-1 worker per GPU, each seeing only its GPU."""
    specs = []
    for gpu in gpus:
        device_class = device_class_for(gpu.name, override=device_class_override)
        queues = queues_for_worker(device_kind="cuda", device_class=device_class) + list(extra_queues or [])
        # Named after the physical GPU where we know it, so gpu3@host is the same card across restarts.
        name = f"gpu{gpu.visible_id if gpu.visible_id.isdigit() else gpu.index}"
        specs.append(
            WorkerSpec(
                name=name,
                argv=_celery_worker_argv(queues=queues, hostname=f"{name}@%h", loglevel=loglevel),
                env={
                    "CUDA_VISIBLE_DEVICES": gpu.visible_id,
                    "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                    DEVICE_CLASS_ENV: device_class,
                },
                queues=queues,
                description=f"{gpu.name} ({gpu.memory_mb or '?'} MiB), class {device_class}",
            )
        )
    return specs


def build_cpu_worker_spec(*, extra_queues: list[str] | None = None, loglevel: str = "INFO") -> WorkerSpec:
    """One CPU worker (queue `cpu`) that trains on the CPU, one job at a time."""
    queues = queues_for_worker(device_kind="cpu", device_class=None) + list(extra_queues or [])
    return WorkerSpec(
        name="cpu",
        argv=_celery_worker_argv(queues=queues, hostname="cpu@%h", loglevel=loglevel),
        # Hide any GPU, so the worker describes (and uses) itself as the CPU worker it is.
        env={"CUDA_VISIBLE_DEVICES": ""},
        queues=queues,
        description="CPU",
    )


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the launcher dies, even by SIGKILL (Linux only),
    so no worker outlives its supervisor and holds a GPU nobody watches."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Keeps one process per spec running until asked to stop."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        *,
        cwd: Path = ROOT,
        stop_timeout: float = 60.0,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        healthy_after: float = 60.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.specs = specs
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after
        self.poll_interval = poll_interval
        self.processes: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {spec.name: 0 for spec in specs}
        self._started_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {spec.name: min_backoff for spec in specs}
        self._restart_at: dict[str, float] = {}
        self._stopping = False
        self._force = False

    def request_stop(self, *, force: bool = False) -> None:
        self._force = self._force or force or self._stopping
        self._stopping = True

    def _env_for(self, spec: WorkerSpec) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
        source_roots = [str(self.cwd), str(self.cwd / "platform")]
        if env.get("PYTHONPATH"):
            source_roots.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(source_roots)
        return env

    def _start(self, spec: WorkerSpec) -> None:
        process = subprocess.Popen(
            spec.argv,
            cwd=self.cwd,
            env=self._env_for(spec),
            # Its own session: a terminal's Ctrl-C reaches only the launcher, which stops workers in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.processes[spec.name] = process
        self._started_at[spec.name] = time.monotonic()
        log.info("started %s (pid %s): %s", spec.name, process.pid, " ".join(spec.argv))

    def _check(self, spec: WorkerSpec, now: float) -> None:
        process = self.processes.get(spec.name)
        if process is not None and process.poll() is None:
            return
        if process is not None:
            ran_for = now - self._started_at[spec.name]
            if ran_for >= self.healthy_after:
                self._backoff[spec.name] = self.min_backoff
            delay = self._backoff[spec.name]
            self._backoff[spec.name] = min(self.max_backoff, delay * 2)
            log.warning(
                "%s (pid %s) exited with code %s after %.0f s; restarting in %.0f s",
                spec.name,
                process.pid,
                process.returncode,
                ran_for,
                delay,
            )
            self._restart_at[spec.name] = now + delay
            self.processes.pop(spec.name)
            return
        if now >= self._restart_at.get(spec.name, 0):
            self.restarts[spec.name] += 1
            self._start(spec)

    def run(self) -> int:
        for spec in self.specs:
            self._start(spec)
        while not self._stopping:
            now = time.monotonic()
            for spec in self.specs:
                self._check(spec, now)
            time.sleep(self.poll_interval)
        self._stop_all()
        return 0

    def _stop_all(self) -> None:
        running = {name: p for name, p in self.processes.items() if p.poll() is None}
        log.info("stopping %d worker(s)%s", len(running), " now" if self._force else "")
        for process in running.values():
            self._signal(process, signal.SIGKILL if self._force else signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while any(p.poll() is None for p in running.values()):
            if self._force or time.monotonic() > deadline:
                for name, process in running.items():
                    if process.poll() is None:
                        log.warning("%s (pid %s) did not stop in time: killing it", name, process.pid)
                        self._signal(process, signal.SIGKILL)
                for process in running.values():
                    process.wait(timeout=10)
                break
            time.sleep(0.2)

    @staticmethod
    def _signal(process: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workers.gpu_launcher", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--cpu", action="store_true", help="No GPU needed: start one CPU worker (queue `cpu`)."
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        choices=[1],
        default=1,
        help="Jobs per GPU. Always 1: one job owns its GPU.",
    )
    parser.add_argument(
        "--extra-queues",
        default="",
        help="Comma-separated queues every worker also consumes (e.g. `default`).",
    )
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=60.0,
        help="Seconds a worker gets to finish a warm shutdown before it is killed.",
    )
    parser.add_argument("--dry-run", action="store_true", help="Print the workers it would start, then exit.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gpu_launcher %(levelname)s: %(message)s")
    args = _parse_args(argv)
    extra = [q.strip() for q in args.extra_queues.split(",") if q.strip()]
    if args.cpu:
        specs = [build_cpu_worker_spec(extra_queues=extra, loglevel=args.loglevel)]
    else:
        gpus = detect_gpus()
        if not gpus:
            print(NO_GPU_MESSAGE, file=sys.stderr)
            return 2
        try:
            specs = build_worker_specs(
                gpus,
                device_class_override=os.environ.get(DEVICE_CLASS_ENV) or None,
                extra_queues=extra,
                loglevel=args.loglevel,
            )
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    for spec in specs:
        print(
            f"{spec.name}: {spec.description}; queues {','.join(spec.queues)}; "
            f"CUDA_VISIBLE_DEVICES={spec.env.get('CUDA_VISIBLE_DEVICES', '')!r}",
            flush=True,
        )
    if args.dry_run:
        for spec in specs:
            print(" ".join(spec.argv), flush=True)
        return 0

    supervisor = Supervisor(specs, stop_timeout=args.stop_timeout)

    def on_signal(signum, _frame):
        log.info("received %s", signal.Signals(signum).name)
        supervisor.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
