"""gunicorn settings for the web container (docker-compose.yml)."""

from prometheus_client import multiprocess


def child_exit(server, worker):
    # A dead worker's "live" gauges must leave /metrics with it (prometheus_client multi-process mode).
    multiprocess.mark_process_dead(worker.pid)
