"""Real Celery worker processes for tests: the same command as production, against the test
database, the test broker and the test storage folder of the running pytest process.

Tests that use it need committed data (`transactional_db`), since the worker is another process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).parent / "celery"


def _database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def worker_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "TUNEFORGE_TEST_DIR": str(settings.VAR_DIR),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
    }
    env.update(extra)
    return env


class WorkerProcess:
    """One `celery worker` process; its output is kept (last lines) for assertion messages."""

    def __init__(
        self, *, queues: str, name: str, pool: str = "solo", env: dict[str, str] | None = None
    ) -> None:
        self.hostname = f"{name}-{uuid.uuid4().hex[:6]}@testhost"
        cmd = [
            str(CELERY),
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            queues,
            "--hostname",
            self.hostname,
            "--pool",
            pool,
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        self.lines: deque[str] = deque(maxlen=400)
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=worker_env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if " ready." in line:
                self._ready.set()

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        if not self._ready.wait(timeout):
            self.stop()
            raise AssertionError("Celery worker did not start:\n" + self.output())
        return self

    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill_hard(self) -> None:
        """kill -9, as a crashed machine would: no cleanup, no acknowledgement."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def purge_broker() -> None:
    """Drop messages left by earlier tests, so each test sees only its own."""
    from workers.celery_app import app

    app.control.purge()


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "condition", detail=None):
    """The tests' one polling loop: call `predicate` until it returns something truthy and return
    that; after `timeout` seconds fail naming `message` (and `detail()`, e.g. the last state seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"; {detail()}" if detail else ""
            raise AssertionError(f"Timed out after {timeout}s waiting for {message}{extra}")
        time.sleep(interval)


def messages_waiting(queue: str) -> int:
    """Messages ready in a broker queue (0 for a queue that does not exist yet)."""
    from workers.celery_app import app

    with app.connection_for_write() as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
        except Exception:  # noqa: BLE001 - no such queue: nothing waits in it
            return 0


def wait_for_heartbeats(worker_name: str, *, count: int = 2, timeout: float = 30) -> None:
    """Wait until the worker has sent `count` more registry heartbeats: the positive signal that it
    has been alive, and polling its broker queues, for that long."""
    from workers.models import WorkerNode

    def beat():
        return WorkerNode.objects.filter(name=worker_name).values_list("last_heartbeat_at", flat=True).first()

    for n in range(count):
        seen = beat()
        wait_until(
            lambda seen=seen: (now := beat()) is not None and (seen is None or now > seen),
            timeout=timeout,
            interval=0.1,
            message=f"heartbeat {n + 1} of {count} from {worker_name}",
        )
