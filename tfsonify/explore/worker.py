"""Bounded background computation: one thread, a queue with a limit, shared results for identical requests.

The app never computes on its event loop: it awaits :meth:`Worker.run`, which hands the job to the worker thread
(TensorFlow, numpy and PIL release the GIL, so the loop keeps answering). When ``max_pending`` jobs are already
queued or running, :meth:`Worker.run` raises :class:`Busy` at once and the app answers 503 with ``Retry-After``:
backpressure instead of an unbounded queue. Two requests for the same key while it is pending share one job.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable

__all__ = ["Busy", "Worker"]


class Busy(RuntimeError):
    """The worker's queue is full; try again shortly."""


class Worker:
    """Runs callables on ``threads`` background threads, at most ``max_pending`` at a time (queued + running)."""

    def __init__(self, name: str, max_pending: int = 16, threads: int = 1):
        if max_pending < 1 or threads < 1:
            raise ValueError(f"max_pending and threads must be >= 1; received {max_pending}, {threads}")
        self.name = name
        self.max_pending = int(max_pending)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"tfsonify-{name}")
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Future] = {}
        self._count = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return self._count

    def submit(self, key: Hashable | None, fn: Callable[[], Any]) -> Future:
        """Queue ``fn`` (or join the pending job with the same ``key``); :class:`Busy` if the queue is full."""
        with self._lock:
            if key is not None and key in self._pending:
                return self._pending[key]
            if self._count >= self.max_pending:
                self.rejected += 1
                raise Busy(f"the {self.name} worker is busy ({self._count} jobs pending); retry shortly")
            self._count += 1
            future = self._executor.submit(fn)
            if key is not None:
                self._pending[key] = future
        future.add_done_callback(lambda _: self._done(key, future))
        return future

    def _done(self, key: Hashable | None, future: Future) -> None:
        with self._lock:
            self._count -= 1
            if key is not None and self._pending.get(key) is future:
                del self._pending[key]

    async def run(self, key: Hashable | None, fn: Callable[[], Any]) -> Any:
        """Await ``fn()`` computed on the worker thread."""
        return await asyncio.wrap_future(self.submit(key, fn))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
