"""The runtime tells its observer about every forward and every cache event (what /metrics exports),
and a failing observer never fails a request."""

from __future__ import annotations

import threading

from serving.runtime import RuntimeObserver, ServingRuntime, cuda_memory


class Recorder(RuntimeObserver):
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.cache: list[str] = []
        self.lock = threading.Lock()

    def on_batch(self, *, size: int) -> None:
        with self.lock:
            self.batches.append(size)

    def on_cache(self, *, event: str) -> None:
        with self.lock:
            self.cache.append(event)


def test_a_load_then_a_reuse_then_an_eviction_reach_the_observer(artifacts, resolver):
    seen = Recorder()
    rt = ServingRuntime(resolve_base=resolver, observer=seen)
    try:
        rt.classify(artifacts["full"], ["my card has not arrived", "I lost my card"])
        rt.classify(artifacts["full"], ["where is my card"])
        assert seen.cache == ["miss", "hit"]
        assert seen.batches == [2, 1]
    finally:
        rt.close()
    # A cache too small for one model evicts it as soon as its request is done.
    seen = Recorder()
    tiny = ServingRuntime(resolve_base=resolver, cache_mb=0.001, observer=seen)
    try:
        tiny.classify(artifacts["full"], ["my card has not arrived"])
        assert seen.cache == ["miss", "eviction"]
        assert tiny.metrics()["cache_evictions"] == 1
    finally:
        tiny.close()


def test_without_micro_batching_each_call_is_one_batch(artifacts, resolver):
    seen = Recorder()
    rt = ServingRuntime(resolve_base=resolver, micro_batching=False, observer=seen)
    try:
        rt.classify(artifacts["full"], ["a", "b", "c"])
        assert seen.batches == [3]
    finally:
        rt.close()


def test_concurrent_callers_merged_into_one_forward_show_as_one_larger_batch(artifacts, resolver):
    seen = Recorder()
    rt = ServingRuntime(resolve_base=resolver, max_batch_size=16, max_wait_ms=100, observer=seen)
    try:
        rt.classify(artifacts["full"], ["warm up"])
        start = threading.Barrier(6)

        def client() -> None:
            start.wait()
            rt.classify(artifacts["full"], ["my card has not arrived"])

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(seen.batches) == 7  # every row counted once
        assert max(seen.batches) > 1, seen.batches
        assert len(seen.batches) == rt.metrics()["batch_forwards"]
    finally:
        rt.close()


def test_a_failing_observer_does_not_fail_the_request(artifacts, resolver, caplog):
    class Broken(RuntimeObserver):
        def on_cache(self, *, event: str) -> None:
            raise RuntimeError("exporter down")

        def on_batch(self, *, size: int) -> None:
            raise RuntimeError("exporter down")

    rt = ServingRuntime(resolve_base=resolver, observer=Broken())
    try:
        (result,) = rt.classify(artifacts["full"], ["my card has not arrived"])
        assert result.label
        assert any("observer" in r.getMessage() for r in caplog.records)
    finally:
        rt.close()


def test_cuda_memory_creates_no_cuda_context():
    import torch

    before = torch.cuda.is_initialized()
    figures = cuda_memory()
    assert torch.cuda.is_initialized() == before
    if not before:
        assert figures == []
    for memory in figures:
        assert 0 <= memory.allocated <= memory.reserved <= memory.total
