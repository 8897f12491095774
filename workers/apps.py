from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        from common.metrics import register_gauge_source
        from workers.gauges import queue_depth_samples, worker_gpu_memory_samples, workers_online_samples

        register_gauge_source("tuneforge_workers_online", workers_online_samples)
        register_gauge_source("tuneforge_queue_depth", queue_depth_samples)
        register_gauge_source("tuneforge_worker_gpu_memory_bytes", worker_gpu_memory_samples)

    def dashboard_section(self, *, team) -> dict:
        from workers.selectors import workers_by_device_class

        classes = workers_by_device_class()
        return {
            "title": _("Workers"),
            "url": "",
            "stats": [
                (_("online"), sum(row["online"] for row in classes)),
                (_("idle"), sum(row["idle"] for row in classes)),
            ],
            "template": "workers/_dashboard.html",
            "data": {"classes": classes},
        }
