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
def estimate_range(estimate) -> str:
    """An estimate's range in words; estimates stored before ranges existed give their one figure."""
    estimate = estimate or {}
    middle = estimate.get("estimated_seconds")
    low, high = estimate.get("estimated_seconds_low", middle), estimate.get("estimated_seconds_high", middle)
    return duration_range(low, high)


@register.simple_tag
def elapsed(job) -> str:
    """The real time the job has run so far (or took), in the same words as the estimate."""
    if job.started_at is None:
        return ""
    seconds = ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
    return duration_range_text(seconds, seconds)


@register.simple_tag
def estimate_comparison(job) -> str:
    """How a finished job's real time compares with its estimate's range, in words ("within the
    estimate", "2.5× as long as estimated"); empty while it runs or without an estimate."""
    from django.utils.translation import gettext

    estimate = job.estimate or {}
    middle = estimate.get("estimated_seconds")
    if job.started_at is None or job.finished_at is None or not middle:
        return ""
    low = estimate.get("estimated_seconds_low", middle)
    high = estimate.get("estimated_seconds_high", middle)
    seconds = (job.finished_at - job.started_at).total_seconds()
    if seconds > high:
        return gettext("%(x)s× as long as estimated") % {"x": f"{seconds / middle:.1f}"}
    if seconds < low:
        return gettext("shorter than estimated")
    return gettext("within the estimate")
