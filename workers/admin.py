from django.contrib import admin, messages

from workers import services
from workers.models import WorkerNode


def _admin_action(service, verb: str):
    def action(modeladmin, request, queryset):
        for worker in queryset:
            service(name=worker.name, actor=request.user)
        modeladmin.message_user(request, f"{verb}: {', '.join(w.name for w in queryset)}", messages.SUCCESS)

    action.__name__ = f"{service.__name__}_selected"
    action.short_description = f"{verb} the selected workers"
    return action


@admin.register(WorkerNode)
class WorkerNodeAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "status",
        "admin_state",
        "device_name",
        "device_class",
        "current_job_id",
        "last_heartbeat_at",
    )
    list_filter = ("admin_state", "device_kind", "device_class")
    search_fields = ("name", "host", "device_name", "current_job_id")
    # Workers write their own rows; admins change only the admin state, through the actions.
    readonly_fields = [f.name for f in WorkerNode._meta.fields]
    actions = [
        _admin_action(services.worker_drain, "Drain"),
        _admin_action(services.worker_pause, "Pause"),
        _admin_action(services.worker_resume, "Resume"),
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Status")
    def status(self, worker):
        return worker.status
