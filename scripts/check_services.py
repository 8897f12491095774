"""Before the test suite: are PostgreSQL, Redis and the Celery broker reachable? One clear line each if not."""

import os
import socket
import sys
from urllib.parse import urlparse

DEFAULTS = {
    "DATABASE_URL": ("postgres://postgres@127.0.0.1:5432/tuneforge", "PostgreSQL", 5432),
    "REDIS_URL": ("redis://127.0.0.1:6379/15", "Redis", 6379),
    # The suite's broker may be a different Redis than REDIS_URL (config/settings/test.py defaults).
    "CELERY_BROKER_URL": ("redis://127.0.0.1:6379/14", "The Celery broker (Redis)", 6379),
}


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def main() -> int:
    problems = []
    for variable, (default, name, default_port) in DEFAULTS.items():
        url = urlparse(os.environ.get(variable, default))
        host, port = url.hostname or "127.0.0.1", url.port or default_port
        if not reachable(host, port):
            problems.append(
                f"{name} is not reachable at {host}:{port}: start it, or set {variable} (default {default})."
            )
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
