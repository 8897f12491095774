"""Small formatting filters for the workers page."""

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

register = template.Library()

# What the status and admin-state badges say; the CSS class keeps the raw value.
STATE_LABELS = {
    "online": gettext_lazy("online"),
    "offline": gettext_lazy("offline"),
    "active": gettext_lazy("active"),
    "draining": gettext_lazy("draining"),
    "paused": gettext_lazy("paused"),
}


@register.filter
def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


@register.filter
def ago(seconds: float | None) -> str:
    """Seconds since an event, as people read it: "3 s ago", "4 min ago", "2 h ago", "never"."""
    if seconds is None:
        return _("never")
    seconds = int(seconds)
    if seconds < 120:
        return _("%(n)d s ago") % {"n": seconds}
    if seconds < 2 * 3600:
        return _("%(n)d min ago") % {"n": seconds // 60}
    if seconds < 2 * 86400:
        return _("%(n)d h ago") % {"n": seconds // 3600}
    return _("%(n)d days ago") % {"n": seconds // 86400}


@register.filter
def gib(mebibytes: int | None) -> str:
    if mebibytes in (None, ""):
        return "—"
    return f"{mebibytes / 1024:.1f} GiB"


@register.filter
def utilisation(figures: dict | None) -> str:
    """NVML figures ("73 % GPU · 12.1 / 79.6 GiB") or CPU ones ("12.5 % CPU · 0.2 GiB RSS")."""
    if not figures:
        return "—"
    if "gpu_percent" in figures:
        used, total = figures.get("memory_used_mb") or 0, figures.get("memory_total_mb") or 0
        return _("%(gpu)s %% GPU · %(used).1f / %(total).1f GiB") % {
            "gpu": figures["gpu_percent"],
            "used": used / 1024,
            "total": total / 1024,
        }
    if "cpu_percent" in figures:
        return _("%(cpu)s %% CPU · %(rss)s RSS") % {
            "cpu": figures["cpu_percent"],
            "rss": gib(figures.get("rss_mb")),
        }
    return "—"
