from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DatasetsAppConfig(AppConfig):
    name = "datasets_app"
    verbose_name = "Datasets"

    def dashboard_section(self, *, team) -> dict:
        from datasets_app.selectors import dataset_list, dataset_totals, with_latest_versions

        totals = dataset_totals(team=team)
        recent = with_latest_versions(list(dataset_list(team=team)[:5]))
        return {
            "title": _("Datasets"),
            "url": "/datasets/",
            "stats": [
                (_("datasets"), totals["datasets"]),
                (_("versions"), totals["versions"]),
                (_("training rows"), totals["rows"]),
            ],
            "template": "datasets/_dashboard.html",
            "data": {"datasets": recent},
        }
