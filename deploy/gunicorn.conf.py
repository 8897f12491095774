"""gunicorn settings for the web container (docker-compose.yml)."""

from prometheus_client import multiprocess


def child_exit(server, worker):
    # A dead worker's "live" gauges must leave /metrics with it (prometheus_client multi-process mode).
    multiprocess.mark_process_dead(worker.pid)


# Threads, not only processes: the serving runtime's micro-batcher merges the concurrent requests of
# one process's threads into one forward (a sync worker answers one request at a time, so nothing
# would ever be batched), and a streamed chat completion holds its thread while it generates
# without blocking the process. `threads > 1` selects gunicorn's gthread worker.
threads = 8
