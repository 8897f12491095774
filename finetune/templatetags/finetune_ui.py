"""Small formatting filters for the job pages."""

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """A duration as people read it: "45 s", "12 min", "2 h 5 min"."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return _("%(n)d s") % {"n": seconds}
    if seconds < 90 * 60:
        return _("%(n)d min") % {"n": round(seconds / 60)}
    hours, rest = divmod(seconds, 3600)
    return _("%(h)d h %(m)d min") % {"h": hours, "m": rest // 60}


LEVEL_LABELS = {"info": gettext_lazy("info"), "warn": gettext_lazy("warning"), "error": gettext_lazy("error")}


@register.filter
def level_label(level: str) -> str:
    return LEVEL_LABELS.get(level, level)
