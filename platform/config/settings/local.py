"""A laptop: SQLite, local files, a broker that needs no server, CPU training."""

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
