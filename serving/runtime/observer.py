"""Hooks the runtime calls on what an operator watches (batch sizes, cache events), so the Django
layer can export them without the runtime knowing about Prometheus. The defaults do nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

CACHE_EVENTS = ("hit", "miss", "eviction")


class RuntimeObserver:
    """Subclass and override what you need. Called on the serving threads (the cache's under its
    lock, the batcher's on its worker thread): keep it cheap. An exception raised here is logged and
    swallowed: watching must never fail a request."""

    def on_batch(self, *, size: int) -> None:
        """One classification forward ran over `size` rows (every micro-batched caller together)."""

    def on_cache(self, *, event: str) -> None:
        """The model cache had a hit, a miss (a load) or an eviction; `event` is one of CACHE_EVENTS."""


def notify(observer: RuntimeObserver, hook: str, **kwargs) -> None:
    try:
        getattr(observer, hook)(**kwargs)
    except Exception:  # noqa: BLE001 - see RuntimeObserver
        log.exception("serving: runtime observer %s failed", hook)


@dataclass(frozen=True)
class CudaMemory:
    device: str  # "cuda:0"
    allocated: int  # bytes held by live tensors of this process
    reserved: int  # bytes torch's caching allocator holds for this process (allocated + cached)
    total: int  # the device's memory


def cuda_memory() -> list[CudaMemory]:
    """This process's use of each CUDA device, empty when CUDA was never initialised here: asking
    must not create a CUDA context (hundreds of MB) in a process that serves on the CPU."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return []
    return [
        CudaMemory(
            device=f"cuda:{index}",
            allocated=torch.cuda.memory_allocated(index),
            reserved=torch.cuda.memory_reserved(index),
            total=torch.cuda.get_device_properties(index).total_memory,
        )
        for index in range(torch.cuda.device_count())
    ]
