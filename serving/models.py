"""Serving: API keys now; endpoints, quota policies and usage records build on them."""

from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey


class ApiKeyScope(models.TextChoices):
    READ = "read", _("Read")
    WRITE = "write", _("Write")
    INFERENCE = "inference", _("Inference")


class ApiKey(AbstractAPIKey):
    """A team's key: `tf_<prefix>.<secret>` shown once; only the prefix and a hash are stored
    (djangorestframework-api-key does the generation and hashing)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    scopes = models.JSONField(default=list)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    @property
    def public_id(self) -> str:
        return f"key-{self.prefix}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
