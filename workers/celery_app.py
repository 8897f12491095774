"""The Celery application shared by every Tuneforge process (web, workers, beat)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for source_root in (ROOT, ROOT / "platform"):
    if str(source_root) not in sys.path:
        sys.path.insert(0, str(source_root))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from celery import Celery  # noqa: E402

app = Celery("tuneforge")
# Every Celery setting lives in Django settings under the CELERY_ prefix (one place, one spelling).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Registration, heartbeats and goodbye of every worker process (Celery signal handlers).
import workers.signal_handlers  # noqa: E402,F401

# The web request's id travels in task headers into the worker's log lines.
from common.request_id import connect_celery_signals  # noqa: E402

connect_celery_signals()
