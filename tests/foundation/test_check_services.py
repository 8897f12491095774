"""`make test` first checks the servers the suite needs and says, in one line each, what to set."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(**env_vars) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_vars}
    return subprocess.run(
        [sys.executable, "scripts/check_services.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_reachable_servers_pass_silently():
    result = _check()
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("variable", "url", "name"),
    [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/tuneforge", "PostgreSQL"),
        ("REDIS_URL", "redis://127.0.0.1:1/0", "Redis"),
        ("CELERY_BROKER_URL", "redis://127.0.0.1:1/0", "Celery broker"),
    ],
)
def test_an_unreachable_server_is_named_in_one_line_with_the_variable_to_set(variable, url, name):
    result = _check(**{variable: url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert name in lines[0] and "127.0.0.1:1" in lines[0] and f"set {variable}" in lines[0]
