"""The same guarantee in a real `celery worker` process: the worker registers the operating system
through the standard library's platform.platform() and imports torch — both break when `platform/`
shadows the stdlib module."""

import platform

import pytest
import torch

from tests.celery_harness import wait_until
from workers.models import WorkerNode


@pytest.mark.slow
def test_a_real_celery_worker_loads_the_standard_library_platform_module_and_torch(start_worker):
    worker = start_worker(queues="default", name="stdlib-check")
    wait_until(
        lambda: WorkerNode.objects.filter(name=worker.hostname).exists(),
        timeout=30,
        message="the worker to register",
    )
    node = WorkerNode.objects.get(name=worker.hostname)
    assert node.os_platform == platform.platform()
    assert node.torch_version == torch.__version__
