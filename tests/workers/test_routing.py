"""Device classes and queues: what a job is published to and what a worker consumes."""

import pytest

from common.errors import InvalidInput
from workers.routing import DEVICE_CLASSES, device_class_for_name, queue_for_device, queues_for_worker


@pytest.mark.parametrize(
    ("device_name", "device_class"),
    [
        ("NVIDIA H200", "h200"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H100 PCIe", "h100"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("Tesla T4", "t4"),
        ("NVIDIA RTX A6000", "rtxa6000"),
        ("NVIDIA", "gpu"),
    ],
)
def test_it_derives_the_device_class_from_the_reported_gpu_name(device_name, device_class):
    assert device_class_for_name(device_name) == device_class


def test_it_routes_each_device_class_to_its_queue():
    assert queue_for_device("cpu") == "cpu"
    assert queue_for_device("gpu") == "gpu"
    assert queue_for_device("h200") == "gpu.h200"
    assert queue_for_device("a100") == "gpu.a100"


def test_every_built_in_class_has_a_queue_and_a_label():
    for device_class, label in DEVICE_CLASSES.items():
        assert queue_for_device(device_class)
        assert label


def test_it_rejects_an_unknown_device_class_naming_the_field():
    with pytest.raises(InvalidInput) as error:
        queue_for_device("tpu-v5")
    assert error.value.field == "device_class"
    assert "tpu-v5" in error.value.message and "h200" in error.value.message


def test_a_deployment_can_declare_more_gpu_classes(settings):
    settings.TUNEFORGE_EXTRA_DEVICE_CLASSES = {"rtx4090": "NVIDIA RTX 4090"}
    assert queue_for_device("rtx4090") == "gpu.rtx4090"


def test_a_gpu_worker_consumes_the_any_gpu_queue_and_its_own_class():
    assert queues_for_worker(device_kind="cuda", device_class="h200") == ["gpu", "gpu.h200"]
    assert queues_for_worker(device_kind="cuda", device_class=None) == ["gpu"]
    assert queues_for_worker(device_kind="cuda", device_class="gpu") == ["gpu"]


def test_a_cpu_worker_consumes_only_the_cpu_queue():
    assert queues_for_worker(device_kind="cpu", device_class=None) == ["cpu"]


def test_a_job_for_a_class_reaches_a_worker_of_that_class():
    worker_queues = queues_for_worker(device_kind="cuda", device_class=device_class_for_name("NVIDIA H200"))
    assert queue_for_device("h200") in worker_queues
    assert queue_for_device("gpu") in worker_queues
    assert queue_for_device("h100") not in worker_queues
