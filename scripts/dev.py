"""`make dev`: web, Celery workers and beat in the foreground; Ctrl-C stops all of them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VAR = ROOT / "var"

PROCESSES = {
    "web": [sys.executable, "manage.py", "runserver", "127.0.0.1:8000"],
    # Short tasks (dataset processing, bookkeeping) never wait behind a training run.
    "worker": [
        str(BIN / "celery"),
        "-A",
        "workers.celery_app",
        "worker",
        "-Q",
        "default",
        "--concurrency",
        "2",
        "--hostname",
        "default@%h",
        "--loglevel",
        "INFO",
    ],
    # A laptop has no GPU: this worker trains on the CPU, one job at a time (solo pool, as GPU workers).
    "trainer": [
        str(BIN / "celery"),
        "-A",
        "workers.celery_app",
        "worker",
        "-Q",
        "cpu",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "--hostname",
        "cpu@%h",
        "--loglevel",
        "INFO",
    ],
    "beat": [
        str(BIN / "celery"),
        "-A",
        "workers.celery_app",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(VAR / "celerybeat-schedule"),
    ],
}


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    children = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in PROCESSES.items()}
    print("Tuneforge is running at http://127.0.0.1:8000/  (Ctrl-C stops web, worker and beat)", flush=True)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            exited = [name for name, proc in children.items() if proc.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} stopped; stopping the rest.", file=sys.stderr)
                break
            time.sleep(0.5)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
