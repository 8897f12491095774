"""Django admin for platform admins (staff): users, teams, memberships, invitations, API keys
(which they can see and revoke, never read or mint)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils import timezone
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from accounts import access_stamps
from accounts.models import ApiKey, Invitation, Membership, Team, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class UserChangeAdminForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email",)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(f"An account with the e-mail {email} already exists.")
        return email


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "team_count", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "active_team", "preferred_language"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    inlines = [MembershipInline]

    @admin.display(description="Teams")
    def team_count(self, user: User) -> int:
        return user.memberships.count()


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "id",
        "slug",
        "member_count",
        "max_concurrent_jobs",
        "monthly_gpu_hours",
        "created_at",
    ]
    search_fields = ["name", "slug", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline]

    @admin.display(description="Members")
    def member_count(self, team: Team) -> int:
        return team.memberships.count()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "team__name", "team__slug"]
    autocomplete_fields = ["user", "team"]
    list_select_related = ["user", "team"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = [
        "email",
        "team",
        "role",
        "status",
        "invited_by",
        "expires_at",
        "responded_at",
        "created_at",
    ]
    list_filter = ["status", "role"]
    search_fields = ["email", "team__name", "id"]
    list_select_related = ["team", "invited_by"]
    # The token exists only in the link the inviter got; the hash is useless to read or edit here.
    exclude = ["token_hash"]
    readonly_fields = ["id", "team", "email", "invited_by", "created_at", "responded_at"]

    def has_add_permission(self, request) -> bool:
        return False  # invitations are made by a team's owners and admins, who get the link


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
        live = queryset.filter(revoked=False)
        teams = set(live.values_list("team_id", flat=True))
        count = live.update(revoked=True, revoked_at=timezone.now())
        access_stamps.bump(*teams)  # update() sends no signal: every process must drop these keys now
        messages.success(request, f"Revoked {count} key(s).")
