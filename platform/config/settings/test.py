"""The test suite: the real PostgreSQL and Redis (from the environment, defaults on 127.0.0.1)."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import env

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/tuneforge")}
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/15")
CACHES = {"default": {"BACKEND": "common.cache.PooledRedisCache", "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/14")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

# One scratch folder per test process; worker processes started by tests inherit it.
_scratch = Path(os.environ.setdefault("TUNEFORGE_TEST_DIR", tempfile.mkdtemp(prefix="tuneforge-test-")))
VAR_DIR = _scratch
MEDIA_ROOT = _scratch / "media"
TUNEFORGE_WORK_DIR = _scratch / "work"
TUNEFORGE_CACHE_DIR = _scratch / "cache"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = _scratch / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
if TUNEFORGE_STORAGE == "s3":  # noqa: F405 - tests that run workers against a real S3-compatible server
    STORAGES["default"] = S3_STORAGE  # noqa: F405
