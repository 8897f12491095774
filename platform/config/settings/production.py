"""Production: everything from the environment; refuses to start without the essentials."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

_missing = [name for name in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL") if not env(name, default="")]
if _missing:
    raise ImproperlyConfigured(f"Production settings need these environment variables: {', '.join(_missing)}")

SECRET_KEY = env("SECRET_KEY")
DEBUG = False
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
TUNEFORGE_PUBLIC_API_DOCS = env.bool("TUNEFORGE_PUBLIC_API_DOCS", default=False)
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")

# Workers on other machines share nothing with the web but the database, the broker and this
# S3-compatible bucket.
STORAGES = {
    "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME", default="tuneforge"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "default_acl": None,
            "file_overwrite": False,
        },
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
