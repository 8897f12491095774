"""Admin: the base-model registry is managed here; jobs and model versions are read-mostly
(their state changes only through the services, which record events)."""

from django.contrib import admin

from finetune.models import BaseModel, FineTuneJob, JobEvent, ModelVersion, SearchTrial


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("name", "display_name", "kind", "source", "enabled", "is_default", "parameters_millions")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "display_name", "source")


class JobEventInline(admin.TabularInline):
    model = JobEvent
    fields = ("created_at", "level", "type", "source", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-id",)
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).filter(source=JobEvent.Source.SYSTEM)


class SearchTrialInline(admin.TabularInline):
    """The budgeted search's trials (read only: the worker writes them)."""

    model = SearchTrial
    fields = (
        "trial",
        "rung",
        "method",
        "learning_rate",
        "steps",
        "planned_steps",
        "status",
        "metric",
        "value",
        "winner",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(FineTuneJob)
class FineTuneJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "team",
        "status",
        "base_model",
        "method",
        "device_class",
        "priority",
        "percent",
        "attempts",
        "worker",
        "created_at",
    )
    list_filter = ("status", "device_class", "method", "priority")
    search_fields = ("id", "team__name", "worker")
    inlines = [SearchTrialInline, JobEventInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Only the priority may be changed by an operator (it reorders the queue, nothing else).
        return [f.name for f in self.model._meta.fields if f.name != "priority"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "team", "base_model", "task", "method", "created_at")
    list_filter = ("task", "method")
    search_fields = ("id", "name", "team__name")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # its artifacts live in storage; removing the row would orphan them

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
