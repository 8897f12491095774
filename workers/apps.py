from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self) -> None:
        from common.metrics import register_gauge_source
        from workers.gauges import queue_depth_samples, workers_online_samples

        register_gauge_source("tuneforge_workers_online", workers_online_samples)
        register_gauge_source("tuneforge_queue_depth", queue_depth_samples)
