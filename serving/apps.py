from django.apps import AppConfig
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def _team_endpoint_slugs(team) -> list[str]:
    """The team's endpoints, offered to the API keys page (accounts never imports serving)."""
    from serving.selectors import endpoint_list

    return list(endpoint_list(team=team).values_list("slug", flat=True))


def _read_key_limits(api_key):
    from serving.quota_policies import key_limits_get

    return key_limits_get(api_key=api_key)


def _write_key_limits(api_key, limits):
    from serving.quota_policies import key_limits_set

    return key_limits_set(api_key=api_key, limits=limits)


def _bump_access_stamp(sender, instance, **kwargs) -> None:
    from accounts import access_stamps

    access_stamps.bump(instance.team_id)


def _connect_access_stamps() -> None:
    """Endpoint routing is cached per process (serving.inference): any save or delete of an endpoint
    (publish, switch, rollback, deploy, canary, unpublish, options) or of a model version it routes
    to bumps the team's access stamp, whichever process (web, worker, admin) makes it."""
    from django.db.models.signals import post_delete, post_save

    from finetune.models import ModelVersion
    from serving.models import Endpoint

    for model in (Endpoint, ModelVersion):
        for signal in (post_save, post_delete):
            signal.connect(_bump_access_stamp, sender=model, dispatch_uid=f"access-stamp-{model.__name__}")


class ServingConfig(AppConfig):
    name = "serving"

    def ready(self) -> None:
        from accounts.apikeys import register_endpoint_provider

        register_endpoint_provider(_team_endpoint_slugs)
        _connect_access_stamps()

        # A key's own rate limits are quota policies (serving's rows); the key API and page live in
        # accounts, which imports no app above it, so serving plugs the limits in.
        from accounts.apikeys import KeyLimitsHooks, register_key_limits

        register_key_limits(KeyLimitsHooks(read=_read_key_limits, write=_write_key_limits))

        # The limiter reads policies from a copy in Redis: every change of a row drops it.
        from serving.quota_policies import connect_policy_signals

        connect_policy_signals()

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
