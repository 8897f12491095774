from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _base_model_tokenizers():
    """The enabled base models, offered to datasets as tokenizers (datasets never import finetune)."""
    from datasets_app.token_counts import TokenizerChoice
    from finetune.models import BaseModel

    return [
        TokenizerChoice(
            name=row.name,
            source=row.source,
            max_length=row.max_length,
            chat=row.kind == BaseModel.Kind.CAUSAL_LM,
            default=row.is_default,
        )
        for row in BaseModel.objects.filter(enabled=True).order_by("name")
    ]


class FinetuneConfig(AppConfig):
    name = "finetune"
    verbose_name = "Fine-tuning"

    def ready(self) -> None:
        from datasets_app.token_counts import register_tokenizer_provider

        register_tokenizer_provider(_base_model_tokenizers)

        from common.metrics import register_gauge_source
        from finetune.selectors import job_status_samples

        register_gauge_source("tuneforge_jobs", job_status_samples)

    def dashboard_section(self, *, team) -> dict:
        from finetune.selectors import team_dashboard

        data = team_dashboard(team=team)
        counts = data["counts"]
        return {
            "title": _("Fine-tuning jobs"),
            "url": "/jobs/",
            "stats": [
                (_("running"), counts["running"]),
                (_("queued"), counts["queued"]),
                (_("succeeded"), counts["succeeded"]),
            ],
            "template": "finetune/_dashboard.html",
            "data": data,
            "wide": True,
        }
