from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FinetuneConfig(AppConfig):
    name = "finetune"
    verbose_name = "Fine-tuning"

    def dashboard_section(self, *, team) -> dict:
        from finetune.selectors import team_job_counts

        counts = team_job_counts(team=team)
        return {
            "title": _("Fine-tuning jobs"),
            "url": "/jobs/",
            "stats": [
                (_("running"), counts["running"]),
                (_("queued"), counts["queued"]),
                (_("succeeded"), counts["succeeded"]),
            ],
        }
