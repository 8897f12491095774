"""Scrape-time gauges of the worker registry and the broker (common.metrics.register_gauge_source):
workers online per queue, messages waiting per queue and each GPU worker's device memory, computed
when Prometheus scrapes."""

from __future__ import annotations

import logging

from workers.devices import MIB
from workers.models import WorkerNode
from workers.routing import CPU_QUEUE, DEFAULT_QUEUE, GPU_QUEUE, known_device_classes, queue_for_device

logger = logging.getLogger(__name__)


def known_queues() -> list[str]:
    """Every queue a job or task can be sent to, and every queue a registered worker consumes: a
    queue with messages and no worker must still be reported (the alert that matters most)."""
    queues = {DEFAULT_QUEUE, CPU_QUEUE, GPU_QUEUE}
    queues |= {queue_for_device(device_class) for device_class in known_device_classes()}
    for worker_queues in WorkerNode.objects.values_list("queues", flat=True):
        queues |= set(worker_queues or ())
    return sorted(queues)


def workers_online_samples():
    online: dict[str, int] = dict.fromkeys(known_queues(), 0)
    for worker in WorkerNode.objects.all():
        if worker.status == "online":
            for queue in worker.queues or ():
                online[queue] = online.get(queue, 0) + 1
    return [({"queue": queue}, count) for queue, count in sorted(online.items())]


def queue_depth_samples():
    from workers.celery_app import app

    samples = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in known_queues():
            try:
                count = channel.queue_declare(queue=queue, passive=True).message_count
            except Exception:  # noqa: BLE001 - a queue never declared holds nothing
                count = 0
                channel = connection.default_channel
            samples.append(({"queue": queue}, count))
    return samples


def worker_gpu_memory_samples():
    """Each GPU worker's device memory as its last heartbeat read it (NVML, the whole device). An
    offline worker is left out: its last figure says nothing about the device now."""
    samples = []
    for worker in WorkerNode.objects.filter(device_kind=WorkerNode.DeviceKind.CUDA, offline_since=None):
        figures = worker.utilisation or {}
        if worker.status == "offline" or "memory_used_mb" not in figures:
            continue
        labels = {"worker": worker.name, "device_class": worker.device_class}
        samples.append(({**labels, "kind": "used"}, figures["memory_used_mb"] * MIB))
        if "memory_total_mb" in figures:
            samples.append(({**labels, "kind": "total"}, figures["memory_total_mb"] * MIB))
    return samples
