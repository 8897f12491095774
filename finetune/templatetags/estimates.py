"""Durations as people read them ("about 25–35 min"), for the estimate partial."""

from __future__ import annotations

from django import template
from django.utils import timezone

from finetune.estimates import duration_range_text

register = template.Library()


@register.simple_tag
def duration_range(low_seconds, high_seconds) -> str:
    if low_seconds is None or high_seconds is None:
        return ""
    return duration_range_text(float(low_seconds), float(high_seconds))


@register.simple_tag
def elapsed(job) -> str:
    """The real time the job has run so far (or took), in the same words as the estimate."""
    if job.started_at is None:
        return ""
    seconds = ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
    return duration_range_text(seconds, seconds)
