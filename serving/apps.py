from django.apps import AppConfig
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ServingConfig(AppConfig):
    name = "serving"

    def model_version_uses(self, *, team, version_id: str) -> list[dict]:
        """The team's endpoints that serve (or canary, or deploy) a model version: the last link of
        the model page's lineage chain (finetune imports no serving code)."""
        from serving.models import Endpoint

        endpoints = Endpoint.objects.filter(team=team).filter(
            Q(model_version_id=version_id)
            | Q(canary_version_id=version_id)
            | Q(pending_version_id=version_id)
        )
        uses = []
        for endpoint in endpoints.order_by("slug"):
            if endpoint.model_version_id == version_id:
                role = ""
            elif endpoint.canary_version_id == version_id:
                role = _("canary")
            else:
                role = _("deploying")
            uses.append({"label": endpoint.slug, "url": f"/endpoints/{endpoint.slug}/", "role": role})
        return uses
