import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_production(**env_vars) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        PYTHONPATH=f"{ROOT}:{ROOT / 'platform'}",
        **env_vars,
    )
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS, "
        "settings.DEBUG, settings.ALLOWED_HOSTS, settings.STORAGES['default']['BACKEND'])"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_production_refuses_to_start_without_its_essential_variables():
    result = _load_production()
    assert result.returncode != 0
    assert "SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL" in result.stderr


def test_production_names_the_one_variable_that_is_missing():
    result = _load_production(SECRET_KEY="s" * 50, DATABASE_URL="postgres://u@db/x")
    assert result.returncode != 0
    assert "CELERY_BROKER_URL" in result.stderr and "SECRET_KEY" not in result.stderr.split("variables:")[-1]


def test_production_has_secure_cookies_hsts_explicit_hosts_and_object_storage():
    result = _load_production(
        SECRET_KEY="s" * 50,
        DATABASE_URL="postgres://u@db/x",
        CELERY_BROKER_URL="redis://r:6379/0",
        ALLOWED_HOSTS="tuneforge.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "True",
        "31536000",
        "False",
        "['tuneforge.example.com']",
        "storages.backends.s3.S3Storage",
    ]


def test_the_laptop_defaults_need_no_server():
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        PYTHONPATH=f"{ROOT}:{ROOT / 'platform'}",
        TUNEFORGE_VAR_DIR="/tmp/tuneforge-local-defaults",
    )
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL, settings.MEDIA_ROOT)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    engine, broker, media = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    # The embedded Redis that `make dev` starts, on a socket under the var folder.
    assert broker == "redis+socket:///tmp/tuneforge-local-defaults/redis/redis.sock"
    assert media == "/tmp/tuneforge-local-defaults/media"
