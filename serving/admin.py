"""Django admin for API keys: platform admins can see and revoke them, never read or mint secrets."""

from django.contrib import admin, messages
from django.utils import timezone
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from serving.models import ApiKey

# The library's own key model is unused here (ours carries the team): keep it out of the admin.
if admin.site.is_registered(LibraryAPIKey):
    admin.site.unregister(LibraryAPIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "public_id",
        "team",
        "scopes",
        "created",
        "expiry_date",
        "last_used_at",
        "revoked",
        "created_by",
    ]
    list_filter = ["revoked", "created"]
    search_fields = ["name", "prefix", "team__name", "created_by__email"]
    list_select_related = ["team", "created_by"]
    fields = [
        "name",
        "prefix",
        "team",
        "scopes",
        "created_by",
        "created",
        "expiry_date",
        "last_used_at",
        "revoked",
        "revoked_at",
    ]
    readonly_fields = ["prefix", "team", "created_by", "created", "last_used_at", "revoked", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are created by team members, who are shown the secret once

    @admin.display(description="Id")
    def public_id(self, api_key: ApiKey) -> str:
        return api_key.public_id

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked=False).update(revoked=True, revoked_at=timezone.now())
        messages.success(request, f"Revoked {count} key(s).")
