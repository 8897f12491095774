"""A laptop: SQLite, local files, a broker that needs no server, CPU training."""

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405

# SQLite, media and the embedded Redis all live under VAR_DIR.
VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405
