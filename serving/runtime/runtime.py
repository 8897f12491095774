"""The facade the Django layer calls: one per process, holding the model cache and the micro-batcher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .batching import MicroBatcher
from .cache import ModelCache
from .classify import TRUNCATE, Classification, classify_direct, encode
from .errors import InvalidRequest
from .generate import Generation, GenerationParams, StreamChunk, generate, stream
from .loading import BaseResolver
from .observer import RuntimeObserver, notify


class ServingRuntime:
    def __init__(
        self,
        *,
        resolve_base: BaseResolver,
        cache_mb: float = 4096,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        micro_batching: bool = True,
        observer: RuntimeObserver | None = None,
    ) -> None:
        self.observer = observer or RuntimeObserver()
        self.cache = ModelCache(resolve_base=resolve_base, max_mb=cache_mb, observer=self.observer)
        self.batcher = (
            MicroBatcher(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, observer=self.observer)
            if micro_batching
            else None
        )

    def classify(
        self,
        path: str | Path,
        texts: list[str],
        *,
        truncation: str = TRUNCATE,
        mode: str = "auto",
        quantize: bool = False,
        timeout: float | None = 60,
    ) -> list[Classification]:
        with self.cache.checkout(path, mode=mode, quantize=quantize) as lm:
            if not lm.info.is_classifier:
                raise InvalidRequest(f"{lm.info.path} is a {lm.task} model, not a classifier")
            if self.batcher is None:
                results = classify_direct(lm, texts, truncation=truncation)
                if results:
                    notify(self.observer, "on_batch", size=len(results))
                return results
            rows = encode(lm, texts, truncation=truncation)
            if not rows:
                return []
            return self.batcher.submit(lm, rows).result(timeout=timeout)

    def generate(
        self, path: str | Path, messages: list[dict[str, str]], *, mode: str = "auto", **params
    ) -> Generation:
        with self.cache.checkout(path, mode=mode) as lm:
            return generate(lm, messages, GenerationParams(**params))

    def stream(
        self, path: str | Path, messages: list[dict[str, str]], *, mode: str = "auto", **params
    ) -> Iterator[StreamChunk]:
        lm = self.cache.acquire(path, mode=mode)
        try:
            yield from stream(lm, messages, GenerationParams(**params))
        finally:
            self.cache.release(lm)

    def metrics(self) -> dict[str, float]:
        """Counters for Prometheus: cache hits/misses/evictions, resident bytes, batch figures."""
        s = self.cache.stats()
        out = {
            "cache_hits": s.hits,
            "cache_misses": s.misses,
            "cache_evictions": s.evictions,
            "cache_resident_bytes": s.resident_bytes,
            "cache_models": s.models,
            "cache_bases": s.bases,
        }
        if self.batcher is not None:
            out.update({f"batch_{k}": v for k, v in self.batcher.stats().items()})
        return out

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.cache.clear()
