"""Micro-batching: concurrent classification requests wait up to max_wait_ms and share one forward."""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass

from .classify import Encoded, logits_for, to_classification
from .loading import LoadedModel
from .observer import RuntimeObserver, notify

log = logging.getLogger(__name__)


@dataclass
class _Request:
    lm: LoadedModel
    rows: list[Encoded]
    future: Future


class MicroBatcher:
    """One worker thread; requests for any model go to one queue and are grouped per base in each forward.

    A batch closes when it holds max_batch_size rows or max_wait_ms after its first request arrived.
    A single request larger than max_batch_size runs alone, whole.
    """

    def __init__(
        self, *, max_batch_size: int = 32, max_wait_ms: float = 5.0, observer: RuntimeObserver | None = None
    ) -> None:
        self.observer = observer or RuntimeObserver()
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self._queue: queue_mod.SimpleQueue[_Request | None] = queue_mod.SimpleQueue()
        self._carry: _Request | None = None
        self._stats_lock = threading.Lock()
        self.batch_sizes: Counter[int] = Counter()  # rows per forward -> how many forwards
        self._thread = threading.Thread(target=self._loop, name="serving-batcher", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, lm: LoadedModel, rows: list[Encoded]) -> Future:
        """The future resolves to one Classification per row. The caller keeps `lm` pinned until it does."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        fut: Future = Future()
        self._queue.put(_Request(lm, rows, fut))
        return fut

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def stats(self) -> dict[str, float]:
        with self._stats_lock:
            forwards = sum(self.batch_sizes.values())
            rows = sum(k * v for k, v in self.batch_sizes.items())
        return {"forwards": forwards, "rows": rows, "mean_batch_size": rows / forwards if forwards else 0.0}

    def _next(self, timeout: float | None) -> _Request | None:
        if self._carry is not None:
            req, self._carry = self._carry, None
            return req
        return self._queue.get(timeout=timeout) if timeout is not None else self._queue.get()

    def _loop(self) -> None:
        while True:
            first = self._next(None)
            if first is None:
                return
            batch, n = [first], len(first.rows)
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while n < self.max_batch_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    req = self._next(left)
                except queue_mod.Empty:
                    break
                if req is None:
                    stop = True
                    break
                if n + len(req.rows) > self.max_batch_size:
                    self._carry = req  # it opens the next batch
                    break
                batch.append(req)
                n += len(req.rows)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        flat = [(r.lm, e) for r in live for e in r.rows]
        try:
            logits = logits_for(flat)
        except Exception as e:  # noqa: BLE001 - one bad model fails its batch, never the worker thread
            log.exception("serving: batched forward failed")
            for r in live:
                r.future.set_exception(e)
            return
        with self._stats_lock:
            self.batch_sizes[len(flat)] += 1
        notify(self.observer, "on_batch", size=len(flat))
        i = 0
        for r in live:
            out = [to_classification(r.lm, logits[i + j], e) for j, e in enumerate(r.rows)]
            i += len(r.rows)
            r.future.set_result(out)
