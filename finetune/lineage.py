"""Which code produced a model: recorded in every model version's lineage."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def code_version() -> str:
    """TUNEFORGE_CODE_VERSION (set when an image is built), else the checkout's `git rev-parse
    HEAD`, else the installed package version."""
    configured = getattr(settings, "TUNEFORGE_CODE_VERSION", "")
    if configured:
        return configured
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
        if head.returncode == 0 and head.stdout.strip():
            return f"git:{head.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"tuneforge=={metadata.version('tuneforge')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def model_name_for(job) -> str:
    """The name a job's model version is known by (`ft:<base>:<team>:<suffix>:<job id>`)."""
    return f"ft:{job.base_model.name}:{job.team.slug}:{job.suffix}:{job.id}"
