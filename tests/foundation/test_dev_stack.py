"""The embedded default as a user meets it: `scripts/dev.py` with SQLite, local files and the
embedded Redis, training two jobs while a stream of uploads goes on beside them, and a process
that dies is restarted while everything else keeps running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.celery_harness import wait_until

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "banking77" / "train_4intents.csv"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def laptop_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "TUNEFORGE_TEST_DIR"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        TUNEFORGE_VAR_DIR=str(var_dir),
        TUNEFORGE_DEV_ADDR=f"127.0.0.1:{port}",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        # Quick liveness so the killed worker's absence is seen within the test's time.
        TUNEFORGE_WORKER_HEARTBEAT_SECONDS="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


class DevStack:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "scripts/dev.py"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """Name → pid of the supervised processes, read from the process table."""
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        found = {}
        for line in out.splitlines():
            pid, _, args = line.strip().partition(" ")
            for name, marker in (
                ("redis", "redis-server"),
                ("web", "runserver"),
                ("worker", "-Q default"),
                ("trainer", "-Q cpu"),
                ("beat", " beat"),
            ):
                if marker in args:
                    found[name] = int(pid)
        return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self._log.close()
        return code


def signed_in_session(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base}/accounts/login/",
        data={
            "csrfmiddlewaretoken": token,
            "username": "admin@tuneforge.local",
            "password": "tuneforge-admin",
        },
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
    )
    assert response.ok and "sessionid" in session.cookies, response.text[:500]
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    session.headers["Referer"] = base + "/"
    return session


def upload(session: requests.Session, base: str, name: str, text: str) -> requests.Response:
    return session.post(
        f"{base}/api/v1/datasets",
        files={"file": (f"{name}.csv", text.encode(), "text/csv")},
        data={"name": name},
        timeout=120,
    )


def test_the_embedded_stack_trains_two_jobs_beside_uploads_and_restarts_a_dead_worker():
    var_dir = Path(tempfile.mkdtemp(prefix="tfdev-", dir="/tmp"))  # short: the Redis socket path
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = laptop_env(var_dir, port)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "seed_demo")
    stack = DevStack(env, var_dir / "dev.log")
    try:

        def web_answers() -> bool:
            try:
                return requests.get(f"{base}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_until(web_answers, timeout=120, message=f"the dev server answering /readyz\n{stack.output()}")
        wait_until(
            lambda: {"redis", "web", "worker", "trainer", "beat"} <= set(stack.children()),
            timeout=60,
            message="every supervised process running",
        )
        session = signed_in_session(base)

        sample = SAMPLE.read_text()
        first = upload(session, base, "banking-0", sample)
        assert first.status_code == 201, first.text
        version_id = first.json()["version"]["id"]
        jobs = []
        for seed in (1, 2):
            response = session.post(
                f"{base}/api/v1/jobs",
                json={
                    "dataset_version": version_id,
                    "model": "sentence-transformers/all-MiniLM-L6-v2",
                    "method": "lora",
                    "device_class": "cpu",
                    "max_steps": 30,
                    "seed": seed,
                    "hyperparameters": {"batch_size": 16, "max_length": 32},
                },
                timeout=60,
            )
            assert response.status_code == 201, response.text
            jobs.append(response.json()["id"])

        # The short-task worker dies in the middle of it all: the supervisor restarts it alone.
        worker_pid = stack.children()["worker"]
        others_before = {k: v for k, v in stack.children().items() if k != "worker"}
        os.kill(worker_pid, signal.SIGKILL)

        statuses: dict[str, str] = {}
        uploads = 1
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            # Each upload differs (new rows appended) so each makes a new version.
            text = sample + "".join(f"extra row {uploads} number {i},card_arrival\n" for i in range(3))
            response = upload(session, base, f"banking-{uploads}", text)
            assert response.status_code == 201, response.text
            uploads += 1
            statuses = {
                job: session.get(f"{base}/api/v1/jobs/{job}", timeout=30).json()["status"] for job in jobs
            }
            if all(s in {"succeeded", "failed", "cancelled"} for s in statuses.values()) and uploads >= 10:
                break
            time.sleep(1)
        assert statuses == dict.fromkeys(jobs, "succeeded"), (statuses, stack.output()[-4000:])

        after = stack.children()
        assert after.get("worker") and after["worker"] != worker_pid, stack.output()[-3000:]
        assert {k: after.get(k) for k in others_before} == others_before, "only the dead worker was restarted"
        assert "worker exited with code" in stack.output() and "restarting worker" in stack.output()
        assert "Unrecoverable error" not in stack.output()
        assert stack.process.poll() is None
    finally:
        code = stack.stop()
    assert code == 0
    left = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--sid", str(stack.process.pid)], capture_output=True, text=True
    )
    assert not left.stdout.strip(), f"processes left running after Ctrl-C:\n{left.stdout}"
