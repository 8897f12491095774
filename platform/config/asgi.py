import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for source_root in (ROOT, ROOT / "platform"):
    if str(source_root) not in sys.path:
        sys.path.insert(0, str(source_root))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
