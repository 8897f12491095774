"""Queues and device classes: which queue a job goes to, and which queues a worker listens on.

A job asks for a device class ("cpu", "gpu" = any GPU, or a named GPU model such as "h200"); a GPU
worker of class h200 consumes both `gpu` and `gpu.h200`, so it takes jobs for any GPU and jobs that
need an H200. This module stays importable without Django settings: the GPU launcher uses it before
any Django process exists.
"""

from __future__ import annotations

import re

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"

DEVICE_CLASSES: dict[str, str] = {
    "cpu": "CPU",
    "gpu": "Any GPU",
    "h100": "NVIDIA H100",
    "h200": "NVIDIA H200",
    "a100": "NVIDIA A100",
    "l4": "NVIDIA L4",
}

# A class name becomes part of a queue name: keep it to a plain slug.
DEVICE_CLASS_FORMAT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

# Named models first, so "NVIDIA H100 80GB HBM3" is h100 and "NVIDIA L40S" is not l4.
_KNOWN_MODELS = re.compile(r"(?<![a-z0-9])(h100|h200|a100|l4)(?![a-z0-9])")
# Words that name a vendor, product line or variant rather than the chip.
_NOISE_WORDS = {"nvidia", "geforce", "tesla", "quadro", "amd", "instinct", "radeon", "pro", "graphics"}
_NOISE_TOKEN = re.compile(r"^(\d+gb|pcie|sxm\d*|hbm\d*e?|nvl|mig.*)$")


def device_class_for_name(device_name: str) -> str:
    """The device class of a GPU from its reported name: "NVIDIA H200" → "h200",
    "NVIDIA A100-SXM4-80GB" → "a100", "NVIDIA GeForce RTX 4090" → "rtx4090" (a slug for models
    without a built-in class; "gpu" when nothing is left of the name)."""
    lowered = device_name.lower()
    known = _KNOWN_MODELS.search(lowered)
    if known:
        return known.group(1)
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if t]
    kept = [t for t in tokens if t not in _NOISE_WORDS and not _NOISE_TOKEN.match(t)]
    slug = "".join(kept)[:40]
    return slug or GPU_QUEUE


def known_device_classes() -> dict[str, str]:
    """The built-in classes plus any a deployment declares in TUNEFORGE_EXTRA_DEVICE_CLASSES
    (e.g. "rtx4090=NVIDIA RTX 4090"), so jobs can target GPU models we did not list."""
    from django.conf import settings

    extra = getattr(settings, "TUNEFORGE_EXTRA_DEVICE_CLASSES", {}) or {}
    return {**DEVICE_CLASSES, **extra}


def queue_for_device(device_class: str) -> str:
    """The queue a job for `device_class` is published to: "cpu" → "cpu", "gpu" → "gpu",
    "h200" → "gpu.h200". An unknown class is an InvalidInput naming the field `device_class`."""
    classes = known_device_classes()
    if device_class not in classes:
        from common.errors import InvalidInput

        raise InvalidInput(
            f"Unknown device class {device_class!r}; choose one of: {', '.join(sorted(classes))}.",
            field="device_class",
        )
    if device_class in (CPU_QUEUE, GPU_QUEUE):
        return device_class
    return f"{GPU_QUEUE}.{device_class}"


def queues_for_worker(*, device_kind: str, device_class: str | None) -> list[str]:
    """The queues a worker consumes: a GPU ("cuda") worker of class h200 → ["gpu", "gpu.h200"];
    a GPU worker without a named class → ["gpu"]; a CPU worker → ["cpu"]."""
    if device_kind == "cpu":
        return [CPU_QUEUE]
    if device_kind not in ("cuda", "gpu"):
        raise ValueError(f"device_kind must be 'cpu' or 'cuda', got {device_kind!r}")
    if not device_class or device_class == GPU_QUEUE:
        return [GPU_QUEUE]
    if not DEVICE_CLASS_FORMAT.match(device_class):
        raise ValueError(
            f"device class {device_class!r} is not a plain slug (lowercase letters, digits, - or _)"
        )
    return [GPU_QUEUE, f"{GPU_QUEUE}.{device_class}"]
