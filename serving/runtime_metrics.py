"""The runtime's events as Prometheus metrics (common.metrics families): get_runtime() passes
this observer to the process's ServingRuntime.

Batch sizes and cache events are counted where they happen; GPU memory is this process's own,
read after every cache event and batch (each request makes one), so the gauge follows loads,
evictions and the allocator's growth. Under gunicorn every worker process writes its own value
(multiprocess_mode "liveall": one series per live pid)."""

from __future__ import annotations

from common.metrics import BATCH_SIZE, GPU_MEMORY, MODEL_CACHE
from serving.runtime import RuntimeObserver, cuda_memory


def report_gpu_memory() -> None:
    for memory in cuda_memory():
        GPU_MEMORY.labels(device=memory.device, kind="allocated").set(memory.allocated)
        GPU_MEMORY.labels(device=memory.device, kind="reserved").set(memory.reserved)
        GPU_MEMORY.labels(device=memory.device, kind="total").set(memory.total)


class PrometheusObserver(RuntimeObserver):
    def on_batch(self, *, size: int) -> None:
        BATCH_SIZE.observe(size)
        report_gpu_memory()

    def on_cache(self, *, event: str) -> None:
        MODEL_CACHE.labels(event=event).inc()
        report_gpu_memory()
