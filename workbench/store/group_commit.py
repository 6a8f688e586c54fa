"""Group commit: many callers' writes batched into one durable commit by one writer thread.

Callers get a future that resolves only after their items were written, so an
acknowledgement always means durable; the queue is bounded, so overload is an error the
caller can retry rather than unbounded memory.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from workbench.errors import OverloadedError

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Runs ``write_batch`` on a writer thread over the items of every waiting submission."""

    def __init__(
        self,
        write_batch: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        max_pending: int,
        name: str = "group-commit",
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._queue: deque[tuple[list[T], Future]] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Items submitted and not yet written."""
        return self._pending

    def submit(self, items: list[T]) -> Future:
        """Queue items for the next commit; the future resolves to their results in order."""
        future: Future = Future()
        if not items:
            future.set_result([])
            return future
        with self._cond:
            if self._closed:
                raise OverloadedError("the writer is shutting down", retry_after=2)
            if self._pending and self._pending + len(items) > self._max_pending:
                raise OverloadedError(f"{self._pending} items are waiting to be written; retry shortly")
            self._queue.append((items, future))
            self._pending += len(items)
            self._cond.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[list[T], Future]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            taken, count = [], 0
            while self._queue and (not taken or count + len(self._queue[0][0]) <= self._max_batch):
                items, future = self._queue.popleft()
                taken.append((items, future))
                count += len(items)
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                return
            flat = [item for items, _ in taken for item in items]
            try:
                results = list(self._write_batch(flat))
            except BaseException as exc:  # the writer must survive; callers see the failure
                for _, future in taken:
                    future.set_exception(exc)
            else:
                offset = 0
                for items, future in taken:
                    future.set_result(results[offset : offset + len(items)])
                    offset += len(items)
            finally:
                with self._cond:
                    self._pending -= len(flat)
